// TreeEnsemble (ai.onnx.ml 5), TreeEnsembleRegressor and
// TreeEnsembleClassifier (ai.onnx.ml 1 to 3) on the GPU (kernels/
// tree_ensemble.cu), with the CPU kernels' semantics (cpu/kernels/ml.cpp and
// tree_ensemble_legacy.cpp). On a plan's first run the attributes become one
// node array: TreeEnsemble-5's leaves are appended after its nodes, and the
// older ops' (tree id, node id) pairs become indices. Every node a root
// reaches is checked then (feature ids against X's width, targets, cycles),
// so the kernels never fail; the forest is uploaded once and kept in
// ctx.state() while the plan lives. String class labels stay on the CPU.
#include "backends/cuda/kernels/tree_ensemble.cuh"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <set>

#include "backends/cuda/cuda_kernel.h"
#include "backends/cuda/device.h"
#include "backends/cuda/ops/device_tables.h"
#include "backends/cuda/ops/norm_op_util.h"

namespace kiln::cuda {
namespace {

constexpr const char* kMl = "ai.onnx.ml";

// The forest in the kernels' layout, on the host. A negative next (or root)
// is a reference the attributes got wrong: bad_refs[-1 - next] says how, and
// it is an error once a root reaches it.
struct HostForest {
  std::vector<TreeNode> nodes;
  std::vector<int32_t> roots;
  std::vector<int64_t> vote_ids;
  std::vector<double> vote_weights, members, base;
  std::vector<int64_t> labels;
  std::vector<std::string> bad_refs;

  int32_t bad(std::string why) {
    bad_refs.push_back(std::move(why));
    return -static_cast<int32_t>(bad_refs.size());
  }
};

// What the kernels need to know of X and the attributes before the forest.
struct TreeShape {
  int64_t rows = 0, features = 0, trees = 0;
  int64_t targets = 1;  // n_targets, or the class labels
  int64_t width = 1;    // accumulator columns (classifier scores)
  bool binary = false;
};

std::vector<double> tensor_doubles(const Attribute* a) {
  std::vector<double> out;
  if (a)
    for (int64_t i = 0; i < a->t.numel(); ++i) out.push_back(a->t.element_as_double(i));
  return out;
}

// A legacy float list, or its *_as_tensor (double) form when given.
std::vector<double> legacy_values(const Node& n, const std::string& key) {
  if (const Attribute* t = n.attr(key + "_as_tensor")) return tensor_doubles(t);
  auto f = n.attr_floats(key);
  return {f.begin(), f.end()};
}

bool all_same(const std::vector<int64_t>& ids) {
  return !ids.empty() && std::all_of(ids.begin(), ids.end(), [&](int64_t c) { return c == ids[0]; });
}

Expected<TreeShape> tree_shape(const Node& n, TreeOp op, const std::vector<int64_t>& x) {
  TreeShape s;
  if (op == TreeOp::kEnsemble) {
    if (x.size() != 2) return invalid_argument("TreeEnsemble: X must be [N, F]");
    s.rows = x[0], s.features = x[1];
    s.trees = static_cast<int64_t>(n.attr_ints("tree_roots").size());
    s.targets = s.width = n.attr_int("n_targets", 1);
    return s;
  }
  if (x.empty()) return invalid_argument("{}: X must have rank 1 or more", n.op_type);
  // Shape inference gives [X[0], targets] while the CPU flattens X to rows
  // of its last axis; the kernel takes only the ranks where they agree.
  if (x.size() > 2) return unsupported("{}: X of rank {} (the CUDA kernel takes [N, F] or [F])", n.op_type, x.size());
  int64_t numel = dims_product(x, 0, x.size());
  s.features = x.size() == 1 ? numel : x.back();
  s.rows = s.features == 0 ? 0 : numel / s.features;
  // Roots are the distinct trees with a node 0.
  std::set<int64_t> roots;
  auto tree_ids = n.attr_ints("nodes_treeids"), node_ids = n.attr_ints("nodes_nodeids");
  for (size_t i = 0; i < tree_ids.size() && i < node_ids.size(); ++i)
    if (node_ids[i] == 0) roots.insert(tree_ids[i]);
  s.trees = static_cast<int64_t>(roots.size());
  if (op == TreeOp::kRegressor) {
    s.targets = s.width = n.attr_int("n_targets", 1);
    return s;
  }
  if (n.attr("classlabels_strings"))
    return unsupported(
        "TreeEnsembleClassifier: string class labels (classlabels_strings) are not supported by the "
        "CUDA kernel (the CPU backend runs them)");
  s.targets = static_cast<int64_t>(n.attr_ints("classlabels_int64s").size());
  if (s.targets < 1) return invalid_model("TreeEnsembleClassifier: no class labels");
  s.binary = all_same(n.attr_ints("class_ids"));
  s.width = s.binary && s.targets == 1 ? 2 : s.targets;
  return s;
}

// TreeEnsemble-5: nodes [0, N), then its leaves as nodes [N, N + L), each
// with its one vote.
Expected<HostForest> read_ensemble(const Node& n) {
  std::vector<double> splits = tensor_doubles(n.attr("nodes_splits"));
  std::vector<double> weights = tensor_doubles(n.attr("leaf_weights"));
  std::vector<double> modes = tensor_doubles(n.attr("nodes_modes"));
  auto features = n.attr_ints("nodes_featureids"), true_ids = n.attr_ints("nodes_truenodeids"),
       false_ids = n.attr_ints("nodes_falsenodeids"), true_leaf = n.attr_ints("nodes_trueleafs"),
       false_leaf = n.attr_ints("nodes_falseleafs"), targets = n.attr_ints("leaf_targetids"),
       roots = n.attr_ints("tree_roots"), missing = n.attr_ints("nodes_missing_value_tracks_true");
  const size_t count = modes.size(), leaves = weights.size();
  if (splits.size() != count || features.size() != count || true_ids.size() != count || false_ids.size() != count ||
      true_leaf.size() != count || false_leaf.size() != count || targets.size() != leaves)
    return invalid_model("TreeEnsemble: the nodes_* (or leaf_*) attributes differ in length");
  if (count + leaves > static_cast<size_t>(std::numeric_limits<int32_t>::max()))
    return unsupported("TreeEnsemble: {} nodes and {} leaves are over the CUDA kernel's 2^31", count, leaves);
  HostForest f;
  f.nodes.resize(count + leaves);
  f.vote_ids = targets;
  f.vote_weights = weights;
  auto leaf_ref = [&](int64_t id) -> int32_t {
    if (id < 0 || static_cast<size_t>(id) >= leaves)
      return f.bad(fmt::format("TreeEnsemble: leaf id {} is out of range", id));
    return static_cast<int32_t>(count + static_cast<size_t>(id));
  };
  auto node_ref = [&](int64_t id, bool leaf) -> int32_t {
    if (leaf) return leaf_ref(id);
    if (id < 0 || static_cast<size_t>(id) >= count)
      return f.bad(fmt::format("TreeEnsemble: node id {} is out of range", id));
    return static_cast<int32_t>(id);
  };
  // Set members are listed per MEMBER node in node order, each list ended by a NaN.
  std::vector<double> members = tensor_doubles(n.attr("membership_values"));
  size_t at = 0;
  for (size_t i = 0; i < count; ++i) {
    TreeNode& t = f.nodes[i];
    const auto mode = static_cast<int64_t>(modes[i]);
    // A mode past MEMBER is a MEMBER test of an empty set, as on the CPU.
    t.mode = mode >= 0 && mode < kTreeMember ? static_cast<int32_t>(mode) : kTreeMember;
    t.split = splits[i];
    t.feature = static_cast<int32_t>(std::clamp<int64_t>(features[i], -1, std::numeric_limits<int32_t>::max()));
    t.missing_true = i < missing.size() && missing[i] != 0;
    t.true_next = node_ref(true_ids[i], true_leaf[i] != 0);
    t.false_next = node_ref(false_ids[i], false_leaf[i] != 0);
    if (mode == kTreeMember) {
      t.first = static_cast<int32_t>(f.members.size());
      for (; at < members.size() && !std::isnan(members[at]); ++at) f.members.push_back(members[at]);
      ++at;
      t.count = static_cast<int32_t>(f.members.size()) - t.first;
    }
  }
  for (size_t l = 0; l < leaves; ++l) {
    TreeNode& t = f.nodes[count + l];
    t.mode = kTreeLeaf;
    t.first = static_cast<int32_t>(l);
    t.count = 1;
  }
  for (int64_t root : roots) {
    if (root < 0 || static_cast<size_t>(root) >= count) {
      f.roots.push_back(f.bad(fmt::format("TreeEnsemble: tree root {} is out of range", root)));
      continue;
    }
    // A tree that is a single leaf: both branches lead to the same leaf.
    const auto r = static_cast<size_t>(root);
    if (true_leaf[r] && false_leaf[r] && true_ids[r] == false_ids[r])
      f.roots.push_back(leaf_ref(true_ids[r]));
    else
      f.roots.push_back(static_cast<int32_t>(root));
  }
  return f;
}

Expected<int32_t> legacy_mode(const std::string& m) {
  static const char* kModes[] = {"BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ"};
  if (m == "LEAF") return kTreeLeaf;
  for (int32_t i = 0; i < 6; ++i)
    if (m == kModes[i]) return i;
  return invalid_model("TreeEnsemble: unknown node mode '{}'", m);
}

// TreeEnsembleRegressor and TreeEnsembleClassifier: nodes in attribute
// order, roots (node id 0) in tree id order, votes grouped by leaf in
// attribute order. `votes` is "target" or "class".
Expected<HostForest> read_legacy(const Node& n, const std::string& votes) {
  auto tree_ids = n.attr_ints("nodes_treeids"), node_ids = n.attr_ints("nodes_nodeids");
  auto features = n.attr_ints("nodes_featureids"), true_ids = n.attr_ints("nodes_truenodeids");
  auto false_ids = n.attr_ints("nodes_falsenodeids"), missing = n.attr_ints("nodes_missing_value_tracks_true");
  std::vector<double> values = legacy_values(n, "nodes_values"), weights = legacy_values(n, votes + "_weights");
  const Attribute* modes = n.attr("nodes_modes");
  const size_t count = tree_ids.size();
  if (!modes || modes->strings.size() != count || node_ids.size() != count || features.size() != count ||
      true_ids.size() != count || false_ids.size() != count || values.size() != count)
    return invalid_model("{}: the nodes_* attributes differ in length", n.op_type);
  auto v_tree = n.attr_ints(votes + "_treeids"), v_node = n.attr_ints(votes + "_nodeids"),
       v_id = n.attr_ints(votes + "_ids");
  if (v_tree.size() != v_node.size() || v_tree.size() != v_id.size() || v_tree.size() != weights.size())
    return invalid_model("{}: the {}_* attributes differ in length", n.op_type, votes);
  if (count > static_cast<size_t>(std::numeric_limits<int32_t>::max()) ||
      v_tree.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max()))
    return unsupported("{}: {} nodes and {} votes are over the CUDA kernel's 2^31", n.op_type, count, v_tree.size());
  std::map<std::pair<int64_t, int64_t>, size_t> index;
  for (size_t i = 0; i < count; ++i) index[{tree_ids[i], node_ids[i]}] = i;
  HostForest f;
  f.nodes.resize(count);
  for (size_t i = 0; i < count; ++i) {
    TreeNode& t = f.nodes[i];
    KILN_ASSIGN_OR_RETURN(t.mode, legacy_mode(modes->strings[i]));
    t.feature = static_cast<int32_t>(std::clamp<int64_t>(features[i], -1, std::numeric_limits<int32_t>::max()));
    t.split = values[i];
    t.missing_true = i < missing.size() && missing[i] != 0;
    if (t.mode == kTreeLeaf) continue;
    auto yes = index.find({tree_ids[i], true_ids[i]}), no = index.find({tree_ids[i], false_ids[i]});
    if (yes == index.end() || no == index.end())
      return invalid_model("{}: node {} of tree {} branches to a missing node", n.op_type, node_ids[i], tree_ids[i]);
    t.true_next = static_cast<int32_t>(yes->second);
    t.false_next = static_cast<int32_t>(no->second);
  }
  // Votes grouped by node, each group in attribute order.
  std::vector<std::vector<size_t>> by_node(count);
  for (size_t i = 0; i < v_tree.size(); ++i) {
    auto it = index.find({v_tree[i], v_node[i]});
    if (it == index.end()) return invalid_model("{}: a {} vote names a missing node", n.op_type, votes);
    by_node[it->second].push_back(i);
  }
  for (size_t i = 0; i < count; ++i) {
    f.nodes[i].first = static_cast<int32_t>(f.vote_ids.size());
    f.nodes[i].count = static_cast<int32_t>(by_node[i].size());
    for (size_t v : by_node[i]) {
      f.vote_ids.push_back(v_id[v]);
      f.vote_weights.push_back(weights[v]);
    }
  }
  for (const auto& [key, i] : index)
    if (key.second == 0) f.roots.push_back(static_cast<int32_t>(i));
  f.base = legacy_values(n, "base_values");
  f.labels = n.attr_ints("classlabels_int64s");
  return f;
}

// The error for the first bad thing a root reaches: a bad reference, a
// feature outside X, a vote outside the targets, a cycle.
Status check_forest(const HostForest& f, const Node& n, TreeOp op, int64_t features, int64_t targets) {
  const bool legacy = op != TreeOp::kEnsemble;
  auto walk_error = [&]() { return invalid_model("{}: a tree reads a missing feature or has a cycle", n.op_type); };
  std::vector<uint8_t> seen(f.nodes.size(), 0);  // 1: on the current path, 2: checked
  std::vector<std::pair<int32_t, int>> stack;    // (node, branches visited)
  auto enter = [&](int32_t at) -> Status {
    if (at < 0) return invalid_model("{}", f.bad_refs[static_cast<size_t>(-1 - at)]);
    if (seen[at] == 1) return legacy ? walk_error() : invalid_model("TreeEnsemble: a tree has a cycle");
    if (seen[at] == 2) return Status::ok();
    const TreeNode& t = f.nodes[at];
    if (t.mode == kTreeLeaf) {
      for (int32_t v = t.first; v < t.first + t.count; ++v) {
        const int64_t id = f.vote_ids[static_cast<size_t>(v)];
        if (id >= 0 && id < targets) continue;
        if (op == TreeOp::kEnsemble) return invalid_model("TreeEnsemble: leaf target {} is out of range", id);
        if (op == TreeOp::kRegressor) return invalid_model("TreeEnsembleRegressor: target id {} is out of range", id);
        return invalid_model("TreeEnsembleClassifier: class id {} is out of range", id);
      }
      seen[at] = 2;
      return Status::ok();
    }
    if (t.feature < 0 || t.feature >= features)
      return legacy ? walk_error() : invalid_model("TreeEnsemble: feature id {} is out of range", t.feature);
    seen[at] = 1;
    stack.emplace_back(at, 0);
    return Status::ok();
  };
  for (int32_t root : f.roots) {
    KILN_RETURN_IF_ERROR(enter(root));
    while (!stack.empty()) {
      auto& [at, branches] = stack.back();
      if (branches == 2) {
        seen[at] = 2;
        stack.pop_back();
        continue;
      }
      const TreeNode& t = f.nodes[at];
      const int32_t next = branches++ == 0 ? t.true_next : t.false_next;
      KILN_RETURN_IF_ERROR(enter(next));
    }
  }
  return Status::ok();
}

// The forest on the device, kept for the plan: `params` holds its pointers.
struct DeviceForest {
  DeviceBuffer buffer;
  TreeEnsembleParams params;
};

Expected<std::shared_ptr<DeviceForest>> upload(const HostForest& f, cudaStream_t stream) {
  std::vector<char> bytes;
  const size_t nodes = add_array(bytes, f.nodes), roots = add_array(bytes, f.roots), ids = add_array(bytes, f.vote_ids),
               weights = add_array(bytes, f.vote_weights), members = add_array(bytes, f.members),
               base = add_array(bytes, f.base), labels = add_array(bytes, f.labels);
  auto d = std::make_shared<DeviceForest>();
  KILN_ASSIGN_OR_RETURN(d->buffer, DeviceBuffer::allocate(std::max<size_t>(bytes.size(), 1)));
  if (!bytes.empty()) KILN_RETURN_IF_ERROR(d->buffer.copy_from_host(bytes.data(), bytes.size(), stream));
  auto* b = static_cast<char*>(d->buffer.data());
  TreeEnsembleParams& p = d->params;
  p.nodes = reinterpret_cast<const TreeNode*>(b + nodes);
  p.roots = reinterpret_cast<const int32_t*>(b + roots);
  p.trees = static_cast<int32_t>(f.roots.size());
  p.vote_ids = reinterpret_cast<const int64_t*>(b + ids);
  p.vote_weights = reinterpret_cast<const double*>(b + weights);
  p.members = reinterpret_cast<const double*>(b + members);
  p.base = reinterpret_cast<const double*>(b + base);
  p.base_count = static_cast<int64_t>(f.base.size());
  p.labels = reinterpret_cast<const int64_t*>(b + labels);
  return d;
}

Expected<TreePostTransform> post_transform_of(const Node& n, TreeOp op) {
  if (op == TreeOp::kEnsemble) {
    const int64_t post = n.attr_int("post_transform", 0);
    if (post != 0) return unsupported("TreeEnsemble: post_transform {} is not supported (only 0, NONE)", post);
    return TreePostTransform::kNone;
  }
  const std::string post = n.attr_string("post_transform", "NONE");
  if (post == "NONE") return TreePostTransform::kNone;
  if (op == TreeOp::kClassifier) {
    if (post == "LOGISTIC") return TreePostTransform::kLogistic;
    if (post == "SOFTMAX") return TreePostTransform::kSoftmax;
    if (post == "SOFTMAX_ZERO") return TreePostTransform::kSoftmaxZero;
  }
  return unsupported("{}: post_transform '{}' is not supported", n.op_type, post);
}

Expected<TreeAggregate> aggregate_of(const Node& n, TreeOp op) {
  if (op == TreeOp::kEnsemble) {
    const int64_t agg = n.attr_int("aggregate_function", 1);
    if (agg < 0 || agg > 3) return invalid_model("TreeEnsemble: aggregate_function {} must be in [0, 3]", agg);
    return static_cast<TreeAggregate>(agg);
  }
  if (op == TreeOp::kClassifier) return TreeAggregate::kSum;
  const std::string agg = n.attr_string("aggregate_function", "SUM");
  if (agg == "SUM") return TreeAggregate::kSum;
  if (agg == "AVERAGE") return TreeAggregate::kAverage;
  if (agg == "MIN") return TreeAggregate::kMin;
  if (agg == "MAX") return TreeAggregate::kMax;
  return invalid_model("TreeEnsembleRegressor: aggregate_function '{}' must be SUM, AVERAGE, MIN or MAX", agg);
}

Status run_tree_ensemble(KernelContext& ctx, TreeOp op) {
  const Node& n = ctx.node();
  const DeviceTensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(TreeShape s, tree_shape(n, op, x.dims));
  KILN_ASSIGN_OR_RETURN(TreePostTransform post, post_transform_of(n, op));
  KILN_ASSIGN_OR_RETURN(TreeAggregate aggregate, aggregate_of(n, op));
  if (s.targets < 1) return invalid_model("{}: n_targets {} must be positive", n.op_type, s.targets);
  std::any& state = ctx.state();
  if (!state.has_value()) {
    KILN_ASSIGN_OR_RETURN(HostForest f, op == TreeOp::kEnsemble
                                            ? read_ensemble(n)
                                            : read_legacy(n, op == TreeOp::kRegressor ? "target" : "class"));
    // With no rows the CPU reaches no node, so nothing else can be wrong.
    if (s.rows == 0) return Status::ok();
    KILN_RETURN_IF_ERROR(check_forest(f, n, op, s.features, s.targets));
    KILN_ASSIGN_OR_RETURN(std::shared_ptr<DeviceForest> d, upload(f, ctx.stream()));
    state = std::move(d);
  }
  TreeEnsembleParams p = std::any_cast<const std::shared_ptr<DeviceForest>&>(state)->params;
  p.op = op;
  p.aggregate = aggregate;
  p.post = post;
  p.x_dtype = x.dtype, p.x = x.data;
  p.rows = s.rows, p.features = s.features;
  p.targets = s.targets, p.width = s.width, p.binary = s.binary;
  p.y = ctx.has_output(0) ? ctx.output(0).data : nullptr;
  p.z = op == TreeOp::kClassifier && ctx.has_output(1) ? ctx.output(1).as<float>() : nullptr;
  p.workspace = ctx.workspace(), p.workspace_bytes = ctx.workspace_bytes();
  if (op != TreeOp::kClassifier && !p.y) return Status::ok();
  return launch_tree_ensemble(p, ctx.stream());
}

size_t tree_workspace(const KernelQuery& q, TreeOp op) {
  const std::vector<int64_t>* dims = q.input_dims(0);
  if (!dims) return 0;
  auto s = tree_shape(q.node(), op, *dims);
  if (!s.is_ok() || s->rows <= 0 || s->width < 1) return 0;
  // The leaf of every (row, tree) pair, when it fits the limit and 256 MiB;
  // else the fold walks the trees (a thread per row).
  const size_t with_leaves = tree_ensemble_workspace_bytes(op, s->rows, s->trees, s->width, true);
  const size_t leaves = with_leaves - tree_ensemble_workspace_bytes(op, s->rows, s->trees, s->width, false);
  if (with_leaves <= q.workspace_limit() && leaves <= (size_t{256} << 20)) return with_leaves;
  return tree_ensemble_workspace_bytes(op, s->rows, s->trees, s->width, false);
}

Status supports_tree_ensemble(const Node& n, TreeOp op) {
  const DType t = input_dtype(n, 0);
  const bool float_x = t == DType::kF32 || t == DType::kF64 || t == DType::kF16 || t == DType::kBF16;
  if (op == TreeOp::kEnsemble && t != DType::kUndefined && !float_x)
    return unsupported("TreeEnsemble: X of dtype {} (the CUDA kernel takes f32, f64, f16 or bf16)", dtype_name(t));
  if (t != DType::kUndefined && !float_x && t != DType::kI32 && t != DType::kI64)
    return unsupported("{}: X of dtype {} (the CUDA kernel takes f32, f64, f16, bf16, i32 or i64)", n.op_type,
                       dtype_name(t));
  const Value* x = n.inputs.empty() ? nullptr : n.inputs[0];
  if (op != TreeOp::kEnsemble && x && x->type.shape.rank() > 2)
    return unsupported("{}: X of rank {} (the CUDA kernel takes [N, F] or [F])", n.op_type, x->type.shape.rank());
  if (op == TreeOp::kClassifier && n.attr("classlabels_strings"))
    return unsupported(
        "TreeEnsembleClassifier: string class labels (classlabels_strings) are not supported by the "
        "CUDA kernel (the CPU backend runs them)");
  KILN_RETURN_IF_ERROR(post_transform_of(n, op).status());
  return aggregate_of(n, op).status();
}

KernelDef tree_def(TreeOp op) {
  KernelDef def;
  def.run = [op](KernelContext& ctx) { return run_tree_ensemble(ctx, op); };
  def.workspace = [op](const KernelQuery& q) { return tree_workspace(q, op); };
  def.supports = [op](const Node& n) { return supports_tree_ensemble(n, op); };
  return def;
}

}  // namespace

KILN_CUDA_KERNEL(kMl, "TreeEnsemble", tree_def(TreeOp::kEnsemble));
KILN_CUDA_KERNEL(kMl, "TreeEnsembleRegressor", tree_def(TreeOp::kRegressor));
KILN_CUDA_KERNEL(kMl, "TreeEnsembleClassifier", tree_def(TreeOp::kClassifier));

}  // namespace kiln::cuda
