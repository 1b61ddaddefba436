// kiln::FusedElementwise on the GPU: the NVRTC kernel of the node's program
// (nvrtc_codegen.h). An engine's node carries the cubin the builder compiled;
// a graph that did not go through the builder (tests, conformance) compiles
// its kernel for this device on the plan's first run. Either way the kernel
// is loaded on the plan's first run, which the runner never captures, so
// later runs (and CUDA graph capture) only launch.
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <mutex>

#include "backends/cuda/cuda_kernel.h"
#include "backends/cuda/cuda_status.h"
#include "backends/cuda/device.h"
#include "backends/cuda/nvrtc_codegen.h"

namespace kiln::cuda {
namespace {

Status supports_fused_elementwise(const Node& node) {
  KILN_ASSIGN_OR_RETURN(ElementwiseProgram p, read_elementwise_program(node));
  if (node.inputs.size() > kMaxProgramInputs)
    return unsupported("FusedElementwise: {} inputs; the kernel takes at most {}", node.inputs.size(),
                       kMaxProgramInputs);
  for (size_t i = 0; i < node.inputs.size(); ++i)
    if (!is_program_dtype(node.inputs[i]->type.dtype))
      return unsupported("FusedElementwise: input {} is {}; the kernel reads f32, f16 or bf16", i,
                         dtype_name(node.inputs[i]->type.dtype));
  const Value* out = node.output(0);
  if (out && out->type.shape.has_rank() && out->type.shape.rank() > kFusedMaxRank)
    return unsupported("FusedElementwise: output rank {} is over the kernel's {}", out->type.shape.rank(),
                       kFusedMaxRank);
  return Status::ok();
}

// A kernel compiled here for a node without a cubin, by source and SM, once per process.
Expected<cudaKernel_t> jit_kernel(const Node& node, int sm) {
  static std::mutex mutex;
  static std::map<std::string, std::vector<uint8_t>> cubins;
  KILN_ASSIGN_OR_RETURN(std::string source, fused_elementwise_source(node));
  source = fmt::format("// sm_{}\n", sm) + source;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cubins.find(source);
  if (it == cubins.end()) {
    KILN_ASSIGN_OR_RETURN(std::vector<uint8_t> cubin, compile_to_cubin(source, sm, node.label()));
    it = cubins.emplace(std::move(source), std::move(cubin)).first;
  }
  return load_fused_kernel(it->second.data(), it->second.size(), node.label());
}

Expected<cudaKernel_t> kernel_for(KernelContext& ctx) {
  const Node& node = ctx.node();
  if (const Attribute* a = node.attr("cubin"); a && a->kind == Attribute::Kind::kTensor && a->t.numel() > 0) {
    if (a->t.dtype() != DType::kU8)
      return invalid_model("{}: attribute 'cubin' is {}, not u8", node.label(), dtype_name(a->t.dtype()));
    return load_fused_kernel(a->t.raw(), a->t.nbytes(), node.label());
  }
  return jit_kernel(node, ctx.device().cc_major * 10 + ctx.device().cc_minor);
}

Status run_fused_elementwise(KernelContext& ctx) {
  std::any& state = ctx.state();
  if (!state.has_value()) {
    KILN_ASSIGN_OR_RETURN(cudaKernel_t k, kernel_for(ctx));
    state = k;
  }
  auto kernel = std::any_cast<cudaKernel_t>(state);
  const DeviceTensor& y = ctx.output(0);
  FusedElementwiseParams p;
  p.n = y.numel();
  if (p.n == 0) return Status::ok();
  if (y.rank() > kFusedMaxRank)
    return unsupported("{}: output rank {} is over the fused kernel's {}", ctx.node().label(), y.rank(), kFusedMaxRank);
  p.rank = y.rank();
  std::copy(y.dims.begin(), y.dims.end(), p.dims);
  p.all_contiguous = 1;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    const DeviceTensor& x = ctx.input(i);
    p.in[i] = x.data;
    if (x.dims != y.dims) p.all_contiguous = 0;
    // Row-major strides of x, aligned on the right with y's dims; 0 where x broadcasts.
    int64_t stride = 1;
    for (int64_t d = x.rank() - 1, o = y.rank() - 1; d >= 0; --d, --o) {
      p.strides[i][o] = x.dims[d] == 1 && y.dims[o] != 1 ? 0 : stride;
      stride *= x.dims[d];
    }
  }
  p.out = y.data;
  constexpr int kThreads = 256;
  const int64_t blocks = std::min<int64_t>((p.n + kThreads - 1) / kThreads, int64_t{1} << 20);
  void* args[] = {&p};
  KILN_CUDA_RETURN_IF_ERROR(cudaLaunchKernel(reinterpret_cast<const void*>(kernel), dim3(static_cast<unsigned>(blocks)),
                                             dim3(kThreads), args, 0, ctx.stream()));
  return Status::ok();
}

}  // namespace

KILN_CUDA_KERNEL("kiln", "FusedElementwise", {.run = run_fused_elementwise, .supports = supports_fused_elementwise});

}  // namespace kiln::cuda
