// The IR's building blocks: dtypes, shapes, symbolic dim arithmetic, tensors.
#include <gtest/gtest.h>

#include "ir/graph.h"
#include "ir/printer.h"
#include "ops/infer_util.h"

namespace kiln {
namespace {

TEST(DType, NamesRoundTrip) {
  for (int i = 1; i <= kMaxDType; ++i) {
    auto t = static_cast<DType>(i);
    EXPECT_EQ(dtype_from_name(dtype_name(t)), t) << i;
  }
  EXPECT_EQ(dtype_from_name("float"), DType::kF32);
  EXPECT_EQ(dtype_from_name("int64"), DType::kI64);
  EXPECT_FALSE(dtype_from_name("float7").has_value());
}

TEST(DType, PackedTypesRoundUpStorage) {
  EXPECT_EQ(dtype_storage_bytes(DType::kI4, 3), 2u);
  EXPECT_EQ(dtype_storage_bytes(DType::kU2, 5), 2u);
  EXPECT_EQ(dtype_storage_bytes(DType::kF6E2M3, 4), 3u);
  EXPECT_EQ(dtype_storage_bytes(DType::kF32, 3), 12u);
}

TEST(Shape, PrintsFixedSymbolicAndUnknownDims) {
  Shape s(Dims{Dim::symbolic("batch"), Dim(3), Dim::unknown()});
  EXPECT_EQ(s.to_string(), "[batch,3,?]");
  EXPECT_EQ(Shape().to_string(), "[*]");
  EXPECT_EQ(Shape(Dims{}).to_string(), "[]");
  EXPECT_FALSE(s.numel().has_value());
  EXPECT_EQ(Shape::of({2, 3}).numel(), 6);
}

TEST(Shape, CheckedNumelRejectsOverflow) {
  EXPECT_EQ(checked_numel({1 << 30, 1 << 30, 1 << 30}), -1);
  EXPECT_EQ(checked_numel({2, -1}), -1);
  EXPECT_EQ(checked_numel({}), 1);
}

TEST(DimMath, ProductsOfSymbolsStayExact) {
  Dim b = Dim::symbolic("batch"), s = Dim::symbolic("seq");
  EXPECT_EQ(dim_mul(b, s).to_string(), "batch*seq");
  EXPECT_EQ(dim_mul(dim_mul(s, Dim(4)), b).to_string(), "4*batch*seq");
  EXPECT_EQ(dim_div(dim_mul(dim_mul(b, s), Dim(128)), Dim(128)).to_string(), "batch*seq");
  EXPECT_EQ(dim_div(dim_mul(b, s), s), b);
  EXPECT_TRUE(dim_div(b, s).is_unknown());
  EXPECT_EQ(dim_mul(Dim(3), Dim(4)), Dim(12));
}

TEST(DimMath, ReshapesMinusOneMarkerNeverBecomesASize) {
  Dim m = minus_one_marker();
  EXPECT_TRUE(dim_mul(m, Dim(2)).is_unknown());
  EXPECT_TRUE(dim_add(m, Dim::symbolic("seq")).is_unknown());
  EXPECT_TRUE(dim_sub(Dim(4), m).is_unknown());
  EXPECT_TRUE(dim_div(m, Dim(1)).is_unknown());
}

TEST(Broadcast, SymbolicAndFixedDims) {
  Shape a(Dims{Dim::symbolic("batch"), Dim(1), Dim(4)});
  Shape b(Dims{Dim(3), Dim(1)});
  auto r = broadcast_shapes({&a, &b});
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->to_string(), "[batch,3,4]");
  Shape c = Shape::of({2});
  Shape d = Shape::of({3});
  EXPECT_FALSE(broadcast_shapes({&c, &d}).is_ok());
}

TEST(Tensor, F16ConversionRoundsToNearestEven) {
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(1e6f), 0x7c00);
  EXPECT_EQ(f16_to_f32(0x0001), 5.960464477539063e-08f);
  EXPECT_EQ(f32_to_f16(5.960464477539063e-08f), 0x0001);
  EXPECT_EQ(f16_to_f32(f32_to_f16(0.333333f)), 0.333251953125f);
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
}

TEST(Tensor, AllocateRejectsAbsurdSizes) {
  auto t = Tensor::allocate(DType::kF32, {1 << 20, 1 << 20, 1 << 10});
  ASSERT_FALSE(t.is_ok());
  EXPECT_EQ(t.status().code(), ErrorCode::kOutOfRange);
}

TEST(Graph, PrintsValuesNodesAndConstants) {
  Graph g;
  Value* x = g.add_value("x", Type::tensor(DType::kF32, Shape(Dims{Dim::symbolic("batch"), Dim(3)})));
  g.inputs.push_back(x);
  Value* w = g.add_value("w", Type::tensor(DType::kF32, Shape::of({3})));
  w->constant = std::make_shared<const Tensor>(Tensor::from_vector<float>(DType::kF32, {3}, {1, 2, 3}));
  Node* n = g.add_node("Add");
  n->inputs = {x, w};
  Value* y = g.add_value("y", Type::tensor(DType::kF32, Shape(Dims{Dim::symbolic("batch"), Dim(3)})));
  n->outputs = {y};
  y->producer = n;
  g.outputs.push_back(y);
  EXPECT_EQ(print_graph(g),
            "graph main(%x: f32[batch,3]) {\n"
            "  %w: f32[3] = const f32[3]{1,2,3}\n"
            "  %y: f32[batch,3] = Add(%x, %w)\n"
            "  return %y\n"
            "}\n");
}

}  // namespace
}  // namespace kiln

#include "backends/cpu/index_util.h"

namespace kiln {
namespace {

TEST(BroadcastWalker, VisitsBroadcastOffsetsInRowMajorOrder) {
  // a: [2,1] broadcast to [2,3]; b: [3] broadcast to [2,3].
  BroadcastWalker w({2, 3}, {broadcast_strides({2, 1}, {2, 3}), broadcast_strides({3}, {2, 3})});
  std::vector<std::pair<int64_t, int64_t>> seen;
  for (int i = 0; i < 6; ++i, w.next()) seen.emplace_back(w.offset(0), w.offset(1));
  std::vector<std::pair<int64_t, int64_t>> want = {{0, 0}, {0, 1}, {0, 2}, {1, 0}, {1, 1}, {1, 2}};
  EXPECT_EQ(seen, want);
  EXPECT_EQ(strides_of({2, 3, 4}), (std::vector<int64_t>{12, 4, 1}));
}

}  // namespace
}  // namespace kiln

#include "ir/parser.h"

namespace kiln {
namespace {

TEST(IrText, ParsesWhatThePrinterWrites) {
  const char* text =
      "graph main(%x: f32[batch,3], %n: i64[2]) {\n"
      "  %w: f32[3] = const f32[3]{1,2,3}\n"
      "  %y: f32[batch,3] = Add(%x, %w)\n"
      "  %a: f32[4*batch], _ = com.example.Split(%y, _) {alpha=0.5, axis=0, mode=\"x\", sizes=[1,2]}\n"
      "  return %a, %y\n"
      "}\n";
  auto g = parse_graph(text);
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  EXPECT_EQ(print_graph(**g), text);
}

TEST(IrText, ReportsTheLineOfAnUndefinedValue) {
  auto g = parse_graph("graph main(%x: f32[2]) {\n  %y: f32[2] = Relu(%z)\n  return %y\n}\n");
  ASSERT_FALSE(g.is_ok());
  EXPECT_EQ(g.status().message(), "IR text line 2: use of undefined value %z");
}

}  // namespace
}  // namespace kiln
