#include "ops/fused_activation.h"

#include <vector>

namespace kiln {

const char* FusedActivation::name(Kind kind) {
  switch (kind) {
    case Kind::kRelu: return "Relu";
    case Kind::kClip: return "Clip";
    case Kind::kSigmoid: return "Sigmoid";
    case Kind::kSilu: return "Silu";
    default: return "";
  }
}

Expected<FusedActivation> read_fused_activation(const Node& node) {
  const std::string name = node.attr_string("activation", "");
  const std::vector<float> params = node.attr_floats("activation_params");
  FusedActivation a;
  bool found = false;
  for (auto k : {FusedActivation::Kind::kNone, FusedActivation::Kind::kRelu, FusedActivation::Kind::kClip,
                 FusedActivation::Kind::kSigmoid, FusedActivation::Kind::kSilu}) {
    if (name == FusedActivation::name(k)) a.kind = k, found = true;
  }
  if (!found) return unsupported("{}: activation '{}' is not one of '', Relu, Clip, Sigmoid, Silu", node.op_type, name);
  const size_t want = a.kind == FusedActivation::Kind::kClip ? 2 : 0;
  if (params.size() != want)
    return invalid_model("{}: activation '{}' takes {} activation_params, got {}", node.op_type, name, want,
                         params.size());
  if (want == 2) {
    a.lo = params[0], a.hi = params[1];
    if (std::isnan(a.lo) || std::isnan(a.hi))
      return invalid_model("{}: Clip bounds [{}, {}] include NaN", node.op_type, a.lo, a.hi);
  }
  return a;
}

}  // namespace kiln
