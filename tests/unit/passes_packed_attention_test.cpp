// pack_qkv_projections and fuse_packed_attention before and after as IR text,
// the near misses they must leave alone, kiln.PackedAttention's inference and
// CPU kernel (the same bits as Attention on the sliced Q, K, V), the shared
// transformers' CPU outputs unchanged by both passes, and where
// rewrite_for_cuda runs them.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <random>

#include "backends/cpu/cpu_executor.h"
#include "builder/builder.h"
#include "ir/half.h"
#include "onnx/importer.h"
#include "onnx/value_file.h"
#include "pass_test_util.h"
#include "shared_model_util.h"

namespace kiln {
namespace {

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// ---- pack_qkv_projections ------------------------------------------------------

// BERT's self-attention: three biased projections of one LayerNorm output.
const char* kBertProjections =
    "graph main(%x: f32[2,3,2]) {\n"
    "  %wq: f32[2,2] = const f32[2,2]{1,2,3,4}\n"
    "  %wk: f32[2,2] = const f32[2,2]{5,6,7,8}\n"
    "  %wv: f32[2,2] = const f32[2,2]{9,10,11,12}\n"
    "  %bq: f32[2] = const f32[2]{0.5,1}\n"
    "  %bk: f32[2] = const f32[2]{1.5,2}\n"
    "  %bv: f32[2] = const f32[2]{2.5,3}\n"
    "  %q: f32[2,3,2] = kiln.FusedMatMul(%x, %wq, %bq)\n"
    "  %k: f32[2,3,2] = kiln.FusedMatMul(%x, %wk, %bk)\n"
    "  %v: f32[2,3,2] = kiln.FusedMatMul(%x, %wv, %bv)\n"
    "  %y: f32[2,3,2] = Attention(%q, %k, %v) {kv_num_heads=1, q_num_heads=1}\n"
    "  return %y\n"
    "}\n";

// The constant `name` of `text` after pack_qkv_projections, as floats.
std::vector<float> packed_constant(const std::string& text, const std::string& name) {
  auto g = parse_graph(text);
  EXPECT_TRUE(g.is_ok()) << g.status().to_string();
  if (!g) return {};
  PassContext ctx;
  EXPECT_TRUE(pack_qkv_projections(**g, ctx).is_ok());
  const Value* v = (*g)->find_value(name);
  if (!v || !v->constant || v->constant->dtype() != DType::kF32) return {};
  return {v->constant->data<float>(), v->constant->data<float>() + v->constant->numel()};
}

TEST(PackQkvProjections, ThreeProjectionsOfOneInputBecomeOneAndASplit) {
  // Row r of the packed weight is row r of Wq, then of Wk, then of Wv.
  EXPECT_EQ(packed_constant(kBertProjections, "q.qkv.weight"),
            (std::vector<float>{1, 2, 5, 6, 9, 10, 3, 4, 7, 8, 11, 12}));
  EXPECT_EQ(run_pass(pack_qkv_projections, kBertProjections),
            "graph main(%x: f32[2,3,2]) {\n"
            "  %q.qkv.weight: f32[2,6] = const f32[2,6]\n"
            "  %q.qkv.bias: f32[6] = const f32[6]{0.5,1,1.5,2,2.5,3}\n"
            "  %q.qkv.split: i64[3] = const i64[3]{2,2,2}\n"
            "  %q.qkv: f32[2,3,6] = kiln.FusedMatMul(%x, %q.qkv.weight, %q.qkv.bias)\n"
            "  %q: f32[2,3,2], %k: f32[2,3,2], %v: f32[2,3,2] = Split(%q.qkv, %q.qkv.split) {axis=2}\n"
            "  %y: f32[2,3,2] = Attention(%q, %k, %v) {kv_num_heads=1, q_num_heads=1}\n"
            "  return %y\n"
            "}\n");
}

// Cross-attention: K and V project the memory, Q another input; plain MatMuls
// without bias pack, in Attention's order (V before K in the graph).
TEST(PackQkvProjections, TwoUnbiasedMatMulsOfTheMemoryPackInAttentionsOrder) {
  EXPECT_EQ(run_pass(pack_qkv_projections,
                     "graph main(%q: f32[1,2,2], %m: f32[1,3,2]) {\n"
                     "  %wk: f32[2,2] = const f32[2,2]{1,2,3,4}\n"
                     "  %wv: f32[2,1] = const f32[2,1]{5,6}\n"
                     "  %v: f32[1,3,1] = MatMul(%m, %wv)\n"
                     "  %k: f32[1,3,2] = MatMul(%m, %wk)\n"
                     "  %y: f32[1,2,1] = Attention(%q, %k, %v) {kv_num_heads=1, q_num_heads=1}\n"
                     "  return %y\n"
                     "}\n"),
            "graph main(%q: f32[1,2,2], %m: f32[1,3,2]) {\n"
            "  %k.qkv.weight: f32[2,3] = const f32[2,3]{1,2,5,3,4,6}\n"
            "  %k.qkv.split: i64[2] = const i64[2]{2,1}\n"
            "  %k.qkv: f32[1,3,3] = MatMul(%m, %k.qkv.weight)\n"
            "  %k: f32[1,3,2], %v: f32[1,3,1] = Split(%k.qkv, %k.qkv.split) {axis=2}\n"
            "  %y: f32[1,2,1] = Attention(%q, %k, %v) {kv_num_heads=1, q_num_heads=1}\n"
            "  return %y\n"
            "}\n");
}

std::string with(std::string text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

// Each near miss leaves the graph as it was, or packs only the projections that fit.
TEST(PackQkvProjections, LeavesNearMissesAlone) {
  auto unchanged = [](const std::string& text) { EXPECT_EQ(run_pass(pack_qkv_projections, text), text); };
  // V is also a graph output: Q and K pack, V stays.
  const std::string v_out = run_pass(pack_qkv_projections, with(kBertProjections, "return %y\n", "return %y, %v\n"));
  EXPECT_TRUE(has(v_out, "%q: f32[2,3,2], %k: f32[2,3,2] = Split(")) << v_out;
  EXPECT_TRUE(has(v_out, "%v: f32[2,3,2] = kiln.FusedMatMul(%x, %wv, %bv)")) << v_out;
  // Q read by something else too: K and V pack.
  const std::string q_read = run_pass(
      pack_qkv_projections, with(kBertProjections, "  return %y\n", "  %r: f32[2,3,2] = Relu(%q)\n  return %y, %r\n"));
  EXPECT_TRUE(has(q_read, "%k: f32[2,3,2], %v: f32[2,3,2] = Split(")) << q_read;
  EXPECT_TRUE(has(q_read, "%q: f32[2,3,2] = kiln.FusedMatMul(%x, %wq, %bq)")) << q_read;
  // A weight that is no constant: Q and K pack, V stays.
  const std::string runtime_w = run_pass(
      pack_qkv_projections,
      with(with(kBertProjections, "graph main(%x: f32[2,3,2]) {", "graph main(%x: f32[2,3,2], %wr: f32[2,2]) {"),
           "kiln.FusedMatMul(%x, %wv, %bv)", "kiln.FusedMatMul(%x, %wr, %bv)"));
  EXPECT_TRUE(has(runtime_w, "%q: f32[2,3,2], %k: f32[2,3,2] = Split(")) << runtime_w;
  EXPECT_TRUE(has(runtime_w, "%v: f32[2,3,2] = kiln.FusedMatMul(%x, %wr, %bv)")) << runtime_w;
  // Each projection reads another input: nothing to pack.
  unchanged(with(with(with(kBertProjections, "graph main(%x: f32[2,3,2]) {",
                           "graph main(%x: f32[2,3,2], %x2: f32[2,3,2], %x3: f32[2,3,2]) {"),
                      "kiln.FusedMatMul(%x, %wk, %bk)", "kiln.FusedMatMul(%x2, %wk, %bk)"),
                 "kiln.FusedMatMul(%x, %wv, %bv)", "kiln.FusedMatMul(%x3, %wv, %bv)"));
  // Weights of three different K (a graph inference would reject; the pass
  // must not trust the A it shares): nothing packs.
  unchanged(
      with(with(kBertProjections, "%wk: f32[2,2] = const f32[2,2]{5,6,7,8}", "%wk: f32[1,2] = const f32[1,2]{5,6}"),
           "%wv: f32[2,2] = const f32[2,2]{9,10,11,12}", "%wv: f32[4,2] = const f32[4,2]{9,10,11,12,1,2,3,4}"));
  // Weights of different dtypes: nothing packs.
  unchanged(
      with(with(kBertProjections, "%wk: f32[2,2] = const f32[2,2]{5,6,7,8}", "%wk: f16[2,2] = const f16[2,2]{5,6,7,8}"),
           "%wv: f32[2,2] = const f32[2,2]{9,10,11,12}", "%wv: f64[2,2] = const f64[2,2]{9,10,11,12}"));
  // Q biased, K and V not: K and V pack, Q stays.
  const std::string mixed = run_pass(
      pack_qkv_projections, with(with(kBertProjections, "kiln.FusedMatMul(%x, %wk, %bk)", "kiln.FusedMatMul(%x, %wk)"),
                                 "kiln.FusedMatMul(%x, %wv, %bv)", "kiln.FusedMatMul(%x, %wv)"));
  EXPECT_TRUE(has(mixed, "%k: f32[2,3,2], %v: f32[2,3,2] = Split(")) << mixed;
  EXPECT_TRUE(has(mixed, "%q: f32[2,3,2] = kiln.FusedMatMul(%x, %wq, %bq)")) << mixed;
  // Three activations: nothing packs.
  unchanged(with(
      with(kBertProjections, "kiln.FusedMatMul(%x, %wk, %bk)", "kiln.FusedMatMul(%x, %wk, %bk) {activation=\"Relu\"}"),
      "kiln.FusedMatMul(%x, %wv, %bv)", "kiln.FusedMatMul(%x, %wv, %bv) {activation=\"Gelu\"}"));
  // One projection read as both K and V: only Q and that one could pack, but
  // it is read twice by the Attention, so it stays; Q alone does not pack.
  unchanged(with(kBertProjections, "Attention(%q, %k, %v)", "Attention(%q, %k, %k)"));
  // V adds a residual (input 4), which packing would drop: Q and K pack, V stays.
  const std::string residual = run_pass(
      pack_qkv_projections,
      with(with(kBertProjections, "graph main(%x: f32[2,3,2]) {", "graph main(%x: f32[2,3,2], %r: f32[2,3,2]) {"),
           "kiln.FusedMatMul(%x, %wv, %bv)", "kiln.FusedMatMul(%x, %wv, %bv, %r)"));
  EXPECT_TRUE(has(residual, "%q: f32[2,3,2], %k: f32[2,3,2] = Split(")) << residual;
  EXPECT_TRUE(has(residual, "%v: f32[2,3,2] = kiln.FusedMatMul(%x, %wv, %bv, %r)")) << residual;
}

// ---- fuse_packed_attention -----------------------------------------------------

// GPT-2: one projection split into Q, K, V for a causal Attention with a mask.
const char* kGpt2Split =
    "graph main(%qkv: f16[2,3,12], %m: f16[3,3]) {\n"
    "  %s: i64[3] = const i64[3]{4,4,4}\n"
    "  %q: f16[2,3,4], %k: f16[2,3,4], %v: f16[2,3,4] = Split(%qkv, %s) {axis=2}\n"
    "  %y: f16[2,3,4] = Attention(%q, %k, %v, %m) {is_causal=1, kv_num_heads=2, q_num_heads=2, scale=0.5}\n"
    "  return %y\n"
    "}\n";

TEST(FusePackedAttention, SplitReadOnlyAsQkvBecomesPackedAttention) {
  EXPECT_EQ(run_pass(fuse_packed_attention, kGpt2Split),
            "graph main(%qkv: f16[2,3,12], %m: f16[3,3]) {\n"
            "  %y: f16[2,3,4] = kiln.PackedAttention(%qkv, %m) {is_causal=1, kv_num_heads=2, q_num_heads=2, "
            "scale=0.5}\n"
            "  return %y\n"
            "}\n");
}

// GQA: 4 query heads over 2 key/value heads of D = 2, axis -1, no mask.
TEST(FusePackedAttention, GroupedQueryHeadsAndAxisMinusOneFuse) {
  EXPECT_EQ(run_pass(fuse_packed_attention,
                     "graph main(%qkv: f32[1,5,16]) {\n"
                     "  %s: i64[3] = const i64[3]{8,4,4}\n"
                     "  %q: f32[1,5,8], %k: f32[1,5,4], %v: f32[1,5,4] = Split(%qkv, %s) {axis=-1}\n"
                     "  %y: f32[1,5,8] = Attention(%q, %k, %v) {kv_num_heads=2, q_num_heads=4}\n"
                     "  return %y\n"
                     "}\n"),
            "graph main(%qkv: f32[1,5,16]) {\n"
            "  %y: f32[1,5,8] = kiln.PackedAttention(%qkv) {kv_num_heads=2, q_num_heads=4}\n"
            "  return %y\n"
            "}\n");
}

TEST(FusePackedAttention, LeavesNearMissesAlone) {
  auto unchanged = [](const std::string& text) { EXPECT_EQ(run_pass(fuse_packed_attention, text), text); };
  // A Split output read by something else.
  unchanged(with(kGpt2Split, "  return %y\n", "  %r: f16[2,3,4] = Relu(%k)\n  return %y, %r\n"));
  // A Split output that is a graph output.
  unchanged(with(kGpt2Split, "  return %y\n", "  return %y, %v\n"));
  // K and Q swapped.
  unchanged(with(kGpt2Split, "Attention(%q, %k, %v, %m)", "Attention(%k, %q, %v, %m)"));
  // A split on another axis.
  unchanged(
      "graph main(%qkv: f32[2,9,4]) {\n"
      "  %s: i64[3] = const i64[3]{3,3,3}\n"
      "  %q: f32[2,3,4], %k: f32[2,3,4], %v: f32[2,3,4] = Split(%qkv, %s) {axis=1}\n"
      "  %y: f32[2,3,4] = Attention(%q, %k, %v) {kv_num_heads=2, q_num_heads=2}\n"
      "  return %y\n"
      "}\n");
  // V's head size is not Q's (Dv = 4, D = 2).
  unchanged(
      "graph main(%qkv: f32[1,5,16]) {\n"
      "  %s: i64[3] = const i64[3]{4,4,8}\n"
      "  %q: f32[1,5,4], %k: f32[1,5,4], %v: f32[1,5,8] = Split(%qkv, %s) {axis=2}\n"
      "  %y: f32[1,5,8] = Attention(%q, %k, %v) {kv_num_heads=2, q_num_heads=2}\n"
      "  return %y\n"
      "}\n");
  // An attribute PackedAttention does not carry (a window).
  unchanged(with(kGpt2Split, "kv_num_heads=2, q_num_heads=2", "kv_num_heads=2, left_window_size=1, q_num_heads=2"));
  // A KV cache (past_key, past_value).
  unchanged(with(with(kGpt2Split, "%m: f16[3,3]) {", "%m: f16[3,3], %pk: f16[2,2,1,2], %pv: f16[2,2,1,2]) {"),
                 "Attention(%q, %k, %v, %m)", "Attention(%q, %k, %v, %m, %pk, %pv)"));
  // An optional output (present_key).
  unchanged(with(kGpt2Split, "  %y: f16[2,3,4] = Attention(", "  %y: f16[2,3,4], %pk: f16[2,2,3,2] = Attention("));
}

// ---- kiln.PackedAttention ------------------------------------------------------

TEST(PackedAttentionOp, InfersYFromTheHeadsAndRejectsWhatDoesNotSplit) {
  auto g = parse_graph(
      "graph main(%qkv: bf16[batch,seq,16]) {\n"
      "  %y: undefined[*] = kiln.PackedAttention(%qkv) {kv_num_heads=2, q_num_heads=4}\n"
      "  return %y\n"
      "}\n");
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  std::vector<Diagnostic> diags;
  infer_shapes(**g, diags);
  EXPECT_TRUE(diags.empty()) << diags[0].message;
  EXPECT_EQ((*g)->outputs[0]->type.to_string(), "bf16[batch,seq,8]");
  auto one = [](const std::string& input, const std::string& attrs) {
    return first_diagnostic("graph main(%qkv: " + input + ") {\n  %y: undefined[*] = kiln.PackedAttention(%qkv) {" +
                            attrs + "}\n  return %y\n}\n");
  };
  EXPECT_EQ(one("f32[2,3,12]", "kv_num_heads=1, q_num_heads=2"), "none");
  EXPECT_TRUE(
      has(one("f32[2,3,10]", "kv_num_heads=1, q_num_heads=2"), "QKV hidden size 10 is not divisible by 4 heads"))
      << one("f32[2,3,10]", "kv_num_heads=1, q_num_heads=2");
  EXPECT_TRUE(has(one("f32[2,3,12]", "kv_num_heads=2, q_num_heads=3"), "q_num_heads 3 must be a positive multiple"));
  EXPECT_TRUE(has(one("f32[2,3,12]", "q_num_heads=2"), "must be a positive multiple of kv_num_heads 0"));
  EXPECT_TRUE(has(one("f32[6,12]", "kv_num_heads=1, q_num_heads=2"), "QKV has rank 2"));
  EXPECT_TRUE(has(one("i32[2,3,12]", "kv_num_heads=1, q_num_heads=2"), "QKV must be a float tensor"));
}

template <typename T>
Tensor random_tensor(DType t, const std::vector<int64_t>& dims, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-2.f, 2.f);
  Tensor x(t, dims);
  for (int64_t i = 0; i < x.numel(); ++i) x.mutable_data<T>()[i] = T(dist(rng));
  return x;
}

Tensor random_input(DType t, const std::vector<int64_t>& dims, uint32_t seed) {
  if (t == DType::kF16) return random_tensor<Half>(t, dims, seed);
  if (t == DType::kBF16) return random_tensor<BFloat16>(t, dims, seed);
  return random_tensor<float>(t, dims, seed);
}

Expected<std::vector<RunValue>> run_cpu(const std::string& text, const std::vector<Tensor>& inputs,
                                        std::initializer_list<PassFn> passes, const char* must_have) {
  auto g = parse_graph(text);
  if (!g) return g.status();
  PassContext ctx;
  for (PassFn pass : passes) KILN_RETURN_IF_ERROR(pass(**g, ctx));
  if (must_have && !has(print_graph(**g), must_have))
    return internal_error("no {} in\n{}", must_have, print_graph(**g));
  std::vector<RunValue> values;
  for (const Tensor& t : inputs) values.push_back(RunValue::of(t));
  return run_graph_on_cpu(**g, std::move(values));
}

void expect_same_bits(const std::string& text, const std::vector<Tensor>& inputs,
                      std::initializer_list<PassFn> passes) {
  auto plain = run_cpu(text, inputs, {}, nullptr);
  auto fused = run_cpu(text, inputs, passes, "kiln.PackedAttention");
  ASSERT_TRUE(plain.is_ok()) << plain.status().to_string();
  ASSERT_TRUE(fused.is_ok()) << fused.status().to_string();
  const Tensor &a = (*plain)[0].tensor, &b = (*fused)[0].tensor;
  ASSERT_EQ(a.dtype(), b.dtype());
  ASSERT_EQ(a.dims(), b.dims());
  EXPECT_EQ(std::memcmp(a.raw(), b.raw(), a.nbytes()), 0) << text;
}

// A Split of QKV [2, 5, (hq + 2 hkv) * 4] into a 3-D Attention, with a
// key-padding mask [2, 1, 1, 5] when `mask`.
std::string split_attention(const std::string& t, int hq, int hkv, bool mask, const std::string& attrs) {
  const int d = 4, w = (hq + 2 * hkv) * d;
  auto dims = [&](int n) { return t + "[2,5," + std::to_string(n) + "]"; };
  return "graph main(%qkv: " + dims(w) + (mask ? ", %m: " + t + "[2,1,1,5]" : "") + ") {\n" +
         "  %s: i64[3] = const i64[3]{" + std::to_string(hq * d) + "," + std::to_string(hkv * d) + "," +
         std::to_string(hkv * d) + "}\n" + "  %q: " + dims(hq * d) + ", %k: " + dims(hkv * d) +
         ", %v: " + dims(hkv * d) + " = Split(%qkv, %s) {axis=2}\n" + "  %y: " + dims(hq * d) +
         " = Attention(%q, %k, %v" + (mask ? ", %m" : "") + ") {kv_num_heads=" + std::to_string(hkv) +
         ", q_num_heads=" + std::to_string(hq) + attrs + "}\n  return %y\n}\n";
}

// kiln.PackedAttention runs Attention's reference on the sliced Q, K and V:
// the same bits in every dtype, with a mask, causal, GQA, scale and softcap.
TEST(PackedAttentionOp, CpuKernelGivesAttentionsBitsOnTheSlicedInputs) {
  const std::pair<const char*, DType> types[] = {{"f32", DType::kF32}, {"f16", DType::kF16}, {"bf16", DType::kBF16}};
  for (const auto& [name, t] : types) {
    const Tensor mha = random_input(t, {2, 5, (2 + 4) * 4}, 1), gqa = random_input(t, {2, 5, (4 + 2) * 4}, 2);
    const Tensor mask = random_input(t, {2, 1, 1, 5}, 3);
    expect_same_bits(split_attention(name, 2, 2, false, ""), {mha}, {fuse_packed_attention});
    expect_same_bits(split_attention(name, 2, 2, true, ""), {mha, mask}, {fuse_packed_attention});
    expect_same_bits(split_attention(name, 2, 2, false, ", is_causal=1"), {mha}, {fuse_packed_attention});
    expect_same_bits(split_attention(name, 4, 1, true, ", is_causal=1, scale=0.3"), {gqa, mask},
                     {fuse_packed_attention});
    expect_same_bits(split_attention(name, 4, 1, false, ", softcap=2"), {gqa}, {fuse_packed_attention});
  }
}

TEST(PackedAttentionOp, RunRejectsAWidthThatDoesNotSplit) {
  auto out = run_cpu(
      "graph main(%qkv: f32[1,2,10]) {\n"
      "  %y: f32[1,2,4] = kiln.PackedAttention(%qkv) {kv_num_heads=1, q_num_heads=2}\n"
      "  return %y\n"
      "}\n",
      {random_input(DType::kF32, {1, 2, 10}, 1)}, {}, nullptr);
  ASSERT_FALSE(out.is_ok());
  EXPECT_TRUE(has(out.status().to_string(), "QKV hidden size 10 is not divisible by 4 heads"))
      << out.status().to_string();
}

// BERT's three projections through both passes: one GEMM, no Split, the same bits.
TEST(PackedAttentionOp, PackedProjectionsGiveTheUnpackedBitsOnTheCpu) {
  expect_same_bits(kBertProjections, {random_input(DType::kF32, {2, 3, 2}, 7)},
                   {pack_qkv_projections, fuse_packed_attention});
}

// rewrite_for_cuda packs before assign_precision (the packed weights end in
// f16 like the others) and fuses the attention after it.
TEST(PackedAttentionOp, RewriteForCudaPacksAndFusesInF16) {
  auto g = parse_graph(kBertProjections);
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  BuildConfig config;
  config.backend = "cuda";
  config.fp16 = true;
  ASSERT_TRUE(rewrite_for_cuda(**g, config).is_ok());
  const std::string text = print_graph(**g);
  const Value* w = (*g)->find_value("q.qkv.weight_lp");
  ASSERT_TRUE(w && w->constant) << text;
  EXPECT_EQ(w->constant->dtype(), DType::kF16);
  EXPECT_EQ(w->constant->element_as_double(2), 5.0);
  EXPECT_TRUE(has(text, "= kiln.PackedAttention(%q.qkv")) << text;
  EXPECT_FALSE(has(text, "Split(")) << text;
  EXPECT_FALSE(has(text, "= Attention(")) << text;
}

// The shared transformers after the default pipeline: every layer's attention
// reads its packed projection in place, and the CPU output keeps its bits.
TEST(PackedAttentionOp, SharedTransformersPackEveryLayerAndKeepTheirOutputs) {
  for (const char* name : {"tiny_bert", "tiny_gpt2", "tiny_vit"}) {
    auto model = load_shared_model(name);
    ASSERT_TRUE(model.is_ok()) << model.status().to_string();
    if (!*model) GTEST_SKIP() << "no " << name;
    Graph& g = (*model)->graph();
    const std::vector<RunValue>& x = (*model)->inputs;
    PassContext ctx;
    ASSERT_TRUE(run_passes(g, ctx, default_pipeline()).is_ok());
    int attention = 0;
    for (const auto& n : g.nodes()) attention += n->op_type == "Attention";
    auto before = run_graph_on_cpu(g, x);
    ASSERT_TRUE(pack_qkv_projections(g, ctx).is_ok());
    ASSERT_TRUE(fuse_packed_attention(g, ctx).is_ok());
    auto after = run_graph_on_cpu(g, x);
    ASSERT_TRUE(before.is_ok() && after.is_ok()) << name;
    int packed = 0, left = 0;
    for (const auto& n : g.nodes()) {
      packed += n->op_type == "PackedAttention";
      left += n->op_type == "Attention" || n->op_type == "Split";
    }
    EXPECT_GT(attention, 0) << name;
    EXPECT_EQ(packed, attention) << name;
    EXPECT_EQ(left, 0) << name;
    expect_same_bytes((*before)[0].tensor, (*after)[0].tensor, name);
  }
}

}  // namespace
}  // namespace kiln
