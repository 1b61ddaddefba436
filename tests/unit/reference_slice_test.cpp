// The autotuner's CPU check takes the first rows of the batch of every input
// that has it (builder/reference_slice.h). For each layer kind: which inputs
// are cut, and that the layer on the cut inputs gives exactly the first rows
// of its full output (a missed input fails the run or changes the rows).
#include "builder/reference_slice.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "backends/cpu/cpu_executor.h"

namespace kiln {
namespace {

Tensor random_f32(std::vector<int64_t> dims, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  Tensor t(DType::kF32, std::move(dims));
  for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data<float>()[i] = u(rng);
  return t;
}

struct Layer {
  std::string domain, op;
  std::map<std::string, Attribute> attrs;
  std::vector<Tensor> inputs;
};

Tensor run_layer(const Layer& l, const std::vector<Tensor>& inputs) {
  Graph g;
  Node* n = g.add_node(l.op, l.domain);
  n->attrs = l.attrs;
  std::vector<RunValue> values;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].is_valid()) {  // an omitted optional input
      n->inputs.push_back(nullptr);
      continue;
    }
    Value* v = g.add_value("in" + std::to_string(i), Type::tensor(inputs[i].dtype(), Shape::of(inputs[i].dims())));
    g.inputs.push_back(v);
    n->inputs.push_back(v);
    values.push_back(RunValue::of(inputs[i]));
  }
  Value* y = g.add_value("y");
  y->producer = n;
  n->outputs.push_back(y);
  g.outputs.push_back(y);
  auto out = run_graph_on_cpu(g, std::move(values));
  EXPECT_TRUE(out.is_ok()) << l.op << ": " << out.status().to_string();
  return out.is_ok() ? (*out)[0].tensor : Tensor();
}

// Checks the sliced inputs are `want`, and the layer on them gives the first
// rows of its full output, byte for byte.
void check(const Layer& l, const std::vector<bool>& want) {
  Graph g;
  Node* n = g.add_node(l.op, l.domain);
  std::vector<std::vector<int64_t>> dims;
  for (const Tensor& t : l.inputs) dims.push_back(t.dims());
  const std::vector<bool> slice = sliced_inputs(*n, dims);
  EXPECT_EQ(slice, want) << l.op;
  const int64_t rows = reference_rows(*n);
  std::vector<Tensor> cut;
  for (size_t i = 0; i < l.inputs.size(); ++i) cut.push_back(slice[i] ? first_rows(l.inputs[i], rows) : l.inputs[i]);
  const Tensor full = run_layer(l, l.inputs), part = run_layer(l, cut);
  ASSERT_TRUE(full.is_valid() && part.is_valid()) << l.op;
  const Tensor expected = first_rows(full, rows);
  ASSERT_EQ(part.dims(), expected.dims()) << l.op;
  EXPECT_EQ(std::memcmp(part.raw(), expected.raw(), part.nbytes()), 0) << l.op;
}

// ResNet's residual layer, channels-last: X and Z have the batch.
TEST(ReferenceSlice, FusedConvCutsItsResidualToo) {
  check({"kiln",
         "FusedConv",
         {{"channels_last", Attribute::of_int(1)},
          {"pads", Attribute::of_ints({1, 1, 1, 1})},
          {"activation", Attribute::of_string("Relu")}},
         {random_f32({3, 5, 5, 8}, 1), random_f32({4, 3, 3, 8}, 2), random_f32({4}, 3), random_f32({3, 5, 5, 4}, 4)}},
        {true, false, false, true});
}

// BERT's 3-D attention with a per-batch 4-D mask: Q, K, V and the mask.
TEST(ReferenceSlice, AttentionCutsKeysValuesAndABatchedMask) {
  check({"",
         "Attention",
         {{"q_num_heads", Attribute::of_int(2)}, {"kv_num_heads", Attribute::of_int(2)}},
         {random_f32({3, 4, 8}, 1), random_f32({3, 5, 8}, 2), random_f32({3, 5, 8}, 3), random_f32({3, 1, 4, 5}, 4)}},
        {true, true, true, true});
}

// A mask shared by the batch stays whole, as does a 3-D one (heads first).
TEST(ReferenceSlice, AttentionKeepsASharedMask) {
  check({"",
         "Attention",
         {},
         {random_f32({3, 2, 4, 4}, 1), random_f32({3, 2, 5, 4}, 2), random_f32({3, 2, 5, 4}, 3),
          random_f32({1, 1, 4, 5}, 4)}},
        {true, true, true, false});
  check({"",
         "Attention",
         {},
         {random_f32({2, 2, 4, 4}, 1), random_f32({2, 2, 5, 4}, 2), random_f32({2, 2, 5, 4}, 3),
          random_f32({2, 4, 5}, 4)}},
        {true, true, true, false});
}

// kiln.PackedAttention: QKV [B, S, (Hq + 2 Hkv) * D] is batch-major; its mask
// (input 1) is cut as Attention's is.
TEST(ReferenceSlice, PackedAttentionCutsQkvAndABatchedMaskOnly) {
  const std::map<std::string, Attribute> heads = {{"q_num_heads", Attribute::of_int(2)},
                                                  {"kv_num_heads", Attribute::of_int(1)}};
  check({"kiln", "PackedAttention", heads, {random_f32({3, 4, 16}, 1), random_f32({3, 1, 4, 4}, 2)}}, {true, true});
  check({"kiln", "PackedAttention", heads, {random_f32({3, 4, 16}, 1), random_f32({1, 1, 4, 4}, 2)}}, {true, false});
  check({"kiln", "PackedAttention", heads, {random_f32({3, 4, 16}, 1)}}, {true});
}

// Products: 8 rows of a matrix, 8 of a batch, and a shared weight kept.
TEST(ReferenceSlice, ProductsCutRowsOrTheBatch) {
  check({"", "MatMul", {}, {random_f32({20, 7}, 1), random_f32({7, 6}, 2)}}, {true, false});
  check({"", "MatMul", {}, {random_f32({10, 2, 7}, 1), random_f32({10, 7, 3}, 2)}}, {true, true});
  check({"", "MatMul", {}, {random_f32({10, 2, 7}, 1), random_f32({7, 3}, 2)}}, {true, false});
  check({"", "MatMul", {}, {random_f32({7, 9}, 1), random_f32({3, 9, 5}, 2)}}, {false, false});
}

// kiln.FusedMatMul's residual has the output's rows: cut with A, kept whole where A is.
TEST(ReferenceSlice, FusedMatMulCutsItsResidualWithA) {
  const std::map<std::string, Attribute> relu = {{"activation", Attribute::of_string("Relu")}};
  check({"kiln",
         "FusedMatMul",
         relu,
         {random_f32({20, 7}, 1), random_f32({7, 6}, 2), random_f32({6}, 3), random_f32({20, 6}, 4)}},
        {true, false, false, true});
  check({"kiln",
         "FusedMatMul",
         relu,
         {random_f32({10, 2, 7}, 1), random_f32({7, 3}, 2), Tensor(), random_f32({10, 2, 3}, 4)}},
        {true, false, false, true});
  check({"kiln",
         "FusedMatMul",
         relu,
         {random_f32({7, 9}, 1), random_f32({3, 9, 5}, 2), Tensor(), random_f32({3, 7, 5}, 4)}},
        {false, false, false, false});
}

}  // namespace
}  // namespace kiln
