// The CUDA executor (run plans, arena, host shape program, breaks, CPU
// fallback, output copies, CUDA graphs) and the runtime API on the cuda
// backend, with test-only ops of domain "gputest" so they need no real op
// family: Neg (a GPU kernel), Flat (a view: alias of its input), ReshapeTo
// (a view whose shape is a host input), NoGpu (a CPU kernel only).
#include <gtest/gtest.h>

#include <cstdlib>

#include "backends/cpu/cpu_kernel.h"
#include "backends/cuda/cuda_kernel.h"
#include "backends/cuda/cuda_runner.h"
#include "backends/cuda/cuda_status.h"
#include "backends/cuda/kernels/elementwise.cuh"
#include "builder/builder.h"
#include "gpu_test_util.h"
#include "ir/parser.h"
#include "kiln/runtime.h"
#include "ops/infer_util.h"
#include "ops/op_schema.h"

namespace kiln {
namespace {

Status infer_flat(InferContext& ctx) {
  const Shape& s = ctx.input_shape(0);
  if (!s.is_fixed()) {
    ctx.set_output(0, ctx.input_dtype(0), Shape(Dims{ctx.new_symbol("flat")}));
    return Status::ok();
  }
  ctx.set_output(0, ctx.input_dtype(0), Shape::of({checked_numel(s.fixed_dims())}));
  return Status::ok();
}

Status infer_reshape_to(InferContext& ctx) {
  auto dims = ctx.input_ints(1);
  if (!dims) {
    ctx.set_output(0, ctx.input_dtype(0), Shape());
    return Status::ok();
  }
  ctx.set_output(0, ctx.input_dtype(0), Shape::of(*dims));
  return Status::ok();
}

Status cpu_negate(CpuKernelContext& ctx, float scale) {
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.allocate_output(0));
  for (int64_t i = 0; i < out->numel(); ++i) out->mutable_data<float>()[i] = scale * ctx.input(0).data<float>()[i];
  return Status::ok();
}

Status cpu_view(CpuKernelContext& ctx) {
  auto dims = ctx.inferred_dims(0);
  if (!dims) return internal_error("no dims");
  ctx.set_output(0, ctx.input(0).reshaped(*dims));
  return Status::ok();
}

[[maybe_unused]] const bool registered = [] {
  OpRegistration(
      OpSchema{.domain = "gputest", .name = "Neg", .min_inputs = 1, .max_inputs = 1, .infer = infer_same_as_input0});
  OpRegistration(OpSchema{.domain = "gputest", .name = "Flat", .min_inputs = 1, .max_inputs = 1, .infer = infer_flat});
  OpRegistration(
      OpSchema{.domain = "gputest", .name = "ReshapeTo", .min_inputs = 2, .max_inputs = 2, .infer = infer_reshape_to});
  OpRegistration(
      OpSchema{.domain = "gputest", .name = "NoGpu", .min_inputs = 1, .max_inputs = 1, .infer = infer_same_as_input0});
  CpuKernelRegistration("gputest", "Neg", [](CpuKernelContext& c) { return cpu_negate(c, -1); });
  CpuKernelRegistration("gputest", "NoGpu", [](CpuKernelContext& c) { return cpu_negate(c, 2); });
  CpuKernelRegistration("gputest", "Flat", cpu_view);
  CpuKernelRegistration("gputest", "ReshapeTo", cpu_view);
  cuda::KernelRegistration("gputest", "Neg", {.run = [](cuda::KernelContext& c) {
                             cuda::UnaryParams p;
                             p.op = cuda::UnaryOp::kNeg;
                             p.dtype = c.input(0).dtype;
                             p.x = c.input(0).data;
                             p.y = c.output(0).data;
                             p.n = c.input(0).numel();
                             return cuda::launch_unary(p, c.stream());
                           }});
  // A view: nothing to do when aliased, else a copy (as the real views do).
  auto nothing = [](cuda::KernelContext& c) -> Status {
    if (c.output(0).data == c.input(0).data || c.output(0).nbytes() == 0) return Status::ok();
    return cuda::to_status(
        cudaMemcpyAsync(c.output(0).data, c.input(0).data, c.output(0).nbytes(), cudaMemcpyDeviceToDevice, c.stream()),
        "cudaMemcpyAsync");
  };
  cuda::KernelRegistration("gputest", "Flat", {.run = nothing, .alias_input = 0});
  cuda::KernelRegistration("gputest", "ReshapeTo", {.run = nothing, .host_inputs = {1}, .alias_input = 0});
  return true;
}();

using gpu_test::GpuTest;
using gpu_test::random_tensor;

std::shared_ptr<Graph> parse(const char* text) {
  auto g = parse_graph(text);
  EXPECT_TRUE(g.is_ok()) << g.status().to_string();
  return g.is_ok() ? *g : nullptr;
}

std::vector<float> values(const Tensor& t) { return {t.data<float>(), t.data<float>() + t.numel()}; }

TEST_F(GpuTest, ChainOfKernelsMatchesCpuAndReusesTheArena) {
  auto g = parse(
      "graph main(%x: f32[1000]) {\n"
      "  %a: f32[1000] = gputest.Neg(%x)\n"
      "  %b: f32[1000] = gputest.Neg(%a)\n"
      "  %c: f32[1000] = gputest.Neg(%b)\n"
      "  %y: f32[1000] = gputest.Neg(%c)\n"
      "  return %y\n"
      "}\n");
  Tensor x = random_tensor(DType::kF32, {1000});
  cuda::DeviceBindings b(1);
  b.inputs.push_back(gpu_test::upload(x));
  auto weights = cuda::upload_weights(*g);
  ASSERT_TRUE(weights.is_ok());
  cuda::Runner runner(*g, *weights, {});
  ASSERT_TRUE(runner.run({{1000}}, {nullptr}, b, nullptr).is_ok());
  Tensor y = gpu_test::download(b.outputs[0].data(), DType::kF32, {1000});
  EXPECT_EQ(values(y), values(x));  // four negations
  // a, b, c live one step after they are written: two 4000-byte slots suffice.
  EXPECT_EQ(runner.arena_bytes(), 2 * 4096u);
}

TEST_F(GpuTest, ShapeArithmeticRunsOnTheHostAndViewsCostNothing) {
  // ReshapeTo's shape comes from Shape -> Gather -> Concat: the host computes
  // it while planning; Flat and ReshapeTo are views of Neg's output.
  auto g = parse(
      "graph main(%x: f32[6,4]) {\n"
      "  %s: i64[2] = Shape(%x)\n"
      "  %i: i64[] = const i64[]{0}\n"
      "  %d0: i64[] = Gather(%s, %i) {axis=0}\n"
      "  %ax: i64[1] = const i64[1]{0}\n"
      "  %d: i64[1] = Unsqueeze(%d0, %ax)\n"
      "  %m: i64[1] = const i64[1]{4}\n"
      "  %shape: i64[2] = Concat(%m, %d) {axis=0}\n"
      "  %n: f32[6,4] = gputest.Neg(%x)\n"
      "  %f: f32[24] = gputest.Flat(%n)\n"
      "  %y: f32[4,6] = gputest.ReshapeTo(%f, %shape)\n"
      "  return %y\n"
      "}\n");
  Tensor x = random_tensor(DType::kF32, {6, 4});
  auto out = cuda::run_graph_on_cuda(*g, {RunValue::of(x)});
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  const Tensor& y = (*out)[0].tensor;
  EXPECT_EQ(y.dims(), (std::vector<int64_t>{4, 6}));
  for (int64_t i = 0; i < 24; ++i) EXPECT_EQ(y.data<float>()[i], -x.data<float>()[i]);
}

TEST_F(GpuTest, ShapeInputComputedOnTheDeviceIsDownloadedBeforePlanningGoesOn) {
  // The shape is a graph input in device memory (no host copy): the runner
  // stops planning there, downloads it and plans the rest.
  auto g = parse(
      "graph main(%x: f32[2,3], %shape: i64[2]) {\n"
      "  %n: f32[2,3] = gputest.Neg(%x)\n"
      "  %y: f32[?,?] = gputest.ReshapeTo(%n, %shape)\n"
      "  return %y\n"
      "}\n");
  Tensor x = random_tensor(DType::kF32, {2, 3});
  Tensor shape = Tensor::vector_i64({3, 2});
  cuda::DeviceBindings b(1);
  b.inputs.push_back(gpu_test::upload(x));
  b.inputs.push_back(gpu_test::upload(shape));
  auto weights = cuda::upload_weights(*g);
  ASSERT_TRUE(weights.is_ok());
  cuda::Runner runner(*g, *weights, {});
  Status st = runner.run({{2, 3}, {2}}, {nullptr, nullptr}, b, nullptr);
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  EXPECT_EQ(b.shapes[0].second, (std::vector<int64_t>{3, 2}));
  Tensor y = gpu_test::download(b.outputs[0].data(), DType::kF32, {3, 2});
  for (int64_t i = 0; i < 6; ++i) EXPECT_EQ(y.data<float>()[i], -x.data<float>()[i]);
}

const char* kFallbackGraph =
    "graph main(%x: f32[5]) {\n"
    "  %a: f32[5] = gputest.Neg(%x)\n"
    "  %b: f32[5] = gputest.NoGpu(%a)\n"
    "  %y: f32[5] = gputest.Neg(%b)\n"
    "  return %y, %x\n"
    "}\n";

TEST_F(GpuTest, NodeWithoutGpuKernelFailsNamingItUnlessFallbackIsAllowed) {
  auto g = parse(kFallbackGraph);
  g->nodes()[1]->name = "double_it";
  Tensor x = random_tensor(DType::kF32, {5});
  auto refused = cuda::run_graph_on_cuda(*g, {RunValue::of(x)});
  ASSERT_FALSE(refused.is_ok());
  EXPECT_EQ(refused.status().message(),
            "node 'double_it' (NoGpu): the CUDA backend has no kernel for NoGpu (--allowCpuFallback runs it on the "
            "host)");
  std::vector<const Node*> fallback;
  EXPECT_FALSE(cuda::check_graph_supported(*g, false, nullptr).is_ok());
  EXPECT_TRUE(cuda::check_graph_supported(*g, true, &fallback).is_ok());
  EXPECT_EQ(fallback.size(), 1u);

  cuda::RunOptions options;
  options.allow_cpu_fallback = true;
  auto out = cuda::run_graph_on_cuda(*g, {RunValue::of(x)}, options);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  for (int64_t i = 0; i < 5; ++i) EXPECT_EQ((*out)[0].tensor.data<float>()[i], 2 * x.data<float>()[i]);
  EXPECT_EQ(values((*out)[1].tensor), values(x));  // a graph input as output: copied
}

// New data on every run, and the input's length taken in turn as a server's
// batcher does: each shape keeps its own plan and CUDA graph
// (Runner::Impl::kCachedPlans), and every replay computes on that run's
// data, whichever shape ran before it.
TEST_F(GpuTest, CudaGraphReplaysWithNewInputDataAndShapesInTurn) {
  auto g = parse(
      "graph main(%x: f32[n]) {\n"
      "  %a: f32[n] = gputest.Neg(%x)\n"
      "  %w: f32[3] = const f32[3]{1,2,3}\n"
      "  %y: f32[n] = gputest.Neg(%a)\n"
      "  return %y, %w\n"
      "}\n");
  cuda::DeviceBindings b(2);
  b.inputs.push_back(gpu_test::device_zeros(300 * 4));
  auto weights = cuda::upload_weights(*g);
  ASSERT_TRUE(weights.is_ok());
  cuda::RunnerOptions options;
  options.use_cuda_graph = true;
  cuda::Runner runner(*g, *weights, options);
  auto stream = cuda::Stream::create();
  ASSERT_TRUE(stream.is_ok());
  const int64_t sizes[] = {300, 300, 300, 100, 300, 100, 7, 100, 300, 7};
  for (uint32_t run = 0; run < std::size(sizes); ++run) {
    const int64_t n = sizes[run];
    Tensor x = random_tensor(DType::kF32, {n}, -2, 2, run + 1);
    ASSERT_TRUE(b.inputs[0].copy_from_host(x.raw(), x.nbytes(), stream->get()).is_ok());
    Status st = runner.run({{n}}, {nullptr}, b, stream->get());
    ASSERT_TRUE(st.is_ok()) << st.to_string();
    ASSERT_TRUE(stream->synchronize().is_ok());
    EXPECT_EQ(values(gpu_test::download(b.outputs[0].data(), DType::kF32, {n})), values(x)) << "run " << run;
    EXPECT_EQ(values(gpu_test::download(b.outputs[1].data(), DType::kF32, {3})), (std::vector<float>{1, 2, 3}));
  }
}

// An engine built for backend cuda from IR (the test ops have no ONNX form).
Expected<std::shared_ptr<Engine>> cuda_engine(const char* text) {
  Model m;
  m.opsets = {{"", 21}, {"gputest", 1}};
  m.graph = parse(text);
  BuildConfig config;
  config.backend = "cuda";
  KILN_ASSIGN_OR_RETURN(auto bytes, build_engine(m, config));
  return Runtime::deserialize(bytes.data(), bytes.size());
}

TEST_F(GpuTest, RuntimeEnqueuesOnTheCallersStreamAndReportsLayerTimes) {
  auto engine = cuda_engine(
      "graph main(%x: f32[batch,8]) {\n"
      "  %a: f32[batch,8] = gputest.Neg(%x)\n"
      "  %y: f32[batch,8] = gputest.Neg(%a)\n"
      "  return %y\n"
      "}\n");
  ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
  EXPECT_EQ((*engine)->backend(), "cuda");
  auto ctx = (*engine)->create_execution_context();
  struct Times final : Profiler {
    std::vector<std::string> layers;
    void report_layer_time(const std::string& name, float ms) override {
      layers.push_back(name);
      EXPECT_GE(ms, 0.f);
    }
  } times;
  ctx->set_profiler(&times);
  auto stream = cuda::Stream::create();
  ASSERT_TRUE(stream.is_ok());
  for (int64_t batch : {3, 5, 3}) {
    Tensor x = random_tensor(DType::kF32, {batch, 8});
    auto dx = gpu_test::upload(x);
    auto dy = gpu_test::device_zeros(x.nbytes());
    ASSERT_TRUE(ctx->set_input_shape("x", {batch, 8}).is_ok());
    ASSERT_TRUE(ctx->set_tensor_address("x", dx.data()).is_ok());
    ASSERT_TRUE(ctx->set_tensor_address("y", dy.data()).is_ok());
    Status st = ctx->enqueue(stream->get());
    ASSERT_TRUE(st.is_ok()) << st.to_string();
    ASSERT_TRUE(stream->synchronize().is_ok());
    EXPECT_EQ(values(gpu_test::download(dy.data(), DType::kF32, {batch, 8})), values(x));
  }
  EXPECT_EQ(times.layers.size(), 6u);  // two layers, three runs
}

TEST_F(GpuTest, EngineForAnotherComputeCapabilityIsRefusedWithWhatToDo) {
  auto engine = cuda_engine(
      "graph main(%x: f32[4]) {\n"
      "  %y: f32[4] = gputest.Neg(%x)\n"
      "  return %y\n"
      "}\n");
  ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
  auto bytes = (*engine)->serialize();
  auto info = cuda::device_info(0);
  ASSERT_TRUE(info.is_ok());
  const std::string built = fmt::format("sm_{}{}", info->cc_major, info->cc_minor);
  setenv("KILN_PRETEND_SM", built == "sm_80" ? "86" : "80", 1);
  auto refused = Runtime::deserialize(bytes.data(), bytes.size());
  unsetenv("KILN_PRETEND_SM");
  ASSERT_FALSE(refused.is_ok());
  const std::string other = built == "sm_80" ? "sm_86" : "sm_80";
  EXPECT_EQ(refused.status().message(),
            fmt::format("the engine was built for {} ({}), this GPU is {} ({}): kernels and tactics are chosen per "
                        "compute capability, so rebuild the engine on this GPU (kiln build MODEL.onnx --backend "
                        "cuda), or serve the ONNX model and let kiln rebuild it",
                        built, info->name, other, info->name));
  EXPECT_TRUE(Runtime::deserialize(bytes.data(), bytes.size()).is_ok());
}

}  // namespace
}  // namespace kiln
