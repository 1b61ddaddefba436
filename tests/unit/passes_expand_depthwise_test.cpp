// fuse_expand_depthwise before and after as IR text, each near miss it must
// leave alone, kiln.ExpandDepthwiseConv's inference errors and CPU kernel
// (the unfused pair's bits in f16, bf16 and f32), the plan that decides
// which layers qualify, and a MobileNetV2 block through the whole CUDA
// rewrite ending as one node.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "backends/cpu/cpu_executor.h"
#include "backends/cuda/kernels/expand_depthwise_plan.h"
#include "builder/builder.h"
#include "ir/half.h"
#include "pass_test_util.h"

namespace kiln {
namespace {

// An expansion and a depthwise, channels-last, with every knob a near miss turns.
struct Block {
  std::string dtype = "f16";
  int n = 1, h = 8, w = 8, c = 16, e = 96, k = 3;
  std::string strides = "[2,2]", pads = "[1,1,1,1]", dilations = "", expand_strides = "";
  int expand_group = 1;
  bool bias = true, expand_residual = false, dw_residual = false, expansion_is_output = false, other_reader = false;
  bool channels_last = true;
  std::string act = "activation=\"Clip\", activation_params=[0,6]";
  bool data = false;  // weights with values (else zeros)

  int out(int in, int stride, int pad) const { return (in + 2 * pad - k) / stride + 1; }
  std::string text() const {
    const int s = strides == "[1,1]" ? 1 : 2, pad = (k - 1) / 2;
    const int eh = expand_strides.empty() ? h : (h - 1) / 2 + 1, ew = expand_strides.empty() ? w : (w - 1) / 2 + 1;
    const int oh = strides == "[1,2]" ? out(eh, 1, pad) : out(eh, s, pad), ow = out(ew, s, pad);
    auto t = [&](std::vector<int> d) {
      if (!channels_last && d.size() == 4 && d[0] == n) d = {d[0], d[3], d[1], d[2]};
      std::string s = dtype + "[";
      for (size_t i = 0; i < d.size(); ++i) s += (i ? "," : "") + std::to_string(d[i]);
      return s + "]";
    };
    auto cst = [&](const std::string& name, std::vector<int> d, int mul) {
      int64_t count = 1;
      for (int x : d) count *= x;
      return fmt::format("  %{}: {} = const {}{}\n", name, t(d), t(d), data ? "{" + eighths(count, mul) + "}" : "");
    };
    const int wc = c / expand_group;
    std::string g =
        fmt::format("graph main(%x: {}{}) {{\n", t({n, h, w, c}), dw_residual ? ", %z: " + t({n, oh, ow, e}) : "");
    g += cst("w1", channels_last ? std::vector<int>{e, 1, 1, wc} : std::vector<int>{e, wc, 1, 1}, 7);
    if (bias) g += cst("b1", {e}, 5);
    g += cst("w2", channels_last ? std::vector<int>{e, k, k, 1} : std::vector<int>{e, 1, k, k}, 3);
    if (bias) g += cst("b2", {e}, 11);
    const std::string layout = channels_last ? ", channels_last=1" : "";
    g += fmt::format("  %e: {} = kiln.FusedConv(%x, %w1{}{}) {{{}{}{}{}}}\n", t({n, eh, ew, e}),
                     bias              ? ", %b1"
                     : expand_residual ? ", _"
                                       : "",
                     expand_residual ? ", %x" : "", act, layout,
                     expand_group > 1 ? fmt::format(", group={}", expand_group) : "",
                     expand_strides.empty() ? "" : ", strides=" + expand_strides);
    g += fmt::format(
        "  %y: {} = kiln.FusedConv(%e, %w2{}{}) {{{}{}{}, group={}, pads={}, strides={}}}\n", t({n, oh, ow, e}),
        bias          ? ", %b2"
        : dw_residual ? ", _"
                      : "",
        dw_residual ? ", %z" : "", act, layout, dilations.empty() ? "" : ", dilations=" + dilations, e, pads, strides);
    if (other_reader) g += fmt::format("  %r: {} = Relu(%e)\n", t({n, eh, ew, e}));
    g += std::string("  return %y") + (expansion_is_output ? ", %e" : "") + (other_reader ? ", %r" : "") + "\n}\n";
    return g;
  }
};

bool fused(const Block& b) {
  return run_pass(fuse_expand_depthwise, b.text()).find("ExpandDepthwiseConv") != std::string::npos;
}

// The pass's text, or the input's when it is left alone.
std::string printed(const std::string& text) {
  auto g = parse_graph(text);
  return g ? print_graph(**g) : g.status().to_string();
}

// ---- the rewrite ---------------------------------------------------------

// MobileNetV2's stride-2 block (ReLU6 on both): one node with both activations.
TEST(FuseExpandDepthwise, MobileNetV2StrideTwoBlockBecomesOneNode) {
  EXPECT_EQ(run_pass(fuse_expand_depthwise, Block{}.text()),
            "graph main(%x: f16[1,8,8,16]) {\n"
            "  %w1: f16[96,1,1,16] = const f16[96,1,1,16]\n"
            "  %b1: f16[96] = const f16[96]\n"
            "  %w2: f16[96,3,3,1] = const f16[96,3,3,1]\n"
            "  %b2: f16[96] = const f16[96]\n"
            "  %y: f16[1,4,4,96] = kiln.ExpandDepthwiseConv(%x, %w1, %b1, %w2, %b2) {activation=\"Clip\", "
            "activation_params=[0,6], expand_activation=\"Clip\", expand_activation_params=[0,6], pads=[1,1,1,1], "
            "strides=[2,2]}\n"
            "  return %y\n"
            "}\n");
}

// EfficientNet's 5x5 stride-1 block (SiLU, bf16) without biases: B1's place stays empty, B2 is left off.
TEST(FuseExpandDepthwise, EfficientNetFiveByFiveWithoutBiases) {
  Block b;
  b.dtype = "bf16", b.c = 40, b.e = 240, b.k = 5, b.strides = "[1,1]", b.pads = "[2,2,2,2]", b.bias = false;
  b.act = "activation=\"Silu\"";
  const std::string out = run_pass(fuse_expand_depthwise, b.text());
  EXPECT_NE(out.find("%y: bf16[1,8,8,240] = kiln.ExpandDepthwiseConv(%x, %w1, _, %w2) {activation=\"Silu\", "
                     "expand_activation=\"Silu\", pads=[2,2,2,2], strides=[1,1]}\n"),
            std::string::npos)
      << out;
  EXPECT_EQ(out.find("FusedConv"), std::string::npos) << out;
}

// Each near miss leaves the graph as it was.
TEST(FuseExpandDepthwise, LeavesNearMissesAlone) {
  std::vector<std::pair<std::string, Block>> misses;
  auto miss = [&](const char* why, auto change) {
    Block b;
    change(b);
    misses.emplace_back(why, b);
  };
  miss("the expansion has another reader", [](Block& b) { b.other_reader = true; });
  miss("the expansion is a graph output", [](Block& b) { b.expansion_is_output = true; });
  miss("residual on the expansion", [](Block& b) { b.expand_residual = true, b.c = 96; });
  miss("residual on the depthwise", [](Block& b) { b.dw_residual = true; });
  miss("a stride-2 1x1", [](Block& b) { b.expand_strides = "[2,2]", b.h = b.w = 16; });
  miss("f32", [](Block& b) { b.dtype = "f32"; });
  miss("C not a multiple of 8", [](Block& b) { b.c = 12; });
  miss("E not a multiple of 32", [](Block& b) { b.e = 40; });
  miss("a grouped 1x1", [](Block& b) { b.expand_group = 2; });
  miss("uneven strides", [](Block& b) { b.strides = "[1,2]"; });
  miss("dilation", [](Block& b) { b.dilations = "[2,2]", b.pads = "[2,2,2,2]"; });
  miss("NCHW", [](Block& b) { b.channels_last = false; });
  miss("a 4x4 kernel", [](Block& b) { b.k = 4; });
  miss("stride 3", [](Block& b) { b.strides = "[3,3]"; });
  for (const auto& [why, b] : misses) {
    const std::string text = b.text();
    EXPECT_EQ(run_pass(fuse_expand_depthwise, text), printed(text)) << why;
  }
  Block ok;
  EXPECT_TRUE(fused(ok)) << "the near misses' base case fuses";
}

// ---- the op --------------------------------------------------------------

std::string fused_graph(const std::string& dtype, const std::string& x, const std::string& w1, const std::string& w2,
                        const std::string& extra_inputs, const std::string& y) {
  return fmt::format(
      "graph main(%x: {0}{1}) {{\n"
      "  %w1: {0}{2} = const {0}{2}\n"
      "  %b: {0}[4] = const {0}[4]\n"
      "  %w2: {0}{3} = const {0}{3}\n"
      "  %y: {0}{5} = kiln.ExpandDepthwiseConv(%x, %w1, %b, %w2{4}) {{pads=[1,1,1,1]}}\n"
      "  return %y\n"
      "}}\n",
      dtype, x, w1, w2, extra_inputs, y);
}

TEST(ExpandDepthwiseConv, InfersTheDepthwiseOutputShape) {
  auto g = parse_graph(fused_graph("f16", "[2,5,7,8]", "[4,1,1,8]", "[4,3,3,1]", ", %b", "[2,5,7,4]"));
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  std::vector<Diagnostic> diags;
  infer_shapes(**g, diags);
  EXPECT_TRUE(diags.empty()) << diags[0].message;
  EXPECT_EQ((*g)->outputs[0]->type.to_string(), "f16[2,5,7,4]");
}

TEST(ExpandDepthwiseConv, NamesWhatDoesNotFit) {
  EXPECT_EQ(first_diagnostic(fused_graph("f16", "[2,5,7]", "[4,1,1,8]", "[4,3,3,1]", "", "[2,5,7,4]")),
            "kiln.ExpandDepthwiseConv: X must be [N, H, W, C], got f16[2,5,7]");
  EXPECT_EQ(first_diagnostic(fused_graph("f16", "[2,5,7,8]", "[4,1,1,6]", "[4,3,3,1]", "", "[2,5,7,4]")),
            "kiln.ExpandDepthwiseConv: W1 f16[4,1,1,6] reads 6 channels, X f16[2,5,7,8] has 8");
  EXPECT_EQ(first_diagnostic(fused_graph("f16", "[2,5,7,8]", "[4,3,3,8]", "[4,3,3,1]", "", "[2,5,7,4]")),
            "kiln.ExpandDepthwiseConv: W1 must be a 1x1 kernel [E, 1, 1, C], got f16[4,3,3,8]");
  EXPECT_EQ(first_diagnostic(fused_graph("f16", "[2,5,7,8]", "[4,1,1,8]", "[6,3,3,1]", "", "[2,5,7,6]")),
            "kiln.ExpandDepthwiseConv: W2 f16[6,3,3,1] has 6 channels, W1 f16[4,1,1,8] expands to 4");
  EXPECT_EQ(first_diagnostic(fused_graph("f16", "[2,5,7,8]", "[4,1,1,8]", "[4,3,3,2]", "", "[2,5,7,4]")),
            "kiln.ExpandDepthwiseConv: W2 must be depthwise [E, KH, KW, 1] (group = E, one channel each), got "
            "f16[4,3,3,2]");
  EXPECT_EQ(first_diagnostic(fused_graph("f16", "[2,5,7,8]", "[4,1,1,8]", "[4,3,3,1]", ", %w1", "[2,5,7,4]")),
            "kiln.ExpandDepthwiseConv: B2 must be [E] with E = 4, got f16[4,1,1,8]");
  EXPECT_EQ(first_diagnostic(fused_graph("f16", "[2,5,7,8]", "[4,1,1,8]", "[4,3,3,1,1]", "", "[2,5,7,4]")),
            "kiln.ExpandDepthwiseConv: W2 must be [E, KH, KW, 1], got f16[4,3,3,1,1]");
  const std::string mixed =
      "graph main(%x: f16[1,3,3,8]) {\n"
      "  %w1: f32[4,1,1,8] = const f32[4,1,1,8]\n"
      "  %w2: f16[4,3,3,1] = const f16[4,3,3,1]\n"
      "  %y: f16[1,1,1,4] = kiln.ExpandDepthwiseConv(%x, %w1, _, %w2)\n"
      "  return %y\n"
      "}\n";
  EXPECT_EQ(first_diagnostic(mixed), "kiln.ExpandDepthwiseConv: input 1 has dtype f32, X has f16");
  const std::string bad_act =
      "graph main(%x: f16[1,3,3,8]) {\n"
      "  %w1: f16[4,1,1,8] = const f16[4,1,1,8]\n"
      "  %w2: f16[4,3,3,1] = const f16[4,3,3,1]\n"
      "  %y: f16[1,1,1,4] = kiln.ExpandDepthwiseConv(%x, %w1, _, %w2) {expand_activation=\"Tanh\"}\n"
      "  return %y\n"
      "}\n";
  EXPECT_EQ(first_diagnostic(bad_act), "FusedConv: activation 'Tanh' is not one of '', Relu, Clip, Sigmoid, Silu");
}

Tensor random_tensor(DType t, std::vector<int64_t> dims, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  Tensor out(t, std::move(dims));
  for (int64_t i = 0; i < out.numel(); ++i) {
    const float v = u(rng);
    if (t == DType::kF32) out.mutable_data<float>()[i] = v;
    if (t == DType::kF16) out.mutable_data<uint16_t>()[i] = f32_to_f16(v);
    if (t == DType::kBF16) out.mutable_data<uint16_t>()[i] = f32_to_bf16(v);
  }
  return out;
}

// The op on the CPU gives the two FusedConv layers' bytes, in every float
// dtype it takes, with activations whose rounding shows (SiLU) and odd sizes.
TEST(ExpandDepthwiseConv, CpuGivesTheUnfusedPairsBytes) {
  for (const char* dtype : {"f16", "bf16", "f32"}) {
    for (const char* strides : {"[1,1]", "[2,2]"}) {
      Block b;
      b.dtype = dtype, b.h = 7, b.w = 5, b.c = 8, b.e = 32, b.n = 2, b.strides = strides, b.data = true;
      b.act = "activation=\"Silu\"";
      const std::string pair = b.text();
      auto g = parse_graph(pair);
      ASSERT_TRUE(g.is_ok()) << g.status().to_string() << pair;
      const Tensor x = random_tensor((*g)->inputs[0]->type.dtype, {2, 7, 5, 8}, 7);
      auto before = run_graph_on_cpu(**g, {RunValue::of(x)});
      ASSERT_TRUE(before.is_ok()) << before.status().to_string();
      // The fused node written out by hand (the pass does not fuse f32).
      std::string text = pair;
      const size_t e_at = text.find("  %e:"), y_end = text.find('\n', text.find("  %y:"));
      const std::string y_decl =
          text.substr(text.find("  %y:"), text.find(" = ", text.find("  %y:")) - text.find("  %y:"));
      text.replace(e_at, y_end - e_at,
                   y_decl +
                       " = kiln.ExpandDepthwiseConv(%x, %w1, %b1, %w2, %b2) {activation=\"Silu\", "
                       "expand_activation=\"Silu\", pads=[1,1,1,1], strides=" +
                       strides + "}");
      auto f = parse_graph(text);
      ASSERT_TRUE(f.is_ok()) << f.status().to_string() << text;
      auto after = run_graph_on_cpu(**f, {RunValue::of(x)});
      ASSERT_TRUE(after.is_ok()) << after.status().to_string() << text;
      const Tensor &want = (*before)[0].tensor, &got = (*after)[0].tensor;
      ASSERT_EQ(got.dims(), want.dims()) << dtype;
      EXPECT_EQ(std::memcmp(got.raw(), want.raw(), got.nbytes()), 0) << dtype << " " << strides;
    }
  }
}

// ---- the plan ------------------------------------------------------------

cuda::ExpandDwLayer layer(int64_t n, int64_t h, int64_t c, int64_t e, int64_t k, int64_t s) {
  cuda::ExpandDwLayer l;
  l.f16_or_bf16 = true;
  l.n = n, l.h = h, l.w = h, l.c = c, l.e = e, l.k = k, l.s = s;
  l.pt = l.pl = l.pb = l.pr = (k - 1) / 2;
  return l;
}

// Every MobileNetV2 and EfficientNet-B0 expansion block at batch 128 has a
// plan within the shared memory of two blocks per SM and enough units to
// fill 132 SMs twice.
TEST(ExpandDepthwisePlan, TakesEveryRealBlockAndFillsTheGpu) {
  const std::vector<cuda::ExpandDwLayer> blocks = {
      layer(128, 112, 16, 96, 3, 2),  layer(128, 56, 24, 144, 3, 1),  layer(128, 56, 24, 144, 3, 2),
      layer(128, 28, 32, 192, 3, 1),  layer(128, 28, 32, 192, 3, 2),  layer(128, 14, 64, 384, 3, 1),
      layer(128, 14, 96, 576, 3, 1),  layer(128, 14, 96, 576, 3, 2),  layer(128, 7, 160, 960, 3, 1),
      layer(128, 112, 16, 96, 3, 2),  layer(128, 56, 24, 144, 5, 2),  layer(128, 28, 40, 240, 5, 1),
      layer(128, 28, 40, 240, 3, 2),  layer(128, 14, 80, 480, 3, 1),  layer(128, 14, 80, 480, 5, 1),
      layer(128, 14, 112, 672, 5, 1), layer(128, 14, 112, 672, 5, 2), layer(128, 7, 192, 1152, 5, 1),
      layer(128, 7, 192, 1152, 3, 1)};
  for (const cuda::ExpandDwLayer& l : blocks) {
    const auto p = cuda::plan_expand_dw(l);
    ASSERT_TRUE(p.has_value()) << l.h << " " << l.c << " " << l.e;
    EXPECT_LE(p->smem_bytes, cuda::kExpandDwMaxSmem);
    EXPECT_GE(p->units, 2 * 264) << l.h << " " << l.c << " " << l.e;
    EXPECT_EQ(p->slices * p->cb, l.e);
    EXPECT_EQ(p->rows % 16, 0);
    EXPECT_GE(p->tiles_h * p->th, l.oh());
  }
}

// A 7 x 7 layer fills the GPU by splitting E into chunks, not the image.
TEST(ExpandDepthwisePlan, SmallImagesSplitTheExpandedChannels) {
  const auto p = cuda::plan_expand_dw(layer(128, 7, 160, 960, 3, 1));
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->th, 7);
  EXPECT_EQ(p->tw, 7);
  EXPECT_GT(p->chunks, 1);
  EXPECT_EQ(p->rows, 64);  // the 49 pixels of the image: the 9 x 9 halo's border is padding
}

TEST(ExpandDepthwisePlan, DeclinesWhatTheKernelCannotRun) {
  auto l = layer(1, 8, 16, 96, 3, 1);
  EXPECT_TRUE(cuda::plan_expand_dw(l).has_value());
  auto f32 = l;
  f32.f16_or_bf16 = false;
  EXPECT_FALSE(cuda::plan_expand_dw(f32).has_value());
  auto wide = l;
  wide.c = 1024;
  EXPECT_FALSE(cuda::plan_expand_dw(wide).has_value());
  auto odd_e = l;
  odd_e.e = 100;
  EXPECT_FALSE(cuda::plan_expand_dw(odd_e).has_value());
  auto k9 = layer(1, 16, 16, 96, 9, 1);
  EXPECT_FALSE(cuda::plan_expand_dw(k9).has_value());
}

// ---- the whole CUDA rewrite ----------------------------------------------

// MobileNetV2's features.2 as the exporter writes it (NCHW f32: Conv + Clip
// twice, the projection Conv) plus its neighbour's residual block, through
// the default pipeline and rewrite_for_cuda in f16: each expansion and its
// depthwise end as one node, no FusedConv with group = E is left, and the
// CPU result is the f16 graph's within f16 rounding.
TEST(FuseExpandDepthwise, MobileNetV2BlocksThroughTheCudaRewrites) {
  auto conv = [](const std::string& y, const std::string& x, const std::string& w, int cout, int h, const char* attrs) {
    return fmt::format(
        "  %{0}_c: f32[1,{2},{3},{3}] = Conv(%{1}, %{4}, %{4}_b){5}\n"
        "  %{0}: f32[1,{2},{3},{3}] = Clip(%{0}_c, %lo, %hi)\n",
        y, x, cout, h, w, *attrs ? fmt::format(" {{{}}}", attrs) : "");
  };
  auto weight = [](const std::string& name, std::vector<int> d, int mul) {
    int64_t n = 1;
    std::string dims;
    for (int x : d) n *= x, dims += (dims.empty() ? "" : ",") + std::to_string(x);
    return fmt::format("  %{0}: f32[{1}] = const f32[{1}]{{{2}}}\n  %{0}_b: f32[{3}] = const f32[{3}]{{{4}}}\n", name,
                       dims, eighths(n, mul), d[0], eighths(d[0], mul + 2));
  };
  std::string text =
      "graph main(%x: f32[1,16,16,16]) {\n  %lo: f32[] = const f32[]{0}\n  %hi: f32[] = const f32[]{6}\n";
  text += weight("we1", {96, 16, 1, 1}, 7) + weight("wd1", {96, 1, 3, 3}, 5) + weight("wp1", {24, 96, 1, 1}, 3);
  text += weight("we2", {144, 24, 1, 1}, 7) + weight("wd2", {144, 1, 3, 3}, 5) + weight("wp2", {24, 144, 1, 1}, 3);
  text += conv("e1", "x", "we1", 96, 16, "");
  text += conv("d1", "e1", "wd1", 96, 8, "group=96, pads=[1,1,1,1], strides=[2,2]");
  text += "  %p1: f32[1,24,8,8] = Conv(%d1, %wp1, %wp1_b)\n";
  text += conv("e2", "p1", "we2", 144, 8, "");
  text += conv("d2", "e2", "wd2", 144, 8, "group=144, pads=[1,1,1,1]");
  text += "  %p2: f32[1,24,8,8] = Conv(%d2, %wp2, %wp2_b)\n";
  text += "  %y: f32[1,24,8,8] = Add(%p1, %p2)\n  return %y\n}\n";
  auto g = parse_graph(text);
  ASSERT_TRUE(g.is_ok()) << g.status().to_string() << text;
  const std::vector<RunValue> feeds = {RunValue::of(random_tensor(DType::kF32, {1, 16, 16, 16}, 3))};
  auto before = run_graph_on_cpu(**g, feeds);
  ASSERT_TRUE(before.is_ok()) << before.status().to_string();
  PassContext ctx;
  ASSERT_TRUE(run_passes(**g, ctx, default_pipeline()).is_ok());
  BuildConfig config;
  config.backend = "cuda";
  config.fp16 = true;
  ASSERT_TRUE(rewrite_for_cuda(**g, config).is_ok());
  int fused_nodes = 0;
  for (const auto& n : (*g)->nodes()) {
    fused_nodes += n->op_type == "ExpandDepthwiseConv";
    if (n->op_type == "FusedConv") EXPECT_EQ(n->attr_int("group", 1), 1) << print_graph(**g);
  }
  EXPECT_EQ(fused_nodes, 2) << print_graph(**g);
  auto after = run_graph_on_cpu(**g, feeds);
  ASSERT_TRUE(after.is_ok()) << after.status().to_string();
  const Tensor &b = (*before)[0].tensor, &a = (*after)[0].tensor;
  ASSERT_EQ(a.dims(), b.dims());
  double largest = 0, worst = 0;
  for (int64_t i = 0; i < b.numel(); ++i) {
    largest = std::max(largest, std::fabs(b.element_as_double(i)));
    worst = std::max(worst, std::fabs(a.element_as_double(i) - b.element_as_double(i)));
  }
  EXPECT_LE(worst, 2e-2 * largest) << "largest " << largest;
}

}  // namespace
}  // namespace kiln
