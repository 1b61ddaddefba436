// CUDA kiln.PackedAttention (Q, K, V read in place from one packed QKV tensor
// with row strides) on every attention tactic against the CPU oracle, which
// runs Attention's reference on the sliced Q, K, V.
#include <cstdint>
#include <cstdio>

#include "backends/cuda/cuda_runner.h"
#include "backends/cuda/ops/cudnn_attention.h"
#include "gpu_test_util.h"
#include "ir/element_cast.h"

namespace kiln::gpu_test {
namespace {

using Dims = std::vector<int64_t>;

class GpuPackedAttentionTest : public GpuTest {};

struct PackedCase {
  std::string what;
  int64_t hq = 0, hkv = 0, d = 0;
  Tensor qkv, mask;  // mask invalid: none
  Attrs extra;
};

PackedCase make_case(std::string what, DType t, int64_t batch, int64_t len, int64_t hq, int64_t hkv, int64_t d,
                     uint32_t seed, Attrs extra = {}) {
  PackedCase c{std::move(what), hq, hkv, d};
  c.qkv = random_tensor(t, {batch, len, (hq + 2 * hkv) * d}, -1.f, 1.f, seed);
  c.extra = std::move(extra);
  return c;
}

Attrs attrs_of(const PackedCase& c) {
  Attrs a = c.extra;
  a["q_num_heads"] = Attribute::of_int(c.hq);
  a["kv_num_heads"] = Attribute::of_int(c.hkv);
  return a;
}

std::vector<Tensor> inputs_of(const PackedCase& c) {
  std::vector<Tensor> ins = {c.qkv};
  if (c.mask.is_valid()) ins.push_back(c.mask);
  return ins;
}

// kiln.PackedAttention on the GPU with its kiln.tactic set.
Tensor run_tactic(const PackedCase& c, const std::string& tactic) {
  std::vector<RunValue> values;
  auto g = one_node_graph("kiln.PackedAttention", inputs_of(c), attrs_of(c), 1, 1, values);
  g->nodes()[0]->metadata["kiln.tactic"] = tactic;
  auto out = cuda::run_graph_on_cuda(*g, std::move(values), {});
  EXPECT_TRUE(out.is_ok()) << c.what << " " << tactic << ": " << out.status().to_string();
  return out.is_ok() ? (*out)[0].tensor : Tensor();
}

// The cuDNN spec the "cudnn" tactic builds for the case (3-D form, packed rows).
bool cudnn_takes(const PackedCase& c) {
  std::vector<RunValue> values;
  auto g = one_node_graph("kiln.PackedAttention", inputs_of(c), attrs_of(c), 1, 1, values);
  const int64_t b = c.qkv.dim(0), s = c.qkv.dim(1);
  std::optional<cuda::CudnnSdpaSpec> spec = cuda::cudnn_sdpa_spec(
      *g->nodes()[0], c.qkv.dtype(), {b, s, c.hq * c.d}, {b, s, c.hkv * c.d}, {b, s, c.hkv * c.d},
      c.mask.is_valid() ? c.mask.dtype() : DType::kUndefined, c.mask.is_valid() ? &c.mask.dims() : nullptr, SIZE_MAX);
  if (!spec) return false;
  cuda::use_packed_qkv_rows(*spec, c.qkv.dim(2));
  return cuda::cudnn_sdpa_plan(*spec) != nullptr;
}

// Every tactic that applies: "simt" always; "tc", "mma" and "flash" for f16/bf16 with
// D in {32, 64, 128} and no softcap; "cudnn" where compiled (no softcap) (its oracle is
// the CPU in f32 on the widened inputs, rounded to T, as for Attention: cuDNN
// keeps scores and softmax in f32). `cudnn_must_take`: cuDNN has to build a
// plan (else the run would silently be SIMT's).
void check_tactics(const PackedCase& c, bool cudnn_must_take) {
  const DType t = c.qkv.dtype();
  const std::string name = c.what + " " + std::string(dtype_name(t));
  const Tensor cpu = run_cpu("kiln.PackedAttention", inputs_of(c), attrs_of(c), 0, 1, 1);
  expect_close(run_tactic(c, "simt"), cpu, attention_tolerance(t), name + " simt");
  const bool half = t == DType::kF16 || t == DType::kBF16;
  const bool tensor_core = half && (c.d == 32 || c.d == 64 || c.d == 128) && !c.extra.count("softcap");
  if (tensor_core) {
    for (const char* tactic : {"tc", "mma", "flash"})
      expect_close(run_tactic(c, tactic), cpu, attention_tolerance(t), name + " " + tactic);
  }
  if (!half || c.extra.count("softcap") || !cuda::cudnn_sdpa_compiled()) return;
  const bool took = cudnn_takes(c);
  if (cudnn_must_take) {
    EXPECT_TRUE(took) << name << ": cuDNN built no plan";
  } else {
    std::printf("[   INFO   ] %s: %s\n", name.c_str(), took ? "cuDNN runs it" : "cuDNN declined (SIMT ran)");
  }
  std::vector<Tensor> wide;
  for (const Tensor& in : inputs_of(c)) {
    auto w = cast_tensor(in, DType::kF32);
    ASSERT_TRUE(w.is_ok()) << w.status().to_string();
    wide.push_back(std::move(w).value());
  }
  auto want = cast_tensor(run_cpu("kiln.PackedAttention", wide, attrs_of(c), 0, 1, 1), t);
  ASSERT_TRUE(want.is_ok()) << want.status().to_string();
  expect_close(run_tactic(c, "cudnn"), *want, attention_tolerance(t), name + " cudnn");
}

// A key-padding mask [B, 1, 1, S] of dtype t: the last `pad` keys of the
// second sequence hidden by -1e4, the rest small values.
Tensor key_padding(DType t, int64_t batch, int64_t len, int64_t pad, uint32_t seed) {
  Tensor m = random_tensor(t, {batch, 1, 1, len}, -0.5f, 0.5f, seed);
  for (int64_t j = len - pad; j < len; ++j)
    m.mutable_data<uint16_t>()[len + j] = t == DType::kF16 ? f32_to_f16(-1e4f) : f32_to_bf16(-1e4f);
  return m;
}

// BERT-base's layer (S = 128, 12 heads of 64, a key-padding mask), ViT-B's
// 197 tokens, GPT-2's causal layer (with and without its additive mask).
TEST_F(GpuPackedAttentionTest, TransformerLayersMatchCpuOnEveryTactic) {
  for (DType t : {DType::kF16, DType::kBF16}) {
    PackedCase bert = make_case("BERT s128 h12", t, 2, 128, 12, 12, 64, 1);
    check_tactics(bert, true);
    bert.what = "BERT with a key padding mask";
    bert.mask = key_padding(t, 2, 128, 28, 2);
    check_tactics(bert, false);
    check_tactics(make_case("ViT s197 h12", t, 2, 197, 12, 12, 64, 3), true);
    PackedCase gpt2 = make_case("GPT-2 causal", t, 2, 128, 12, 12, 64, 4, {{"is_causal", Attribute::of_int(1)}});
    check_tactics(gpt2, true);
    gpt2.what = "GPT-2 causal with a float mask";
    gpt2.mask = random_tensor(t, {1, 1, 128, 128}, -3.f, 1.f, 5);
    check_tactics(gpt2, false);
  }
}

// GQA (8 query heads over 2), head sizes 32 and 128, a scale, and lengths
// that are no multiple of any tile.
TEST_F(GpuPackedAttentionTest, GroupedQueriesAndHeadSizesMatchCpuOnEveryTactic) {
  for (DType t : {DType::kF16, DType::kBF16}) {
    check_tactics(make_case("GQA 8/2 causal", t, 2, 70, 8, 2, 64, 6, {{"is_causal", Attribute::of_int(1)}}), true);
    check_tactics(make_case("D=32", t, 1, 77, 4, 4, 32, 7, {{"scale", Attribute::of_float(0.2f)}}), true);
    check_tactics(make_case("D=128 GQA 4/1", t, 1, 45, 4, 1, 128, 8), true);
  }
}

// The SIMT kernel takes what the others do not: f32, an odd head size (rows
// of 17 * 5 elements, no 16-byte alignment), softcap.
TEST_F(GpuPackedAttentionTest, SimtTakesF32OddHeadsAndSoftcap) {
  check_tactics(make_case("f32 causal", DType::kF32, 2, 33, 4, 2, 64, 9, {{"is_causal", Attribute::of_int(1)}}), false);
  check_tactics(make_case("f32 D=17 GQA 3/1", DType::kF32, 2, 21, 3, 1, 17, 10), false);
  check_tactics(make_case("f16 softcap", DType::kF16, 1, 40, 2, 2, 64, 11, {{"softcap", Attribute::of_float(2.f)}}),
                false);
}

}  // namespace
}  // namespace kiln::gpu_test
