#include "backends/cuda/nvrtc_codegen.h"

#include <fmt/format.h>
#include <nvrtc.h>

#include <cstring>
#include <map>
#include <memory>
#include <mutex>

#include "backends/cuda/cuda_status.h"
#include "backends/cuda/device.h"

namespace kiln::cuda {
namespace {

using Op = ElementwiseOpcode;

// Helpers of every generated kernel. 16-bit floats travel as unsigned short
// and convert with PTX cvt (round to nearest even, as the CPU's Half and
// BFloat16), so the source needs no header. The min/max helpers keep the
// CPU kernels' comparisons, NaN cases included.
constexpr const char* kPrelude = R"(
struct KilnFusedParams {
  long long n;
  long long rank;
  long long all_contiguous;
  long long dims[KILN_MAX_RANK];
  long long strides[KILN_MAX_INPUTS][KILN_MAX_RANK];
  const void* in[KILN_MAX_INPUTS];
  void* out;
};
__device__ __forceinline__ float kiln_h2f(unsigned short h) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f; }
__device__ __forceinline__ unsigned short kiln_f2h(float f) { unsigned short h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h; }
__device__ __forceinline__ float kiln_b2f(unsigned short b) { return __uint_as_float(((unsigned int)b) << 16); }
__device__ __forceinline__ unsigned short kiln_f2b(float f) { unsigned short b; asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(b) : "f"(f)); return b; }
__device__ __forceinline__ float kiln_max(float a, float b) { return a != a ? a : (b != b ? b : (a < b ? b : a)); }
__device__ __forceinline__ float kiln_min(float a, float b) { return a != a ? a : (b != b ? b : (b < a ? b : a)); }
__device__ __forceinline__ float kiln_std_max(float a, float b) { return a < b ? b : a; }
__device__ __forceinline__ float kiln_std_min(float a, float b) { return b < a ? b : a; }
__device__ __forceinline__ float kiln_sigmoid(float x) {
  if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
  const float e = expf(x);
  return e / (1.0f + e);
}
__device__ __forceinline__ float kiln_softplus(float x) { return x > 0.0f ? x + log1pf(expf(-x)) : log1pf(expf(x)); }
__device__ __forceinline__ float kiln_clip(float x, float lo, float hi) { x = x < lo ? lo : x; return x > hi ? hi : x; }
)";

const char* c_type(DType t) { return t == DType::kF32 ? "float" : "unsigned short"; }

std::string load_expr(DType t, const std::string& ptr, const std::string& off) {
  std::string raw = fmt::format("(({} const*){})[{}]", c_type(t), ptr, off);
  if (t == DType::kF16) return "kiln_h2f(" + raw + ")";
  if (t == DType::kBF16) return "kiln_b2f(" + raw + ")";
  return raw;
}

std::string round_expr(DType t, const std::string& v) {
  if (t == DType::kF16) return fmt::format("kiln_h2f(kiln_f2h({}))", v);
  if (t == DType::kBF16) return fmt::format("kiln_b2f(kiln_f2b({}))", v);
  return v;
}

// The instruction's math on operand names a, b, c, written as the CPU kernel writes it.
std::string op_expr(Op op, const std::string& a, const std::string& b, const std::string& c) {
  switch (op) {
    case Op::kAdd: return fmt::format("({} + {})", a, b);
    case Op::kSub: return fmt::format("({} - {})", a, b);
    case Op::kMul: return fmt::format("({} * {})", a, b);
    case Op::kDiv: return fmt::format("({} / {})", a, b);
    case Op::kPow: return fmt::format("(float)pow((double){}, (double){})", a, b);
    case Op::kMax: return fmt::format("kiln_max({}, {})", a, b);
    case Op::kMin: return fmt::format("kiln_min({}, {})", a, b);
    case Op::kLeakyRelu: return fmt::format("({0} < 0.0f ? {1} * {0} : {0})", a, b);
    case Op::kNeg: return fmt::format("(-{})", a);
    case Op::kAbs: return fmt::format("fabsf({})", a);
    case Op::kExp: return fmt::format("expf({})", a);
    case Op::kLog: return fmt::format("logf({})", a);
    case Op::kSqrt: return fmt::format("sqrtf({})", a);
    case Op::kReciprocal: return fmt::format("(1.0f / {})", a);
    case Op::kRelu: return fmt::format("({0} < 0.0f ? 0.0f : {0})", a);
    case Op::kSigmoid: return fmt::format("kiln_sigmoid({})", a);
    case Op::kTanh: return fmt::format("tanhf({})", a);
    case Op::kErf: return fmt::format("erff({})", a);
    case Op::kSoftplus: return fmt::format("kiln_softplus({})", a);
    case Op::kHardSwish: return fmt::format("({0} * kiln_std_max(0.0f, kiln_std_min(1.0f, {0} / 6.0f + 0.5f)))", a);
    case Op::kGelu: return fmt::format("(0.5f * {0} * (1.0f + erff({0} / sqrtf(2.0f))))", a);
    case Op::kGeluTanh:
      return fmt::format(
          "(0.5f * {0} * (1.0f + tanhf(sqrtf(2.0f / 3.14159265358979323846f) * ({0} + 0.044715f * {0} * {0} * {0}))))",
          a);
    case Op::kCast: return a;
    case Op::kClip: return fmt::format("kiln_clip({}, {}, {})", a, b, c);
    case Op::kHardSigmoid: return fmt::format("kiln_std_max(0.0f, kiln_std_min(1.0f, {} * {} + {}))", b, a, c);
  }
  return a;
}

std::string slot_name(int32_t slot) { return slot < 0 ? "0.0f" : fmt::format("s{}", slot); }

std::string nvrtc_error(nvrtcResult r) { return nvrtcGetErrorString(r); }

}  // namespace

Expected<std::string> fused_elementwise_source(const ElementwiseProgram& p, const std::vector<DType>& input_dtypes) {
  if (input_dtypes.size() != static_cast<size_t>(p.num_inputs))
    return invalid_argument("fused kernel: {} input dtypes for a program of {} inputs", input_dtypes.size(),
                            p.num_inputs);
  if (p.num_inputs < 1 || static_cast<size_t>(p.num_inputs) > kMaxProgramInputs)
    return unsupported("fused kernel: {} inputs; the kernel takes 1 to {}", p.num_inputs, kMaxProgramInputs);
  for (size_t i = 0; i < input_dtypes.size(); ++i)
    if (!is_program_dtype(input_dtypes[i]))
      return unsupported("fused kernel: input {} is {}; it reads f32, f16 or bf16", i, dtype_name(input_dtypes[i]));
  if (p.code.empty()) return invalid_argument("fused kernel: the program has no instructions");
  const int nin = p.num_inputs;
  std::string s =
      fmt::format("#define KILN_MAX_RANK {}\n#define KILN_MAX_INPUTS {}\n", kFusedMaxRank, kMaxProgramInputs);
  s += kPrelude;
  s += fmt::format("extern \"C\" __global__ void {}(const KilnFusedParams p) {{\n", kFusedKernelName);
  s += "  const long long step = (long long)gridDim.x * blockDim.x;\n";
  s += "  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < p.n; i += step) {\n";
  s += fmt::format("    long long off[{}];\n", nin);
  s += "    if (p.all_contiguous) {\n";
  for (int k = 0; k < nin; ++k) s += fmt::format("      off[{}] = i;\n", k);
  s += "    } else {\n";
  for (int k = 0; k < nin; ++k) s += fmt::format("      off[{}] = 0;\n", k);
  // 32-bit division where the index fits: 64-bit division is many times slower.
  s += "      if (p.n <= 0xffffffffLL) {\n";
  s += "        unsigned int rest = (unsigned int)i;\n";
  s += "        for (int d = (int)p.rank - 1; d >= 0; --d) {\n";
  s += "          const unsigned int c = rest % (unsigned int)p.dims[d];\n";
  s += "          rest /= (unsigned int)p.dims[d];\n";
  for (int k = 0; k < nin; ++k) s += fmt::format("          off[{0}] += (long long)c * p.strides[{0}][d];\n", k);
  s += "        }\n      } else {\n";
  s += "        long long rest = i;\n";
  s += "        for (int d = (int)p.rank - 1; d >= 0; --d) {\n";
  s += "          const long long c = rest % p.dims[d];\n";
  s += "          rest /= p.dims[d];\n";
  for (int k = 0; k < nin; ++k) s += fmt::format("          off[{0}] += c * p.strides[{0}][d];\n", k);
  s += "        }\n      }\n    }\n";
  for (int k = 0; k < nin; ++k)
    s += fmt::format("    const float s{} = {};\n", k,
                     load_expr(input_dtypes[k], fmt::format("p.in[{}]", k), fmt::format("off[{}]", k)));
  for (size_t j = 0; j < p.constants.size(); ++j) {
    uint32_t bits;
    std::memcpy(&bits, &p.constants[j], sizeof bits);
    s += fmt::format("    const float s{} = __int_as_float((int)0x{:08x}u);  // {}\n", nin + j, bits, p.constants[j]);
  }
  int slot = p.first_result_slot();
  for (const ElementwiseInstruction& ins : p.code) {
    const std::string e = op_expr(ins.op, slot_name(ins.args[0]), slot_name(ins.args[1]), slot_name(ins.args[2]));
    s += fmt::format("    const float s{} = {};  // {}\n", slot, round_expr(ins.dtype, e),
                     elementwise_opcode_name(ins.op));
    ++slot;
  }
  const DType out = p.output_dtype();
  const std::string result = fmt::format("s{}", slot - 1);
  if (out == DType::kF32)
    s += fmt::format("    ((float*)p.out)[i] = {};\n", result);
  else
    s += fmt::format("    ((unsigned short*)p.out)[i] = {}({});\n", out == DType::kF16 ? "kiln_f2h" : "kiln_f2b",
                     result);
  s += "  }\n}\n";
  return s;
}

Expected<std::string> fused_elementwise_source(const Node& node) {
  KILN_ASSIGN_OR_RETURN(ElementwiseProgram p, read_elementwise_program(node));
  std::vector<DType> dtypes;
  for (const Value* v : node.inputs) dtypes.push_back(v ? v->type.dtype : DType::kUndefined);
  Expected<std::string> src = fused_elementwise_source(p, dtypes);
  if (!src) return src.status().with_context(node.label());
  return src;
}

Expected<std::vector<uint8_t>> compile_to_cubin(const std::string& source, int sm, const std::string& what) {
  nvrtcProgram prog = nullptr;
  nvrtcResult r = nvrtcCreateProgram(&prog, source.c_str(), "kiln_fused_elementwise.cu", 0, nullptr, nullptr);
  if (r != NVRTC_SUCCESS) return internal_error("{}: nvrtcCreateProgram: {}", what, nvrtc_error(r));
  std::unique_ptr<nvrtcProgram, void (*)(nvrtcProgram*)> owner(&prog, [](nvrtcProgram* p) { nvrtcDestroyProgram(p); });
  const std::string arch = fmt::format("--gpu-architecture=sm_{}", sm);
  // No FMA contraction: a*x+b rounds twice, as on the CPU reference.
  const char* options[] = {arch.c_str(), "--std=c++17", "--fmad=false"};
  r = nvrtcCompileProgram(prog, 3, options);
  if (r != NVRTC_SUCCESS) {
    size_t log_size = 0;
    std::string log;
    if (nvrtcGetProgramLogSize(prog, &log_size) == NVRTC_SUCCESS && log_size > 1) {
      log.resize(log_size);
      if (nvrtcGetProgramLog(prog, log.data()) != NVRTC_SUCCESS) log.clear();
      while (!log.empty() && (log.back() == '\0' || log.back() == '\n')) log.pop_back();
    }
    return Status(r == NVRTC_ERROR_COMPILATION ? ErrorCode::kInternal : ErrorCode::kInvalidArgument,
                  fmt::format("{}: NVRTC could not compile the fused kernel for sm_{}: {}{}{}", what, sm,
                              nvrtc_error(r), log.empty() ? "" : "\n", log));
  }
  size_t size = 0;
  r = nvrtcGetCUBINSize(prog, &size);
  if (r != NVRTC_SUCCESS) return internal_error("{}: nvrtcGetCUBINSize: {}", what, nvrtc_error(r));
  if (size == 0) return internal_error("{}: NVRTC produced no cubin for sm_{}", what, sm);
  std::vector<uint8_t> cubin(size);
  r = nvrtcGetCUBIN(prog, reinterpret_cast<char*>(cubin.data()));
  if (r != NVRTC_SUCCESS) return internal_error("{}: nvrtcGetCUBIN: {}", what, nvrtc_error(r));
  return cubin;
}

Expected<size_t> compile_fused_kernels(Graph& graph, int sm) {
  std::map<std::string, Tensor> compiled;  // source -> cubin, so identical chains compile once
  for (const auto& np : graph.nodes()) {
    Node& n = *np;
    if (n.domain != "kiln" || n.op_type != "FusedElementwise") continue;
    KILN_ASSIGN_OR_RETURN(std::string source, fused_elementwise_source(n));
    auto it = compiled.find(source);
    if (it == compiled.end()) {
      KILN_ASSIGN_OR_RETURN(std::vector<uint8_t> cubin, compile_to_cubin(source, sm, n.label()));
      Tensor t(DType::kU8, {static_cast<int64_t>(cubin.size())});
      std::memcpy(t.mutable_raw(), cubin.data(), cubin.size());
      it = compiled.emplace(std::move(source), std::move(t)).first;
    }
    n.attrs["cubin"] = Attribute::of_tensor(it->second);
  }
  return compiled.size();
}

Expected<int> current_device_sm() {
  int index = 0;
  KILN_CUDA_RETURN_IF_ERROR(cudaGetDevice(&index));
  KILN_ASSIGN_OR_RETURN(DeviceInfo info, device_info(index));
  return info.cc_major * 10 + info.cc_minor;
}

Expected<cudaKernel_t> load_fused_kernel(const void* cubin, size_t size, const std::string& what) {
  // Libraries stay loaded for the process: a handful of small cubins, shared
  // by every engine and context that uses the same kernel.
  static std::mutex mutex;
  static std::map<std::string, cudaKernel_t> loaded;
  std::string key(static_cast<const char*>(cubin), size);
  std::lock_guard<std::mutex> lock(mutex);
  if (auto it = loaded.find(key); it != loaded.end()) return it->second;
  cudaLibrary_t library = nullptr;
  cudaError_t err = cudaLibraryLoadData(&library, cubin, nullptr, nullptr, 0, nullptr, nullptr, 0);
  if (err != cudaSuccess)
    return to_status(err, "cudaLibraryLoadData").with_context(what + ": loading its fused kernel");
  cudaKernel_t kernel = nullptr;
  err = cudaLibraryGetKernel(&kernel, library, kFusedKernelName);
  if (err != cudaSuccess) {
    cudaLibraryUnload(library);
    return to_status(err, "cudaLibraryGetKernel").with_context(what);
  }
  loaded.emplace(std::move(key), kernel);
  return kernel;
}

}  // namespace kiln::cuda
