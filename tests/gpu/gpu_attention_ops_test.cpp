// CUDA Attention and RotaryEmbedding against the CPU oracle.
#include <cstdint>
#include <cstdio>

#include "backends/cuda/cuda_runner.h"
#include "backends/cuda/ops/cudnn_attention.h"
#include "gpu_test_util.h"
#include "ir/element_cast.h"

namespace kiln::gpu_test {
namespace {

using Dims = std::vector<int64_t>;

std::string type_name(DType t) { return std::string(dtype_name(t)); }

class GpuAttentionOpsTest : public GpuTest {};

struct AttentionCase {
  std::string what;
  std::vector<Tensor> ins;
  Attrs attrs;
  int num_outputs = 1;
};

// expect_close, with equal infinities (hidden scores in qk_matmul_output) equal.
void expect_close_or_same_inf(const Tensor& gpu, const Tensor& cpu, double rtol, const std::string& what) {
  ASSERT_TRUE(cpu.is_valid() && gpu.is_valid()) << what;
  ASSERT_EQ(gpu.numel(), cpu.numel()) << what;
  Tensor g = gpu, c = cpu;
  for (int64_t i = 0; i < c.numel(); ++i) {
    const double gv = g.element_as_double(i), cv = c.element_as_double(i);
    if (std::isinf(gv) && gv == cv) {
      // Replace both by the same finite value, in the tensors' own dtype.
      const Tensor one = random_tensor(c.dtype(), {1}, 1.f, 1.f, 1);
      std::memcpy(static_cast<char*>(g.mutable_raw()) + i * (g.nbytes() / g.numel()), one.raw(), one.nbytes());
      std::memcpy(static_cast<char*>(c.mutable_raw()) + i * (c.nbytes() / c.numel()), one.raw(), one.nbytes());
    }
  }
  expect_close(g, c, rtol, what);
}

void check_attention(const AttentionCase& c, DType t) {
  for (int o = 0; o < c.num_outputs; ++o) {
    const std::string what = c.what + " " + type_name(t) + " output " + std::to_string(o);
    expect_close_or_same_inf(run_cuda("Attention", c.ins, c.attrs, o, c.num_outputs),
                             run_cpu("Attention", c.ins, c.attrs, o, c.num_outputs), attention_tolerance(t), what);
  }
}

Tensor qkv(DType t, Dims d, uint32_t seed) { return random_tensor(t, std::move(d), -1.f, 1.f, seed); }

TEST_F(GpuAttentionOpsTest, FourDimensionalAttentionMatchesCpu) {
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kF64}) {
    const Tensor q = qkv(t, {2, 3, 37, 64}, 1), k = qkv(t, {2, 3, 45, 64}, 2), v = qkv(t, {2, 3, 45, 64}, 3);
    check_attention({"plain", {q, k, v}, {}}, t);
    check_attention({"causal", {q, k, v}, {{"is_causal", Attribute::of_int(1)}}}, t);
    check_attention(
        {"scale and softcap", {q, k, v}, {{"scale", Attribute::of_float(0.3f)}, {"softcap", Attribute::of_float(2.f)}}},
        t);
  }
}

TEST_F(GpuAttentionOpsTest, OddHeadSizesAndLongSequencesMatchCpu) {
  const DType t = DType::kF32;
  for (auto [d, dv] :
       std::vector<std::pair<int64_t, int64_t>>{{17, 23}, {96, 80}, {128, 128}, {256, 200}, {320, 72}, {40, 288}}) {
    const Tensor q = qkv(t, {1, 2, 70, d}, 1), k = qkv(t, {1, 2, 130, d}, 2), v = qkv(t, {1, 2, 130, dv}, 3);
    check_attention(
        {"head " + std::to_string(d) + "/" + std::to_string(dv), {q, k, v}, {{"is_causal", Attribute::of_int(1)}}}, t);
  }
}

TEST_F(GpuAttentionOpsTest, MasksMatchCpu) {
  for (DType t : {DType::kF32, DType::kF16}) {
    const Tensor q = qkv(t, {2, 4, 19, 32}, 1), k = qkv(t, {2, 4, 33, 32}, 2), v = qkv(t, {2, 4, 33, 32}, 3);
    // Bool masks: a full one, a broadcast (Sq, keys) one, and one that hides whole rows.
    Tensor full = random_tensor(DType::kBool, {2, 4, 19, 33}, 0.f, 1.f, 4);
    check_attention({"bool mask", {q, k, v, full}, {}}, t);
    Tensor rows = random_tensor(DType::kBool, {19, 33}, 0.f, 1.f, 5);
    for (int64_t j = 0; j < 33; ++j) rows.mutable_data<uint8_t>()[3 * 33 + j] = 0;  // row 3 sees nothing
    check_attention({"broadcast bool mask with a hidden row", {q, k, v, rows}, {{"is_causal", Attribute::of_int(1)}}},
                    t);
    check_attention({"float mask", {q, k, v, random_tensor(t, {2, 1, 19, 33}, -3.f, 1.f, 6)}, {}}, t);
    check_attention({"short float mask", {q, k, v, random_tensor(t, {1, 20}, -3.f, 1.f, 7)}, {}}, t);
  }
}

TEST_F(GpuAttentionOpsTest, GroupedQueryAndThreeDimensionalFormsMatchCpu) {
  for (DType t : {DType::kF32, DType::kBF16}) {
    const Tensor q = qkv(t, {2, 8, 21, 32}, 1), k = qkv(t, {2, 2, 21, 32}, 2), v = qkv(t, {2, 2, 21, 48}, 3);
    check_attention({"GQA causal", {q, k, v}, {{"is_causal", Attribute::of_int(1)}}}, t);
    const Tensor q3 = qkv(t, {2, 21, 6 * 16}, 4), k3 = qkv(t, {2, 25, 3 * 16}, 5), v3 = qkv(t, {2, 25, 3 * 24}, 6);
    const Attrs heads = {{"q_num_heads", Attribute::of_int(6)}, {"kv_num_heads", Attribute::of_int(3)}};
    check_attention({"3-D GQA", {q3, k3, v3}, heads}, t);
    Attrs windowed = heads;
    windowed["left_window_size"] = Attribute::of_int(5);
    windowed["right_window_size"] = Attribute::of_int(2);
    check_attention({"3-D sliding window", {q3, k3, v3}, windowed}, t);
  }
}

// Attention with its kiln.tactic set ("tc": the tensor-core kernel) on the GPU.
Tensor run_attention_tactic(const std::vector<Tensor>& ins, const Attrs& attrs, const std::string& tactic) {
  std::vector<RunValue> values;
  auto g = one_node_graph("Attention", ins, attrs, 1, 0, values);
  g->nodes()[0]->metadata["kiln.tactic"] = tactic;
  auto out = cuda::run_graph_on_cuda(*g, std::move(values), {});
  EXPECT_TRUE(out.is_ok()) << out.status().to_string();
  return out.is_ok() ? (*out)[0].tensor : Tensor();
}

// The tensor-core kernels: "tc" (WMMA), "mma" and "flash" (mma.sync, in registers).
void check_tensor_core(const AttentionCase& c, DType t) {
  for (const char* tactic : {"tc", "mma", "flash"}) {
    const std::string what = c.what + " " + type_name(t) + " tactic " + tactic;
    expect_close(run_attention_tactic(c.ins, c.attrs, tactic), run_cpu("Attention", c.ins, c.attrs, 0, 1),
                 attention_tolerance(t), what);
  }
}

// The tensor-core kernels: 64-row query blocks, 32- or 64-key tiles (lengths
// that are neither), head sizes 32/64/128, both layouts, GQA, masks, causal,
// windows, and ViT's 197 tokens.
TEST_F(GpuAttentionOpsTest, TensorCoreTacticMatchesCpu) {
  for (DType t : {DType::kF16, DType::kBF16}) {
    for (int64_t d : {32, 64, 128}) {
      const Tensor q = qkv(t, {2, 3, 77, d}, 1), k = qkv(t, {2, 3, 45, d}, 2), v = qkv(t, {2, 3, 45, d}, 3);
      check_tensor_core({"plain D=" + std::to_string(d), {q, k, v}, {}}, t);
      check_tensor_core({"causal D=" + std::to_string(d), {q, q, q}, {{"is_causal", Attribute::of_int(1)}}}, t);
    }
    const Tensor q = qkv(t, {2, 4, 70, 64}, 4), k = qkv(t, {2, 2, 70, 64}, 5), v = qkv(t, {2, 2, 70, 64}, 6);
    check_tensor_core({"GQA", {q, k, v}, {}}, t);
    check_tensor_core({"float mask", {q, k, v, random_tensor(t, {2, 1, 70, 70}, -3.f, 1.f, 7)}, {}}, t);
    Tensor rows = random_tensor(DType::kBool, {70, 70}, 0.f, 1.f, 8);
    for (int64_t j = 0; j < 70; ++j) rows.mutable_data<uint8_t>()[5 * 70 + j] = 0;  // row 5 sees nothing
    check_tensor_core({"bool mask with a hidden row", {q, k, v, rows}, {}}, t);
    check_tensor_core({"window",
                       {q, k, v},
                       {{"left_window_size", Attribute::of_int(9)}, {"right_window_size", Attribute::of_int(3)}}},
                      t);
    // BERT-base's packed form: [B, S, 12 * 64].
    const Tensor q3 = qkv(t, {2, 128, 12 * 64}, 9), k3 = qkv(t, {2, 128, 12 * 64}, 10),
                 v3 = qkv(t, {2, 128, 12 * 64}, 11);
    const Attrs heads = {{"q_num_heads", Attribute::of_int(12)}, {"kv_num_heads", Attribute::of_int(12)}};
    check_tensor_core({"3-D BERT heads", {q3, k3, v3}, heads}, t);
    const Tensor qv = qkv(t, {1, 197, 4 * 64}, 12), kv = qkv(t, {1, 197, 4 * 64}, 13),
                 vv = qkv(t, {1, 197, 4 * 64}, 14);
    const Attrs four = {{"q_num_heads", Attribute::of_int(4)}, {"kv_num_heads", Attribute::of_int(4)}};
    check_tensor_core({"3-D ViT tokens", {qv, kv, vv}, four}, t);
  }
}

// Whether cuDNN built a plan for the case (the spec the "cudnn" tactic makes,
// with run_graph_on_cuda's unlimited workspace).
bool cudnn_takes(const AttentionCase& c) {
  std::vector<RunValue> values;
  auto g = one_node_graph("Attention", c.ins, c.attrs, 1, 28, values);
  const Node& n = *g->nodes()[0];
  const bool masked = c.ins.size() > 3 && c.ins[3].is_valid();
  const std::optional<cuda::CudnnSdpaSpec> spec = cuda::cudnn_sdpa_spec(
      n, c.ins[0].dtype(), c.ins[0].dims(), c.ins[1].dims(), c.ins[2].dims(),
      masked ? c.ins[3].dtype() : DType::kUndefined, masked ? &c.ins[3].dims() : nullptr, SIZE_MAX);
  return spec && cuda::cudnn_sdpa_plan(*spec) != nullptr;
}

// Tactic "cudnn" against the CPU; `must_take`: cuDNN has to build a plan
// (else the run would silently be the SIMT kernel's).
void check_cudnn(const AttentionCase& c, DType t, bool must_take = true) {
  const std::string what = c.what + " " + type_name(t) + " tactic cudnn";
  const bool took = cudnn_takes(c);
  if (must_take) {
    EXPECT_TRUE(took) << what << ": cuDNN built no plan";
  } else {
    std::printf("[   INFO   ] %s: %s\n", what.c_str(), took ? "cuDNN runs it" : "cuDNN declined (SIMT ran)");
  }
  // cuDNN keeps the scores and the softmax in f32, where the CPU oracle (and
  // kiln's own kernels, which follow it) round the scaled Q and K and each
  // score to T; in bf16 those roundings alone move an output by a few percent.
  // So the oracle here is the CPU in f32 on the same (exactly widened) inputs,
  // its output rounded to T.
  std::vector<Tensor> wide;
  for (const Tensor& in : c.ins) {
    auto w = cast_tensor(in, DType::kF32);
    ASSERT_TRUE(w.is_ok()) << w.status().to_string();
    wide.push_back(std::move(w).value());
  }
  auto want = cast_tensor(run_cpu("Attention", wide, c.attrs, 0, 1), t);
  ASSERT_TRUE(want.is_ok()) << want.status().to_string();
  expect_close(run_attention_tactic(c.ins, c.attrs, "cudnn"), *want, attention_tolerance(t), what);
}

// cuDNN's fused attention (where the cuDNN frontend is compiled in): BERT's
// heads with and without an additive mask, causal GPT-like, ViT's 197 tokens,
// the packed 3-D layout, GQA, and head sizes 32 to 128.
TEST_F(GpuAttentionOpsTest, CudnnTacticMatchesCpu) {
  if (!cuda::cudnn_sdpa_compiled()) GTEST_SKIP() << "built without the cuDNN frontend (scripts/install_deps.sh)";
  for (DType t : {DType::kF16, DType::kBF16}) {
    const Tensor q = qkv(t, {2, 12, 128, 64}, 1), k = qkv(t, {2, 12, 128, 64}, 2), v = qkv(t, {2, 12, 128, 64}, 3);
    check_cudnn({"BERT b2 h12 s128", {q, k, v}, {}}, t);
    check_cudnn({"BERT with a float mask", {q, k, v, random_tensor(t, {2, 1, 128, 128}, -3.f, 1.f, 4)}, {}}, t);
    // An f32 mask on f16/bf16 attention and the key padding mask [B, 1, 1, S]
    // (queries broadcast): forms cuDNN may decline (then SIMT runs).
    check_cudnn({"BERT with an f32 mask", {q, k, v, random_tensor(DType::kF32, {128, 128}, -3.f, 1.f, 5)}, {}}, t,
                false);
    Tensor pad = random_tensor(t, {2, 1, 1, 128}, -0.5f, 0.5f, 6);
    for (int64_t j = 100; j < 128; ++j)  // the second sequence's last 28 keys are padding
      pad.mutable_data<uint16_t>()[128 + j] = t == DType::kF16 ? f32_to_f16(-1e4f) : f32_to_bf16(-1e4f);
    check_cudnn({"BERT with a key padding mask", {q, k, v, pad}, {}}, t, false);
    check_cudnn({"causal GPT-like", {q, k, v}, {{"is_causal", Attribute::of_int(1)}}}, t);
    check_cudnn({"causal with a float mask",
                 {q, k, v, random_tensor(t, {1, 12, 128, 128}, -3.f, 1.f, 7)},
                 {{"is_causal", Attribute::of_int(1)}, {"scale", Attribute::of_float(0.2f)}}},
                t);
    const Attrs bert_heads = {{"q_num_heads", Attribute::of_int(12)}, {"kv_num_heads", Attribute::of_int(12)}};
    const Tensor q3 = qkv(t, {2, 128, 12 * 64}, 8), k3 = qkv(t, {2, 128, 12 * 64}, 9),
                 v3 = qkv(t, {2, 128, 12 * 64}, 10);
    check_cudnn({"3-D BERT heads", {q3, k3, v3}, bert_heads}, t);
    const Attrs vit_heads = {{"q_num_heads", Attribute::of_int(4)}, {"kv_num_heads", Attribute::of_int(4)}};
    const Tensor qv = qkv(t, {2, 197, 4 * 64}, 11), kv = qkv(t, {2, 197, 4 * 64}, 12),
                 vv = qkv(t, {2, 197, 4 * 64}, 13);
    check_cudnn({"3-D ViT 197 tokens", {qv, kv, vv}, vit_heads}, t);
    const Tensor qg = qkv(t, {2, 8, 70, 64}, 14), kg = qkv(t, {2, 2, 70, 64}, 15), vg = qkv(t, {2, 2, 70, 64}, 16);
    check_cudnn({"GQA 8/2 causal", {qg, kg, vg}, {{"is_causal", Attribute::of_int(1)}}}, t);
    const Attrs gqa3 = {{"q_num_heads", Attribute::of_int(6)}, {"kv_num_heads", Attribute::of_int(2)}};
    check_cudnn({"3-D GQA 6/2 with more keys",
                 {qkv(t, {2, 33, 6 * 64}, 17), qkv(t, {2, 90, 2 * 64}, 18), qkv(t, {2, 90, 2 * 64}, 19)},
                 gqa3},
                t);
    for (int64_t d : {32, 128}) {
      const Tensor qd = qkv(t, {1, 4, 77, d}, 20), kd = qkv(t, {1, 4, 45, d}, 21), vd = qkv(t, {1, 4, 45, d}, 22);
      check_cudnn({"D=" + std::to_string(d), {qd, kd, vd}, {}}, t);
    }
  }
}

// Tactic "cudnn" captured in a CUDA graph and replayed with new inputs: the
// plan is built while planning, and its execution neither allocates nor syncs.
TEST_F(GpuAttentionOpsTest, CudnnTacticReplaysInACudaGraph) {
  if (!cuda::cudnn_sdpa_compiled()) GTEST_SKIP() << "built without the cuDNN frontend (scripts/install_deps.sh)";
  const DType t = DType::kF16;
  const std::vector<int64_t> dims = {2, 4, 64, 64};
  std::vector<Tensor> ins = {qkv(t, dims, 1), qkv(t, dims, 2), qkv(t, dims, 3)};
  std::vector<RunValue> values;
  auto g = one_node_graph("Attention", ins, {{"is_causal", Attribute::of_int(1)}}, 1, 28, values);
  g->nodes()[0]->metadata["kiln.tactic"] = "cudnn";
  ASSERT_TRUE(cudnn_takes({"", ins, {{"is_causal", Attribute::of_int(1)}}}));
  auto weights = cuda::upload_weights(*g);
  ASSERT_TRUE(weights.is_ok()) << weights.status().to_string();
  cuda::RunnerOptions options;
  options.use_cuda_graph = true;
  cuda::Runner runner(*g, *weights, options);
  auto stream = cuda::Stream::create();
  ASSERT_TRUE(stream.is_ok());
  cuda::DeviceBindings b(1);
  for (int i = 0; i < 3; ++i) b.inputs.push_back(device_zeros(ins[0].nbytes()));
  for (uint32_t run = 1; run <= 3; ++run) {
    for (int i = 0; i < 3; ++i) {
      ins[i] = qkv(t, dims, 10 * run + i);
      ASSERT_TRUE(b.inputs[i].copy_from_host(ins[i].raw(), ins[i].nbytes(), stream->get()).is_ok());
    }
    const Status st = runner.run({dims, dims, dims}, {nullptr, nullptr, nullptr}, b, stream->get());
    ASSERT_TRUE(st.is_ok()) << st.to_string();
    ASSERT_TRUE(stream->synchronize().is_ok());
    expect_close(download(b.outputs[0].data(), t, dims),
                 run_cpu("Attention", ins, {{"is_causal", Attribute::of_int(1)}}, 0, 1), attention_tolerance(t),
                 "cudnn in a CUDA graph, run " + std::to_string(run));
  }
}

TEST_F(GpuAttentionOpsTest, PastKeyValuesAndPresentOutputsMatchCpu) {
  for (DType t : {DType::kF32, DType::kF16}) {
    const Tensor q = qkv(t, {2, 4, 3, 32}, 1), k = qkv(t, {2, 2, 3, 32}, 2), v = qkv(t, {2, 2, 3, 32}, 3);
    const Tensor pk = qkv(t, {2, 2, 40, 32}, 4), pv = qkv(t, {2, 2, 40, 32}, 5);
    check_attention({"past KV causal", {q, k, v, Tensor(), pk, pv}, {{"is_causal", Attribute::of_int(1)}}, 3}, t);
    const Tensor mask = random_tensor(DType::kBool, {2, 1, 3, 43}, 0.f, 1.f, 6);
    check_attention({"past KV masked", {q, k, v, mask, pk, pv}, {}, 3}, t);
    // 3-D new keys go into the 4-D cache.
    const Attrs heads = {{"q_num_heads", Attribute::of_int(4)}, {"kv_num_heads", Attribute::of_int(2)}};
    check_attention({"3-D with past",
                     {qkv(t, {2, 3, 128}, 7), qkv(t, {2, 3, 64}, 8), qkv(t, {2, 3, 64}, 9), Tensor(), pk, pv},
                     heads,
                     3},
                    t);
  }
}

TEST_F(GpuAttentionOpsTest, QkMatmulOutputMatchesCpuInEveryMode) {
  const DType t = DType::kF32;
  const Tensor q = qkv(t, {1, 2, 9, 16}, 1), k = qkv(t, {1, 2, 12, 16}, 2), v = qkv(t, {1, 2, 12, 16}, 3);
  const Tensor mask = random_tensor(t, {9, 12}, -2.f, 1.f, 4);
  for (int mode = 0; mode < 4; ++mode)
    check_attention({"qk mode " + std::to_string(mode),
                     {q, k, v, mask},
                     {{"qk_matmul_output_mode", Attribute::of_int(mode)},
                      {"softcap", Attribute::of_float(3.f)},
                      {"is_causal", Attribute::of_int(1)}},
                     4},
                    t);
}

TEST_F(GpuAttentionOpsTest, NonpadKvSeqlenMatchesCpu) {
  const DType t = DType::kF32;
  const Tensor q = qkv(t, {3, 2, 4, 16}, 1), k = qkv(t, {3, 2, 20, 16}, 2), v = qkv(t, {3, 2, 20, 16}, 3);
  const Tensor nonpad = Tensor::vector_i64({20, 9, 4});
  check_attention(
      {"nonpad causal", {q, k, v, Tensor(), Tensor(), Tensor(), nonpad}, {{"is_causal", Attribute::of_int(1)}}}, t);
}

TEST_F(GpuAttentionOpsTest, LinearAttentionMatchesCpuForEveryUpdateRule) {
  const DType t = DType::kF32;
  const int64_t b = 2, len = 9, hq = 4, hkv = 2, dk = 16, dv = 24;
  const Tensor q = qkv(t, {b, len, hq * dk}, 1), k = qkv(t, {b, len, hkv * dk}, 2), v = qkv(t, {b, len, hkv * dv}, 3);
  const Tensor past = qkv(t, {b, hkv, dk, dv}, 4);
  const Tensor decay_head = random_tensor(t, {b, len, hkv}, -0.5f, -0.01f, 5);
  const Tensor decay_key = random_tensor(t, {b, len, hkv * dk}, -0.5f, -0.01f, 6);
  const Tensor beta = random_tensor(t, {b, len, hkv}, 0.1f, 0.9f, 7),
               beta1 = random_tensor(t, {b, len, 1}, 0.1f, 0.9f, 8);
  struct Case {
    std::string rule;
    std::vector<Tensor> ins;
  };
  const std::vector<Case> cases = {
      {"linear", {q, k, v}},
      {"gated", {q, k, v, past, decay_head}},
      {"delta", {q, k, v, past, Tensor(), beta1}},
      {"gated_delta", {q, k, v, Tensor(), decay_key, beta}},
  };
  for (const Case& c : cases) {
    const Attrs attrs = {{"q_num_heads", Attribute::of_int(hq)},
                         {"kv_num_heads", Attribute::of_int(hkv)},
                         {"update_rule", Attribute::of_string(c.rule)}};
    for (int o = 0; o < 2; ++o)
      expect_close(run_cuda("LinearAttention", c.ins, attrs, o, 2), run_cpu("LinearAttention", c.ins, attrs, o, 2),
                   1e-4, "LinearAttention " + c.rule + " output " + std::to_string(o));
  }
}

TEST_F(GpuAttentionOpsTest, RotaryEmbeddingMatchesCpuInBothLayouts) {
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16}) {
    for (int interleaved : {0, 1}) {
      const std::string name =
          std::string("RotaryEmbedding ") + type_name(t) + " interleaved " + std::to_string(interleaved);
      // 4-D with position ids into a (positions, half) cache, partial rotation.
      const Tensor x = random_tensor(t, {2, 3, 11, 40}, -2.f, 2.f, 1);
      const Tensor cos = random_tensor(t, {50, 12}, -1.f, 1.f, 2), sin = random_tensor(t, {50, 12}, -1.f, 1.f, 3);
      Tensor ids(DType::kI64, {2, 11});
      for (int64_t i = 0; i < ids.numel(); ++i) ids.mutable_data<int64_t>()[i] = (i * 7) % 50;
      const Attrs partial = {{"interleaved", Attribute::of_int(interleaved)},
                             {"rotary_embedding_dim", Attribute::of_int(24)}};
      expect_close(run_cuda("RotaryEmbedding", {x, cos, sin, ids}, partial),
                   run_cpu("RotaryEmbedding", {x, cos, sin, ids}, partial), tolerance_for(t),
                   name + " 4-D position ids");
      // 3-D with per-token (B, S, half) caches, full rotation.
      const Tensor x3 = random_tensor(t, {2, 11, 4 * 32}, -2.f, 2.f, 4);
      const Tensor c3 = random_tensor(t, {2, 11, 16}, -1.f, 1.f, 5), s3 = random_tensor(t, {2, 11, 16}, -1.f, 1.f, 6);
      const Attrs packed = {{"interleaved", Attribute::of_int(interleaved)}, {"num_heads", Attribute::of_int(4)}};
      expect_close(run_cuda("RotaryEmbedding", {x3, c3, s3}, packed), run_cpu("RotaryEmbedding", {x3, c3, s3}, packed),
                   tolerance_for(t), name + " 3-D");
    }
  }
}

}  // namespace
}  // namespace kiln::gpu_test
