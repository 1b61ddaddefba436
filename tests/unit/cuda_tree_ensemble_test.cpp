// The CUDA tree-ensemble kernels' host side (backends/cuda/ops/
// tree_ensemble.cpp), without a GPU: which nodes they take and the scratch
// they ask for. tests/gpu/gpu_tree_ensemble_test.cpp compares their results
// with the CPU.
#ifdef KILN_WITH_CUDA
#include <gtest/gtest.h>

#include "backends/cuda/cuda_kernel.h"
#include "backends/cuda/run_plan.h"
#include "fake_kernel_query.h"

namespace kiln::cuda {
namespace {

// A one-node graph: `op` of ai.onnx.ml on X of `dtype` and `dims`.
std::unique_ptr<Graph> tree_graph(const std::string& op, DType dtype, std::vector<int64_t> dims,
                                  std::map<std::string, Attribute> attrs) {
  auto g = std::make_unique<Graph>();
  Value* x = g->add_value("x", Type::tensor(dtype, Shape::of(dims)));
  g->inputs.push_back(x);
  Node* n = g->add_node(op, "ai.onnx.ml");
  n->name = "forest";
  n->opset = op == "TreeEnsemble" ? 5 : 3;
  n->inputs = {x};
  n->attrs = std::move(attrs);
  for (int i = 0; i < (op == "TreeEnsembleClassifier" ? 2 : 1); ++i) {
    Value* y = g->add_value("y" + std::to_string(i));
    y->producer = n;
    y->producer_output = i;
    n->outputs.push_back(y);
    g->outputs.push_back(y);
  }
  return g;
}

TEST(CudaTreeEnsemble, StringClassLabelsStayOnTheCpu) {
  auto g = tree_graph("TreeEnsembleClassifier", DType::kF32, {2, 3},
                      {{"classlabels_strings", Attribute::of_strings({"no", "yes"})}});
  Status st = check_graph_supported(*g, false, nullptr);
  EXPECT_NE(st.message().find("node 'forest' (TreeEnsembleClassifier): TreeEnsembleClassifier: string class labels "
                              "(classlabels_strings) are not supported by the CUDA kernel (the CPU backend runs them)"),
            std::string::npos)
      << st.to_string();
  std::vector<const Node*> fallback;
  EXPECT_TRUE(check_graph_supported(*g, true, &fallback).is_ok());
  EXPECT_EQ(fallback.size(), 1u);
}

TEST(CudaTreeEnsemble, AllThreeOpsHaveKernels) {
  auto ensemble = tree_graph("TreeEnsemble", DType::kF16, {2, 3}, {{"n_targets", Attribute::of_int(1)}});
  auto regressor =
      tree_graph("TreeEnsembleRegressor", DType::kI64, {2, 3},
                 {{"n_targets", Attribute::of_int(1)}, {"aggregate_function", Attribute::of_string("MAX")}});
  auto classifier = tree_graph(
      "TreeEnsembleClassifier", DType::kF64, {2, 3},
      {{"classlabels_int64s", Attribute::of_ints({0, 1})}, {"post_transform", Attribute::of_string("SOFTMAX_ZERO")}});
  for (const Graph* g : {ensemble.get(), regressor.get(), classifier.get()}) {
    Status st = check_graph_supported(*g, false, nullptr);
    EXPECT_TRUE(st.is_ok()) << st.to_string();
  }
}

TEST(CudaTreeEnsemble, TreeEnsembleTakesFloatXOnly) {
  auto g = tree_graph("TreeEnsemble", DType::kI32, {2, 3}, {{"n_targets", Attribute::of_int(1)}});
  Status st = check_graph_supported(*g, false, nullptr);
  EXPECT_NE(st.message().find("TreeEnsemble: X of dtype i32 (the CUDA kernel takes f32, f64, f16 or bf16)"),
            std::string::npos)
      << st.to_string();
}

// The CPU flattens such an X to rows of its last axis, where shape inference
// keeps X[0] rows.
TEST(CudaTreeEnsemble, LegacyOpsTakeXOfRankTwoAtMost) {
  auto g = tree_graph("TreeEnsembleRegressor", DType::kF32, {2, 3, 4}, {{"n_targets", Attribute::of_int(1)}});
  Status st = check_graph_supported(*g, false, nullptr);
  EXPECT_NE(st.message().find("TreeEnsembleRegressor: X of rank 3 (the CUDA kernel takes [N, F] or [F])"),
            std::string::npos)
      << st.to_string();
}

// The query of one node whose X has `dims` (f32), within `limit`.
FakeQuery DimsQuery(const Node& node, std::vector<int64_t> dims, size_t limit = SIZE_MAX) {
  return FakeQuery(node, DType::kF32, {std::move(dims)}, "", limit);
}

// Double scores per row and column, (regressor only) a byte per row and
// target, then the leaves (i32 per row and tree) when the limit has room for
// them; each 256-byte aligned.
TEST(CudaTreeEnsemble, WorkspaceHoldsLeavesScoresAndVoteFlags) {
  // Trees 4 and 9 have a node 0; tree 9's second node is not a root.
  std::map<std::string, Attribute> legacy = {{"nodes_treeids", Attribute::of_ints({4, 9, 9})},
                                             {"nodes_nodeids", Attribute::of_ints({0, 0, 1})},
                                             {"n_targets", Attribute::of_int(3)}};
  auto regressor = tree_graph("TreeEnsembleRegressor", DType::kF32, {5, 2}, legacy);
  const KernelDef* def = KernelRegistry::instance().find("ai.onnx.ml", "TreeEnsembleRegressor");
  ASSERT_NE(def, nullptr);
  // 5 rows x 2 trees x 4 bytes, 5 x 3 doubles, 5 x 3 bytes.
  EXPECT_EQ(def->workspace(DimsQuery(*regressor->nodes()[0], {5, 2})), 256u + 256u + 256u);
  // Without room for the leaves, the fold walks the trees itself.
  EXPECT_EQ(def->workspace(DimsQuery(*regressor->nodes()[0], {5, 2}, 700)), 256u + 256u);
  // A binary classifier with one label has two score columns: 40 rows x 2 doubles.
  legacy["classlabels_int64s"] = Attribute::of_ints({1});
  legacy["class_ids"] = Attribute::of_ints({0, 0});
  auto classifier = tree_graph("TreeEnsembleClassifier", DType::kF32, {40, 2}, legacy);
  def = KernelRegistry::instance().find("ai.onnx.ml", "TreeEnsembleClassifier");
  ASSERT_NE(def, nullptr);
  EXPECT_EQ(def->workspace(DimsQuery(*classifier->nodes()[0], {40, 2})), 512u + 768u);
}

}  // namespace
}  // namespace kiln::cuda
#endif
