// TreeEnsembleRegressor and TreeEnsembleClassifier (ai.onnx.ml 1 to 3, later
// deprecated for TreeEnsemble): trees given as (tree id, node id) tuples whose
// LEAF nodes carry weighted votes for targets or classes.
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "backends/cpu/cpu_kernel.h"

namespace kiln {
namespace {

struct RegressorNode {
  int mode = -1;  // 0..5: BRANCH_LEQ, LT, GTE, GT, EQ, NEQ; -1: LEAF
  int64_t feature = 0;
  double value = 0;
  bool missing_true = false;
  size_t true_next = 0, false_next = 0;           // indices into the node list
  std::vector<std::pair<int64_t, double>> votes;  // (target, weight) for leaves
};

std::vector<double> values_of(const Node& n, const std::string& key) {
  if (const Attribute* t = n.attr(key + "_as_tensor")) {
    std::vector<double> out;
    for (int64_t i = 0; i < t->t.numel(); ++i) out.push_back(t->t.element_as_double(i));
    return out;
  }
  auto f = n.attr_floats(key);
  return {f.begin(), f.end()};
}

Expected<int> mode_of(const std::string& m) {
  static const char* kModes[] = {"BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ"};
  if (m == "LEAF") return -1;
  for (int i = 0; i < 6; ++i)
    if (m == kModes[i]) return i;
  return invalid_model("TreeEnsemble: unknown node mode '{}'", m);
}

// The nodes, and the index of each tree's root (node id 0), in tree id order.
// `votes` names the attribute prefix of the leaves' votes: "target" or "class".
Expected<std::pair<std::vector<RegressorNode>, std::vector<size_t>>> read_trees(const Node& n,
                                                                                const std::string& votes) {
  auto tree_ids = n.attr_ints("nodes_treeids"), node_ids = n.attr_ints("nodes_nodeids");
  auto features = n.attr_ints("nodes_featureids"), true_ids = n.attr_ints("nodes_truenodeids");
  auto false_ids = n.attr_ints("nodes_falsenodeids"), missing = n.attr_ints("nodes_missing_value_tracks_true");
  std::vector<double> values = values_of(n, "nodes_values"), weights = values_of(n, votes + "_weights");
  const Attribute* modes = n.attr("nodes_modes");
  size_t count = tree_ids.size();
  if (!modes || modes->strings.size() != count || node_ids.size() != count || features.size() != count ||
      true_ids.size() != count || false_ids.size() != count || values.size() != count)
    return invalid_model("{}: the nodes_* attributes differ in length", n.op_type);
  std::map<std::pair<int64_t, int64_t>, size_t> index;
  for (size_t i = 0; i < count; ++i) index[{tree_ids[i], node_ids[i]}] = i;
  std::vector<RegressorNode> nodes(count);
  for (size_t i = 0; i < count; ++i) {
    RegressorNode& r = nodes[i];
    KILN_ASSIGN_OR_RETURN(r.mode, mode_of(modes->strings[i]));
    r.feature = features[i];
    r.value = values[i];
    r.missing_true = i < missing.size() && missing[i] != 0;
    if (r.mode < 0) continue;
    auto t = index.find({tree_ids[i], true_ids[i]}), f = index.find({tree_ids[i], false_ids[i]});
    if (t == index.end() || f == index.end())
      return invalid_model("TreeEnsembleRegressor: node {} of tree {} branches to a missing node", node_ids[i],
                           tree_ids[i]);
    r.true_next = t->second;
    r.false_next = f->second;
  }
  auto t_tree = n.attr_ints(votes + "_treeids"), t_node = n.attr_ints(votes + "_nodeids"),
       t_id = n.attr_ints(votes + "_ids");
  if (t_tree.size() != t_node.size() || t_tree.size() != t_id.size() || t_tree.size() != weights.size())
    return invalid_model("{}: the {}_* attributes differ in length", n.op_type, votes);
  for (size_t i = 0; i < t_tree.size(); ++i) {
    auto it = index.find({t_tree[i], t_node[i]});
    if (it == index.end()) return invalid_model("{}: a {} vote names a missing node", n.op_type, votes);
    nodes[it->second].votes.emplace_back(t_id[i], weights[i]);
  }
  std::vector<size_t> roots;
  for (const auto& [key, i] : index)
    if (key.second == 0) roots.push_back(i);
  return std::make_pair(std::move(nodes), std::move(roots));
}

const RegressorNode* walk(const std::vector<RegressorNode>& nodes, size_t at, const double* row, int64_t features) {
  for (size_t steps = 0; steps <= nodes.size(); ++steps) {
    const RegressorNode& r = nodes[at];
    if (r.mode < 0) return &r;
    if (r.feature < 0 || r.feature >= features) return nullptr;
    double v = row[r.feature];
    bool t = false;
    if (std::isnan(v) && r.missing_true)
      t = true;
    else if (r.mode == 0)
      t = v <= r.value;
    else if (r.mode == 1)
      t = v < r.value;
    else if (r.mode == 2)
      t = v >= r.value;
    else if (r.mode == 3)
      t = v > r.value;
    else if (r.mode == 4)
      t = v == r.value;
    else
      t = v != r.value;
    at = t ? r.true_next : r.false_next;
  }
  return nullptr;  // a cycle
}

Status run_tree_ensemble_regressor(CpuKernelContext& ctx) {
  const Node& n = ctx.node();
  KILN_ASSIGN_OR_RETURN(auto trees, read_trees(n, "target"));
  const auto& [nodes, roots] = trees;
  const Tensor& x = ctx.input(0);
  int64_t features = x.rank() == 1 ? x.numel() : x.dims().back();
  int64_t rows = features == 0 ? 0 : x.numel() / features;
  int64_t targets = n.attr_int("n_targets", 1);
  std::string agg = n.attr_string("aggregate_function", "SUM");
  std::vector<double> base = values_of(n, "base_values");
  Tensor& y = ctx.allocate_output(0, {rows, targets});
  float* out = y.mutable_data<float>();
  std::vector<double> row(static_cast<size_t>(features)), acc(static_cast<size_t>(targets));
  std::vector<bool> hit(static_cast<size_t>(targets));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < features; ++c) row[static_cast<size_t>(c)] = x.element_as_double(r * features + c);
    std::fill(acc.begin(), acc.end(), 0.0);
    std::fill(hit.begin(), hit.end(), false);
    for (size_t root : roots) {
      const RegressorNode* leaf = walk(nodes, root, row.data(), features);
      if (!leaf) return invalid_model("TreeEnsembleRegressor: a tree reads a missing feature or has a cycle");
      for (const auto& [t, w] : leaf->votes) {
        if (t < 0 || t >= targets) return invalid_model("TreeEnsembleRegressor: target id {} is out of range", t);
        double& a = acc[static_cast<size_t>(t)];
        // MIN and MAX consider only the trees that vote for the target.
        if (agg == "MIN")
          a = hit[static_cast<size_t>(t)] ? std::min(a, w) : w;
        else if (agg == "MAX")
          a = hit[static_cast<size_t>(t)] ? std::max(a, w) : w;
        else
          a += w;
        hit[static_cast<size_t>(t)] = true;
      }
    }
    for (int64_t t = 0; t < targets; ++t) {
      double v = acc[static_cast<size_t>(t)];
      if (agg == "AVERAGE" && !roots.empty()) v /= static_cast<double>(roots.size());
      if (static_cast<size_t>(t) < base.size()) v += base[static_cast<size_t>(t)];
      out[r * targets + t] = static_cast<float>(v);
    }
  }
  return Status::ok();
}

// Sums every tree's class votes onto the base values: one row of scores per input row.
Expected<std::vector<double>> class_scores(const Node& n, const Tensor& x, int64_t classes, int64_t& rows) {
  KILN_ASSIGN_OR_RETURN(auto trees, read_trees(n, "class"));
  const auto& [nodes, roots] = trees;
  int64_t features = x.rank() == 1 ? x.numel() : x.dims().back();
  rows = features == 0 ? 0 : x.numel() / features;
  std::vector<double> base = values_of(n, "base_values");
  std::vector<double> scores(static_cast<size_t>(rows * classes), 0.0), row(static_cast<size_t>(features));
  for (int64_t r = 0; r < rows; ++r) {
    double* s = scores.data() + r * classes;
    for (int64_t c = 0; c < classes && static_cast<size_t>(c) < base.size(); ++c) s[c] = base[static_cast<size_t>(c)];
    for (int64_t c = 0; c < features; ++c) row[static_cast<size_t>(c)] = x.element_as_double(r * features + c);
    for (size_t root : roots) {
      const RegressorNode* leaf = walk(nodes, root, row.data(), features);
      if (!leaf) return invalid_model("TreeEnsembleClassifier: a tree reads a missing feature or has a cycle");
      for (const auto& [c, w] : leaf->votes) {
        if (c < 0 || c >= classes) return invalid_model("TreeEnsembleClassifier: class id {} is out of range", c);
        s[c] += w;
      }
    }
  }
  return scores;
}

void post_transform(const std::string& how, double* s, int64_t n) {
  if (how == "LOGISTIC") {
    for (int64_t i = 0; i < n; ++i) s[i] = 1 / (1 + std::exp(-s[i]));
  } else if (how == "SOFTMAX" || how == "SOFTMAX_ZERO") {
    // SOFTMAX_ZERO leaves zero scores at zero.
    bool keep_zero = how == "SOFTMAX_ZERO";
    double top = -std::numeric_limits<double>::infinity(), sum = 0;
    for (int64_t i = 0; i < n; ++i)
      if (!keep_zero || s[i] != 0) top = std::max(top, s[i]);
    for (int64_t i = 0; i < n; ++i) sum += s[i] = keep_zero && s[i] == 0 ? 0 : std::exp(s[i] - top);
    for (int64_t i = 0; i < n; ++i) s[i] = sum > 0 ? s[i] / sum : 0;
  }
}

// Follows the ONNX reference: when every vote is for one class id the model is
// binary, and the scores become [1 - s, s] (or [-s, s] before a transform).
Status run_tree_ensemble_classifier(CpuKernelContext& ctx) {
  const Node& n = ctx.node();
  const Attribute* str_labels = n.attr("classlabels_strings");
  auto int_labels = n.attr_ints("classlabels_int64s");
  auto labels = static_cast<int64_t>(str_labels ? str_labels->strings.size() : int_labels.size());
  if (labels < 1) return invalid_model("TreeEnsembleClassifier: no class labels");
  std::string how = n.attr_string("post_transform", "NONE");
  auto ids = n.attr_ints("class_ids");
  bool binary = !ids.empty() && std::all_of(ids.begin(), ids.end(), [&](int64_t c) { return c == ids[0]; });
  int64_t rows = 0;
  KILN_ASSIGN_OR_RETURN(std::vector<double> raw, class_scores(n, ctx.input(0), labels, rows));
  int64_t width = binary && labels == 1 ? 2 : labels;
  std::vector<double> scores(static_cast<size_t>(rows * width), 0.0);
  Tensor& y = ctx.allocate_output(0, {rows});
  Tensor* z = ctx.has_output(1) ? &ctx.allocate_output(1, {rows, width}) : nullptr;
  for (int64_t r = 0; r < rows; ++r) {
    double* s = scores.data() + r * width;
    for (int64_t c = 0; c < labels; ++c) s[c] = raw[static_cast<size_t>(r * labels + c)];
    if (binary) {
      s[1] = s[0];
      s[0] = how == "NONE" ? 1 - s[1] : -s[1];
    }
    post_transform(how, s, width);
    auto best = static_cast<int64_t>(std::max_element(s, s + width) - s);
    if (str_labels) {
      y.strings()[r] = str_labels->strings[static_cast<size_t>(std::min(best, labels - 1))];
    } else {
      y.mutable_data<int64_t>()[r] = labels == 1 ? (best == 1 ? 1 : 0) : int_labels[static_cast<size_t>(best)];
    }
    if (z)
      for (int64_t c = 0; c < width; ++c) z->mutable_data<float>()[r * width + c] = static_cast<float>(s[c]);
  }
  return Status::ok();
}

}  // namespace

KILN_CPU_KERNEL("ai.onnx.ml", "TreeEnsembleRegressor", run_tree_ensemble_regressor);
KILN_CPU_KERNEL("ai.onnx.ml", "TreeEnsembleClassifier", run_tree_ensemble_classifier);

}  // namespace kiln
