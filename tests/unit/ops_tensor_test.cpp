// Tensor ops: shape inference (symbolic dims included) for every op of the
// family, and kernel behaviour the ONNX node suite covers thinly.
#include <gtest/gtest.h>

#include <cmath>

#include "backends/cpu/cpu_executor.h"
#include "ir/element_cast.h"
#include "ir/float8.h"
#include "ops/shape_inference.h"

namespace kiln {
namespace {

Dim S(const char* s) { return Dim::symbolic(s); }

// A one-graph fixture: inputs, constants and nodes, then infer or run.
class TinyGraph {
 public:
  Value* input(const std::string& name, DType t, Dims d) {
    Value* v = g.add_value(name, Type::tensor(t, Shape(std::move(d))));
    g.inputs.push_back(v);
    return v;
  }
  Value* input_unranked(const std::string& name, DType t) {
    Value* v = g.add_value(name, Type::tensor(t, Shape()));
    g.inputs.push_back(v);
    return v;
  }
  Value* constant(const std::string& name, Tensor t) {
    Value* v = g.add_value(name, Type::tensor(t.dtype(), Shape::of(t.dims())));
    v->constant = std::make_shared<const Tensor>(std::move(t));
    return v;
  }
  Value* ints(const std::string& name, std::vector<int64_t> v) { return constant(name, Tensor::vector_i64(v)); }
  Value* scalar(const std::string& name, int64_t v) { return constant(name, Tensor::scalar_i64(v)); }
  Node* node(const std::string& op, std::vector<Value*> inputs, size_t outputs = 1,
             std::map<std::string, Attribute> attrs = {}) {
    Node* n = g.add_node(op);
    n->name = op + std::to_string(g.nodes().size());
    n->inputs = std::move(inputs);
    n->attrs = std::move(attrs);
    for (size_t i = 0; i < outputs; ++i) {
      Value* v = g.add_value(n->name + "_out" + std::to_string(i));
      v->producer = n;
      v->producer_output = static_cast<int>(i);
      n->outputs.push_back(v);
    }
    return n;
  }
  // Runs shape inference over the graph; the type of `n`'s output i.
  std::string type(Node* n, size_t i = 0) {
    infer();
    return n->outputs[i]->type.to_string();
  }
  void infer() {
    diagnostics.clear();
    for (auto& v : g.values())
      if (v->producer) {
        v->type = Type();
        v->shape_value.reset();
      }
    infer_shapes(g, diagnostics);
  }
  // Runs the graph on the CPU with `n`'s outputs as graph outputs.
  Expected<std::vector<RunValue>> run(Node* n, std::vector<Tensor> inputs) {
    infer();
    g.outputs.clear();
    for (Value* v : n->outputs)
      if (v) g.outputs.push_back(v);
    std::vector<RunValue> rv;
    for (auto& t : inputs) rv.push_back(RunValue::of(std::move(t)));
    return run_graph_on_cpu(g, std::move(rv));
  }

  Graph g;
  std::vector<Diagnostic> diagnostics;
};

Attribute I(int64_t v) { return Attribute::of_int(v); }
Attribute Is(std::vector<int64_t> v) { return Attribute::of_ints(std::move(v)); }
Attribute Str(const char* s) { return Attribute::of_string(s); }

std::vector<float> floats_of(const Tensor& t) { return {t.data<float>(), t.data<float>() + t.numel()}; }
std::vector<int64_t> i64_of(const Tensor& t) { return {t.data<int64_t>(), t.data<int64_t>() + t.numel()}; }

// ---- The symbolic shape chain exporters emit ----

TEST(TensorShapeInference, ShapeGatherUnsqueezeConcatReshapeKeepsSymbols) {
  TinyGraph t;
  Value* ids = t.input("ids", DType::kI64, {S("batch"), S("seq")});
  Value* x = t.input("x", DType::kF32, {S("batch"), S("seq"), 128});
  Node* shape = t.node("Shape", {ids});
  Node* batch = t.node("Gather", {shape->outputs[0], t.scalar("zero", 0)}, 1, {{"axis", I(0)}});
  Node* unsq = t.node("Unsqueeze", {batch->outputs[0], t.ints("axes", {0})});
  Node* seq = t.node("Slice", {shape->outputs[0], t.ints("s", {1}), t.ints("e", {2})});
  Node* cat = t.node("Concat", {unsq->outputs[0], seq->outputs[0], t.ints("rest", {-1, 64})}, 1, {{"axis", I(0)}});
  Node* reshape = t.node("Reshape", {x, cat->outputs[0]});
  EXPECT_EQ(t.type(shape), "i64[2]");
  EXPECT_EQ(t.type(batch), "i64[]");
  EXPECT_EQ(t.type(reshape), "f32[batch,seq,2,64]");
  EXPECT_EQ(Shape(*cat->outputs[0]->shape_value).to_string(), "[batch,seq,-1,64]");
}

TEST(TensorShapeInference, ReshapeMinusOneDividesSymbolicProducts) {
  TinyGraph t;
  Value* x = t.input("x", DType::kF32, {S("batch"), S("seq"), 2, 64});
  Node* r = t.node("Reshape", {x, t.ints("shape", {-1, 64})});
  Node* z = t.node("Reshape", {x, t.ints("shape0", {0, 0, 128})});
  EXPECT_EQ(t.type(r), "f32[2*batch*seq,64]");
  EXPECT_EQ(t.type(z), "f32[batch,seq,128]");
}

TEST(TensorShapeInference, ReshapeRejectsElementCountMismatch) {
  TinyGraph t;
  Node* r = t.node("Reshape", {t.input("x", DType::kF32, {2, 4}), t.ints("shape", {3, 3})});
  t.infer();
  ASSERT_EQ(t.diagnostics.size(), 1u);
  EXPECT_NE(t.diagnostics[0].message.find("has 9 elements but the input has 8"), std::string::npos);
  (void)r;
}

TEST(TensorShapeInference, ShapeWithStartEndAndSize) {
  TinyGraph t;
  Value* x = t.input("x", DType::kF32, {S("b"), 3, S("n")});
  Node* s = t.node("Shape", {x}, 1, {{"start", I(-2)}});
  Node* size = t.node("Size", {x});
  EXPECT_EQ(t.type(s), "i64[2]");
  EXPECT_EQ(Shape(*s->outputs[0]->shape_value).to_string(), "[3,n]");
  EXPECT_EQ(t.type(size), "i64[]");
  EXPECT_EQ(Shape(*size->outputs[0]->shape_value).to_string(), "[3*b*n]");
}

TEST(TensorShapeInference, TransposeFlattenSqueezeUnsqueeze) {
  TinyGraph t;
  Value* x = t.input("x", DType::kF16, {S("b"), 1, 3, 4});
  Node* tr = t.node("Transpose", {x}, 1, {{"perm", Is({0, 2, 3, 1})}});
  Node* tr_default = t.node("Transpose", {x});
  Node* fl = t.node("Flatten", {x}, 1, {{"axis", I(2)}});
  Node* sq = t.node("Squeeze", {x, t.ints("ax", {1})});
  Node* un = t.node("Unsqueeze", {x, t.ints("ax2", {-1, 0})});
  EXPECT_EQ(t.type(tr), "f16[b,3,4,1]");
  EXPECT_EQ(t.type(tr_default), "f16[4,3,1,b]");
  EXPECT_EQ(t.type(fl), "f16[b,12]");
  EXPECT_EQ(t.type(sq), "f16[b,3,4]");
  EXPECT_EQ(t.type(un), "f16[1,b,1,3,4,1]");
}

TEST(TensorShapeInference, ConcatAddsSymbolicAxisAndSplitDivides) {
  TinyGraph t;
  Value* a = t.input("a", DType::kF32, {S("b"), S("n")});
  Value* c = t.input("c", DType::kF32, {S("b"), 4});
  Node* cat = t.node("Concat", {a, c}, 1, {{"axis", I(1)}});
  Value* q = t.input("q", DType::kF32, {S("b"), 12});
  Node* split = t.node("Split", {q}, 3, {{"axis", I(1)}, {"num_outputs", I(3)}});
  Node* uneven = t.node("Split", {q, t.ints("sizes", {2, 10})}, 2, {{"axis", I(-1)}});
  EXPECT_EQ(t.type(cat), "f32[b,(n+4)]");
  EXPECT_EQ(t.type(split, 2), "f32[b,4]");
  EXPECT_EQ(t.type(uneven, 1), "f32[b,10]");
}

TEST(TensorShapeInference, SliceOfSymbolicDimToTheEnd) {
  TinyGraph t;
  Value* x = t.input("x", DType::kF32, {S("b"), S("seq"), 8});
  Node* s = t.node("Slice", {x, t.ints("st", {1, 2}), t.ints("en", {INT64_MAX, -2}), t.ints("ax", {1, 2})});
  Node* rev =
      t.node("Slice", {x, t.ints("st2", {-1}), t.ints("en2", {INT64_MIN}), t.ints("ax2", {2}), t.ints("sp2", {-2})});
  EXPECT_EQ(t.type(s), "f32[b,(seq-1),4]");
  EXPECT_EQ(t.type(rev), "f32[b,seq,4]");
}

TEST(TensorShapeInference, ExpandTileRangeConstantOfShapeConsumeShapeValues) {
  TinyGraph t;
  Value* ids = t.input("ids", DType::kI64, {S("batch"), S("seq")});
  Node* shape = t.node("Shape", {ids});
  Node* ex = t.node("Expand", {t.input("m", DType::kBool, {1, S("seq")}), shape->outputs[0]});
  Node* tile = t.node("Tile", {t.input("v", DType::kF32, {2, 3}), shape->outputs[0]});
  Node* seq = t.node("Gather", {shape->outputs[0], t.scalar("one", 1)});
  Node* range = t.node("Range", {t.scalar("z", 0), seq->outputs[0], t.scalar("d", 1)});
  Node* cos = t.node("ConstantOfShape", {shape->outputs[0]}, 1,
                     {{"value", Attribute::of_tensor(Tensor::from_vector<int32_t>(DType::kI32, {1}, {7}))}});
  EXPECT_EQ(t.type(ex), "bool[batch,seq]");
  EXPECT_EQ(t.type(tile), "f32[2*batch,3*seq]");
  EXPECT_EQ(t.type(range), "i64[seq]");
  EXPECT_EQ(t.type(cos), "i32[batch,seq]");
}

TEST(TensorShapeInference, RangeWithConstantsIsFixed) {
  TinyGraph t;
  auto f = [](float v) { return Tensor::from_vector<float>(DType::kF32, {}, {v}); };
  Node* r = t.node("Range", {t.constant("a", f(1)), t.constant("b", f(2)), t.constant("c", f(0.3f))});
  EXPECT_EQ(t.type(r), "f32[4]");
}

TEST(TensorShapeInference, GatherFamily) {
  TinyGraph t;
  Value* data = t.input("data", DType::kF32, {S("b"), 5, 6});
  Node* g = t.node("Gather", {data, t.input("idx", DType::kI64, {S("n"), 2})}, 1, {{"axis", I(1)}});
  Node* ge = t.node("GatherElements", {data, t.input("ie", DType::kI64, {S("b"), 2, 6})}, 1, {{"axis", I(1)}});
  Node* gnd = t.node("GatherND", {data, t.input("ind", DType::kI64, {S("b"), 1})}, 1, {{"batch_dims", I(1)}});
  EXPECT_EQ(t.type(g), "f32[b,n,2,6]");
  EXPECT_EQ(t.type(ge), "f32[b,2,6]");
  EXPECT_EQ(t.type(gnd), "f32[b,6]");
}

TEST(TensorShapeInference, ScatterFamilyKeepsDataType) {
  TinyGraph t;
  Value* data = t.input("data", DType::kF32, {S("b"), 4});
  Value* idx = t.input("idx", DType::kI64, {S("b"), 2});
  Value* upd = t.input("upd", DType::kF32, {S("b"), 2});
  Node* s = t.node("Scatter", {data, idx, upd});
  Node* se = t.node("ScatterElements", {data, idx, upd}, 1, {{"reduction", Str("add")}});
  Node* snd = t.node("ScatterND", {data, t.input("i2", DType::kI64, {3, 1}), t.input("u2", DType::kF32, {3, 4})});
  Node* ts =
      t.node("TensorScatter", {t.input("cache", DType::kF16, {2, 3, 16, 8}), t.input("up", DType::kF16, {2, 3, 1, 8})});
  EXPECT_EQ(t.type(s), "f32[b,4]");
  EXPECT_EQ(t.type(se), "f32[b,4]");
  EXPECT_EQ(t.type(snd), "f32[b,4]");
  EXPECT_EQ(t.type(ts), "f16[2,3,16,8]");
}

TEST(TensorShapeInference, DataDependentCountsGetFreshSymbols) {
  TinyGraph t;
  Value* x = t.input("x", DType::kF32, {S("b"), 3});
  Node* nz = t.node("NonZero", {x});
  Node* cp = t.node("Compress", {x, t.input("c", DType::kBool, {3})}, 1, {{"axis", I(1)}});
  Node* un = t.node("Unique", {x}, 4);
  EXPECT_EQ(t.type(nz), "i64[2,NonZero1.nonzero]");
  EXPECT_EQ(t.type(cp), "f32[b,Compress2.kept]");
  EXPECT_EQ(t.type(un, 0), "f32[Unique3.unique]");
  EXPECT_EQ(t.type(un, 2), "i64[3*b]");
}

TEST(TensorShapeInference, WhereOneHotTriluReverseSequenceEyeLike) {
  TinyGraph t;
  Node* w = t.node("Where", {t.input("c", DType::kBool, {S("b"), 1}), t.input("x", DType::kI32, {4}),
                             t.input("y", DType::kI32, {1, 1})});
  Node* oh =
      t.node("OneHot", {t.input("i", DType::kI64, {S("b"), 3}), t.scalar("depth", 10), t.input("v", DType::kF32, {2})},
             1, {{"axis", I(1)}});
  Node* tr = t.node("Trilu", {t.input("m", DType::kF32, {S("b"), 4, 4})});
  Node* rs =
      t.node("ReverseSequence", {t.input("s", DType::kF32, {5, S("b"), 2}), t.input("l", DType::kI64, {S("b")})});
  Node* eye = t.node("EyeLike", {t.input("e", DType::kF32, {3, S("n")})}, 1, {{"dtype", I(7)}});
  EXPECT_EQ(t.type(w), "i32[b,4]");
  EXPECT_EQ(t.type(oh), "f32[b,10,3]");
  EXPECT_EQ(t.type(tr), "f32[b,4,4]");
  EXPECT_EQ(t.type(rs), "f32[5,b,2]");
  EXPECT_EQ(t.type(eye), "i64[3,n]");
}

TEST(TensorShapeInference, TopKDropoutCastCastLikeBitCast) {
  TinyGraph t;
  Value* x = t.input("x", DType::kF32, {S("b"), 10});
  Node* topk = t.node("TopK", {x, t.ints("k", {3})}, 2);
  Node* drop = t.node("Dropout", {x}, 2);
  Node* cast = t.node("Cast", {x}, 1, {{"to", I(static_cast<int64_t>(DType::kF8E4M3FN))}});
  Node* like = t.node("CastLike", {x, t.input("h", DType::kBF16, {1})});
  Node* bit = t.node("BitCast", {x}, 1, {{"to", I(static_cast<int64_t>(DType::kI32))}});
  EXPECT_EQ(t.type(topk, 0), "f32[b,3]");
  EXPECT_EQ(t.type(topk, 1), "i64[b,3]");
  EXPECT_EQ(t.type(drop, 1), "bool[b,10]");
  EXPECT_EQ(t.type(cast), "f8e4m3fn[b,10]");
  EXPECT_EQ(t.type(like), "bf16[b,10]");
  EXPECT_EQ(t.type(bit), "i32[b,10]");
}

TEST(TensorShapeInference, CastBetweenIntegersKeepsShapeValue) {
  TinyGraph t;
  Node* shape = t.node("Shape", {t.input("x", DType::kF32, {S("b"), 7})});
  Node* cast = t.node("Cast", {shape->outputs[0]}, 1, {{"to", I(static_cast<int64_t>(DType::kI32))}});
  t.infer();
  ASSERT_TRUE(cast->outputs[0]->shape_value.has_value());
  EXPECT_EQ(Shape(*cast->outputs[0]->shape_value).to_string(), "[b,7]");
}

TEST(TensorShapeInference, PadCenterCropPadDepthSpaceCol2Im) {
  TinyGraph t;
  Value* x = t.input("x", DType::kF32, {S("n"), 8, 4, 6});
  Node* pad = t.node("Pad", {x, t.ints("pads", {0, 0, 1, -1, 0, 0, 1, -2})}, 1, {{"mode", Str("reflect")}});
  Node* ccp = t.node("CenterCropPad", {x, t.ints("shape", {5, 5})}, 1, {{"axes", Is({2, 3})}});
  Node* d2s = t.node("DepthToSpace", {x}, 1, {{"blocksize", I(2)}});
  Node* s2d = t.node("SpaceToDepth", {x}, 1, {{"blocksize", I(2)}});
  Node* c2i =
      t.node("Col2Im", {t.input("cols", DType::kF32, {S("n"), 12, 6}), t.ints("img", {3, 4}), t.ints("blk", {2, 2})});
  EXPECT_EQ(t.type(pad), "f32[n,8,6,3]");
  EXPECT_EQ(t.type(ccp), "f32[n,8,5,5]");
  EXPECT_EQ(t.type(d2s), "f32[n,2,8,12]");
  EXPECT_EQ(t.type(s2d), "f32[n,32,2,3]");
  EXPECT_EQ(t.type(c2i), "f32[n,3,3,4]");
}

TEST(TensorShapeInference, UnknownRankInputsStayUnknown) {
  TinyGraph t;
  Value* x = t.input_unranked("x", DType::kF32);
  Node* shape = t.node("Shape", {x});
  Node* r = t.node("Reshape", {t.input("y", DType::kF32, {6}), shape->outputs[0]});
  EXPECT_EQ(t.type(shape), "i64[?]");
  EXPECT_EQ(t.type(r), "f32[*]");
}

// ---- Kernels ----

TEST(TensorKernels, GatherReportsOutOfRangeIndex) {
  TinyGraph t;
  Node* g = t.node("Gather", {t.input("d", DType::kF32, {3}), t.input("i", DType::kI64, {1})});
  auto r = t.run(g, {Tensor::from_vector<float>(DType::kF32, {3}, {1, 2, 3}), Tensor::vector_i64({3})});
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("index 3 is out of range for a dim of 3"), std::string::npos);
}

TEST(TensorKernels, TransposeMovesPackedInt4Elements) {
  TinyGraph t;
  Node* tr = t.node("Transpose", {t.input("x", DType::kI4, {2, 3})});
  Tensor in(DType::kI4, {2, 3});
  // Elements 0..5 = 1,2,3,4,5,-1 packed low nibble first.
  const uint8_t bytes[] = {0x21, 0x43, 0xF5};
  std::memcpy(in.mutable_raw(), bytes, 3);
  auto r = t.run(tr, {in});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const auto* o = static_cast<const uint8_t*>((*r)[0].tensor.raw());
  // Transposed: 1,4,2,5,3,-1.
  EXPECT_EQ(o[0], 0x41);
  EXPECT_EQ(o[1], 0x52);
  EXPECT_EQ(o[2], 0xF3);
}

TEST(TensorKernels, PadEdgeWrapAndCrop) {
  TinyGraph t;
  Value* x = t.input("x", DType::kF32, {3});
  Node* edge = t.node("Pad", {x, t.ints("p", {2, -1})}, 1, {{"mode", Str("edge")}});
  auto r = t.run(edge, {Tensor::from_vector<float>(DType::kF32, {3}, {1, 2, 3})});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(floats_of((*r)[0].tensor), (std::vector<float>{1, 1, 1, 2}));
}

TEST(TensorKernels, ScatterNDMultiplyReduction) {
  TinyGraph t;
  Node* s = t.node("ScatterND",
                   {t.input("d", DType::kF32, {4}), t.input("i", DType::kI64, {2, 1}), t.input("u", DType::kF32, {2})},
                   1, {{"reduction", Str("mul")}});
  auto r = t.run(s, {Tensor::from_vector<float>(DType::kF32, {4}, {1, 2, 3, 4}),
                     Tensor::from_vector<int64_t>(DType::kI64, {2, 1}, {1, 1}),
                     Tensor::from_vector<float>(DType::kF32, {2}, {3, 5})});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(floats_of((*r)[0].tensor), (std::vector<float>{1, 30, 3, 4}));
}

TEST(TensorKernels, UniqueUnsortedKeepsFirstAppearanceOrder) {
  TinyGraph t;
  Node* u = t.node("Unique", {t.input("x", DType::kI64, {6})}, 4, {{"sorted", I(0)}});
  auto r = t.run(u, {Tensor::vector_i64({2, 1, 1, 3, 4, 3})});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(i64_of((*r)[0].tensor), (std::vector<int64_t>{2, 1, 3, 4}));
  EXPECT_EQ(i64_of((*r)[1].tensor), (std::vector<int64_t>{0, 1, 3, 4}));
  EXPECT_EQ(i64_of((*r)[2].tensor), (std::vector<int64_t>{0, 1, 1, 2, 3, 2}));
  EXPECT_EQ(i64_of((*r)[3].tensor), (std::vector<int64_t>{1, 2, 2, 1}));
}

TEST(TensorKernels, CastStringsRoundTripNumbers) {
  Tensor s(DType::kString, {4});
  s.strings() = {"1.5", "-INF", "NaN", "100"};
  auto f = cast_tensor(s, DType::kF32);
  ASSERT_TRUE(f.is_ok());
  EXPECT_EQ(f->data<float>()[0], 1.5f);
  EXPECT_TRUE(std::isinf(f->data<float>()[1]) && f->data<float>()[1] < 0);
  EXPECT_TRUE(std::isnan(f->data<float>()[2]));
  auto back = cast_tensor(*f, DType::kString);
  ASSERT_TRUE(back.is_ok());
  EXPECT_EQ(back->strings(), (std::vector<std::string>{"1.5", "-inf", "nan", "100.0"}));
  auto i = cast_tensor(s, DType::kI64);
  EXPECT_EQ(i->data<int64_t>()[3], 100);
}

TEST(TensorKernels, CastIntegersWrapAndFloatsTruncate) {
  auto in = Tensor::from_vector<int32_t>(DType::kI32, {2}, {200, -1});
  auto r = cast_tensor(in, DType::kI8);
  EXPECT_EQ(r->data<int8_t>()[0], -56);
  auto u = cast_tensor(in, DType::kU4);
  EXPECT_EQ(static_cast<const uint8_t*>(u->raw())[0], 0xF8);  // 200 & 15 = 8, -1 & 15 = 15
  auto f = Tensor::from_vector<float>(DType::kF32, {2}, {-2.7f, 2.7f});
  auto t = cast_tensor(f, DType::kI32);
  EXPECT_EQ(t->data<int32_t>()[0], -2);
  EXPECT_EQ(t->data<int32_t>()[1], 2);
}

TEST(Float8, SaturationAndRoundingFollowTheCastTables) {
  EXPECT_EQ(double_to_small_float(DType::kF8E4M3FN, 1e6, true), 0x7E);   // 448
  EXPECT_EQ(double_to_small_float(DType::kF8E4M3FN, 1e6, false), 0x7F);  // NaN
  EXPECT_EQ(double_to_small_float(DType::kF8E5M2, INFINITY, false), 0x7C);
  EXPECT_EQ(double_to_small_float(DType::kF8E5M2FNUZ, -0.0, true), 0x00);         // no -0
  EXPECT_EQ(double_to_small_float(DType::kF8E4M3FN, 464.0, true), 0x7E);          // tie rounds to even (448)
  EXPECT_EQ(small_float_to_double(DType::kF8E4M3FN, 0x01), std::ldexp(1.0, -9));  // smallest subnormal
  EXPECT_EQ(small_float_to_double(DType::kF4E2M1, 0x7), 6.0);
  EXPECT_EQ(double_to_small_float(DType::kF4E2M1, 100.0, false), 0x7);
  EXPECT_EQ(double_to_small_float(DType::kF8E8M0, 1.1, true, E8M0Rounding::kUp), 128);  // 2^1
  EXPECT_EQ(double_to_small_float(DType::kF8E8M0, 1.1, true, E8M0Rounding::kDown), 127);
}

}  // namespace
}  // namespace kiln
