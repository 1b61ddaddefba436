// Adagrad, Adam and Momentum: one optimizer step per tensor group, computed
// in double and stored in each tensor's dtype.
#include <cmath>

#include "backends/cpu/cpu_kernel.h"
#include "backends/cpu/dtype_dispatch.h"

namespace kiln {
namespace {

constexpr const char* kTraining = "ai.onnx.preview.training";

// Element i of every tensor in `ins` -> the new values for the outputs.
using StepFn = std::function<void(const double* in, double* out)>;

// Runs `step` elementwise over each group k: inputs X_k, G_k, states_k
// (`groups` groups after R and T), outputs X_k and states_k.
Status run_step(CpuKernelContext& ctx, size_t groups, const StepFn& step) {
  size_t n = (ctx.num_inputs() - 2) / groups;
  for (size_t k = 0; k < n; ++k) {
    std::vector<const Tensor*> ins;
    for (size_t g = 0; g < groups; ++g) {
      ins.push_back(&ctx.input(2 + g * n + k));
      if (ins.back()->dims() != ins[0]->dims() || !dtype_is_float(ins.back()->dtype()))
        return invalid_argument("{}: tensor group {} must hold float tensors of one shape", ctx.node().op_type, k);
    }
    std::vector<Tensor*> outs;
    for (size_t g = 0, o = 0; g < groups; ++g) {
      if (g == 1) continue;
      outs.push_back(&ctx.allocate_output(o * n + k, ins[g]->dims()));
      ++o;
    }
    std::vector<double> in(groups), out(groups - 1);
    for (int64_t i = 0; i < ins[0]->numel(); ++i) {
      for (size_t g = 0; g < groups; ++g) in[g] = ins[g]->element_as_double(i);
      step(in.data(), out.data());
      for (size_t o = 0; o < outs.size(); ++o) {
        KILN_RETURN_IF_ERROR(visit_dtype(outs[o]->dtype(), kFloatTypes, [&]<typename T>() {
          outs[o]->mutable_data<T>()[i] = static_cast<T>(out[o]);
          return Status::ok();
        }));
      }
    }
  }
  return Status::ok();
}

struct Scalars {
  double r = 0, t = 0;
};

Expected<Scalars> read_rt(const CpuKernelContext& ctx) {
  if (ctx.input(0).numel() != 1 || ctx.input(1).numel() != 1)
    return invalid_argument("{}: R and T must be scalars", ctx.node().op_type);
  return Scalars{ctx.input(0).element_as_double(0), ctx.input(1).element_as_double(0)};
}

Status run_adagrad(CpuKernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(Scalars s, read_rt(ctx));
  const Node& n = ctx.node();
  double decay = n.attr_float("decay_factor", 0), eps = n.attr_float("epsilon", 1e-6f),
         norm = n.attr_float("norm_coefficient", 0);
  double r = s.r / (1 + s.t * decay);
  return run_step(ctx, 3, [&](const double* in, double* out) {
    double g = norm * in[0] + in[1];
    double h = in[2] + g * g;
    out[0] = in[0] - r * g / (std::sqrt(h) + eps);
    out[1] = h;
  });
}

Status run_momentum(CpuKernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(Scalars s, read_rt(ctx));
  const Node& n = ctx.node();
  double alpha = n.attr_float("alpha", 0), beta = n.attr_float("beta", 0), norm = n.attr_float("norm_coefficient", 0);
  std::string mode = n.attr_string("mode", "standard");
  if (mode != "standard" && mode != "nesterov")
    return invalid_model("Momentum: mode '{}' must be standard or nesterov", mode);
  // The gradient's coefficient is 1 on the first step.
  double b = s.t > 0 ? beta : 1;
  return run_step(ctx, 3, [&](const double* in, double* out) {
    double g = norm * in[0] + in[1];
    double v = alpha * in[2] + b * g;
    out[0] = mode == "standard" ? in[0] - s.r * v : in[0] - s.r * (g + alpha * v);
    out[1] = v;
  });
}

Status run_adam(CpuKernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(Scalars s, read_rt(ctx));
  const Node& n = ctx.node();
  double alpha = n.attr_float("alpha", 0.9f), beta = n.attr_float("beta", 0.999f), eps = n.attr_float("epsilon", 1e-6f),
         norm = n.attr_float("norm_coefficient", 0), post = n.attr_float("norm_coefficient_post", 0);
  // Bias correction of the moments from the second step on.
  double r = s.t > 0 ? s.r * std::sqrt(1 - std::pow(beta, s.t)) / (1 - std::pow(alpha, s.t)) : s.r;
  return run_step(ctx, 4, [&](const double* in, double* out) {
    double g = norm * in[0] + in[1];
    double v = alpha * in[2] + (1 - alpha) * g;
    double h = beta * in[3] + (1 - beta) * g * g;
    out[0] = (1 - post) * (in[0] - r * v / (std::sqrt(h) + eps));
    out[1] = v;
    out[2] = h;
  });
}

}  // namespace

KILN_CPU_KERNEL(kTraining, "Adagrad", run_adagrad);
KILN_CPU_KERNEL(kTraining, "Momentum", run_momentum);
KILN_CPU_KERNEL(kTraining, "Adam", run_adam);

}  // namespace kiln
