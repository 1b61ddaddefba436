// kiln::FusedElementwise: interprets the node's program (ops/elementwise_program.h)
// element by element. Each instruction's math is written exactly as the
// unfused op's CPU kernel writes it (unary_math.cpp, binary_math.cpp,
// activation.cpp: float for f32/f16/bf16, Pow in double) and its result is
// rounded to the instruction's dtype, so fused and unfused graphs agree bit
// for bit.
#include <algorithm>
#include <cmath>

#include "backends/cpu/kernels/elementwise_apply.h"
#include "ops/elementwise_program.h"

namespace kiln {
namespace {

using Op = ElementwiseOpcode;

float apply(Op op, float x, float y, float z) {
  switch (op) {
    case Op::kAdd: return x + y;
    case Op::kSub: return x - y;
    case Op::kMul: return x * y;
    case Op::kDiv: return x / y;
    case Op::kPow: return static_cast<float>(std::pow(static_cast<double>(x), static_cast<double>(y)));
    case Op::kMax:
      if (x != x) return x;  // NaN propagates, as numpy's maximum
      if (y != y) return y;
      return x < y ? y : x;
    case Op::kMin:
      if (x != x) return x;
      if (y != y) return y;
      return y < x ? y : x;
    case Op::kLeakyRelu: return x < 0 ? y * x : x;
    case Op::kNeg: return -x;
    case Op::kAbs: return std::fabs(x);
    case Op::kExp: return std::exp(x);
    case Op::kLog: return std::log(x);
    case Op::kSqrt: return std::sqrt(x);
    case Op::kReciprocal: return 1.0f / x;
    case Op::kRelu: return x < 0.0f ? 0.0f : x;
    case Op::kSigmoid: {
      if (x >= 0.0f) return 1.0f / (1.0f + std::exp(-x));
      const float e = std::exp(x);
      return e / (1.0f + e);
    }
    case Op::kTanh: return std::tanh(x);
    case Op::kErf: return std::erf(x);
    case Op::kSoftplus: return x > 0.0f ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
    case Op::kHardSwish: return x * std::max(0.0f, std::min(1.0f, x / 6.0f + 0.5f));
    case Op::kGelu: return 0.5f * x * (1.0f + std::erf(x / std::sqrt(2.0f)));
    case Op::kGeluTanh: {
      const float k = std::sqrt(2.0f / static_cast<float>(M_PI));
      return 0.5f * x * (1.0f + std::tanh(k * (x + static_cast<float>(0.044715) * x * x * x)));
    }
    case Op::kCast: return x;
    case Op::kClip:
      x = x < y ? y : x;  // NaN stays NaN; lo > hi gives hi (Clip's spec)
      return x > z ? z : x;
    case Op::kHardSigmoid: return std::max(0.0f, std::min(1.0f, y * x + z));
  }
  return x;
}

float round_to(DType t, float v) {
  if (t == DType::kF16) return static_cast<float>(Half(v));
  if (t == DType::kBF16) return static_cast<float>(BFloat16(v));
  return v;
}

float load(const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case DType::kF16: return t.data<Half>()[i];
    case DType::kBF16: return t.data<BFloat16>()[i];
    default: return t.data<float>()[i];
  }
}

void store(Tensor& t, int64_t i, float v) {
  switch (t.dtype()) {
    case DType::kF16: t.mutable_data<Half>()[i] = Half(v); break;
    case DType::kBF16: t.mutable_data<BFloat16>()[i] = BFloat16(v); break;
    default: t.mutable_data<float>()[i] = v; break;
  }
}

Status run_fused_elementwise(CpuKernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(ElementwiseProgram p, read_elementwise_program(ctx.node()));
  for (size_t i = 0; i < ctx.num_inputs(); ++i)
    if (!is_program_dtype(ctx.input(i).dtype()))
      return unsupported("{}: input {} is {}; FusedElementwise reads f32, f16 or bf16", ctx.node().label(), i,
                         dtype_name(ctx.input(i).dtype()));
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.allocate_output(0));
  std::vector<std::vector<int64_t>> strides;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) strides.push_back(broadcast_strides(ctx.input(i).dims(), out->dims()));
  BroadcastWalker w(out->dims(), std::move(strides));
  std::vector<float> slots(static_cast<size_t>(p.first_result_slot()) + p.code.size());
  std::copy(p.constants.begin(), p.constants.end(), slots.begin() + p.num_inputs);
  const auto arg = [&](const ElementwiseInstruction& ins, int k) {
    return ins.args[k] < 0 ? 0.0f : slots[ins.args[k]];
  };
  for (int64_t e = 0; e < out->numel(); ++e, w.next()) {
    for (int i = 0; i < p.num_inputs; ++i) slots[i] = load(ctx.input(i), w.offset(i));
    size_t s = p.first_result_slot();
    for (const ElementwiseInstruction& ins : p.code)
      slots[s++] = round_to(ins.dtype, apply(ins.op, arg(ins, 0), arg(ins, 1), arg(ins, 2)));
    store(*out, e, slots.back());
  }
  return Status::ok();
}

}  // namespace

KILN_CPU_KERNEL("kiln", "FusedElementwise", run_fused_elementwise);

}  // namespace kiln
