#include "ops/recurrent_attrs.h"

#include <algorithm>
#include <cctype>

#include "ir/graph.h"
#include "ir/shape.h"

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

Expected<RnnShape> read_rnn_attrs(const Node& n, RnnCell cell) {
  RnnShape s;
  s.cell = cell;
  s.gates = cell == RnnCell::kRnn ? 1 : cell == RnnCell::kGru ? 3 : 4;
  s.per_dir = cell == RnnCell::kRnn ? 1 : cell == RnnCell::kGru ? 2 : 3;
  const std::string direction = n.attr_string("direction", "forward");
  s.dirs = direction == "bidirectional" ? 2 : 1;
  s.reverse = direction == "reverse";
  s.batch_first = n.attr_int("layout", 0) == 1;
  s.linear_before_reset = n.attr_int("linear_before_reset", 0) != 0;
  s.input_forget = n.attr_int("input_forget", 0) != 0;
  s.clip = n.has_attr("clip") ? n.attr_float("clip", 0.0f) : 0.0;
  if (s.clip < 0) return invalid_model("{}: clip {} must be positive", n.op_type, s.clip);
  return s;
}

Status check_rnn_inputs(const Node& n, RnnShape& s, const std::vector<const std::vector<int64_t>*>& dims) {
  auto at = [&](size_t i) { return i < dims.size() ? dims[i] : nullptr; };
  const std::vector<int64_t>*x = at(0), *r = at(2);
  if (!x || !r || !at(1) || x->size() != 3 || r->size() != 3)
    return invalid_model("{}: X and R must be 3-D", n.op_type);
  s.seq = (*x)[s.batch_first ? 1 : 0], s.batch = (*x)[s.batch_first ? 0 : 1], s.input = (*x)[2];
  s.hidden = (*r)[2];
  const std::vector<int64_t> state =
      s.batch_first ? std::vector<int64_t>{s.batch, s.dirs, s.hidden} : std::vector<int64_t>{s.dirs, s.batch, s.hidden};
  const std::vector<std::vector<int64_t>> want = {{},
                                                  {s.dirs, s.gates * s.hidden, s.input},
                                                  {s.dirs, s.gates * s.hidden, s.hidden},
                                                  {s.dirs, 2 * s.gates * s.hidden},
                                                  {s.batch},
                                                  state,
                                                  state,
                                                  {s.dirs, 3 * s.hidden}};
  static const char* const names[] = {"X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"};
  for (size_t i = 1; i < want.size(); ++i) {
    if (!at(i) || (i >= 6 && s.cell != RnnCell::kLstm)) continue;
    if (*at(i) != want[i])
      return invalid_model("{}: {} has shape {}, expected {}", n.op_type, names[i], Shape::of(*at(i)).to_string(),
                           Shape::of(want[i]).to_string());
  }
  return Status::ok();
}

Expected<std::vector<RnnActivation>> rnn_activations(const Node& n, const RnnShape& s) {
  std::vector<std::string> defaults = s.cell == RnnCell::kRnn   ? std::vector<std::string>{"Tanh"}
                                      : s.cell == RnnCell::kGru ? std::vector<std::string>{"Sigmoid", "Tanh"}
                                                                : std::vector<std::string>{"Sigmoid", "Tanh", "Tanh"};
  return parse_rnn_activations(n, std::move(defaults), s.dirs, static_cast<size_t>(s.per_dir));
}

}  // namespace kiln
