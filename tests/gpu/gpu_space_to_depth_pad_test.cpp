// kiln.SpaceToDepthPad's kernel (kernels/space_to_depth_pad.cu) against the
// CPU reference, bit for bit (a cast rounds once on both, the rest is a
// copy), on random inputs: the pads space_to_depth_stem gives ResNet's 7x7
// pad-3 stem ([4,4,2,2]) and MobileNetV2's / EfficientNet's 3x3 pad-1 stems
// ([2,2,0,0]) at 224 x 224, an odd height, an odd pad before, an odd channel
// count (4 * CC not a multiple of 8: 8-byte packs in 16 bits), each dtype pair
// the stems use (f32 -> f16 and -> bf16, f16 -> f16, f32 -> f32) and the
// others, and an output one element off 16-byte alignment. Then stems
// through the CUDA rewrites in f16, as `kiln build` makes them: one
// SpaceToDepthPad reading the f32 input (its Cast folded), matching the CPU's
// result of the unoptimized graph.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "backends/cuda/kernels/space_to_depth_pad.cuh"
#include "builder/builder.h"
#include "gpu_test_util.h"
#include "ir/parser.h"
#include "passes/pass.h"

namespace kiln::gpu_test {
namespace {

struct Case {
  const char* what;
  std::vector<int64_t> x;     // [N, C, H, W]
  std::vector<int64_t> pads;  // [top, left, bottom, right]
  int64_t channels;
};

const Case kCases[] = {
    {"ResNet 7x7 pad 3 stem", {2, 3, 224, 224}, {4, 4, 2, 2}, 4},
    {"MobileNetV2 3x3 pad 1 stem", {2, 3, 224, 224}, {2, 2, 0, 0}, 4},
    {"odd height, 5 channels to 6", {3, 5, 11, 14}, {4, 4, 3, 2}, 6},
    {"odd pads before", {1, 2, 7, 9}, {1, 3, 0, 0}, 2},
    {"3 channels unpadded (4 * CC = 12)", {2, 3, 10, 6}, {2, 0, 0, 2}, 3},
    {"1 channel to 8", {1, 1, 6, 6}, {0, 0, 2, 2}, 8},
};

Attrs attrs_of(const Case& c, DType to) {
  return {{"pads", ints(c.pads)}, {"channels", i(c.channels)}, {"to", i(static_cast<int64_t>(to))}};
}

void check(const Case& c, DType from, DType to) {
  const std::string what = fmt::format("{} {} -> {}", c.what, dtype_name(from), dtype_name(to));
  const Tensor x = random_tensor(from, c.x, -3.f, 3.f, 7);
  const Tensor cpu = run_cpu("kiln.SpaceToDepthPad", {x}, attrs_of(c, to));
  const Tensor gpu = run_cuda("kiln.SpaceToDepthPad", {x}, attrs_of(c, to));
  ASSERT_TRUE(gpu.is_valid()) << what;
  ASSERT_EQ(gpu.dims(), cpu.dims()) << what;
  expect_equal(gpu, cpu, what);
}

TEST_F(GpuTest, SpaceToDepthPadOfTheStemsMatchesCpu) {
  const std::pair<DType, DType> stems[] = {
      {DType::kF32, DType::kF16}, {DType::kF32, DType::kBF16}, {DType::kF16, DType::kF16}, {DType::kF32, DType::kF32}};
  for (const Case& c : kCases)
    for (const auto& [from, to] : stems) check(c, from, to);
}

TEST_F(GpuTest, SpaceToDepthPadOfTheOtherDtypePairsMatchesCpu) {
  for (DType from : kFloatTypes)
    for (DType to : kFloatTypes) check(kCases[2], from, to);
}

// Without `to`, Y has X's dtype.
TEST_F(GpuTest, SpaceToDepthPadKeepsTheDtypeWithoutTo) {
  const Case& c = kCases[0];
  const Tensor x = random_tensor(DType::kBF16, c.x, -3.f, 3.f, 8);
  const Attrs attrs{{"pads", ints(c.pads)}, {"channels", i(c.channels)}};
  const Tensor gpu = run_cuda("kiln.SpaceToDepthPad", {x}, attrs);
  ASSERT_EQ(gpu.dtype(), DType::kBF16);
  expect_equal(gpu, run_cpu("kiln.SpaceToDepthPad", {x}, attrs), "bf16 without to");
}

// A 16-byte aligned Y takes 16-byte packs; one element further on, element
// stores (and 8-byte packs at 8 bytes further in 16 bits).
TEST_F(GpuTest, SpaceToDepthPadIntoAMisalignedOutputMatchesCpu) {
  const Case& c = kCases[2];
  for (DType to : kFloatTypes) {
    const Tensor x = random_tensor(DType::kF32, c.x, -3.f, 3.f, 9);
    const Tensor ref = run_cpu("kiln.SpaceToDepthPad", {x}, attrs_of(c, to));
    const int es = static_cast<int>(ref.nbytes() / static_cast<size_t>(ref.numel()));
    cuda::DeviceBuffer dx = upload(x), dy = device_zeros(ref.nbytes() + 16);
    for (int offset : {0, es, 4 * es}) {
      void* y = static_cast<char*>(dy.data()) + offset;
      cuda::SpaceToDepthPadParams p;
      p.x_dtype = DType::kF32, p.y_dtype = to, p.x = dx.data(), p.y = y;
      p.n = c.x[0], p.c = c.x[1], p.h = c.x[2], p.w = c.x[3];
      p.channels = c.channels, p.top = c.pads[0], p.left = c.pads[1], p.hb = ref.dims()[1], p.wb = ref.dims()[2];
      ASSERT_TRUE(cuda::launch_space_to_depth_pad(p, nullptr).is_ok());
      expect_equal(download(y, to, ref.dims()), ref,
                   fmt::format("f32 -> {} at offset {}", dtype_name(to), std::to_string(offset)));
    }
  }
}

// An image stem as an exported model has it (f32 Conv + Relu), `kernel` x
// `kernel` with pads `pad`, stride 2, over 3 channels into 32.
std::shared_ptr<Graph> stem_graph(int64_t kernel, int64_t pad) {
  const int64_t h = 40, w = 48, oh = (h + 2 * pad - kernel) / 2 + 1, ow = (w + 2 * pad - kernel) / 2 + 1;
  const std::string text = fmt::format(
      "graph main(%x: f32[N,3,{0},{1}]) {{\n"
      "  %w: f32[32,3,{2},{2}] = const f32[32,3,{2},{2}]\n"
      "  %b: f32[32] = const f32[32]\n"
      "  %c: f32[N,32,{3},{4}] = Conv(%x, %w, %b) {{kernel_shape=[{2},{2}], pads=[{5},{5},{5},{5}], "
      "strides=[2,2]}}\n"
      "  %y: f32[N,32,{3},{4}] = Relu(%c)\n"
      "  return %y\n"
      "}}\n",
      h, w, kernel, oh, ow, pad);
  auto g = parse_graph(text);
  EXPECT_TRUE(g.is_ok()) << g.status().to_string();
  if (!g.is_ok()) return nullptr;
  const float scale = 1.f / static_cast<float>(kernel);
  (*g)->find_value("w")->constant =
      std::make_shared<const Tensor>(random_tensor(DType::kF32, {32, 3, kernel, kernel}, -scale, scale, 2));
  (*g)->find_value("b")->constant = std::make_shared<const Tensor>(random_tensor(DType::kF32, {32}, -0.5f, 0.5f, 3));
  for (const auto& n : (*g)->nodes()) n->opset = 21;
  return *g;
}

void check_stem(int64_t kernel, int64_t pad) {
  const std::string what = fmt::format("{}x{} pad {} stem", kernel, kernel, pad);
  auto reference = stem_graph(kernel, pad), g = stem_graph(kernel, pad);
  ASSERT_TRUE(reference && g);
  PassContext ctx;
  ASSERT_TRUE(run_passes(*g, ctx, default_pipeline()).is_ok());
  BuildConfig config;
  config.backend = "cuda";
  config.fp16 = true;
  ASSERT_TRUE(rewrite_for_cuda(*g, config).is_ok());
  int blocks = 0, moves = 0;
  for (const auto& n : g->nodes()) {
    if (n->op_type == "SpaceToDepthPad") {
      ++blocks;
      EXPECT_EQ(n->inputs[0], g->inputs[0]) << what << ": the node reads the f32 input";
      EXPECT_EQ(n->attr_int("to", 0), static_cast<int64_t>(DType::kF16)) << what;
    }
    moves += n->op_type == "Pad" || n->op_type == "Reshape";
  }
  EXPECT_EQ(blocks, 1) << what;
  EXPECT_EQ(moves, 0) << what;
  for (int64_t batch : {1, 3}) {
    const Tensor x = random_tensor(DType::kF32, {batch, 3, 40, 48}, -1.f, 1.f, 1);
    auto cpu = run_graph_on_cpu(*reference, {RunValue::of(x)});
    ASSERT_TRUE(cpu.is_ok()) << cpu.status().to_string();
    auto gpu = cuda::run_graph_on_cuda(*g, {RunValue::of(x)}, {});
    ASSERT_TRUE(gpu.is_ok()) << what << ": " << gpu.status().to_string();
    const Tensor &r = (*cpu)[0].tensor, &o = (*gpu)[0].tensor;
    ASSERT_EQ(o.dims(), r.dims()) << what;
    double largest = 0, worst = 0;
    for (int64_t e = 0; e < r.numel(); ++e) {
      largest = std::max(largest, std::fabs(r.element_as_double(e)));
      const double d = std::fabs(o.element_as_double(e) - r.element_as_double(e));
      worst = std::isnan(d) ? INFINITY : std::max(worst, d);
    }
    EXPECT_LE(worst, 1e-2 * largest) << what << " batch " << batch << ": largest output " << largest;
  }
}

TEST_F(GpuTest, ResNetStemThroughTheCudaRewritesReadsTheF32InputOnceAndMatchesCpu) { check_stem(7, 3); }

TEST_F(GpuTest, MobileNetStemThroughTheCudaRewritesReadsTheF32InputOnceAndMatchesCpu) { check_stem(3, 1); }

}  // namespace
}  // namespace kiln::gpu_test
