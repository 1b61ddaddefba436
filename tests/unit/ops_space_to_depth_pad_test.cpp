// kiln.SpaceToDepthPad: the CPU reference's layout on the smallest inputs
// that show it (exact values), its shape and type inference, and its
// attribute errors.
#include <gtest/gtest.h>

#include "backends/cpu/cpu_executor.h"
#include "ir/dtype.h"
#include "pass_test_util.h"

namespace kiln {
namespace {

// The graph Y = kiln.SpaceToDepthPad(X) with these attributes, X of `x_type`.
std::string graph_text(const std::string& x_type, const std::string& y_type, const std::string& attrs) {
  return fmt::format(
      "graph main(%x: {}) {{\n"
      "  %y: {} = kiln.SpaceToDepthPad(%x) {{{}}}\n"
      "  return %y\n"
      "}}\n",
      x_type, y_type, attrs);
}

Tensor run(const std::string& text, const Tensor& x) {
  auto g = parse_graph(text);
  EXPECT_TRUE(g.is_ok()) << g.status().to_string();
  if (!g.is_ok()) return Tensor();
  auto out = run_graph_on_cpu(**g, {RunValue::of(x)});
  EXPECT_TRUE(out.is_ok()) << out.status().to_string();
  if (!out.is_ok()) return Tensor();
  return (*out)[0].tensor;
}

std::vector<double> values(const Tensor& t) {
  std::vector<double> v;
  for (int64_t i = 0; i < t.numel(); ++i) v.push_back(t.element_as_double(i));
  return v;
}

// X[c, i, j] = 100 c + 10 i + j + 1: every element distinct and nonzero.
Tensor numbered(DType t, int64_t c, int64_t h, int64_t w) {
  std::vector<float> v;
  for (int64_t ci = 0; ci < c; ++ci)
    for (int64_t i = 0; i < h; ++i)
      for (int64_t j = 0; j < w; ++j) v.push_back(static_cast<float>(100 * ci + 10 * i + j + 1));
  return Tensor::from_vector<float>(t, {1, c, h, w}, v);
}

// [1,3,4,4] with pads 2 on every side and channels 4: 4 x 4 blocks of 16
// channels, (ph * 2 + pw) * 4 + c, the fourth channel of each phase zero.
TEST(SpaceToDepthPad, LaysOutEachBlocksPhasesThenChannelsWithZeroPadsAndPaddingChannels) {
  const Tensor x = numbered(DType::kF32, 3, 4, 4);
  const Tensor y = run(graph_text("f32[1,3,4,4]", "f32[1,4,4,16]", "channels=4, pads=[2,2,2,2]"), x);
  ASSERT_EQ(y.dims(), (std::vector<int64_t>{1, 4, 4, 16}));
  ASSERT_EQ(y.dtype(), DType::kF32);
  const std::vector<double> v = values(y);
  auto block = [&](int64_t hb, int64_t wb) {
    const auto at = v.begin() + (hb * 4 + wb) * 16;
    return std::vector<double>(at, at + 16);
  };
  // Block (1, 1) covers X's rows 0-1 and columns 0-1.
  EXPECT_EQ(block(1, 1), (std::vector<double>{1, 101, 201, 0, 2, 102, 202, 0, 11, 111, 211, 0, 12, 112, 212, 0}));
  // Block (2, 2): rows 2-3, columns 2-3.
  EXPECT_EQ(block(2, 2), (std::vector<double>{23, 123, 223, 0, 24, 124, 224, 0, 33, 133, 233, 0, 34, 134, 234, 0}));
  EXPECT_EQ(block(0, 0), std::vector<double>(16, 0.0));  // all pad
  EXPECT_EQ(block(3, 3), std::vector<double>(16, 0.0));
  // Block (0, 1): the pad rows above columns 0-1.
  EXPECT_EQ(block(0, 1), std::vector<double>(16, 0.0));
  // Every element, from the output side.
  for (int64_t hb = 0; hb < 4; ++hb)
    for (int64_t wb = 0; wb < 4; ++wb)
      for (int64_t k = 0; k < 16; ++k) {
        const int64_t ph = k / 8, pw = k / 4 % 2, c = k % 4, i = 2 * hb + ph - 2, j = 2 * wb + pw - 2;
        const bool inside = c < 3 && i >= 0 && i < 4 && j >= 0 && j < 4;
        EXPECT_EQ(v[static_cast<size_t>((hb * 4 + wb) * 16 + k)], inside ? 100.0 * c + 10 * i + j + 1 : 0.0)
            << hb << "," << wb << "," << k;
      }
}

// An odd pad before (1 on top: row 0 of X is phase 1 of block row 0), none on
// the left, 2 after on the right, one channel padded to 2, and f32 cast to f16.
TEST(SpaceToDepthPad, OddPadsShiftThePhasesAndToCasts) {
  const Tensor x = Tensor::from_vector<float>(DType::kF32, {1, 1, 3, 2}, {1, 2, 3, 4, 5, 6});
  const Tensor y = run(graph_text("f32[1,1,3,2]", "f16[1,2,2,8]",
                                  fmt::format("channels=2, pads=[1,0,0,2], to={}", static_cast<int>(DType::kF16))),
                       x);
  ASSERT_EQ(y.dims(), (std::vector<int64_t>{1, 2, 2, 8}));
  ASSERT_EQ(y.dtype(), DType::kF16);
  EXPECT_EQ(values(y), (std::vector<double>{0, 0, 0, 0, 1, 0, 2, 0,     // block (0, 0): pad row, then row 0
                                            0, 0, 0, 0, 0, 0, 0, 0,     // block (0, 1): right pad
                                            3, 0, 4, 0, 5, 0, 6, 0,     // block (1, 0): rows 1 and 2
                                            0, 0, 0, 0, 0, 0, 0, 0}));  // block (1, 1)
}

// The cast rounds as Cast does: 1 + 2^-11 is halfway between two f16 values
// and rounds to even (1); 1 + 3 * 2^-11 rounds up to 1 + 2^-9.
TEST(SpaceToDepthPad, CastsToF16AsCastDoes) {
  const Tensor x = Tensor::from_vector<float>(DType::kF32, {1, 2, 2, 2},
                                              {1.f + 1.f / 2048, 1.f + 3.f / 2048, -0.5f, 65504.f, 3, 4, 5, 6});
  const Tensor y = run(graph_text("f32[1,2,2,2]", "f16[1,1,1,8]",
                                  fmt::format("channels=2, pads=[0,0,0,0], to={}", static_cast<int>(DType::kF16))),
                       x);
  EXPECT_EQ(values(y), (std::vector<double>{1, 3, 1 + 1.0 / 512, 4, -0.5, 5, 65504, 6}));
}

TEST(SpaceToDepthPad, InfersBlocksOfSymbolicBatchAndHeightAndTheDtype) {
  auto g = parse_graph(graph_text("f16[N,3,H,224]", "f16[?,?,?,?]", "channels=4, pads=[4,4,2,2]"));
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  std::vector<Diagnostic> diags;
  infer_shapes(**g, diags);
  ASSERT_TRUE(diags.empty()) << diags[0].message;
  EXPECT_EQ((*g)->outputs[0]->type.to_string(), "f16[N,?,115,16]");
}

TEST(SpaceToDepthPad, RejectsAttributesThatDoNotTileTheInput) {
  const std::string x = "f32[1,3,224,224]", y = "f32[1,115,115,16]";
  EXPECT_EQ(first_diagnostic(graph_text(x, y, "channels=4, pads=[4,4,3,2]")),
            "kiln.SpaceToDepthPad: H + pads = 224 + 4 + 3 = 231 is odd; the 2x2 blocks must tile it");
  EXPECT_EQ(first_diagnostic(graph_text(x, y, "channels=4, pads=[4,4,2,1]")),
            "kiln.SpaceToDepthPad: W + pads = 224 + 4 + 1 = 229 is odd; the 2x2 blocks must tile it");
  EXPECT_EQ(first_diagnostic(graph_text(x, y, "channels=2, pads=[4,4,2,2]")),
            "kiln.SpaceToDepthPad: channels = 2 is below X's 3 channels");
  EXPECT_EQ(first_diagnostic(graph_text(x, y, "channels=4, pads=[4,4,2]")),
            "kiln.SpaceToDepthPad: pads has 3 entries, expected 4 [top, left, bottom, right]");
  EXPECT_EQ(first_diagnostic(graph_text(x, y, "channels=4, pads=[4,-2,2,4]")),
            "kiln.SpaceToDepthPad: pads [4,-2,2,4] must not be negative");
  EXPECT_EQ(first_diagnostic(graph_text(x, y, "pads=[4,4,2,2]")),
            "kiln.SpaceToDepthPad: attribute 'channels' is required");
  EXPECT_EQ(first_diagnostic(graph_text(x, y, "channels=0, pads=[4,4,2,2]")),
            "kiln.SpaceToDepthPad: channels = 0 must be positive");
  EXPECT_EQ(first_diagnostic(graph_text(x, y, "channels=4, pads=[4,4,2,2], to=7")),
            "kiln.SpaceToDepthPad: 'to' = 7 must be f16, bf16, f32 or f64");
  EXPECT_EQ(first_diagnostic(graph_text("i64[1,3,224,224]", y, "channels=4, pads=[4,4,2,2]")),
            "kiln.SpaceToDepthPad: X is i64; it must be f16, bf16, f32 or f64");
  EXPECT_EQ(first_diagnostic(graph_text("f32[1,224,224]", y, "channels=4, pads=[4,4,2,2]")),
            "kiln.SpaceToDepthPad: X must be 4-D [N, C, H, W], has rank 3");
  EXPECT_EQ(first_diagnostic(graph_text(x, y, "channels=4, pads=[4,4,2,2]")), "none");
}

}  // namespace
}  // namespace kiln
