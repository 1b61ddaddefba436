#include "ops/recurrent_activation.h"

#include <algorithm>
#include <cctype>

#include "ir/graph.h"

namespace kiln {

Expected<std::vector<RnnActivation>> parse_rnn_activations(const Node& n, std::vector<std::string> names, int64_t dirs,
                                                           size_t per_dir) {
  if (const Attribute* a = n.attr("activations")) names = a->strings;
  if (names.size() == per_dir && dirs == 2) {
    std::vector<std::string> forward = names;  // both directions use the one list
    names.insert(names.end(), forward.begin(), forward.end());
  }
  if (names.size() != per_dir * static_cast<size_t>(dirs))
    return invalid_model("{}: {} activations for {} directions of {}", n.op_type, names.size(), dirs, per_dir);
  std::vector<float> alphas = n.attr_floats("activation_alpha"), betas = n.attr_floats("activation_beta");
  size_t next_alpha = 0, next_beta = 0;
  auto take = [](const std::vector<float>& v, size_t& next, double fallback) {
    return next < v.size() ? static_cast<double>(v[next++]) : fallback;
  };
  std::vector<RnnActivation> out;
  using K = RnnActivation::Kind;
  for (std::string name : names) {
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    RnnActivation act;
    if (name == "relu")
      act.kind = K::kRelu;
    else if (name == "tanh")
      act.kind = K::kTanh;
    else if (name == "sigmoid")
      act.kind = K::kSigmoid;
    else if (name == "softsign")
      act.kind = K::kSoftsign;
    else if (name == "softplus")
      act.kind = K::kSoftplus;
    else if (name == "affine")
      act = {K::kAffine, take(alphas, next_alpha, 1.0), take(betas, next_beta, 0.0)};
    else if (name == "leakyrelu")
      act = {K::kLeakyRelu, take(alphas, next_alpha, 0.01), 0};
    else if (name == "thresholdedrelu")
      act = {K::kThresholdedRelu, take(alphas, next_alpha, 1.0), 0};
    else if (name == "scaledtanh")
      act = {K::kScaledTanh, take(alphas, next_alpha, 1.0), take(betas, next_beta, 1.0)};
    else if (name == "hardsigmoid")
      act = {K::kHardSigmoid, take(alphas, next_alpha, 0.2), take(betas, next_beta, 0.5)};
    else if (name == "elu")
      act = {K::kElu, take(alphas, next_alpha, 1.0), 0};
    else
      return unsupported("{}: activation '{}' is not supported", n.op_type, name);
    out.push_back(act);
  }
  return out;
}

}  // namespace kiln
