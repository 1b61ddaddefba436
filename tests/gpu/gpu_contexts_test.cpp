// Execution contexts on the cuda backend: several contexts of one engine on
// their own streams at once (with and without CUDA graphs), the allocation
// strategies (static, on profile change, user-managed memory and its errors),
// and the build's workspace limit (the memory report, kernels choosing within
// it, and a layer that cannot fit it). Every output is checked against the
// CPU reference on random inputs.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <array>
#include <barrier>
#include <thread>

#include "backends/cpu/cpu_executor.h"
#include "backends/cuda/cuda_runner.h"
#include "builder/builder.h"
#include "gpu_test_util.h"
#include "ir/parser.h"
#include "kiln/runtime.h"

namespace kiln {
namespace {

using gpu_test::GpuTest;
using gpu_test::random_tensor;

constexpr const char* kMlp =
    "graph main(%x: f32[batch,64], %w1: f32[64,128], %b1: f32[128], %w2: f32[128,16]) {\n"
    "  %h: f32[batch,128] = MatMul(%x, %w1)\n"
    "  %hb: f32[batch,128] = Add(%h, %b1)\n"
    "  %r: f32[batch,128] = Relu(%hb)\n"
    "  %y: f32[batch,16] = MatMul(%r, %w2)\n"
    "  return %y\n"
    "}\n";

// The graph of `text` with every input but the first made a random constant
// (the same values on each call).
std::shared_ptr<Graph> with_weights(const char* text) {
  auto parsed = parse_graph(text);
  EXPECT_TRUE(parsed.is_ok()) << parsed.status().to_string();
  if (!parsed.is_ok()) return nullptr;
  std::shared_ptr<Graph> g = *parsed;
  for (size_t i = 1; i < g->inputs.size(); ++i) {
    Value* w = g->inputs[i];
    w->constant = std::make_shared<const Tensor>(
        random_tensor(w->type.dtype, w->type.shape.fixed_dims(), -0.5f, 0.5f, static_cast<uint32_t>(100 + i)));
    g->initializers.push_back(w);
  }
  g->inputs.resize(1);
  return g;
}

Expected<std::shared_ptr<Engine>> build(const char* text, BuildConfig config) {
  Model m;
  m.opsets = {{"", 21}};
  m.graph = with_weights(text);
  config.backend = "cuda";
  config.tf32 = false;  // held to fp32's tolerance: TF32's 1e-3 is too coarse for a K=128 product
  KILN_ASSIGN_OR_RETURN(auto bytes, build_engine(m, config));
  return Runtime::deserialize(bytes.data(), bytes.size());
}

BuildConfig batch_profiles(std::vector<std::array<int64_t, 3>> ranges) {
  BuildConfig c;
  for (auto [lo, opt, hi] : ranges) {
    OptimizationProfile p;
    EXPECT_TRUE(p.set_shape_range("x", {lo, 64}, {opt, 64}, {hi, 64}).is_ok());
    c.profiles.push_back(p);
  }
  return c;
}

Tensor cpu_reference(const char* text, const Tensor& x) {
  auto g = with_weights(text);
  auto out = run_graph_on_cpu(*g, {RunValue::of(x)});
  EXPECT_TRUE(out.is_ok()) << out.status().to_string();
  return out.is_ok() ? (*out)[0].tensor : Tensor();
}

// One run of the MLP at `batch` on `stream` through `ctx` with its input in
// `dx` and its output in `dy` (room for the batch), checked against the CPU.
// Every copy is ordered on `stream` and only `stream` is waited for: a
// device-wide synchronization (cudaDeviceSynchronize, a copy on the legacy
// stream) while another thread captures a CUDA graph invalidates that capture.
void run_on(ExecutionContext& ctx, cudaStream_t stream, void* dx, void* dy, int64_t batch, uint32_t seed,
            const std::string& what) {
  Tensor x = random_tensor(DType::kF32, {batch, 64}, -1.f, 1.f, seed);
  Tensor y(DType::kF32, {batch, 16});
  ASSERT_EQ(cudaMemcpyAsync(dx, x.raw(), x.nbytes(), cudaMemcpyHostToDevice, stream), cudaSuccess) << what;
  ASSERT_EQ(cudaMemsetAsync(dy, 0, y.nbytes(), stream), cudaSuccess) << what;
  ASSERT_TRUE(ctx.set_input_shape("x", {batch, 64}).is_ok()) << what;
  ASSERT_TRUE(ctx.set_tensor_address("x", dx).is_ok()) << what;
  ASSERT_TRUE(ctx.set_tensor_address("y", dy).is_ok()) << what;
  Status st = ctx.enqueue(stream);
  ASSERT_TRUE(st.is_ok()) << what << ": " << st.to_string();
  ASSERT_EQ(cudaMemcpyAsync(y.mutable_raw(), dy, y.nbytes(), cudaMemcpyDeviceToHost, stream), cudaSuccess) << what;
  ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess) << what;
  gpu_test::expect_close(y, cpu_reference(kMlp, x), 1e-4, what);  // fp32, summed in another order than the CPU's
}

// run_on with input and output buffers of their own.
void run_and_check(ExecutionContext& ctx, cudaStream_t stream, int64_t batch, uint32_t seed, const std::string& what) {
  auto dx = cuda::DeviceBuffer::allocate(static_cast<size_t>(batch) * 64 * 4);
  auto dy = cuda::DeviceBuffer::allocate(static_cast<size_t>(batch) * 16 * 4);
  ASSERT_TRUE(dx.is_ok() && dy.is_ok()) << what;
  run_on(ctx, stream, dx->data(), dy->data(), batch, seed, what);
}

class ContextsOnStreams : public GpuTest, public ::testing::WithParamInterface<bool> {};

TEST_P(ContextsOnStreams, FourContextsOfOneEngineRunAtOnceOnTheirOwnStreams) {
  const bool graphs = GetParam();
  auto engine = build(kMlp, batch_profiles({{1, 8, 32}}));
  ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
  constexpr int kThreads = 4;
  // Contexts, streams and buffers are made and freed only while no thread
  // runs (cudaFree and a library handle's destruction may synchronize the device,
  // which invalidates a capture in progress on any other thread): each
  // thread makes its own, all wait, all run, all wait, then each frees its own.
  std::barrier sync(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      auto ctx = (*engine)->create_execution_context();
      ctx->set_use_cuda_graph(graphs);
      auto stream = cuda::Stream::create();
      auto dx = cuda::DeviceBuffer::allocate(32 * 64 * 4);
      auto dy = cuda::DeviceBuffer::allocate(32 * 16 * 4);
      const bool ready = stream.is_ok() && dx.is_ok() && dy.is_ok();
      EXPECT_TRUE(ready) << "context " << t;
      sync.arrive_and_wait();
      // The same shapes three times (a CUDA graph is captured, then replayed
      // with new data), then another batch.
      const int64_t batches[] = {5 + t, 5 + t, 5 + t, 32 - t};
      for (int run = 0; ready && run < 4; ++run)
        run_on(*ctx, stream->get(), dx->data(), dy->data(), batches[run], static_cast<uint32_t>(10 * t + run),
               fmt::format("context {} run {} (graphs {})", t, run, graphs));
      sync.arrive_and_wait();
    });
  for (auto& th : threads) th.join();
}

INSTANTIATE_TEST_SUITE_P(CudaGraphs, ContextsOnStreams, ::testing::Bool());

// Two profiles that share batch 4..8 (a context switches profiles while its
// shapes fit both).
BuildConfig two_profiles() { return batch_profiles({{1, 2, 8}, {4, 16, 32}}); }

TEST_F(GpuTest, EngineReportsItsArenaPerProfileAndStaticContextsRun) {
  auto engine = build(kMlp, two_profiles());
  ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
  const MemoryReport r = (*engine)->memory_report();
  EXPECT_EQ(r.weight_bytes, (64 * 128 + 128 + 128 * 16) * 4u);
  ASSERT_TRUE(r.activations_planned);
  ASSERT_EQ(r.profiles.size(), 2u);
  // The [batch,128] activations alone, at the max shapes of each profile.
  EXPECT_GE(r.profiles[0].activation_bytes_max, 8 * 128 * 4u);
  EXPECT_GE(r.profiles[1].activation_bytes_max, 32 * 128 * 4u);
  EXPECT_LE(r.profiles[1].activation_bytes_opt, r.profiles[1].activation_bytes_max);
  EXPECT_GT(r.profiles[1].workspace_bytes, 0u);  // cuBLASLt's
  EXPECT_TRUE(r.profiles[1].exact);
  EXPECT_EQ((*engine)->device_memory_size(1).value(), r.profiles[1].activation_bytes_max);
  auto ctx = (*engine)->create_execution_context(AllocationStrategy::kStatic);
  auto stream = cuda::Stream::create();
  ASSERT_TRUE(stream.is_ok());
  run_and_check(*ctx, stream->get(), 5, 1, "static, profile 0");
  ASSERT_TRUE(ctx->set_optimization_profile(1).is_ok());
  run_and_check(*ctx, stream->get(), 32, 2, "static, profile 1");
}

TEST_F(GpuTest, OnProfileChangeContextFollowsTheSelectedProfile) {
  auto engine = build(kMlp, two_profiles());
  ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
  auto ctx = (*engine)->create_execution_context(AllocationStrategy::kOnProfileChange);
  auto stream = cuda::Stream::create();
  ASSERT_TRUE(stream.is_ok());
  run_and_check(*ctx, stream->get(), 6, 1, "profile 0");
  ASSERT_TRUE(ctx->set_optimization_profile(1).is_ok());
  run_and_check(*ctx, stream->get(), 30, 2, "profile 1");
  run_and_check(*ctx, stream->get(), 5, 3, "profile 1, batch 5");
  ASSERT_TRUE(ctx->set_optimization_profile(0).is_ok());
  run_and_check(*ctx, stream->get(), 2, 4, "profile 0 again");
}

TEST_F(GpuTest, UserManagedContextRunsInTheCallersMemoryAndSaysWhatItNeeds) {
  auto engine = build(kMlp, batch_profiles({{1, 8, 32}}));
  ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
  auto stream = cuda::Stream::create();
  ASSERT_TRUE(stream.is_ok());
  const size_t most = (*engine)->device_memory_size(0).value();
  ASSERT_GT(most, 0u);

  auto own = (*engine)->create_execution_context();
  auto memory = gpu_test::device_zeros(most);
  EXPECT_EQ(own->set_device_memory(memory.data(), most).message(),
            "set_device_memory: the context allocates its own device memory; create it with "
            "AllocationStrategy::kUserManaged to give it memory");

  auto ctx = (*engine)->create_execution_context(AllocationStrategy::kUserManaged);
  Tensor x = random_tensor(DType::kF32, {32, 64}, -1.f, 1.f, 7);
  auto dx = gpu_test::upload(x);
  auto dy = gpu_test::device_zeros(32 * 16 * 4);
  ASSERT_TRUE(ctx->set_input_shape("x", {32, 64}).is_ok());
  ASSERT_TRUE(ctx->set_tensor_address("x", dx.data()).is_ok());
  ASSERT_TRUE(ctx->set_tensor_address("y", dy.data()).is_ok());
  EXPECT_EQ(ctx->update_device_memory_size_for_shapes().value(), most);  // the max shapes
  EXPECT_EQ(ctx->enqueue(stream->get()).message(),
            fmt::format("the context's device memory is user-managed and none was given: call set_device_memory "
                        "with at least {} bytes for these input shapes (Engine::device_memory_size gives a "
                        "profile's most)",
                        most));
  EXPECT_EQ(ctx->set_device_memory(nullptr, most).message(), "set_device_memory: the memory is null");
  ASSERT_TRUE(ctx->set_device_memory(memory.data(), 256).is_ok());
  EXPECT_EQ(ctx->enqueue(stream->get()).message(),
            fmt::format("the run needs {} bytes of device memory for these input shapes, the memory given holds 256 "
                        "bytes",
                        most));
  ASSERT_TRUE(ctx->set_device_memory(memory.data(), most).is_ok());
  run_and_check(*ctx, stream->get(), 32, 7, "user memory, batch 32");
  run_and_check(*ctx, stream->get(), 1, 8, "user memory, batch 1");
}

TEST_F(GpuTest, WorkspaceLimitBoundsEveryLayerAndRunsStayCorrect) {
  BuildConfig config = batch_profiles({{1, 8, 32}});
  config.workspace_limit_bytes = 4096;
  auto engine = build(kMlp, config);
  ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
  const MemoryReport r = (*engine)->memory_report();
  EXPECT_EQ(r.workspace_limit_bytes, 4096u);
  ASSERT_EQ(r.profiles.size(), 1u);
  EXPECT_LE(r.profiles[0].workspace_bytes, 4096u);
  auto ctx = (*engine)->create_execution_context();
  auto stream = cuda::Stream::create();
  ASSERT_TRUE(stream.is_ok());
  run_and_check(*ctx, stream->get(), 32, 3, "workspace limit 4 KiB");
}

TEST_F(GpuTest, LayerWhoseSmallestWorkspaceExceedsTheLimitFailsTheBuildNamingIt) {
  constexpr const char* kLse =
      "graph main(%x: f32[4,4096]) {\n"
      "  %axes: i64[1] = const i64[1]{1}\n"
      "  %y: f32[4,1] = ReduceLogSumExp(%x, %axes)\n"
      "  return %y\n"
      "}\n";
  auto g = parse_graph(kLse);
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  (*g)->nodes()[0]->name = "lse";
  Model m;
  m.opsets = {{"", 21}};
  m.graph = *g;
  BuildConfig config;
  config.backend = "cuda";
  config.workspace_limit_bytes = 1;
  auto built = build_engine(m, config);
  ASSERT_FALSE(built.is_ok());
  const std::string msg = built.status().message();
  EXPECT_EQ(msg.rfind("node 'lse' (ReduceLogSumExp): needs at least ", 0), 0u) << msg;
  EXPECT_NE(msg.find(" of workspace, over the workspace limit of 1 B (raise it with --memPoolSize=workspace:SIZE)"),
            std::string::npos)
      << msg;
}

}  // namespace
}  // namespace kiln
