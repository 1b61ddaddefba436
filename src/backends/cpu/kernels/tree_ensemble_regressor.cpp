// TreeEnsembleRegressor (ai.onnx.ml 1 to 3): trees given as (tree id, node id)
// tuples whose LEAF nodes carry weighted votes for targets.
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
  return invalid_model("TreeEnsembleRegressor: unknown node mode '{}'", m);
}

// The nodes, and the index of each tree's root (node id 0), in tree id order.
Expected<std::pair<std::vector<RegressorNode>, std::vector<size_t>>> read_trees(const Node& n) {
  auto tree_ids = n.attr_ints("nodes_treeids"), node_ids = n.attr_ints("nodes_nodeids");
  auto features = n.attr_ints("nodes_featureids"), true_ids = n.attr_ints("nodes_truenodeids");
  auto false_ids = n.attr_ints("nodes_falsenodeids"), missing = n.attr_ints("nodes_missing_value_tracks_true");
  std::vector<double> values = values_of(n, "nodes_values"), weights = values_of(n, "target_weights");
  const Attribute* modes = n.attr("nodes_modes");
  size_t count = tree_ids.size();
  if (!modes || modes->strings.size() != count || node_ids.size() != count || features.size() != count ||
      true_ids.size() != count || false_ids.size() != count || values.size() != count)
    return invalid_model("TreeEnsembleRegressor: the nodes_* attributes differ in length");
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
  auto t_tree = n.attr_ints("target_treeids"), t_node = n.attr_ints("target_nodeids"), t_id = n.attr_ints("target_ids");
  if (t_tree.size() != t_node.size() || t_tree.size() != t_id.size() || t_tree.size() != weights.size())
    return invalid_model("TreeEnsembleRegressor: the target_* attributes differ in length");
  for (size_t i = 0; i < t_tree.size(); ++i) {
    auto it = index.find({t_tree[i], t_node[i]});
    if (it == index.end()) return invalid_model("TreeEnsembleRegressor: a target names a missing node");
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
  KILN_ASSIGN_OR_RETURN(auto trees, read_trees(n));
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

}  // namespace

KILN_CPU_KERNEL("ai.onnx.ml", "TreeEnsembleRegressor", run_tree_ensemble_regressor);

}  // namespace kiln
