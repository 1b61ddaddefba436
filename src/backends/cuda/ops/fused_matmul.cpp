// kiln.FusedMatMul: act(MatMul(A, B) + bias + residual) in one cuBLASLt call
// where its epilogue can do it (BIAS, RELU_BIAS, and GELU_BIAS for 16-bit
// outputs), timed over the heuristic's candidates like MatMul. The residual
// is cuBLASLt's C (beta = 1, laid out as D), which it adds to the product
// before the epilogue's bias and activation. GELU_BIAS is the tanh
// form; for 16-bit outputs it also runs the exact (erf) Gelu: the two differ
// by at most 4.7e-4 (at x = -2.70), under the rounding of 16-bit outputs of
// magnitude 0.5 and up, and a separate Gelu pass costs a whole read and write
// of the output (ViT-B/16's MLP ran at 363 TFLOP/s with it, its other GEMMs at
// 660-690 on an H200). f32 must match the CPU to about 1e-5, and cuBLASLt
// does not document its tanh's accuracy: there the product takes the bias and
// one elementwise pass applies the Gelu. Where cuBLASLt has no algorithm with
// the epilogue, or the batching needs several calls, a plain product (plus
// the residual as C, sliced with D where the batch takes several calls) is
// followed by one bias + activation pass with the exact activation: the layer
// never fails for want of an epilogue. For 16-bit layers with the exact Gelu
// and no residual, tactics "cudnn:<i>" run the whole layer as one cuDNN graph
// (cudnn_matmul.h; its GELU_FWD is the tanh form too); the tuner times them
// against cuBLASLt's, which stays the default.
#include <fmt/ranges.h>

#include <algorithm>
#include <cstdint>

#include "backends/cuda/cuda_status.h"
#include "backends/cuda/cudnn_handle.h"
#include "backends/cuda/kernels/bias_activation.cuh"
#include "backends/cuda/ops/cudnn_matmul.h"
#include "backends/cuda/ops/matmul_plan.h"

namespace kiln::cuda {
namespace {

struct Epilogue {
  MatmulActivation cublaslt = MatmulActivation::kNone;  // what cuBLASLt applies
  BiasActivation after = BiasActivation::kNone;         // what a separate pass applies after it
  BiasActivation full = BiasActivation::kNone;          // the whole activation, for the fallback
};

Expected<Epilogue> epilogue_of(const Node& node, DType dtype) {
  const std::string act = node.attr_string("activation", "");
  if (act.empty()) return Epilogue{};
  if (act == "Relu") return Epilogue{MatmulActivation::kRelu, BiasActivation::kNone, BiasActivation::kRelu};
  if (act == "GeluTanh" && dtype != DType::kF32)
    return Epilogue{MatmulActivation::kGeluTanh, BiasActivation::kNone, BiasActivation::kGeluTanh};
  if (act == "GeluTanh") return Epilogue{MatmulActivation::kNone, BiasActivation::kGeluTanh, BiasActivation::kGeluTanh};
  if (act == "Gelu" && dtype != DType::kF32)
    return Epilogue{MatmulActivation::kGeluTanh, BiasActivation::kNone, BiasActivation::kGelu};
  if (act == "Gelu") return Epilogue{MatmulActivation::kNone, BiasActivation::kGelu, BiasActivation::kGelu};
  return invalid_model("FusedMatMul: activation \"{}\" is not one of \"\", Relu, Gelu, GeluTanh", act);
}

Status supports_fused_matmul(const Node& node) {
  const Value* a = node.input(0);
  const DType t = a ? a->type.dtype : DType::kUndefined;
  if (t != DType::kUndefined && !cublaslt_dtype(t))
    return unsupported("FusedMatMul: dtype {} (the CUDA kernel takes f32, f16, bf16)", dtype_name(t));
  return epilogue_of(node, t).status();
}

// The cuDNN spec of the layer for these operands (engine 0), or nullopt
// where the cudnn tactics do not apply (among others, a layer with a residual).
std::optional<CudnnMatmulSpec> cudnn_spec_of(const Node& node, DType t, const std::vector<int64_t>& a,
                                             const std::vector<int64_t>& b, bool has_bias, bool has_residual,
                                             size_t workspace_limit) {
  auto e = epilogue_of(node, t);
  if (!e || has_residual) return std::nullopt;
  return cudnn_matmul_spec(t, a, b, has_bias, e->full, workspace_limit);
}

// The cuDNN plan a "cudnn:<i>" tactic runs, for the planned dims; null for
// other tactics and where cuDNN has none.
std::shared_ptr<const CudnnMatmulPlan> planned_cudnn_matmul(const KernelQuery& q) {
  const std::optional<int> engine = cudnn_matmul_tactic_index(q.tactic());
  const auto *a = q.input_dims(0), *b = q.input_dims(1);
  if (!engine || !a || !b) return nullptr;
  std::optional<CudnnMatmulSpec> spec =
      cudnn_spec_of(q.node(), q.input_dtype(0), *a, *b, q.has_input(2), q.has_input(3), q.workspace_limit());
  if (!spec) return nullptr;
  spec->engine_index = *engine;
  return cudnn_matmul_plan(*spec);
}

// cuBLASLt's scratch, and for a cudnn tactic at least its plan's (the run
// falls back to cuBLASLt where the plan cannot take the buffers).
size_t fused_workspace(const KernelQuery& q) {
  const size_t cublaslt = cublaslt_workspace_bytes(q.workspace_limit());
  const std::shared_ptr<const CudnnMatmulPlan> plan = planned_cudnn_matmul(q);
  return plan ? std::max(cublaslt, workspace_size(*plan)) : cublaslt;
}

// The product as one cuBLASLt call with the epilogue, when one expresses it;
// a residual is C, laid out as D.
std::optional<MatmulShape> fused_shape(const BatchedProduct& bp, DType t, bool tf32, bool has_bias, bool has_residual,
                                       const Epilogue& e) {
  if (bp.k == 0) return std::nullopt;
  auto s = single_call_shape(bp, t, tf32);
  if (!s) return std::nullopt;
  s->has_bias = has_bias;
  s->has_c = has_residual;
  s->stride_c = has_residual ? bp.m * bp.n : 0;
  s->activation = e.cublaslt;
  return s;
}

// cuBLASLt's candidates for the product with its epilogue (the heuristic is
// asked with the epilogue set, so "cublaslt:i" names the same algorithm here
// and in run), then, for the exact Gelu of 16-bit layers, cuDNN's usable
// engine configs (f16/bf16, no residual). The builder keeps the first `limit`, so there
// cuBLASLt takes at most the larger half of them and cuDNN what is left: at
// limit 1 cuBLASLt's first alone (the default). Other layers give cuBLASLt
// every slot.
std::vector<std::string> fused_tactics(const KernelQuery& q, size_t limit) {
  const auto *a = q.input_dims(0), *b = q.input_dims(1);
  auto e = epilogue_of(q.node(), q.input_dtype(0));
  if (!a || !b || !e) return {};
  auto bp = plan_product(*a, *b, "FusedMatMul");
  if (!bp) return {};
  auto s = fused_shape(*bp, q.input_dtype(0), q.allow_tf32(), q.has_input(2), q.has_input(3), *e);
  const bool with_cudnn = e->full == BiasActivation::kGelu && !q.has_input(3);
  std::vector<std::string> out;
  if (s)
    out = cublaslt_tactics(*s, with_cudnn ? limit - limit / 2 : limit, cublaslt_workspace_bytes(q.workspace_limit()));
  const std::optional<CudnnMatmulSpec> spec =
      with_cudnn ? cudnn_spec_of(q.node(), q.input_dtype(0), *a, *b, q.has_input(2), false, q.workspace_limit())
                 : std::nullopt;
  if (spec && out.size() < limit) {
    const int n = cudnn_matmul_engine_count(*spec, static_cast<int>(std::min<size_t>(limit - out.size(), 64)));
    for (int i = 0; i < n; ++i) out.push_back(cudnn_matmul_tactic(i));
  }
  return out;
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// A "cudnn:<i>" tactic: the plan the workspace was sized for, looked up in
// the process-wide cache. Returns false, having run nothing, where there is
// none or the buffers do not fit it: cuBLASLt's path then runs.
Expected<bool> run_cudnn_matmul(KernelContext& ctx, const void* bias) {
  const std::optional<int> engine = cudnn_matmul_tactic_index(ctx.tactic());
  if (!engine) return false;
  const DeviceTensor &a = ctx.input(0), &b = ctx.input(1), &y = ctx.output(0);
  std::optional<CudnnMatmulSpec> spec =
      cudnn_spec_of(ctx.node(), a.dtype, a.dims, b.dims, ctx.has_input(2), ctx.has_input(3), ctx.workspace_limit());
  if (!spec) return false;
  spec->engine_index = *engine;
  const std::shared_ptr<const CudnnMatmulPlan> plan = cudnn_matmul_plan(*spec);
  if (!plan || ctx.workspace_bytes() < workspace_size(*plan)) return false;
  const std::initializer_list<const void*> buffers = {a.data, b.data, bias, y.data, ctx.workspace()};
  for (const void* p : buffers)
    if (!aligned16(p)) return false;
  KILN_ASSIGN_OR_RETURN(const Cudnn* cudnn, ctx.cudnn());
  KILN_RETURN_IF_ERROR(
      execute_cudnn_matmul(cudnn->get(), ctx.stream(), *plan, a.data, b.data, bias, y.data, ctx.workspace()));
  return true;
}

// The residual's data after checking it is exactly y's dtype and dims; null without one.
Expected<const void*> checked_residual(const KernelContext& ctx, const DeviceTensor& y) {
  if (!ctx.has_input(3)) return nullptr;
  const DeviceTensor& r = ctx.input(3);
  if (r.dtype != y.dtype || r.dims != y.dims)
    return invalid_model("FusedMatMul: residual must be {}[{}] (the product's), got {}[{}]", dtype_name(y.dtype),
                         fmt::join(y.dims, ","), dtype_name(r.dtype), fmt::join(r.dims, ","));
  return r.data;
}

Status run_fused_matmul(KernelContext& ctx) {
  const DeviceTensor &a = ctx.input(0), &b = ctx.input(1), &y = ctx.output(0);
  KILN_ASSIGN_OR_RETURN(Epilogue e, epilogue_of(ctx.node(), a.dtype));
  KILN_ASSIGN_OR_RETURN(BatchedProduct bp, plan_product(a.dims, b.dims, "FusedMatMul"));
  const bool has_bias = ctx.has_input(2);
  const void* bias = has_bias ? ctx.input(2).data : nullptr;
  if (has_bias) {
    const DeviceTensor& c = ctx.input(2);
    if (c.dtype != a.dtype || c.rank() != 1 || c.dims[0] != bp.n)
      return invalid_model("FusedMatMul: bias must be {}[{}], got {} of {} elements", dtype_name(a.dtype), bp.n,
                           dtype_name(c.dtype), c.numel());
  }
  KILN_ASSIGN_OR_RETURN(const void* residual, checked_residual(ctx, y));
  if (!cublaslt_dtype(a.dtype))
    return unsupported("FusedMatMul: dtype {} (the CUDA kernel takes f32, f16, bf16)", dtype_name(a.dtype));
  if (y.numel() == 0) return Status::ok();
  KILN_ASSIGN_OR_RETURN(const bool ran_cudnn, run_cudnn_matmul(ctx, bias));
  if (ran_cudnn) return Status::ok();
  BiasActivationParams post{a.dtype, y.data, nullptr, y.numel() / bp.n, bp.n, e.after};
  MatmulArgs args{a.data, b.data, residual, bias, y.data};
  args.beta = residual ? 1.f : 0.f;
  const std::optional<MatmulShape> s = fused_shape(bp, a.dtype, ctx.allow_tf32(), has_bias, residual != nullptr, e);
  if (s) {
    KILN_ASSIGN_OR_RETURN(bool fused, try_run_cublaslt(ctx, *s, args));
    if (fused) return launch_bias_activation(post, ctx.stream());
  }
  // The fallback: the plain product plus the residual (cuBLASLt choosing per
  // call, as the cached algorithm is the epilogue's), then bias and activation.
  if (s) {
    MatmulShape plain = *s;
    plain.has_bias = false;
    plain.activation = MatmulActivation::kNone;
    args.bias = nullptr;
    KILN_RETURN_IF_ERROR(run_cublaslt(ctx, plain, args, /*cache=*/false));
  } else if (bp.k > 0) {
    KILN_RETURN_IF_ERROR(run_cublaslt_product(ctx, bp, a.dtype, a.data, b.data, y.data, 0, residual));
  } else if (residual) {  // an empty K: the product is zeros, y the residual
    KILN_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(y.data, residual, y.nbytes(), cudaMemcpyDeviceToDevice, ctx.stream()));
  } else {
    KILN_RETURN_IF_ERROR(
        launch_simple_matmul(simple_params(bp, a.dtype, a.dtype, a.dtype, a.data, b.data, y.data), ctx.stream()));
  }
  post.bias = bias;
  post.activation = e.full;
  return launch_bias_activation(post, ctx.stream());
}

KILN_CUDA_KERNEL("kiln", "FusedMatMul",
                 {.run = run_fused_matmul,
                  .workspace = fused_workspace,
                  .supports = supports_fused_matmul,
                  .tactics = fused_tactics});

}  // namespace
}  // namespace kiln::cuda
