// The CUDA TfIdfVectorizer kernel's host side (backends/cuda/ops/
// tfidf_vectorizer.cpp), without a GPU: which nodes it takes and the scratch
// it asks for. tests/gpu/gpu_tfidf_test.cpp compares its results with the
// CPU.
#ifdef KILN_WITH_CUDA
#include <gtest/gtest.h>

#include "backends/cuda/cuda_kernel.h"
#include "backends/cuda/run_plan.h"

namespace kiln::cuda {
namespace {

constexpr const char* kStringsOnHost =
    "node 'tfidf' (TfIdfVectorizer): TfIdfVectorizer: string tokens stay on the host; int32/int64 tokens run on "
    "the GPU";

std::map<std::string, Attribute> int_pool() {
  return {{"mode", Attribute::of_string("TF")},         {"min_gram_length", Attribute::of_int(1)},
          {"max_gram_length", Attribute::of_int(2)},    {"pool_int64s", Attribute::of_ints({1, 2, 1, 2})},
          {"ngram_counts", Attribute::of_ints({0, 2})}, {"ngram_indexes", Attribute::of_ints({0, 4, 2})}};
}

// A one-node graph: TfIdfVectorizer on tokens of `dtype` and `dims`.
std::unique_ptr<Graph> tfidf_graph(DType dtype, std::vector<int64_t> dims, std::map<std::string, Attribute> attrs) {
  auto g = std::make_unique<Graph>();
  Value* x = g->add_value("x", Type::tensor(dtype, Shape::of(dims)));
  g->inputs.push_back(x);
  Node* n = g->add_node("TfIdfVectorizer");
  n->name = "tfidf";
  n->opset = 9;
  n->inputs = {x};
  n->attrs = std::move(attrs);
  Value* y = g->add_value("y");
  y->producer = n;
  n->outputs.push_back(y);
  g->outputs.push_back(y);
  return g;
}

TEST(CudaTfIdf, IntegerTokensRunOnTheGpu) {
  for (DType t : {DType::kI32, DType::kI64})
    for (const std::vector<int64_t>& dims : {std::vector<int64_t>{7}, std::vector<int64_t>{3, 7}}) {
      auto g = tfidf_graph(t, dims, int_pool());
      Status st = check_graph_supported(*g, false, nullptr);
      EXPECT_TRUE(st.is_ok()) << dtype_name(t) << ": " << st.to_string();
    }
}

TEST(CudaTfIdf, StringTokensStayOnTheHost) {
  auto attrs = int_pool();
  attrs.erase("pool_int64s");
  attrs["pool_strings"] = Attribute::of_strings({"a", "b", "a", "b"});
  // String tokens, and integer tokens against a string pool (the CPU compares them as text).
  for (DType t : {DType::kString, DType::kI64}) {
    auto g = tfidf_graph(t, {2, 3}, attrs);
    Status st = check_graph_supported(*g, false, nullptr);
    EXPECT_EQ(st.code(), ErrorCode::kUnsupported) << st.to_string();
    EXPECT_NE(st.message().find(kStringsOnHost), std::string::npos) << st.to_string();
    std::vector<const Node*> fallback;
    EXPECT_TRUE(check_graph_supported(*g, true, &fallback).is_ok());
    EXPECT_EQ(fallback.size(), 1u);
  }
}

class DimsQuery final : public KernelQuery {
 public:
  DimsQuery(const Node& node, std::vector<int64_t> dims) : node_(node), dims_(std::move(dims)) {}
  const Node& node() const override { return node_; }
  DType input_dtype(size_t) const override { return DType::kI64; }
  const std::vector<int64_t>* input_dims(size_t i) const override { return i == 0 ? &dims_ : nullptr; }
  const Tensor* host_input(size_t) const override { return nullptr; }
  const std::string& tactic() const override { return tactic_; }
  bool allow_tf32() const override { return false; }
  size_t workspace_limit() const override { return SIZE_MAX; }

 private:
  const Node& node_;
  std::vector<int64_t> dims_;
  std::string tactic_;
};

// An int32 count per row and output column (max(ngram_indexes) + 1 = 5).
TEST(CudaTfIdf, WorkspaceHoldsACountPerRowAndColumn) {
  auto g = tfidf_graph(DType::kI64, {3, 7}, int_pool());
  const KernelDef* def = KernelRegistry::instance().find("", "TfIdfVectorizer");
  ASSERT_NE(def, nullptr);
  const Node& n = *g->nodes()[0];
  EXPECT_EQ(def->workspace(DimsQuery(n, {3, 7})), 3u * 5u * 4u);
  EXPECT_EQ(def->workspace(DimsQuery(n, {7})), 5u * 4u);  // 1-D: one row
  EXPECT_EQ(def->workspace(DimsQuery(n, {0, 7})), 0u);
}

}  // namespace
}  // namespace kiln::cuda
#endif
