// Attention-family ops: shape inference with symbolic dims for every op, and
// kernel results the ONNX node suite does not pin down (exact small cases,
// error paths).
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backends/cpu/cpu_executor.h"
#include "ops/op_schema.h"
#include "ops/shape_inference.h"

namespace kiln {
namespace {

// One node in a fresh graph, its inputs graph inputs of the given types
// ("f32[batch,4]"; "" leaves an optional input out).
Type parse_type(const std::string& s) {
  size_t open = s.find('[');
  Dims dims;
  std::string body = s.substr(open + 1, s.size() - open - 2);
  for (size_t start = 0; !body.empty() && start <= body.size();) {
    size_t comma = body.find(',', start);
    std::string d = body.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    dims.push_back(std::isdigit(static_cast<unsigned char>(d[0])) ? Dim(std::stoll(d)) : Dim::symbolic(d));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return Type::tensor(*dtype_from_name(s.substr(0, open)), Shape(dims));
}

struct OneNode {
  Graph graph;
  Node* node = nullptr;

  OneNode(const std::string& op, const std::vector<std::string>& inputs, size_t outputs,
          std::map<std::string, Attribute> attrs = {}, const std::string& domain = "", int opset = 25) {
    node = graph.add_node(op, domain);
    node->opset = opset;
    node->attrs = std::move(attrs);
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (inputs[i].empty()) {
        node->inputs.push_back(nullptr);
        continue;
      }
      Value* v = graph.add_value("in" + std::to_string(i), parse_type(inputs[i]));
      graph.inputs.push_back(v);
      node->inputs.push_back(v);
    }
    for (size_t o = 0; o < outputs; ++o) {
      Value* v = graph.add_value("out" + std::to_string(o));
      v->producer = node;
      v->producer_output = static_cast<int>(o);
      node->outputs.push_back(v);
      graph.outputs.push_back(v);
    }
  }

  std::vector<Diagnostic> run_inference() {
    std::vector<Diagnostic> diagnostics;
    infer_shapes(graph, diagnostics);
    return diagnostics;
  }
  // The output types, or the first diagnostic.
  std::vector<std::string> infer() {
    auto diagnostics = run_inference();
    if (!diagnostics.empty()) return {"error: " + diagnostics[0].message};
    std::vector<std::string> out;
    for (Value* v : node->outputs) out.push_back(v->type.to_string());
    return out;
  }
  std::string infer_error() {
    auto diagnostics = run_inference();
    return diagnostics.empty() ? "(no error)" : diagnostics[0].message;
  }
};

// Runs one node on the CPU backend; an invalid Tensor leaves an optional input out.
Expected<std::vector<Tensor>> run_one(const std::string& op, const std::vector<Tensor>& inputs, size_t outputs,
                                      std::map<std::string, Attribute> attrs = {}, const std::string& domain = "",
                                      int opset = 25) {
  std::vector<std::string> types;
  std::vector<RunValue> feeds;
  for (const Tensor& t : inputs) {
    types.push_back(t.is_valid() ? std::string(dtype_name(t.dtype())) + Shape::of(t.dims()).to_string() : "");
    if (t.is_valid()) feeds.push_back(RunValue::of(t));
  }
  OneNode n(op, types, outputs, std::move(attrs), domain, opset);
  KILN_ASSIGN_OR_RETURN(std::vector<RunValue> outs, run_graph_on_cpu(n.graph, std::move(feeds)));
  std::vector<Tensor> result;
  for (RunValue& v : outs) result.push_back(std::move(v.tensor));
  return result;
}

Attribute ints(int64_t v) { return Attribute::of_int(v); }

// ---- shape inference -------------------------------------------------------

TEST(AttentionInfer, FourDimGqaWithPastKeepsSymbols) {
  OneNode n("Attention",
            {"f32[batch,8,seq,64]", "f32[batch,2,kv,64]", "f32[batch,2,kv,32]", "", "f32[batch,2,past,64]",
             "f32[batch,2,past,32]"},
            4);
  EXPECT_EQ(n.infer(), (std::vector<std::string>{"f32[batch,8,seq,32]", "f32[batch,2,(past+kv),64]",
                                                 "f32[batch,2,(past+kv),32]", "f32[batch,8,seq,(past+kv)]"}));
}

TEST(AttentionInfer, ThreeDimInputsSplitHeadsFromAttributes) {
  OneNode n("Attention", {"f16[batch,seq,512]", "f16[batch,kv,128]", "f16[batch,kv,hidden]"}, 3,
            {{"q_num_heads", ints(8)}, {"kv_num_heads", ints(2)}});
  EXPECT_EQ(n.infer(),
            (std::vector<std::string>{"f16[batch,seq,4*hidden]", "f16[batch,2,kv,64]", "f16[batch,2,kv,?]"}));
}

TEST(AttentionInfer, HeadsThatDoNotGroupAreInvalid) {
  OneNode n("Attention", {"f32[1,6,4,8]", "f32[1,4,4,8]", "f32[1,4,4,8]"}, 1);
  EXPECT_NE(n.infer_error().find("not a multiple"), std::string::npos) << n.infer_error();
}

TEST(AttentionInfer, UnknownQkOutputModeIsUnsupported) {
  OneNode n("Attention", {"f32[1,2,4,8]", "f32[1,2,4,8]", "f32[1,2,4,8]"}, 1, {{"qk_matmul_output_mode", ints(7)}});
  EXPECT_NE(n.infer_error().find("qk_matmul_output_mode 7"), std::string::npos) << n.infer_error();
}

TEST(AttentionInfer, PastKeyWithoutPastValueIsInvalid) {
  OneNode n("Attention", {"f32[1,2,4,8]", "f32[1,2,4,8]", "f32[1,2,4,8]", "", "f32[1,2,3,8]"}, 1);
  EXPECT_NE(n.infer_error().find("together"), std::string::npos) << n.infer_error();
}

TEST(FlexAttentionInfer, OutputTakesValueHeadSize) {
  OneNode n("FlexAttention", {"f32[b,4,q,16]", "f32[b,2,k,16]", "f32[b,2,k,8]"}, 1, {}, "ai.onnx.preview", 1);
  EXPECT_EQ(n.infer(), (std::vector<std::string>{"f32[b,4,q,8]"}));
}

TEST(LinearAttentionInfer, OutputAndStateShapes) {
  OneNode n("LinearAttention",
            {"f32[batch,seq,32]", "f32[batch,seq,16]", "f32[batch,seq,24]", "", "f32[batch,seq,2]", "f32[batch,seq,2]"},
            2, {{"q_num_heads", ints(4)}, {"kv_num_heads", ints(2)}}, "", 27);
  EXPECT_EQ(n.infer(), (std::vector<std::string>{"f32[batch,seq,48]", "f32[batch,2,8,12]"}));
}

TEST(LinearAttentionInfer, GatedRuleWithoutDecayIsInvalid) {
  OneNode n("LinearAttention", {"f32[1,3,8]", "f32[1,3,8]", "f32[1,3,8]"}, 2,
            {{"q_num_heads", ints(2)}, {"kv_num_heads", ints(2)}, {"update_rule", Attribute::of_string("gated")}}, "",
            27);
  EXPECT_NE(n.infer_error().find("needs the decay"), std::string::npos) << n.infer_error();
}

TEST(RotaryEmbeddingInfer, OutputIsInputType) {
  OneNode n("RotaryEmbedding", {"bf16[batch,seq,64]", "bf16[max,16]", "bf16[max,16]", "i64[batch,seq]"}, 1,
            {{"num_heads", ints(2)}}, "", 23);
  EXPECT_EQ(n.infer(), (std::vector<std::string>{"bf16[batch,seq,64]"}));
}

TEST(RotaryEmbeddingInfer, CacheWidthMustBeHalfTheRotatedSize) {
  OneNode n("RotaryEmbedding", {"f32[1,2,3,8]", "f32[10,3]", "f32[10,3]", "i64[1,3]"}, 1, {}, "", 23);
  EXPECT_NE(n.infer_error().find("cos_cache"), std::string::npos) << n.infer_error();
}

TEST(SwiGluInfer, SameShapeInSameShapeOut) {
  OneNode n("SwiGLU", {"f16[batch,seq,11008]", "f16[batch,seq,11008]"}, 1, {}, "", 28);
  EXPECT_EQ(n.infer(), (std::vector<std::string>{"f16[batch,seq,11008]"}));
}

TEST(SwiGluInfer, BroadcastingIsRejected) {
  OneNode n("SwiGLU", {"f32[2,4]", "f32[1,4]"}, 1, {}, "", 28);
  EXPECT_NE(n.infer_error().find("disagree"), std::string::npos) << n.infer_error();
}

TEST(RecurrentInfer, RnnSequenceFirstLayout) {
  OneNode n("RNN", {"f32[seq,batch,10]", "f32[1,20,10]", "f32[1,20,20]"}, 2, {{"hidden_size", ints(20)}}, "", 14);
  EXPECT_EQ(n.infer(), (std::vector<std::string>{"f32[seq,1,batch,20]", "f32[1,batch,20]"}));
}

TEST(RecurrentInfer, BidirectionalLstmBatchFirstLayout) {
  OneNode n("LSTM", {"f32[batch,seq,8]", "f32[2,16,8]", "f32[2,16,4]"}, 3,
            {{"direction", Attribute::of_string("bidirectional")}, {"layout", ints(1)}}, "", 14);
  EXPECT_EQ(n.infer(), (std::vector<std::string>{"f32[batch,seq,2,4]", "f32[batch,2,4]", "f32[batch,2,4]"}));
}

TEST(RecurrentInfer, GruWeightsMustHoldThreeGates) {
  OneNode n("GRU", {"f32[5,1,3]", "f32[1,8,3]", "f32[1,8,4]"}, 1, {{"hidden_size", ints(4)}}, "", 14);
  EXPECT_NE(n.infer_error().find("W's gate dim"), std::string::npos) << n.infer_error();
}

TEST(RecurrentInfer, UnknownActivationIsUnsupported) {
  OneNode n("RNN", {"f32[5,1,3]", "f32[1,4,3]", "f32[1,4,4]"}, 1, {{"activations", Attribute::of_strings({"Gelu"})}},
            "", 14);
  EXPECT_NE(n.infer_error().find("activation 'Gelu'"), std::string::npos) << n.infer_error();
}

TEST(RecurrentInfer, OpsetOneOutputSequenceFlagIsDropped) {
  OneNode n("GRU", {"f32[5,1,3]", "f32[1,12,3]", "f32[1,12,4]"}, 2, {{"output_sequence", ints(1)}}, "", 1);
  UpgradeContext ctx(n.graph, *n.node);
  ASSERT_TRUE(OpRegistry::instance().find("", "GRU")->upgrades[0].fn(ctx).is_ok());
  EXPECT_FALSE(n.node->has_attr("output_sequence"));
  EXPECT_EQ(n.infer(), (std::vector<std::string>{"f32[5,1,1,4]", "f32[1,1,4]"}));
}

TEST(CausalConvInfer, StateHoldsKernelMinusOneSteps) {
  OneNode n("CausalConvWithState", {"f16[batch,16,len]", "f16[16,1,4]"}, 2, {}, "", 27);
  EXPECT_EQ(n.infer(), (std::vector<std::string>{"f16[batch,16,len]", "f16[batch,16,3]"}));
}

// ---- kernels ---------------------------------------------------------------

Tensor f32(std::vector<int64_t> dims, std::vector<float> v) { return Tensor::from_vector(DType::kF32, dims, v); }

std::vector<float> values(const Tensor& t) { return {t.data<float>(), t.data<float>() + t.numel()}; }

TEST(AttentionKernel, OneQueryTwoKeysIsExactSoftmaxWeightedSum) {
  // scores {1, 0} with scale 1: weights e/(e+1) and 1/(e+1) on values {1, 0}.
  auto out =
      run_one("Attention", {f32({1, 1, 1, 2}, {1, 0}), f32({1, 1, 2, 2}, {1, 0, 0, 0}), f32({1, 1, 2, 1}, {1, 0})}, 1,
              {{"scale", Attribute::of_float(1.0f)}});
  ASSERT_TRUE(out.is_ok()) << out.status().message();
  EXPECT_FLOAT_EQ(values((*out)[0])[0], std::exp(1.0f) / (std::exp(1.0f) + 1.0f));
}

TEST(AttentionKernel, BoolMaskHidingEveryKeyGivesZerosNotNan) {
  Tensor mask(DType::kBool, {1, 2});  // zero-filled: every key hidden
  auto out = run_one("Attention", {f32({1, 1, 1, 1}, {1}), f32({1, 1, 2, 1}, {1, 2}), f32({1, 1, 2, 1}, {3, 4}), mask},
                     4, {{"qk_matmul_output_mode", ints(3)}});
  ASSERT_TRUE(out.is_ok()) << out.status().message();
  EXPECT_EQ(values((*out)[0]), std::vector<float>{0});
  EXPECT_EQ(values((*out)[3]), (std::vector<float>{0, 0}));  // qk_matmul_output, mode 3
}

TEST(AttentionKernel, QkOutputModeZeroIsRawScoresBeforeSoftcap) {
  auto out = run_one("Attention", {f32({1, 1, 1, 1}, {2}), f32({1, 1, 1, 1}, {3}), f32({1, 1, 1, 1}, {1})}, 4,
                     {{"scale", Attribute::of_float(1.0f)}, {"softcap", Attribute::of_float(1.0f)}});
  ASSERT_TRUE(out.is_ok()) << out.status().message();
  EXPECT_FLOAT_EQ(values((*out)[3])[0], 6.0f);  // qk_matmul_output
}

TEST(AttentionKernel, MaskLongerThanKeysIsAnErrorNotACrash) {
  auto out = run_one(
      "Attention", {f32({1, 1, 1, 1}, {1}), f32({1, 1, 1, 1}, {1}), f32({1, 1, 1, 1}, {1}), f32({1, 3}, {0, 0, 0})}, 1);
  ASSERT_FALSE(out.is_ok());
  EXPECT_NE(out.status().message().find("attn_mask"), std::string::npos) << out.status().message();
}

TEST(AttentionKernel, SlidingWindowHidesKeysOutsideIt) {
  // Two cached keys put the query at position 2; left_window_size 0 keeps only key 2.
  auto out = run_one("Attention",
                     {f32({1, 1, 1, 1}, {1}),
                      f32({1, 1, 1, 1}, {0}),
                      f32({1, 1, 1, 1}, {7}),
                      {},
                      f32({1, 1, 2, 1}, {0, 0}),
                      f32({1, 1, 2, 1}, {1, 2})},
                     1, {{"left_window_size", ints(0)}}, "", 25);
  ASSERT_TRUE(out.is_ok()) << out.status().message();
  EXPECT_FLOAT_EQ(values((*out)[0])[0], 7.0f);
}

// A score_mod/prob_mod body that passes its input through.
Attribute identity_body() {
  auto body = std::make_shared<Graph>();
  Value* in = body->add_value("scores", Type::tensor(DType::kF32, Shape()));
  body->inputs.push_back(in);
  Node* id = body->add_node("Identity");
  id->inputs.push_back(in);
  Value* out = body->add_value("scores_out");
  out->producer = id;
  out->producer_output = 0;
  id->outputs.push_back(out);
  body->outputs.push_back(out);
  Attribute a;
  a.kind = Attribute::Kind::kGraph;
  a.g = body;
  return a;
}

TEST(FlexAttentionKernel, IdentityModifiersLeavePlainAttention) {
  std::vector<Tensor> in = {f32({1, 2, 1, 2}, {1, 0, 0, 1}), f32({1, 1, 2, 2}, {1, 0, 0, 0}),
                            f32({1, 1, 2, 1}, {1, 0})};
  auto plain = run_one("FlexAttention", in, 1, {{"scale", Attribute::of_float(1.0f)}}, "ai.onnx.preview", 1);
  auto modded =
      run_one("FlexAttention", in, 1,
              {{"scale", Attribute::of_float(1.0f)}, {"score_mod", identity_body()}, {"prob_mod", identity_body()}},
              "ai.onnx.preview", 1);
  ASSERT_TRUE(plain.is_ok()) << plain.status().message();
  ASSERT_TRUE(modded.is_ok()) << modded.status().message();
  // Head 0 scores {1, 0}; head 1 (same K/V head, GQA) scores {0, 0}.
  float e = std::exp(1.0f);
  EXPECT_FLOAT_EQ(values((*plain)[0])[0], e / (e + 1));
  EXPECT_FLOAT_EQ(values((*plain)[0])[1], 0.5f);
  EXPECT_EQ(values((*modded)[0]), values((*plain)[0]));
}

TEST(RotaryEmbeddingKernel, PositionIdOutsideCacheIsAnError) {
  Tensor ids = Tensor::from_vector(DType::kI64, {1, 1}, std::vector<int64_t>{5});
  auto out = run_one("RotaryEmbedding", {f32({1, 1, 1, 2}, {1, 2}), f32({2, 1}, {1, 1}), f32({2, 1}, {0, 0}), ids}, 1,
                     {}, "", 23);
  ASSERT_FALSE(out.is_ok());
  EXPECT_NE(out.status().message().find("position id 5"), std::string::npos) << out.status().message();
}

TEST(RotaryEmbeddingKernel, QuarterTurnSwapsThePair) {
  // cos 0, sin 1: (x1, x2) -> (-x2, x1).
  auto out =
      run_one("RotaryEmbedding", {f32({1, 1, 1, 2}, {3, 5}), f32({1, 1, 1}, {0}), f32({1, 1, 1}, {1})}, 1, {}, "", 23);
  ASSERT_TRUE(out.is_ok()) << out.status().message();
  EXPECT_EQ(values((*out)[0]), (std::vector<float>{-5, 3}));
}

TEST(LinearAttentionKernel, LinearRuleAccumulatesOuterProducts) {
  // d_k = d_v = 1, scale 1: state after t tokens is sum k*v; o_t = q_t * state.
  auto out = run_one("LinearAttention", {f32({1, 2, 1}, {1, 2}), f32({1, 2, 1}, {3, 4}), f32({1, 2, 1}, {5, 6})}, 2,
                     {{"q_num_heads", ints(1)},
                      {"kv_num_heads", ints(1)},
                      {"scale", Attribute::of_float(1.0f)},
                      {"update_rule", Attribute::of_string("linear")}},
                     "", 27);
  ASSERT_TRUE(out.is_ok()) << out.status().message();
  EXPECT_EQ(values((*out)[0]), (std::vector<float>{15, 78}));  // 1*15, 2*(15+24)
  EXPECT_EQ(values((*out)[1]), std::vector<float>{39});
}

TEST(CausalConvKernel, StateCarriesTheLastInputs) {
  auto out =
      run_one("CausalConvWithState",
              {f32({1, 1, 3}, {1, 2, 3}), f32({1, 1, 3}, {1, 10, 100}), {}, f32({1, 1, 2}, {4, 5})}, 2, {}, "", 27);
  ASSERT_TRUE(out.is_ok()) << out.status().message();
  EXPECT_EQ(values((*out)[0]), (std::vector<float>{4 + 50 + 100, 5 + 10 + 200, 1 + 20 + 300}));
  EXPECT_EQ(values((*out)[1]), (std::vector<float>{2, 3}));
}

TEST(SwiGluKernel, ZeroGateGivesZero) {
  auto out = run_one("SwiGLU", {f32({2}, {0, 1}), f32({2}, {5, 2})}, 1, {}, "", 28);
  ASSERT_TRUE(out.is_ok()) << out.status().message();
  EXPECT_FLOAT_EQ(values((*out)[0])[0], 0.0f);
  EXPECT_FLOAT_EQ(values((*out)[0])[1], 2.0f / (1.0f + std::exp(-1.0f)));
}

TEST(RecurrentKernel, AffineActivationTakesAlphaAndBeta) {
  auto out = run_one("RNN", {f32({2, 1, 1}, {1, 2}), f32({1, 1, 1}, {1}), f32({1, 1, 1}, {0})}, 1,
                     {{"activations", Attribute::of_strings({"Affine"})},
                      {"activation_alpha", Attribute::of_floats({2})},
                      {"activation_beta", Attribute::of_floats({1})}},
                     "", 14);
  ASSERT_TRUE(out.is_ok()) << out.status().message();
  EXPECT_EQ(values((*out)[0]), (std::vector<float>{3, 5}));
}

TEST(RecurrentKernel, SequenceLensZeroYPastEndAndKeepLastState) {
  // Relu cell, W = R = 1: h_t = x_t + h_{t-1}. Batch 0 stops after one step.
  Tensor lens = Tensor::from_vector(DType::kI32, {2}, std::vector<int32_t>{1, 2});
  auto out = run_one("RNN", {f32({2, 2, 1}, {1, 2, 9, 3}), f32({1, 1, 1}, {1}), f32({1, 1, 1}, {1}), {}, lens}, 2,
                     {{"activations", Attribute::of_strings({"Relu"})}}, "", 14);
  ASSERT_TRUE(out.is_ok()) << out.status().message();
  EXPECT_EQ(values((*out)[0]), (std::vector<float>{1, 2, 0, 5}));
  EXPECT_EQ(values((*out)[1]), (std::vector<float>{1, 5}));
}

TEST(RecurrentKernel, ReverseDirectionStartsAtEachSequenceEnd) {
  Tensor lens = Tensor::from_vector(DType::kI32, {2}, std::vector<int32_t>{1, 2});
  auto out = run_one("RNN", {f32({2, 2, 1}, {1, 2, 9, 3}), f32({1, 1, 1}, {1}), f32({1, 1, 1}, {1}), {}, lens}, 2,
                     {{"activations", Attribute::of_strings({"Relu"})}, {"direction", Attribute::of_string("reverse")}},
                     "", 14);
  ASSERT_TRUE(out.is_ok()) << out.status().message();
  EXPECT_EQ(values((*out)[0]), (std::vector<float>{1, 5, 0, 3}));
  EXPECT_EQ(values((*out)[1]), (std::vector<float>{1, 5}));
}

TEST(RecurrentKernel, ClipBoundsThePreActivation) {
  auto out = run_one("RNN", {f32({1, 1, 1}, {1}), f32({1, 1, 1}, {5}), f32({1, 1, 1}, {0})}, 1,
                     {{"activations", Attribute::of_strings({"Relu"})}, {"clip", Attribute::of_float(1.5f)}}, "", 14);
  ASSERT_TRUE(out.is_ok()) << out.status().message();
  EXPECT_EQ(values((*out)[0]), std::vector<float>{1.5f});
}

TEST(RecurrentKernel, LstmInputForgetCouplesForgetToInputGate) {
  // All pre-activations 0 except the cell candidate: i = o = 0.5, f = 1 - i = 0.5,
  // c = 0.5 * c0 + 0.5 * tanh(1) with c0 = 2; h = 0.5 * tanh(c).
  std::vector<float> w = {0, 0, 0, 1};  // gates i, o, f, c
  auto out = run_one(
      "LSTM", {f32({1, 1, 1}, {1}), f32({1, 4, 1}, w), f32({1, 4, 1}, {0, 0, 0, 0}), {}, {}, {}, f32({1, 1, 1}, {2})},
      3, {{"input_forget", ints(1)}}, "", 14);
  ASSERT_TRUE(out.is_ok()) << out.status().message();
  float c = 0.5f * 2 + 0.5f * std::tanh(1.0f);
  EXPECT_FLOAT_EQ(values((*out)[2])[0], c);
  EXPECT_FLOAT_EQ(values((*out)[1])[0], 0.5f * std::tanh(c));
}

TEST(RecurrentKernel, SequenceLengthBeyondInputIsAnError) {
  Tensor lens = Tensor::from_vector(DType::kI32, {1}, std::vector<int32_t>{3});
  auto out = run_one("GRU", {f32({1, 1, 1}, {1}), f32({1, 3, 1}, {0, 0, 0}), f32({1, 3, 1}, {0, 0, 0}), {}, lens}, 1,
                     {}, "", 14);
  ASSERT_FALSE(out.is_ok());
  EXPECT_NE(out.status().message().find("sequence length 3"), std::string::npos) << out.status().message();
}

}  // namespace
}  // namespace kiln
