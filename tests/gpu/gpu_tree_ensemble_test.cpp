// TreeEnsemble (ai.onnx.ml 5), TreeEnsembleRegressor and
// TreeEnsembleClassifier against the CPU on random forests: every branch
// mode, set membership, NaN features with and without missing-value
// tracking, each aggregate function and post transform, and the binary
// classifier cases. Features and splits are multiples of 0.5 (exact in f16
// and bf16 too), so equality tests and split boundaries are hit often.
#include <random>
#include <tuple>

#include "gpu_test_util.h"

namespace kiln::gpu_test {
namespace {

using Dims = std::vector<int64_t>;

const char* kEnsemble = "ai.onnx.ml.TreeEnsemble";
const char* kRegressor = "ai.onnx.ml.TreeEnsembleRegressor";
const char* kClassifier = "ai.onnx.ml.TreeEnsembleClassifier";

float half_step(std::mt19937& rng) { return static_cast<float>(std::uniform_int_distribution<int>(-4, 4)(rng)) / 2; }

// [rows, features] of multiples of 0.5 in [-2, 2]; about one in eight is NaN.
Tensor features_of(DType t, Dims dims, uint32_t seed) {
  std::mt19937 rng(seed);
  Tensor f32(DType::kF32, dims);
  for (int64_t i = 0; i < f32.numel(); ++i)
    f32.mutable_data<float>()[i] = rng() % 8 == 0 && dtype_is_float(t) ? NAN : half_step(rng);
  Tensor out(t, dims);
  for (int64_t i = 0; i < out.numel(); ++i) {
    const float v = f32.data<float>()[i];
    switch (t) {
      case DType::kF32: out.mutable_data<float>()[i] = v; break;
      case DType::kF64: out.mutable_data<double>()[i] = v; break;
      case DType::kF16: out.mutable_data<uint16_t>()[i] = f32_to_f16(v); break;
      case DType::kBF16: out.mutable_data<uint16_t>()[i] = f32_to_bf16(v); break;
      case DType::kI32: out.mutable_data<int32_t>()[i] = static_cast<int32_t>(v); break;
      case DType::kI64: out.mutable_data<int64_t>()[i] = static_cast<int64_t>(v); break;
      default: ADD_FAILURE() << "features_of: dtype " << dtype_name(t);
    }
  }
  return out;
}

Tensor f32_tensor(const std::vector<float>& v) {
  return Tensor::from_vector<float>(DType::kF32, {static_cast<int64_t>(v.size())}, v);
}

// A random TreeEnsemble-5 forest: complete trees of `depth` (node k's
// children are 2k+1 and 2k+2, past the branches they are leaves), every
// mode 0..6, one tree in four a single leaf.
Attrs ensemble_forest(int trees, int depth, int features, int targets, int aggregate, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int64_t> roots, feature_ids, true_ids, true_leaf, false_ids, false_leaf, missing, leaf_targets;
  std::vector<uint8_t> modes;
  std::vector<float> splits, members, weights;
  auto add_leaf = [&]() {
    leaf_targets.push_back(static_cast<int64_t>(rng() % static_cast<uint32_t>(targets)));
    weights.push_back(std::uniform_real_distribution<float>(-1, 1)(rng));
    return static_cast<int64_t>(weights.size() - 1);
  };
  for (int t = 0; t < trees; ++t) {
    const auto first = static_cast<int64_t>(modes.size());
    roots.push_back(first);
    const int branches = t % 4 == 3 ? 1 : (1 << depth) - 1;
    const int64_t first_leaf = static_cast<int64_t>(weights.size());
    for (int k = 0; k < branches; ++k) {
      const auto mode = static_cast<uint8_t>(rng() % 7);
      modes.push_back(mode);
      feature_ids.push_back(static_cast<int64_t>(rng() % static_cast<uint32_t>(features)));
      splits.push_back(half_step(rng));
      missing.push_back(rng() % 2);
      if (mode == 6) {
        for (uint32_t m = 0, count = 1 + rng() % 3; m < count; ++m) members.push_back(half_step(rng));
        members.push_back(NAN);
      }
    }
    if (branches == 1 && t % 4 == 3) {
      // Both branches name the same leaf: the tree is that leaf.
      const int64_t leaf = add_leaf();
      true_ids.push_back(leaf), false_ids.push_back(leaf);
      true_leaf.push_back(1), false_leaf.push_back(1);
      continue;
    }
    for (int k = 0; k < (1 << depth); ++k) add_leaf();
    for (int k = 0; k < branches; ++k) {
      for (int side = 1; side <= 2; ++side) {
        const int child = 2 * k + side;
        const bool leaf = child >= branches;
        const int64_t id = leaf ? first_leaf + (child - branches) : first + child;
        (side == 1 ? true_ids : false_ids).push_back(id);
        (side == 1 ? true_leaf : false_leaf).push_back(leaf ? 1 : 0);
      }
    }
  }
  Attrs a;
  a["n_targets"] = Attribute::of_int(targets);
  a["aggregate_function"] = Attribute::of_int(aggregate);
  a["post_transform"] = Attribute::of_int(0);
  a["tree_roots"] = Attribute::of_ints(roots);
  a["nodes_modes"] =
      Attribute::of_tensor(Tensor::from_vector<uint8_t>(DType::kU8, {static_cast<int64_t>(modes.size())}, modes));
  a["nodes_featureids"] = Attribute::of_ints(feature_ids);
  a["nodes_splits"] = Attribute::of_tensor(f32_tensor(splits));
  a["nodes_truenodeids"] = Attribute::of_ints(true_ids);
  a["nodes_trueleafs"] = Attribute::of_ints(true_leaf);
  a["nodes_falsenodeids"] = Attribute::of_ints(false_ids);
  a["nodes_falseleafs"] = Attribute::of_ints(false_leaf);
  a["nodes_missing_value_tracks_true"] = Attribute::of_ints(missing);
  if (!members.empty()) a["membership_values"] = Attribute::of_tensor(f32_tensor(members));
  a["leaf_targetids"] = Attribute::of_ints(leaf_targets);
  a["leaf_weights"] = Attribute::of_tensor(f32_tensor(weights));
  return a;
}

// A random forest of the older ops: complete trees of `depth`, listed last
// node first and tree ids descending (so the kernels must sort them), each
// leaf voting one or two times for `ids` (a class or target, or the one id
// given for every vote); `votes` is "target" or "class".
Attrs legacy_forest(int trees, int depth, int features, const std::string& votes, int ids, int only_id, uint32_t seed) {
  static const char* kModes[] = {"BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ"};
  std::mt19937 rng(seed);
  std::vector<int64_t> tree_ids, node_ids, feature_ids, true_ids, false_ids, missing, v_tree, v_node, v_id;
  std::vector<std::string> modes;
  std::vector<float> values, weights;
  const int branches = (1 << depth) - 1, nodes = 2 * branches + 1;
  for (int t = trees - 1; t >= 0; --t) {
    const int tree = 3 * t + 1;
    for (int k = nodes - 1; k >= 0; --k) {
      const bool leaf = k >= branches;
      tree_ids.push_back(tree);
      node_ids.push_back(k);
      feature_ids.push_back(leaf ? 0 : static_cast<int64_t>(rng() % static_cast<uint32_t>(features)));
      modes.push_back(leaf ? "LEAF" : kModes[rng() % 6]);
      values.push_back(leaf ? 0 : half_step(rng));
      true_ids.push_back(leaf ? 0 : 2 * k + 1);
      false_ids.push_back(leaf ? 0 : 2 * k + 2);
      missing.push_back(rng() % 2);
      if (!leaf) continue;
      for (uint32_t v = 0, count = 1 + rng() % 2; v < count; ++v) {
        v_tree.push_back(tree);
        v_node.push_back(k);
        v_id.push_back(only_id >= 0 ? only_id : static_cast<int64_t>(rng() % static_cast<uint32_t>(ids)));
        weights.push_back(std::uniform_real_distribution<float>(-1, 1)(rng));
      }
    }
  }
  Attrs a;
  a["nodes_treeids"] = Attribute::of_ints(tree_ids);
  a["nodes_nodeids"] = Attribute::of_ints(node_ids);
  a["nodes_featureids"] = Attribute::of_ints(feature_ids);
  a["nodes_modes"] = Attribute::of_strings(modes);
  a["nodes_values"] = Attribute::of_floats(values);
  a["nodes_truenodeids"] = Attribute::of_ints(true_ids);
  a["nodes_falsenodeids"] = Attribute::of_ints(false_ids);
  a["nodes_missing_value_tracks_true"] = Attribute::of_ints(missing);
  a[votes + "_treeids"] = Attribute::of_ints(v_tree);
  a[votes + "_nodeids"] = Attribute::of_ints(v_node);
  a[votes + "_ids"] = Attribute::of_ints(v_id);
  a[votes + "_weights"] = Attribute::of_floats(weights);
  return a;
}

class GpuTreeEnsemble : public GpuTest {};

TEST_F(GpuTreeEnsemble, MatchesCpuForEachAggregateAndDtype) {
  for (int aggregate = 0; aggregate <= 3; ++aggregate) {
    for (DType t : {DType::kF32, DType::kF64, DType::kF16, DType::kBF16}) {
      const Attrs attrs = ensemble_forest(9, 3, 4, 3, aggregate, 17 + static_cast<uint32_t>(aggregate));
      const Tensor x = features_of(t, {37, 4}, 5);
      const std::string what = "TreeEnsemble aggregate " + std::to_string(aggregate) + " " + std::string(dtype_name(t));
      expect_close(run_cuda(kEnsemble, {x}, attrs, 0, 1, 5), run_cpu(kEnsemble, {x}, attrs, 0, 1, 5), tolerance_for(t),
                   what);
    }
  }
}

// MIN and MAX leave a target no tree votes for at the extremes (inf in f32).
TEST_F(GpuTreeEnsemble, TargetsWithoutVotesKeepTheStartValue) {
  for (int aggregate : {1, 2, 3}) {
    const Attrs attrs = ensemble_forest(2, 1, 2, 6, aggregate, 3);
    const Tensor x = features_of(DType::kF32, {5, 2}, 9);
    expect_close(run_cuda(kEnsemble, {x}, attrs, 0, 1, 5), run_cpu(kEnsemble, {x}, attrs, 0, 1, 5), 1e-5,
                 "TreeEnsemble sparse targets, aggregate " + std::to_string(aggregate));
  }
}

// Many deep trees over few rows: the walk runs a thread per (row, tree).
TEST_F(GpuTreeEnsemble, ManyTreesFewRows) {
  const Attrs attrs = ensemble_forest(300, 6, 8, 2, 1, 23);
  const Tensor x = features_of(DType::kF32, {3, 8}, 4);
  expect_close(run_cuda(kEnsemble, {x}, attrs, 0, 1, 5), run_cpu(kEnsemble, {x}, attrs, 0, 1, 5), 1e-5,
               "TreeEnsemble 300 trees");
}

// A workspace limit with room for the scores only: each row's thread walks
// its trees itself.
TEST_F(GpuTreeEnsemble, WalksInTheFoldWithoutRoomForTheLeaves) {
  const Attrs ensemble = ensemble_forest(9, 3, 4, 3, 1, 31);
  Attrs classifier = legacy_forest(6, 3, 4, "class", 3, -1, 32);
  classifier["classlabels_int64s"] = Attribute::of_ints({2, 4, 6});
  classifier["post_transform"] = Attribute::of_string("SOFTMAX");
  const Tensor x = features_of(DType::kF32, {37, 4}, 7);
  cuda::RunOptions options;
  options.workspace_limit = 1024;  // 37 x 3 doubles; the leaves need 37 x 9 (or 6) x 4 bytes more
  for (const auto& [op, attrs, outputs] :
       {std::tuple{kEnsemble, ensemble, 1}, std::tuple{kClassifier, classifier, 2}}) {
    std::vector<RunValue> values;
    auto g = one_node_graph(op, {x}, attrs, outputs, std::string(op) == kEnsemble ? 5 : 3, values);
    auto out = cuda::run_graph_on_cuda(*g, std::move(values), options);
    ASSERT_TRUE(out.is_ok()) << out.status().to_string();
    const int opset = std::string(op) == kEnsemble ? 5 : 3;
    for (int o = 0; o < outputs; ++o) {
      Tensor cpu = run_cpu(op, {x}, attrs, static_cast<size_t>(o), outputs, opset);
      if (cpu.dtype() == DType::kI64)
        expect_equal((*out)[static_cast<size_t>(o)].tensor, cpu, std::string(op) + " labels");
      else
        expect_close((*out)[static_cast<size_t>(o)].tensor, cpu, 1e-5, std::string(op) + " in-fold walk");
    }
  }
}

TEST_F(GpuTreeEnsemble, RejectsAFeatureOutsideX) {
  Attrs attrs = ensemble_forest(1, 1, 4, 1, 1, 2);
  attrs["nodes_featureids"] = Attribute::of_ints({7});
  std::vector<RunValue> values;
  auto g = one_node_graph(kEnsemble, {features_of(DType::kF32, {2, 4}, 1)}, attrs, 1, 5, values);
  auto out = cuda::run_graph_on_cuda(*g, std::move(values));
  ASSERT_FALSE(out.is_ok());
  EXPECT_NE(out.status().message().find("TreeEnsemble: feature id 7 is out of range"), std::string::npos)
      << out.status().to_string();
}

TEST_F(GpuTreeEnsemble, RegressorMatchesCpuForEachAggregateAndDtype) {
  for (const char* aggregate : {"SUM", "AVERAGE", "MIN", "MAX"}) {
    for (DType t : {DType::kF32, DType::kF64, DType::kF16, DType::kI64, DType::kI32}) {
      Attrs attrs = legacy_forest(7, 3, 5, "target", 3, -1, 41);
      attrs["n_targets"] = Attribute::of_int(4);  // target 3 gets no vote
      attrs["aggregate_function"] = Attribute::of_string(aggregate);
      attrs["base_values"] = Attribute::of_floats({0.5f, -1.f, 2.f});
      const Tensor x = features_of(t, {29, 5}, 8);
      const std::string what = std::string("TreeEnsembleRegressor ") + aggregate + " " + std::string(dtype_name(t));
      expect_close(run_cuda(kRegressor, {x}, attrs, 0, 1, 3), run_cpu(kRegressor, {x}, attrs, 0, 1, 3), 1e-5, what);
    }
  }
}

// A 1-D X is one row of features.
TEST_F(GpuTreeEnsemble, RegressorTakesOneRow) {
  Attrs attrs = legacy_forest(4, 2, 6, "target", 2, -1, 12);
  attrs["n_targets"] = Attribute::of_int(2);
  const Tensor x = features_of(DType::kF32, {6}, 3);
  expect_close(run_cuda(kRegressor, {x}, attrs, 0, 1, 3), run_cpu(kRegressor, {x}, attrs, 0, 1, 3), 1e-5,
               "TreeEnsembleRegressor 1-D X");
}

// Y (labels) must be equal, Z (scores) close.
void check_classifier(const Attrs& attrs, const Tensor& x, const std::string& what) {
  expect_equal(run_cuda(kClassifier, {x}, attrs, 0, 2, 3), run_cpu(kClassifier, {x}, attrs, 0, 2, 3), what + " labels");
  expect_close(run_cuda(kClassifier, {x}, attrs, 1, 2, 3), run_cpu(kClassifier, {x}, attrs, 1, 2, 3), 1e-5,
               what + " scores");
}

const char* kPostTransforms[] = {"NONE", "SOFTMAX", "LOGISTIC", "SOFTMAX_ZERO"};

TEST_F(GpuTreeEnsemble, ClassifierMatchesCpuForEachPostTransform) {
  for (const char* post : kPostTransforms) {
    Attrs attrs = legacy_forest(6, 3, 4, "class", 3, -1, 77);
    attrs["classlabels_int64s"] = Attribute::of_ints({7, 3, 11, 5});  // class 3 gets no vote
    attrs["post_transform"] = Attribute::of_string(post);
    attrs["base_values"] = Attribute::of_floats({0.25f, 0, -0.5f, 0});
    check_classifier(attrs, features_of(DType::kF32, {41, 4}, 6), std::string("TreeEnsembleClassifier ") + post);
  }
}

// Every vote for one class: scores [1 - s, s] (or [-s, s] before a
// transform), with two labels or the single label 1.
TEST_F(GpuTreeEnsemble, ClassifierBinaryCases) {
  for (const char* post : kPostTransforms) {
    Attrs two = legacy_forest(5, 2, 3, "class", 2, 0, 91);
    two["classlabels_int64s"] = Attribute::of_ints({4, 9});
    two["post_transform"] = Attribute::of_string(post);
    check_classifier(two, features_of(DType::kF64, {23, 3}, 2), std::string("binary, two labels, ") + post);
    Attrs one = legacy_forest(5, 2, 3, "class", 1, 0, 92);
    one["classlabels_int64s"] = Attribute::of_ints({1});
    one["post_transform"] = Attribute::of_string(post);
    one["base_values"] = Attribute::of_floats({0.1f});
    check_classifier(one, features_of(DType::kF32, {23, 3}, 3), std::string("binary, label 1, ") + post);
  }
}

}  // namespace
}  // namespace kiln::gpu_test
