// Neural-network ops: shape inference (symbolic dims kept where the op keeps
// the size), upgrades from older opsets, and kernel cases the ONNX node
// suite does not cover.
#include <gtest/gtest.h>

#include <cstring>

#include "backends/cpu/cpu_executor.h"
#include "ir/quantize.h"
#include "ops/op_schema.h"
#include "ops/shape_inference.h"

namespace kiln {
namespace {

Dim sym(const char* s) { return Dim::symbolic(s); }

class NnGraph {
 public:
  Value* input(const std::string& name, DType t, Dims dims) {
    Value* v = g.add_value(name, Type::tensor(t, Shape(std::move(dims))));
    g.inputs.push_back(v);
    return v;
  }
  Value* constant(const std::string& name, Tensor t) {
    Value* v = g.add_value(name, Type::tensor(t.dtype(), Shape::of(t.dims())));
    v->constant = std::make_shared<const Tensor>(std::move(t));
    return v;
  }
  Node* op(const std::string& type, std::vector<Value*> inputs, size_t outputs = 1,
           std::map<std::string, Attribute> attrs = {}, int opset = 22) {
    Node* n = g.add_node(type);
    n->opset = opset;
    n->inputs = std::move(inputs);
    n->attrs = std::move(attrs);
    for (size_t i = 0; i < outputs; ++i) {
      Value* v = g.add_value(g.unique_name(type + "_out"));
      v->producer = n;
      v->producer_output = static_cast<int>(i);
      n->outputs.push_back(v);
      g.outputs.push_back(v);
    }
    return n;
  }
  // Infers the whole graph; returns output `i` of `n` as "f32[batch,4]", or the first diagnostic.
  std::string infer(const Node* n, size_t i = 0) {
    std::vector<Diagnostic> diags;
    infer_shapes(g, diags);
    if (!diags.empty()) return "error: " + diags[0].message;
    return n->outputs[i]->type.to_string();
  }
  // Runs the graph on the CPU; returns output `i`.
  Tensor run(std::vector<Tensor> inputs, size_t i = 0) {
    std::vector<RunValue> in;
    for (auto& t : inputs) in.push_back(RunValue::of(std::move(t)));
    auto out = run_graph_on_cpu(g, std::move(in));
    EXPECT_TRUE(out.is_ok()) << out.status().to_string();
    return out.is_ok() ? (*out)[i].tensor : Tensor();
  }
  Status upgrade(Node* n) {
    const OpSchema* s = OpRegistry::instance().find("", n->op_type);
    for (const OpUpgrade& up : s->upgrades) {
      if (n->opset >= up.below_opset) continue;
      UpgradeContext ctx(g, *n);
      KILN_RETURN_IF_ERROR(up.fn(ctx));
    }
    return Status::ok();
  }
  Graph g;
};

Attribute ints(std::vector<int64_t> v) { return Attribute::of_ints(std::move(v)); }
Attribute str(const char* s) { return Attribute::of_string(s); }
Attribute i64(int64_t v) { return Attribute::of_int(v); }

Tensor f32(std::vector<int64_t> dims, std::vector<float> v) {
  return Tensor::from_vector(DType::kF32, std::move(dims), v);
}
std::vector<float> values(const Tensor& t) { return {t.data<float>(), t.data<float>() + t.numel()}; }

// ---- shape inference --------------------------------------------------------

TEST(NnInfer, ConvKeepsBatchSymbolAndComputesStridedPaddedDims) {
  NnGraph t;
  Value* x = t.input("x", DType::kF32, {sym("batch"), 3, 224, 224});
  Value* w = t.input("w", DType::kF32, {64, 3, 7, 7});
  Node* n = t.op("Conv", {x, w}, 1, {{"strides", ints({2, 2})}, {"pads", ints({3, 3, 3, 3})}});
  EXPECT_EQ(t.infer(n), "f32[batch,64,112,112]");
}

TEST(NnInfer, ConvSameUpperKeepsSymbolicSpatialDimsAtStrideOne) {
  NnGraph t;
  Value* x = t.input("x", DType::kF32, {sym("n"), 8, sym("h"), sym("w")});
  Value* w = t.input("w", DType::kF32, {16, 4, 3, 3});
  Node* n = t.op("Conv", {x, w}, 1, {{"auto_pad", str("SAME_UPPER")}, {"group", i64(2)}});
  EXPECT_EQ(t.infer(n), "f32[n,16,h,w]");
}

TEST(NnInfer, ConvRejectsChannelMismatch) {
  NnGraph t;
  Node* n = t.op("Conv", {t.input("x", DType::kF32, {1, 5, 8}), t.input("w", DType::kF32, {4, 3, 3})});
  EXPECT_NE(t.infer(n).find("channels"), std::string::npos);
}

// group * weight channels must not overflow (found by the import fuzzer).
TEST(NnInfer, ConvRejectsHugeGroupWithoutOverflow) {
  NnGraph t;
  Node* n = t.op("Conv", {t.input("x", DType::kF32, {1, 4, 8}), t.input("w", DType::kF32, {4, 4, 3})}, 1,
                 {{"group", i64(int64_t(1) << 62)}});
  EXPECT_EQ(t.infer(n),
            "error: Conv: input has 4 channels but the weight expects 4 per group x group 4611686018427387904");
}

// kiln::FusedConv with channels_last: X [N,H,W,C], W [K,R,S,C/group].
std::string infer_channels_last_conv(int64_t group) {
  NnGraph t;
  Node* n = t.op("FusedConv", {t.input("x", DType::kF16, {1, 6, 6, 4}), t.input("w", DType::kF16, {8, 3, 3, 2})}, 1,
                 {{"channels_last", i64(1)}, {"group", i64(group)}}, 1);
  n->domain = "kiln";
  return t.infer(n);
}

TEST(NnInfer, FusedConvChannelsLastChecksGroups) {
  EXPECT_EQ(infer_channels_last_conv(2), "f16[1,4,4,8]");
  EXPECT_EQ(infer_channels_last_conv(int64_t(1) << 62),
            "error: FusedConv: input has 4 channels but the weight expects 2 per group x group 4611686018427387904");
}

TEST(NnInfer, ConvRejectsKernelShapeThatDiffersFromWeight) {
  NnGraph t;
  Node* n = t.op("Conv", {t.input("x", DType::kF32, {1, 1, 8}), t.input("w", DType::kF32, {1, 1, 3})}, 1,
                 {{"kernel_shape", ints({5})}});
  EXPECT_NE(t.infer(n).find("kernel_shape 5 differs"), std::string::npos);
}

// kiln::FusedConv: Conv's output, an activation it knows, a residual of that shape.
Node* fused_conv(NnGraph& t, std::vector<int64_t> z_dims, std::map<std::string, Attribute> attrs) {
  Node* n = t.op("FusedConv",
                 {t.input("x", DType::kF32, {1, 2, 4, 4}), t.input("w", DType::kF32, {3, 2, 1, 1}), nullptr,
                  t.input("z", DType::kF32, Dims(z_dims.begin(), z_dims.end()))},
                 1, std::move(attrs));
  n->domain = "kiln";
  n->opset = 0;
  return n;
}

TEST(NnInfer, FusedConvInfersConvOutputAndChecksResidualAndActivation) {
  NnGraph a;
  EXPECT_EQ(a.infer(fused_conv(a, {1, 3, 4, 4}, {{"activation", str("Silu")}})), "f32[1,3,4,4]");
  NnGraph b;
  EXPECT_EQ(b.infer(fused_conv(b, {1, 3, 4, 1}, {})),
            "error: FusedConv: residual Z has shape [1,3,4,1], the convolution's output [1,3,4,4]");
  NnGraph c;
  EXPECT_EQ(c.infer(fused_conv(c, {1, 3, 4, 4}, {{"activation", str("Gelu")}})),
            "error: FusedConv: activation 'Gelu' is not one of '', Relu, Clip, Sigmoid, Silu");
  NnGraph d;
  EXPECT_EQ(d.infer(fused_conv(d, {1, 3, 4, 4}, {{"activation", str("Clip")}})),
            "error: FusedConv: activation 'Clip' takes 2 activation_params, got 0");
}

// y = clip(conv + b + z, 0, 6): conv {-4, 2, 6} + 1 + {1, -10, 0} = {-2, -7, 7}.
TEST(NnKernel, FusedConvAddsBiasAndResidualThenClips) {
  NnGraph t;
  Node* n = t.op("FusedConv",
                 {t.input("x", DType::kF32, {1, 1, 1, 3}), t.input("w", DType::kF32, {1, 1, 1, 1}),
                  t.input("b", DType::kF32, {1}), t.input("z", DType::kF32, {1, 1, 1, 3})},
                 1, {{"activation", str("Clip")}, {"activation_params", Attribute::of_floats({0.f, 6.f})}});
  n->domain = "kiln";
  Tensor y =
      t.run({f32({1, 1, 1, 3}, {-2, 1, 3}), f32({1, 1, 1, 1}, {2}), f32({1}, {1}), f32({1, 1, 1, 3}, {1, -10, 0})});
  EXPECT_EQ(values(y), (std::vector<float>{0, 0, 6}));
}

TEST(NnInfer, ConvTransposeOutputPaddingAndGroups) {
  NnGraph t;
  Value* x = t.input("x", DType::kF32, {sym("b"), 4, 5, 5});
  Value* w = t.input("w", DType::kF32, {4, 3, 3, 3});
  Node* n = t.op("ConvTranspose", {x, w}, 1,
                 {{"strides", ints({2, 2})}, {"output_padding", ints({1, 1})}, {"group", i64(2)}});
  EXPECT_EQ(t.infer(n), "f32[b,6,12,12]");
}

TEST(NnInfer, ConvTransposeSameDoublesSymbolicDim) {
  NnGraph t;
  Value* x = t.input("x", DType::kF32, {1, 2, sym("h")});
  Node* n = t.op("ConvTranspose", {x, t.input("w", DType::kF32, {2, 1, 3})}, 1,
                 {{"strides", ints({2})}, {"auto_pad", str("SAME_LOWER")}});
  EXPECT_EQ(t.infer(n), "f32[1,1,2*h]");
}

TEST(NnInfer, ConvIntegerOutputsInt32) {
  NnGraph t;
  Node* n =
      t.op("ConvInteger", {t.input("x", DType::kU8, {sym("b"), 1, 5, 5}), t.input("w", DType::kU8, {2, 1, 3, 3})});
  EXPECT_EQ(t.infer(n), "i32[b,2,3,3]");
}

TEST(NnInfer, QLinearConvOutputsZeroPointType) {
  NnGraph t;
  Value* s = t.input("s", DType::kF32, {});
  Value* z = t.input("z", DType::kI8, {});
  Node* n = t.op("QLinearConv",
                 {t.input("x", DType::kI8, {1, 2, 4, 4}), s, z, t.input("w", DType::kI8, {3, 2, 2, 2}), s, z, s, z});
  EXPECT_EQ(t.infer(n), "i8[1,3,3,3]");
}

TEST(NnInfer, DeformConvFollowsConvGeometry) {
  NnGraph t;
  Node* n = t.op("DeformConv", {t.input("x", DType::kF32, {sym("b"), 2, 6, 6}), t.input("w", DType::kF32, {4, 2, 3, 3}),
                                t.input("o", DType::kF32, {sym("b"), 18, 4, 4})});
  EXPECT_EQ(t.infer(n), "f32[b,4,4,4]");
}

TEST(NnInfer, MaxPoolCeilModeAndIndicesOutput) {
  NnGraph t;
  Value* x = t.input("x", DType::kF32, {sym("b"), 3, 7, 7});
  Node* n = t.op("MaxPool", {x}, 2, {{"kernel_shape", ints({2, 2})}, {"strides", ints({2, 2})}, {"ceil_mode", i64(1)}});
  EXPECT_EQ(t.infer(n, 0), "f32[b,3,4,4]");
  EXPECT_EQ(t.infer(n, 1), "i64[b,3,4,4]");
}

TEST(NnInfer, AveragePoolValidAndDilations) {
  NnGraph t;
  Node* n = t.op("AveragePool", {t.input("x", DType::kF16, {1, 1, 10})}, 1,
                 {{"kernel_shape", ints({3})}, {"dilations", ints({2})}, {"auto_pad", str("VALID")}});
  EXPECT_EQ(t.infer(n), "f16[1,1,6]");
}

TEST(NnInfer, LpPoolStrideOneKeepsSymbolArithmetic) {
  NnGraph t;
  Node* n = t.op("LpPool", {t.input("x", DType::kF32, {1, 2, sym("len")})}, 1, {{"kernel_shape", ints({3})}});
  EXPECT_EQ(t.infer(n), "f32[1,2,(len-2)]");
}

TEST(NnInfer, GlobalPoolsReduceSpatialDimsToOne) {
  for (const char* op : {"GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"}) {
    NnGraph t;
    Node* n = t.op(op, {t.input("x", DType::kF32, {sym("b"), 8, sym("h"), 5})});
    EXPECT_EQ(t.infer(n), "f32[b,8,1,1]") << op;
  }
}

// channels_last=1 pools read and write [N, H, W, C].
TEST(NnInfer, ChannelsLastPoolsKeepChannelsLast) {
  NnGraph t;
  Value* x = t.input("x", DType::kF16, {sym("b"), 7, 7, 8});
  Node* m = t.op(
      "MaxPool", {x}, 1,
      {{"kernel_shape", ints({2, 2})}, {"strides", ints({2, 2})}, {"ceil_mode", i64(1)}, {"channels_last", i64(1)}});
  Node* a = t.op("AveragePool", {x}, 1,
                 {{"kernel_shape", ints({3, 3})}, {"pads", ints({1, 1, 1, 1})}, {"channels_last", i64(1)}});
  Node* g = t.op("GlobalAveragePool", {x}, 1, {{"channels_last", i64(1)}});
  EXPECT_EQ(t.infer(m), "f16[b,4,4,8]");
  EXPECT_EQ(t.infer(a), "f16[b,7,7,8]");
  EXPECT_EQ(t.infer(g), "f16[b,1,1,8]");
}

TEST(NnInfer, ChannelsLastRejectsIndicesLpPoolAndOtherRanks) {
  const std::map<std::string, Attribute> nhwc{{"kernel_shape", ints({2, 2})}, {"channels_last", i64(1)}};
  {
    NnGraph t;
    Node* n = t.op("MaxPool", {t.input("x", DType::kF32, {1, 4, 4, 2})}, 2, nhwc);
    EXPECT_EQ(t.infer(n), "error: MaxPool: channels_last has no Indices output");
  }
  {
    NnGraph t;
    Node* n = t.op("LpPool", {t.input("x", DType::kF32, {1, 4, 4, 2})}, 1, nhwc);
    EXPECT_EQ(t.infer(n), "error: LpPool: has no channels_last form");
  }
  {
    NnGraph t;
    Node* n = t.op("GlobalMaxPool", {t.input("x", DType::kF32, {1, 4, 2})}, 1, {{"channels_last", i64(1)}});
    EXPECT_EQ(t.infer(n), "error: GlobalMaxPool: channels_last takes X [N,H,W,C], got [1,4,2]");
  }
}

TEST(NnInfer, MaxUnpoolFromAttributesOrOutputShape) {
  NnGraph t;
  Value* x = t.input("x", DType::kF32, {1, 1, 2, 2});
  Value* i = t.input("i", DType::kI64, {1, 1, 2, 2});
  Node* a = t.op("MaxUnpool", {x, i}, 1, {{"kernel_shape", ints({2, 2})}, {"strides", ints({2, 2})}});
  Node* b = t.op("MaxUnpool", {x, i, t.constant("shape", Tensor::vector_i64({1, 1, 5, 5}))}, 1,
                 {{"kernel_shape", ints({2, 2})}, {"strides", ints({2, 2})}});
  EXPECT_EQ(t.infer(a), "f32[1,1,4,4]");
  EXPECT_EQ(t.infer(b), "f32[1,1,5,5]");
}

TEST(NnInfer, BatchNormTrainingOutputsHaveStatisticShapes) {
  NnGraph t;
  Value* p = t.input("p", DType::kF32, {3});
  Node* n = t.op("BatchNormalization", {t.input("x", DType::kF32, {sym("b"), 3, 4}), p, p, p, p}, 3,
                 {{"training_mode", i64(1)}}, 15);
  EXPECT_EQ(t.infer(n, 0), "f32[b,3,4]");
  EXPECT_EQ(t.infer(n, 2), "f32[3]");
}

TEST(NnInfer, NormalizationsKeepInputType) {
  struct Case {
    const char* op;
    int inputs;
  };
  for (Case c : {Case{"InstanceNormalization", 3}, Case{"GroupNormalization", 3}, Case{"RMSNormalization", 2},
                 Case{"LpNormalization", 1}, Case{"MeanVarianceNormalization", 1}, Case{"LRN", 1}}) {
    NnGraph t;
    std::vector<Value*> in{t.input("x", DType::kF32, {sym("b"), 4, sym("s"), 2})};
    for (int i = 1; i < c.inputs; ++i) in.push_back(t.input("p" + std::to_string(i), DType::kF32, {4}));
    Node* n = t.op(c.op, in, 1, {{"num_groups", i64(2)}, {"size", i64(3)}}, 23);
    EXPECT_EQ(t.infer(n), "f32[b,4,s,2]") << c.op;
  }
}

TEST(NnInfer, LayerNormStatisticsAreFloatWithOnesFromAxis) {
  NnGraph t;
  Node* n =
      t.op("LayerNormalization", {t.input("x", DType::kF16, {sym("b"), sym("s"), 8}), t.input("g", DType::kF16, {8})},
           3, {{"axis", i64(-1)}});
  EXPECT_EQ(t.infer(n, 0), "f16[b,s,8]");
  EXPECT_EQ(t.infer(n, 1), "f32[b,s,1]");
  EXPECT_EQ(t.infer(n, 2), "f32[b,s,1]");
}

TEST(NnInfer, GroupNormRejectsIndivisibleChannels) {
  NnGraph t;
  Value* p = t.input("p", DType::kF32, {6});
  Node* n = t.op("GroupNormalization", {t.input("x", DType::kF32, {1, 6, 2}), p, p}, 1, {{"num_groups", i64(4)}});
  EXPECT_NE(t.infer(n).find("not divisible"), std::string::npos);
}

TEST(NnInfer, ResizeByScalesFloorsAndKeepsUnscaledSymbols) {
  NnGraph t;
  Value* x = t.input("x", DType::kF32, {sym("b"), 3, 5, 7});
  Node* n = t.op("Resize", {x, nullptr, t.constant("s", f32({4}, {1, 1, 1.5f, 0.5f}))}, 1, {}, 19);
  EXPECT_EQ(t.infer(n), "f32[b,3,7,3]");
}

TEST(NnInfer, ResizeBySizesWithAxesAndNotLargerPolicy) {
  NnGraph t;
  Value* x = t.input("x", DType::kU8, {1, 1, 4, 8});
  Node* n = t.op("Resize", {x, nullptr, nullptr, t.constant("sz", Tensor::vector_i64({3, 3}))}, 1,
                 {{"axes", ints({2, 3})}, {"keep_aspect_ratio_policy", str("not_larger")}}, 19);
  EXPECT_EQ(t.infer(n), "u8[1,1,2,3]");
}

TEST(NnInfer, UpsampleBecomesResize) {
  NnGraph t;
  Value* x = t.input("x", DType::kF32, {1, 1, 2, 2});
  Node* n = t.op("Upsample", {x}, 1, {{"scales", Attribute::of_floats({1, 1, 2, 3})}, {"mode", str("bilinear")}}, 7);
  ASSERT_TRUE(t.upgrade(n).is_ok());
  EXPECT_EQ(n->op_type, "Resize");
  EXPECT_EQ(n->attr_string("mode", ""), "linear");
  EXPECT_EQ(t.infer(n), "f32[1,1,4,6]");
}

TEST(NnInfer, GridSampleOutputTakesGridSpatialDims) {
  NnGraph t;
  Node* n = t.op("GridSample",
                 {t.input("x", DType::kF32, {sym("b"), 3, 8, 8}), t.input("g", DType::kF32, {sym("b"), 5, 6, 2})});
  EXPECT_EQ(t.infer(n), "f32[b,3,5,6]");
}

TEST(NnInfer, AffineGridFromConstantSize) {
  NnGraph t;
  Node* n = t.op("AffineGrid",
                 {t.input("theta", DType::kF32, {2, 3, 4}), t.constant("size", Tensor::vector_i64({2, 1, 3, 4, 5}))});
  EXPECT_EQ(t.infer(n), "f32[2,3,4,5,3]");
}

TEST(NnInfer, RoiAlignOutputIsRoisByChannelsByBins) {
  NnGraph t;
  Node* n = t.op("RoiAlign",
                 {t.input("x", DType::kF32, {1, 16, 10, 10}), t.input("r", DType::kF32, {sym("rois"), 4}),
                  t.input("i", DType::kI64, {sym("rois")})},
                 1, {{"output_height", i64(3)}, {"output_width", i64(2)}});
  EXPECT_EQ(t.infer(n), "f32[rois,16,3,2]");
}

TEST(NnInfer, NonMaxSuppressionCountIsASymbol) {
  NnGraph t;
  Node* n = t.op("NonMaxSuppression", {t.input("b", DType::kF32, {1, 6, 4}), t.input("s", DType::kF32, {1, 1, 6})});
  n->name = "nms";
  EXPECT_EQ(t.infer(n), "i64[nms.selected,3]");
}

TEST(NnInfer, QuantizeLinearTypeFromZeroPointOrOutputDtype) {
  NnGraph t;
  Value* x = t.input("x", DType::kF32, {sym("b"), 4});
  Value* s = t.input("s", DType::kF32, {});
  Node* a = t.op("QuantizeLinear", {x, s, t.input("z", DType::kI4, {})});
  Node* b = t.op("QuantizeLinear", {x, s}, 1, {{"output_dtype", i64(static_cast<int>(DType::kF8E4M3FN))}});
  Node* c = t.op("QuantizeLinear", {x, s});
  EXPECT_EQ(t.infer(a), "i4[b,4]");
  EXPECT_EQ(t.infer(b), "f8e4m3fn[b,4]");
  EXPECT_EQ(t.infer(c), "u8[b,4]");
}

TEST(NnInfer, DequantizeLinearBlockedScaleShapeIsChecked) {
  NnGraph t;
  Node* ok = t.op("DequantizeLinear", {t.input("x", DType::kI8, {4, 6}), t.input("s", DType::kF16, {4, 2})}, 1,
                  {{"axis", i64(1)}, {"block_size", i64(3)}});
  EXPECT_EQ(t.infer(ok), "f16[4,6]");
  NnGraph u;
  Node* bad = u.op("DequantizeLinear", {u.input("x", DType::kI8, {4, 6}), u.input("s", DType::kF32, {4, 3})}, 1,
                   {{"axis", i64(1)}, {"block_size", i64(3)}});
  EXPECT_NE(u.infer(bad).find("blocked scale"), std::string::npos);
}

TEST(NnInfer, DynamicQuantizeLinearOutputs) {
  NnGraph t;
  Node* n = t.op("DynamicQuantizeLinear", {t.input("x", DType::kF32, {sym("b"), 3})}, 3);
  EXPECT_EQ(t.infer(n, 0), "u8[b,3]");
  EXPECT_EQ(t.infer(n, 1), "f32[]");
  EXPECT_EQ(t.infer(n, 2), "u8[]");
}

TEST(NnInfer, QLinearMatMulBroadcastsBatch) {
  NnGraph t;
  Value* s = t.input("s", DType::kF32, {});
  Value* z = t.input("z", DType::kU8, {});
  Node* n = t.op("QLinearMatMul",
                 {t.input("a", DType::kU8, {sym("b"), 2, 3}), s, z, t.input("w", DType::kU8, {3, 5}), s, z, s, z});
  EXPECT_EQ(t.infer(n), "u8[b,2,5]");
}

// ---- upgrades ---------------------------------------------------------------

TEST(NnUpgrade, BatchNormOldAttributesAreDropped) {
  NnGraph t;
  Value* p = t.input("p", DType::kF32, {2});
  Node* n = t.op("BatchNormalization", {t.input("x", DType::kF32, {1, 2, 2}), p, p, p, p}, 1,
                 {{"spatial", i64(1)}, {"is_test", i64(1)}, {"consumed_inputs", ints({0, 0, 0, 1, 1})}}, 6);
  ASSERT_TRUE(t.upgrade(n).is_ok());
  EXPECT_TRUE(n->attrs.empty());
}

TEST(NnUpgrade, LpPoolFloatPBecomesInt) {
  NnGraph t;
  Node* n = t.op("LpPool", {t.input("x", DType::kF32, {1, 1, 4})}, 1,
                 {{"kernel_shape", ints({2})}, {"p", Attribute::of_float(3.0f)}}, 1);
  ASSERT_TRUE(t.upgrade(n).is_ok());
  EXPECT_EQ(n->attr_int("p", 0), 3);
}

TEST(NnUpgrade, GridSampleOldModeNames) {
  NnGraph t;
  Node* n = t.op("GridSample", {t.input("x", DType::kF32, {1, 1, 2, 2}), t.input("g", DType::kF32, {1, 1, 1, 2})}, 1,
                 {{"mode", str("bicubic")}}, 16);
  ASSERT_TRUE(t.upgrade(n).is_ok());
  EXPECT_EQ(n->attr_string("mode", ""), "cubic");
}

TEST(NnUpgrade, RoiAlignBefore16UsesOutputHalfPixel) {
  NnGraph t;
  Node* n =
      t.op("RoiAlign",
           {t.input("x", DType::kF32, {1, 1, 2, 2}), t.input("r", DType::kF32, {1, 4}), t.input("i", DType::kI64, {1})},
           1, {}, 10);
  ASSERT_TRUE(t.upgrade(n).is_ok());
  EXPECT_EQ(n->attr_string("coordinate_transformation_mode", ""), "output_half_pixel");
}

// ---- kernels ----------------------------------------------------------------

TEST(NnKernel, ConvSumsExactlyWhereFloatAccumulationLosesTheOne) {
  NnGraph t;
  Node* n = t.op("Conv", {t.input("x", DType::kF32, {1, 1, 3}), t.input("w", DType::kF32, {1, 1, 3})});
  (void)n;
  Tensor y = t.run({f32({1, 1, 3}, {1e8f, 1.0f, -1e8f}), f32({1, 1, 3}, {1, 1, 1})});
  EXPECT_EQ(values(y), (std::vector<float>{1.0f}));
}

TEST(NnKernel, Conv3dWithGroupsDilationAndBias) {
  NnGraph t;
  t.op("Conv",
       {t.input("x", DType::kF32, {1, 2, 3, 3, 3}), t.input("w", DType::kF32, {2, 1, 2, 2, 2}),
        t.input("b", DType::kF32, {2})},
       1, {{"group", i64(2)}, {"dilations", ints({2, 2, 2})}});
  std::vector<float> x(54);
  for (int i = 0; i < 54; ++i) x[i] = static_cast<float>(i);
  // Each output sums the 8 corners of its channel's 3x3x3 cube: 8 * centre value.
  Tensor y = t.run({f32({1, 2, 3, 3, 3}, x), f32({2, 1, 2, 2, 2}, std::vector<float>(16, 1.0f)), f32({2}, {0.5f, -1})});
  EXPECT_EQ(values(y), (std::vector<float>{8 * 13 + 0.5f, 8 * 40 - 1}));
}

TEST(NnKernel, ConvTransposeSameUpperDoublesLength) {
  NnGraph t;
  t.op("ConvTranspose", {t.input("x", DType::kF32, {1, 1, 2}), t.input("w", DType::kF32, {1, 1, 3})}, 1,
       {{"strides", ints({2})}, {"auto_pad", str("SAME_UPPER")}});
  // Full result [1,1,1+2,2,2] (length 5) cropped by total pad 1: begin 0, end 1.
  Tensor y = t.run({f32({1, 1, 2}, {1, 2}), f32({1, 1, 3}, {1, 1, 1})});
  EXPECT_EQ(values(y), (std::vector<float>{1, 1, 3, 2}));
}

TEST(NnKernel, MaxPoolStorageOrderOneNumbersIndicesColumnMajor) {
  NnGraph t;
  t.op("MaxPool", {t.input("x", DType::kF32, {1, 1, 2, 3})}, 2,
       {{"kernel_shape", ints({2, 3})}, {"storage_order", i64(1)}});
  Tensor idx = t.run({f32({1, 1, 2, 3}, {0, 9, 0, 0, 0, 0})}, 1);
  // The max sits at (h=0, w=1): column-major index w * H + h = 2.
  EXPECT_EQ(idx.data<int64_t>()[0], 2);
}

TEST(NnKernel, MaxPoolSupportsInt8) {
  NnGraph t;
  t.op("MaxPool", {t.input("x", DType::kI8, {1, 1, 4})}, 1, {{"kernel_shape", ints({2})}, {"strides", ints({2})}});
  Tensor y = t.run({Tensor::from_vector<int8_t>(DType::kI8, {1, 1, 4}, {-5, -7, 3, -128})});
  EXPECT_EQ(y.data<int8_t>()[0], -5);
  EXPECT_EQ(y.data<int8_t>()[1], 3);
}

TEST(NnKernel, AveragePoolCountIncludePadDividesByWindowSize) {
  NnGraph t;
  t.op("AveragePool", {t.input("x", DType::kF32, {1, 1, 2})}, 1,
       {{"kernel_shape", ints({2})}, {"pads", ints({1, 1})}, {"count_include_pad", i64(1)}});
  Tensor y = t.run({f32({1, 1, 2}, {2, 4})});
  EXPECT_EQ(values(y), (std::vector<float>{1, 3, 2}));
}

// Runs a one-node pool graph on [N, C, H, W] input `x`, NCHW or (the input
// and output transposed around it) channels-last; returns the NCHW output.
Tensor run_pool(const std::string& op, const Tensor& x, std::map<std::string, Attribute> attrs, bool nhwc) {
  NnGraph t;
  if (nhwc) attrs["channels_last"] = i64(1);
  const std::vector<int64_t>& d = x.dims();
  std::vector<int64_t> in_dims = nhwc ? std::vector<int64_t>{d[0], d[2], d[3], d[1]} : d;
  t.op(op, {t.input("x", x.dtype(), Shape::of(in_dims).dims.value())}, 1, std::move(attrs));
  Tensor y = t.run({nhwc ? x.transposed({0, 2, 3, 1}) : x});
  return nhwc && y.is_valid() ? y.transposed({0, 3, 1, 2}) : y;
}

// The channels-last reference pools give the NCHW ones' bits: every window
// rule (pads, strides, dilations, ceil_mode, count_include_pad) and the
// global pools, in f32 and f16.
TEST(NnKernel, ChannelsLastPoolsMatchNchwBitForBit) {
  using Attrs = std::map<std::string, Attribute>;
  const std::vector<std::pair<const char*, Attrs>> cases = {
      {"MaxPool",
       {{"kernel_shape", ints({3, 3})},
        {"strides", ints({2, 2})},
        {"pads", ints({1, 0, 1, 1})},
        {"ceil_mode", i64(1)}}},
      {"MaxPool", {{"kernel_shape", ints({2, 3})}, {"dilations", ints({2, 1})}, {"auto_pad", str("SAME_UPPER")}}},
      {"AveragePool",
       {{"kernel_shape", ints({3, 3})},
        {"strides", ints({2, 2})},
        {"pads", ints({1, 1, 0, 1})},
        {"ceil_mode", i64(1)}}},
      {"AveragePool", {{"kernel_shape", ints({3, 2})}, {"pads", ints({1, 1, 1, 1})}, {"count_include_pad", i64(1)}}},
      {"GlobalAveragePool", {}},
      {"GlobalMaxPool", {}},
  };
  for (DType dtype : {DType::kF32, DType::kF16}) {
    Tensor x(dtype, {2, 3, 7, 6});
    for (int64_t i = 0; i < x.numel(); ++i) {
      const float v = static_cast<float>((i * 37) % 23 - 11) * 0.375f;
      if (dtype == DType::kF32)
        x.mutable_data<float>()[i] = v;
      else
        x.mutable_data<uint16_t>()[i] = f32_to_f16(v);
    }
    for (const auto& [op, attrs] : cases) {
      const Tensor nchw = run_pool(op, x, attrs, false), nhwc = run_pool(op, x, attrs, true);
      ASSERT_TRUE(nchw.is_valid() && nhwc.is_valid()) << op;
      ASSERT_EQ(nhwc.dims(), nchw.dims()) << op;
      EXPECT_EQ(std::memcmp(nhwc.raw(), nchw.raw(), nchw.nbytes()), 0) << op << " " << dtype_name(dtype);
    }
  }
}

TEST(NnKernel, MaxUnpoolRejectsOutOfRangeIndex) {
  NnGraph t;
  t.op("MaxUnpool", {t.input("x", DType::kF32, {1, 1, 1}), t.input("i", DType::kI64, {1, 1, 1})}, 1,
       {{"kernel_shape", ints({2})}, {"strides", ints({2})}});
  auto out = run_graph_on_cpu(t.g, {RunValue::of(f32({1, 1, 1}, {1})),
                                    RunValue::of(Tensor::from_vector<int64_t>(DType::kI64, {1, 1, 1}, {7}))});
  ASSERT_FALSE(out.is_ok());
  EXPECT_NE(out.status().message().find("index 7"), std::string::npos);
}

TEST(NnKernel, BatchNormPerActivationStatisticsFromSpatialZero) {
  NnGraph t;
  Value* x = t.input("x", DType::kF32, {1, 1, 2});
  Value* p = t.input("p", DType::kF32, {1, 2});
  Node* n = t.op(
      "BatchNormalization",
      {x, p, t.input("b", DType::kF32, {1, 2}), t.input("m", DType::kF32, {1, 2}), t.input("v", DType::kF32, {1, 2})},
      1, {{"spatial", i64(0)}, {"epsilon", Attribute::of_float(0.0f)}}, 7);
  ASSERT_TRUE(t.upgrade(n).is_ok());
  Tensor y = t.run(
      {f32({1, 1, 2}, {3, 10}), f32({1, 2}, {2, 1}), f32({1, 2}, {0, 1}), f32({1, 2}, {1, 2}), f32({1, 2}, {1, 4})});
  EXPECT_EQ(values(y), (std::vector<float>{4, 5}));
}

TEST(NnKernel, GroupNormOpset18ScaleIsPerGroup) {
  NnGraph t;
  t.op("GroupNormalization",
       {t.input("x", DType::kF32, {1, 4, 1}), t.input("s", DType::kF32, {2}), t.input("b", DType::kF32, {2})}, 1,
       {{"num_groups", i64(2)}, {"epsilon", Attribute::of_float(0.0f)}}, 18);
  Tensor y = t.run({f32({1, 4, 1}, {1, 3, 5, 9}), f32({2}, {1, 2}), f32({2}, {0, 10})});
  EXPECT_EQ(values(y), (std::vector<float>{-1, 1, 8, 12}));
}

TEST(NnKernel, QuantizeLinearInt4PerAxisPacksLowNibbleFirst) {
  NnGraph t;
  t.op("QuantizeLinear",
       {t.input("x", DType::kF32, {2, 2}), t.input("s", DType::kF32, {2}), t.input("z", DType::kI4, {2})}, 1,
       {{"axis", i64(1)}});
  Tensor z(DType::kI4, {2});
  Tensor y = t.run({f32({2, 2}, {2.5f, -100, 3.5f, 4}), f32({2}, {1, 2}), z});
  // 2.5 -> 2 (half to even), -100/2 -> -8 (saturated), 3.5 -> 4, 4/2 -> 2.
  EXPECT_EQ(integer_element(y, 0), 2);
  EXPECT_EQ(integer_element(y, 1), -8);
  EXPECT_EQ(integer_element(y, 2), 4);
  EXPECT_EQ(integer_element(y, 3), 2);
  EXPECT_EQ(y.data<uint8_t>()[0], 0x82);
}

TEST(NnKernel, DequantizeLinearBlockedUsesOneScalePerBlock) {
  NnGraph t;
  t.op("DequantizeLinear", {t.input("x", DType::kI8, {1, 4}), t.input("s", DType::kF32, {1, 2})}, 1,
       {{"axis", i64(1)}, {"block_size", i64(2)}});
  Tensor y = t.run({Tensor::from_vector<int8_t>(DType::kI8, {1, 4}, {1, 2, 3, 4}), f32({1, 2}, {10, 0.5f})});
  EXPECT_EQ(values(y), (std::vector<float>{10, 20, 1.5f, 2}));
}

TEST(NnKernel, ResizeOpset10SamplesAsymmetricFloor) {
  NnGraph t;
  Node* n = t.op("Resize", {t.input("x", DType::kF32, {1, 4}), t.constant("s", f32({2}, {1, 0.75f}))}, 1, {}, 10);
  ASSERT_TRUE(t.upgrade(n).is_ok());
  ASSERT_EQ(n->inputs.size(), 3u);
  EXPECT_EQ(n->inputs[1], nullptr);
  // Output length floor(4 * 0.75) = 3; source x = y / 0.75 = 0, 1.33, 2.67 -> floor 0, 1, 2.
  Tensor y = t.run({f32({1, 4}, {10, 20, 30, 40})});
  EXPECT_EQ(values(y), (std::vector<float>{10, 20, 30}));
}

TEST(Float8, RoundsToNearestEvenAndSaturatesOrOverflows) {
  EXPECT_EQ(f32_to_narrow_float(448.0f, DType::kF8E4M3FN, true), 0x7e);
  EXPECT_EQ(f32_to_narrow_float(1000.0f, DType::kF8E4M3FN, true), 0x7e);
  EXPECT_EQ(f32_to_narrow_float(1000.0f, DType::kF8E4M3FN, false), 0x7f);  // NaN
  EXPECT_EQ(f32_to_narrow_float(1e6f, DType::kF8E5M2, false), 0x7c);       // inf
  EXPECT_EQ(f32_to_narrow_float(-0.0f, DType::kF8E4M3FNUZ, true), 0x00);   // no negative zero
  EXPECT_EQ(f32_to_narrow_float(1.0625f, DType::kF8E4M3FN, true), 0x38);   // tie rounds to even 1.0
  EXPECT_EQ(narrow_float_to_f32(0x01, DType::kF8E4M3FN), 0.001953125f);    // smallest subnormal 2^-9
  EXPECT_EQ(narrow_float_to_f32(0x7, DType::kF4E2M1), 6.0f);
  EXPECT_EQ(f32_to_narrow_float(7.0f, DType::kF4E2M1, false), 0x7);  // f4 always saturates
}

}  // namespace
}  // namespace kiln
