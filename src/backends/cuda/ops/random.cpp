// RandomUniform, RandomNormal, their *Like forms, Bernoulli and Multinomial
// (kernels/random.cu). A `seed` attribute (its float bits, as on the CPU)
// gives the same values on every run; without one, the context draws a seed
// from the system once and every launch mixes in a device-side counter, so
// runs differ (CUDA graph replays too). The values are not the CPU backend's:
// the generators differ, the distributions are the same.
#include "backends/cuda/kernels/random.cuh"

#include <cstring>
#include <random>

#include "backends/cuda/cuda_kernel.h"
#include "backends/cuda/ops/norm_op_util.h"

namespace kiln::cuda {
namespace {

// The seed of `node`, and whether each launch should draw fresh values.
std::pair<uint64_t, bool> seed_of(KernelContext& ctx) {
  const Node& n = ctx.node();
  if (n.attr("seed")) {
    const float f = n.attr_float("seed", 0);
    uint32_t bits = 0;
    std::memcpy(&bits, &f, sizeof(bits));
    return {bits, false};
  }
  std::any& state = ctx.state();
  if (!state.has_value())
    state = (static_cast<uint64_t>(std::random_device{}()) << 32) | static_cast<uint64_t>(std::random_device{}());
  return {std::any_cast<uint64_t>(state), true};
}

// Bernoulli's probabilities and Multinomial's log-probabilities.
Status supports_float_input(const Node& node) { return require_float(node, 0, "input"); }

KernelDef random_def(RandomKind kind) {
  KernelDef def;
  def.run = [kind](KernelContext& ctx) -> Status {
    const Node& n = ctx.node();
    RandomParams p;
    p.kind = kind;
    const DeviceTensor& y = ctx.output(0);
    p.dtype = y.dtype, p.y = y.data, p.n = y.numel();
    if (kind == RandomKind::kUniform) {
      p.a = n.attr_float("low", 0), p.b = n.attr_float("high", 1);
    } else if (kind == RandomKind::kNormal) {
      p.a = n.attr_float("mean", 0), p.b = n.attr_float("scale", 1);
    } else {
      p.p = ctx.input(0).data, p.p_dtype = ctx.input(0).dtype;
    }
    if (kind != RandomKind::kBernoulli && !is_float(p.dtype))
      return invalid_argument("{}: output dtype {} is not a float type", n.op_type, dtype_name(p.dtype));
    std::tie(p.seed, p.fresh_each_launch) = seed_of(ctx);
    return launch_random(p, ctx.stream());
  };
  if (kind == RandomKind::kBernoulli) def.supports = supports_float_input;
  return def;
}

Status run_multinomial(KernelContext& ctx) {
  const DeviceTensor &x = ctx.input(0), &y = ctx.output(0);
  if (x.rank() != 2 || x.dims[1] < 1) return invalid_argument("Multinomial: input must be [batch, classes >= 1]");
  MultinomialParams p;
  p.dtype = x.dtype, p.x = x.data;
  p.y = y.data, p.y_i64 = y.dtype == DType::kI64;
  p.batch = x.dims[0], p.classes = x.dims[1], p.samples = y.rank() == 2 ? y.dims[1] : 0;
  std::tie(p.seed, p.fresh_each_launch) = seed_of(ctx);
  return launch_multinomial(p, ctx.stream());
}

}  // namespace

KILN_CUDA_KERNEL("", "RandomUniform", random_def(RandomKind::kUniform));
KILN_CUDA_KERNEL("", "RandomNormal", random_def(RandomKind::kNormal));
KILN_CUDA_KERNEL("", "RandomUniformLike", random_def(RandomKind::kUniform));
KILN_CUDA_KERNEL("", "RandomNormalLike", random_def(RandomKind::kNormal));
KILN_CUDA_KERNEL("", "Bernoulli", random_def(RandomKind::kBernoulli));
KILN_CUDA_KERNEL("", "Multinomial", {.run = run_multinomial, .supports = supports_float_input});

}  // namespace kiln::cuda
