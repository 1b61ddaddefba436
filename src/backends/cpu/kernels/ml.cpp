// ai.onnx.ml kernels: LabelEncoder, Binarizer, ArrayFeatureExtractor and
// TreeEnsemble.
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <set>

#include "backends/cpu/cpu_kernel.h"
#include "backends/cpu/dtype_dispatch.h"

namespace kiln {
namespace {

constexpr const char* kMl = "ai.onnx.ml";

// A LabelEncoder attribute set (keys_* or values_*) as one tensor.
Expected<Tensor> label_tensor(const Node& n, const std::string& base) {
  if (const Attribute* a = n.attr(base + "_tensor")) return a->t;
  if (const Attribute* a = n.attr(base + "_floats"))
    return Tensor::from_vector<float>(DType::kF32, {static_cast<int64_t>(a->floats.size())}, a->floats);
  if (const Attribute* a = n.attr(base + "_int64s")) return Tensor::vector_i64(a->ints);
  if (const Attribute* a = n.attr(base + "_strings")) {
    Tensor t(DType::kString, {static_cast<int64_t>(a->strings.size())});
    t.strings() = a->strings;
    return t;
  }
  return invalid_model("LabelEncoder: no {}_* attribute", base);
}

// The value for keys that are not found, as a one-element tensor of the values' dtype.
Tensor label_default(const Node& n, DType dt) {
  if (const Attribute* a = n.attr("default_tensor"); a && a->t.dtype() == dt && a->t.numel() == 1)
    return a->t.reshaped({1});
  if (dt == DType::kString) {
    Tensor t(DType::kString, {1});
    t.strings()[0] = n.attr_string("default_string", "_Unused");
    return t;
  }
  Tensor t(dt, {1});
  double v = dt == DType::kI64   ? static_cast<double>(n.attr_int("default_int64", -1))
             : dt == DType::kF32 ? static_cast<double>(n.attr_float("default_float", -0.0f))
                                 : (dtype_is_float(dt) ? -0.0 : -1.0);
  (void)visit_dtype(dt, kNumericTypes, [&]<typename T>() {
    t.mutable_data<T>()[0] = static_cast<T>(v);
    return Status::ok();
  });
  return t;
}

// Keys compare as strings or as numbers (so an int64 key matches an int64 input).
struct KeyIndex {
  std::map<std::string, int64_t> by_string;
  std::map<double, int64_t> by_number;
  int64_t nan_key = -1;

  int64_t find(const Tensor& x, int64_t i) const {
    if (x.dtype() == DType::kString) {
      auto it = by_string.find(x.strings()[i]);
      return it == by_string.end() ? -1 : it->second;
    }
    double v = x.element_as_double(i);
    if (std::isnan(v)) return nan_key;
    auto it = by_number.find(v);
    return it == by_number.end() ? -1 : it->second;
  }
};

void copy_element(const Tensor& src, int64_t si, Tensor& dst, int64_t di) {
  if (src.dtype() == DType::kString) {
    dst.strings()[di] = src.strings()[si];
    return;
  }
  size_t es = static_cast<size_t>(dtype_bits(src.dtype()) / 8);
  std::memcpy(static_cast<char*>(dst.mutable_raw()) + di * es, static_cast<const char*>(src.raw()) + si * es, es);
}

Status run_label_encoder(CpuKernelContext& ctx) {
  const Node& n = ctx.node();
  KILN_ASSIGN_OR_RETURN(Tensor keys, label_tensor(n, "keys"));
  KILN_ASSIGN_OR_RETURN(Tensor values, label_tensor(n, "values"));
  if (keys.numel() != values.numel())
    return invalid_model("LabelEncoder: {} keys but {} values", keys.numel(), values.numel());
  const Tensor& x = ctx.input(0);
  if ((x.dtype() == DType::kString) != (keys.dtype() == DType::kString))
    return invalid_argument("LabelEncoder: input {} does not match keys of {}", dtype_name(x.dtype()),
                            dtype_name(keys.dtype()));
  KeyIndex index;
  for (int64_t i = 0; i < keys.numel(); ++i) {
    if (keys.dtype() == DType::kString) {
      index.by_string.emplace(keys.strings()[i], i);
    } else if (double k = keys.element_as_double(i); std::isnan(k)) {
      index.nan_key = i;
    } else {
      index.by_number.emplace(k, i);
    }
  }
  Tensor fallback = label_default(n, values.dtype());
  Tensor& y = ctx.allocate_output(0, x.dims());
  if (y.dtype() != values.dtype()) return internal_error("LabelEncoder: output dtype disagrees with the values");
  for (int64_t i = 0; i < x.numel(); ++i) {
    int64_t k = index.find(x, i);
    if (k >= 0)
      copy_element(values, k, y, i);
    else
      copy_element(fallback, 0, y, i);
  }
  return Status::ok();
}

Status run_binarizer(CpuKernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  double threshold = ctx.node().attr_float("threshold", 0);
  Tensor& y = ctx.allocate_output(0, x.dims());
  return visit_dtype(x.dtype(), kNumericTypes, [&]<typename T>() {
    const T* in = x.data<T>();
    T* out = y.mutable_data<T>();
    for (int64_t i = 0; i < x.numel(); ++i) out[i] = static_cast<T>(static_cast<double>(in[i]) > threshold ? 1.0 : 0.0);
    return Status::ok();
  });
}

Status run_array_feature_extractor(CpuKernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> idx, ctx.input(1).to_i64_vector());
  if (x.rank() == 0) return invalid_argument("ArrayFeatureExtractor: X must have rank 1 or more");
  int64_t f = x.dims().back();
  for (int64_t i : idx)
    if (i < 0 || i >= f) return invalid_argument("ArrayFeatureExtractor: index {} is out of range [0, {})", i, f);
  std::vector<int64_t> dims =
      x.rank() == 1 ? std::vector<int64_t>{1} : std::vector<int64_t>(x.dims().begin(), x.dims().end() - 1);
  dims.push_back(static_cast<int64_t>(idx.size()));
  Tensor& y = ctx.allocate_output(0, dims);
  int64_t rows = f == 0 ? 0 : x.numel() / f;
  for (int64_t r = 0; r < rows; ++r)
    for (size_t k = 0; k < idx.size(); ++k)
      copy_element(x, r * f + idx[k], y, r * static_cast<int64_t>(idx.size()) + static_cast<int64_t>(k));
  return Status::ok();
}

struct Forest {
  std::vector<double> splits, leaf_weights;
  std::vector<int64_t> features, modes, true_ids, false_ids, true_leaf, false_leaf, leaf_targets, roots;
  std::vector<int64_t> missing_true;
  std::vector<std::set<double>> members;  // per node, for mode 6 (MEMBER)
};

std::vector<double> doubles_of(const Attribute* a) {
  std::vector<double> out;
  if (a)
    for (int64_t i = 0; i < a->t.numel(); ++i) out.push_back(a->t.element_as_double(i));
  return out;
}

Expected<Forest> read_forest(const Node& n) {
  Forest f;
  f.splits = doubles_of(n.attr("nodes_splits"));
  f.leaf_weights = doubles_of(n.attr("leaf_weights"));
  for (double m : doubles_of(n.attr("nodes_modes"))) f.modes.push_back(static_cast<int64_t>(m));
  f.features = n.attr_ints("nodes_featureids");
  f.true_ids = n.attr_ints("nodes_truenodeids");
  f.false_ids = n.attr_ints("nodes_falsenodeids");
  f.true_leaf = n.attr_ints("nodes_trueleafs");
  f.false_leaf = n.attr_ints("nodes_falseleafs");
  f.leaf_targets = n.attr_ints("leaf_targetids");
  f.roots = n.attr_ints("tree_roots");
  f.missing_true = n.attr_ints("nodes_missing_value_tracks_true");
  size_t nodes = f.modes.size();
  if (f.splits.size() != nodes || f.features.size() != nodes || f.true_ids.size() != nodes ||
      f.false_ids.size() != nodes || f.true_leaf.size() != nodes || f.false_leaf.size() != nodes ||
      f.leaf_targets.size() != f.leaf_weights.size())
    return invalid_model("TreeEnsemble: the nodes_* (or leaf_*) attributes differ in length");
  // Set members are listed per MEMBER node in node order, each list ended by a NaN.
  std::vector<double> members = doubles_of(n.attr("membership_values"));
  f.members.resize(nodes);
  size_t at = 0;
  for (size_t i = 0; i < nodes; ++i) {
    if (f.modes[i] != 6) continue;
    for (; at < members.size() && !std::isnan(members[at]); ++at) f.members[i].insert(members[at]);
    ++at;
  }
  return f;
}

bool goes_true(const Forest& f, size_t node, double v) {
  if (std::isnan(v) && node < f.missing_true.size() && f.missing_true[node]) return true;
  double s = f.splits[node];
  switch (f.modes[node]) {
    case 0: return v <= s;
    case 1: return v < s;
    case 2: return v >= s;
    case 3: return v > s;
    case 4: return v == s;
    case 5: return v != s;
    // NaN is no member of any set (std::set would find it equivalent to every member).
    default: return !std::isnan(v) && f.members[node].count(v) != 0;
  }
}

// The leaf a row reaches from `root`; error on a malformed tree.
Expected<size_t> find_leaf(const Forest& f, int64_t root, const double* row, int64_t features) {
  auto node = static_cast<size_t>(root);
  if (node >= f.modes.size()) return invalid_model("TreeEnsemble: tree root {} is out of range", root);
  // A tree that is a single leaf: both branches lead to the same leaf.
  if (f.true_leaf[node] && f.false_leaf[node] && f.true_ids[node] == f.false_ids[node])
    return static_cast<size_t>(f.true_ids[node]);
  for (size_t steps = 0; steps <= f.modes.size(); ++steps) {
    if (f.features[node] < 0 || f.features[node] >= features)
      return invalid_model("TreeEnsemble: feature id {} is out of range", f.features[node]);
    bool t = goes_true(f, node, row[f.features[node]]);
    int64_t next = t ? f.true_ids[node] : f.false_ids[node];
    if (t ? f.true_leaf[node] : f.false_leaf[node]) {
      if (next < 0 || static_cast<size_t>(next) >= f.leaf_weights.size())
        return invalid_model("TreeEnsemble: leaf id {} is out of range", next);
      return static_cast<size_t>(next);
    }
    if (next < 0 || static_cast<size_t>(next) >= f.modes.size())
      return invalid_model("TreeEnsemble: node id {} is out of range", next);
    node = static_cast<size_t>(next);
  }
  return invalid_model("TreeEnsemble: a tree has a cycle");
}

Status run_tree_ensemble(CpuKernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() != 2) return invalid_argument("TreeEnsemble: X must be [N, F]");
  KILN_ASSIGN_OR_RETURN(Forest f, read_forest(ctx.node()));
  int64_t rows = x.dim(0), features = x.dim(1), targets = ctx.node().attr_int("n_targets", 1);
  int64_t agg = ctx.node().attr_int("aggregate_function", 1);
  double start = agg == 2 ? std::numeric_limits<double>::max() : agg == 3 ? std::numeric_limits<double>::lowest() : 0;
  std::vector<double> row(static_cast<size_t>(features)), out(static_cast<size_t>(rows * targets), start);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < features; ++c) row[static_cast<size_t>(c)] = x.element_as_double(r * features + c);
    for (int64_t root : f.roots) {
      KILN_ASSIGN_OR_RETURN(size_t leaf, find_leaf(f, root, row.data(), features));
      int64_t t = f.leaf_targets[leaf];
      if (t < 0 || t >= targets) return invalid_model("TreeEnsemble: leaf target {} is out of range", t);
      double& o = out[static_cast<size_t>(r * targets + t)];
      double w = f.leaf_weights[leaf];
      if (agg == 1)
        o += w;
      else if (agg == 0)
        o += w / static_cast<double>(f.roots.size());
      else if (agg == 2)
        o = std::min(o, w);
      else
        o = std::max(o, w);
    }
  }
  Tensor& y = ctx.allocate_output(0, {rows, targets});
  return visit_dtype(y.dtype(), kFloatTypes, [&]<typename T>() {
    T* p = y.mutable_data<T>();
    for (size_t i = 0; i < out.size(); ++i) p[i] = static_cast<T>(out[i]);
    return Status::ok();
  });
}

}  // namespace

KILN_CPU_KERNEL(kMl, "LabelEncoder", run_label_encoder);
KILN_CPU_KERNEL(kMl, "Binarizer", run_binarizer);
KILN_CPU_KERNEL(kMl, "ArrayFeatureExtractor", run_array_feature_extractor);
KILN_CPU_KERNEL(kMl, "TreeEnsemble", run_tree_ensemble);

}  // namespace kiln
