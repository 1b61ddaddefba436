// kiln::FusedElementwise on the GPU (NVRTC kernels) against the CPU
// reference on random inputs: every opcode in f32, f16 and bf16 with
// broadcasting, chains the pass fused, the builder's cubins, replays under
// CUDA graph capture, and an engine built from a model whose `kiln inspect`
// shows the fused ops.
#include <gtest/gtest.h>

#include "backends/cuda/cuda_runner.h"
#include "backends/cuda/nvrtc_codegen.h"
#include "builder/builder.h"
#include "gpu_test_util.h"
#include "ir/parser.h"
#include "kiln/runtime.h"
#include "ops/elementwise_program.h"
#include "passes/pass.h"

namespace kiln {
namespace {

using gpu_test::GpuTest;
using gpu_test::random_tensor;
using Op = ElementwiseOpcode;

std::map<std::string, Attribute> program_attrs(const ElementwiseProgram& p) {
  Node n;
  p.write_to(n);
  return n.attrs;
}

// op(x) / op(x, y) / op(x, 0.25, 0.75) with x [3,1,5] and y [4,5]: the output is [3,4,5].
TEST_F(GpuTest, EveryOpcodeMatchesTheCpuWithBroadcasting) {
  for (DType t : gpu_test::kFloatTypes) {
    for (int o = static_cast<int>(Op::kAdd); o <= static_cast<int>(Op::kHardSigmoid); ++o) {
      const auto op = static_cast<Op>(o);
      const bool positive = op == Op::kLog || op == Op::kSqrt || op == Op::kPow;
      Tensor x = random_tensor(t, {3, 1, 5}, positive ? 0.1f : -2.f, 2.f, 3);
      Tensor y = random_tensor(t, {4, 5}, 0.5f, 2.f, 4);
      ElementwiseProgram p;
      p.num_inputs = 2;
      p.constants = {0.25f, 0.75f};
      ElementwiseInstruction ins;
      ins.op = op;
      ins.dtype = t;
      const int arity = elementwise_opcode_arity(op);
      ins.args[0] = 0;
      if (arity >= 2) ins.args[1] = arity == 2 ? 1 : 2;
      if (arity == 3) ins.args[2] = 3;
      p.code = {ins};
      const std::string what = fmt::format("{} {}", elementwise_opcode_name(op), dtype_name(t));
      Tensor gpu = gpu_test::run_cuda("kiln.FusedElementwise", {x, y}, program_attrs(p));
      Tensor cpu = gpu_test::run_cpu("kiln.FusedElementwise", {x, y}, program_attrs(p));
      ASSERT_EQ(gpu.dims(), (std::vector<int64_t>{3, 4, 5})) << what;
      gpu_test::expect_close(gpu, cpu, gpu_test::tolerance_for(t), what);
    }
  }
}

std::shared_ptr<Graph> fused_chain(const std::string& t) {
  std::string text =
      "graph main(%x: T[8,33,65], %b: T[65], %c: T[33,1]) {\n"
      "  %half: T[] = const T[]{0.5}\n"
      "  %m: T[8,33,65] = Mul(%x, %b)\n"
      "  %a: T[8,33,65] = Add(%m, %c)\n"
      "  %h: T[8,33,65] = Tanh(%a)\n"
      "  %s: T[8,33,65] = Mul(%h, %half)\n"
      "  %g: T[8,33,65] = Gelu(%s)\n"
      "  %y: T[8,33,65] = Mul(%g, %x)\n"
      "  return %y\n"
      "}\n";
  for (size_t p; (p = text.find("T[")) != std::string::npos;) text.replace(p, 1, t);
  auto g = parse_graph(text);
  EXPECT_TRUE(g.is_ok()) << g.status().to_string();
  if (!g) return nullptr;
  PassContext ctx;
  EXPECT_TRUE(fuse_elementwise(**g, ctx).is_ok());
  EXPECT_EQ((*g)->nodes().size(), 1u);
  return std::move(*g);
}

std::vector<RunValue> chain_inputs(DType t, uint32_t seed) {
  return {RunValue::of(random_tensor(t, {8, 33, 65}, -2, 2, seed)), RunValue::of(random_tensor(t, {65}, -2, 2, seed)),
          RunValue::of(random_tensor(t, {33, 1}, -2, 2, seed))};
}

// The pass's chain, compiled on the plan's first run (no cubin in the node) and from the builder's cubin.
TEST_F(GpuTest, FusedChainMatchesTheCpuJitAndPrecompiled) {
  for (DType t : gpu_test::kFloatTypes) {
    auto g = fused_chain(std::string(dtype_name(t)));
    ASSERT_TRUE(g);
    auto feeds = chain_inputs(t, 5);
    auto cpu = run_graph_on_cpu(*g, feeds);
    ASSERT_TRUE(cpu.is_ok()) << cpu.status().to_string();
    auto jit = cuda::run_graph_on_cuda(*g, feeds);
    ASSERT_TRUE(jit.is_ok()) << jit.status().to_string();
    gpu_test::expect_close((*jit)[0].tensor, (*cpu)[0].tensor, gpu_test::tolerance_for(t), "jit");
    auto sm = cuda::current_device_sm();
    ASSERT_TRUE(sm.is_ok());
    auto compiled = cuda::compile_fused_kernels(*g, *sm);
    ASSERT_TRUE(compiled.is_ok()) << compiled.status().to_string();
    ASSERT_NE(g->nodes()[0]->attr("cubin"), nullptr);
    auto pre = cuda::run_graph_on_cuda(*g, feeds);
    ASSERT_TRUE(pre.is_ok()) << pre.status().to_string();
    gpu_test::expect_close((*pre)[0].tensor, (*cpu)[0].tensor, gpu_test::tolerance_for(t), "cubin");
  }
}

// The first run plans and loads the kernel; later runs replay a captured CUDA graph, and each
// run's new inputs give the CPU's results.
TEST_F(GpuTest, FusedKernelReplaysUnderCudaGraphCapture) {
  auto g = fused_chain("f32");
  ASSERT_TRUE(g);
  auto weights = cuda::upload_weights(*g);
  ASSERT_TRUE(weights.is_ok());
  cuda::RunnerOptions options;
  options.use_cuda_graph = true;
  cuda::Runner runner(*g, *weights, options);
  auto stream = cuda::Stream::create();
  ASSERT_TRUE(stream.is_ok());
  cuda::DeviceBindings b(1);
  const std::vector<std::vector<int64_t>> dims = {{8, 33, 65}, {65}, {33, 1}};
  for (const auto& d : dims) b.inputs.push_back(gpu_test::device_zeros(gpu_test::numel(d) * 4));
  for (uint32_t run = 1; run <= 4; ++run) {
    auto feeds = chain_inputs(DType::kF32, run);
    for (size_t i = 0; i < feeds.size(); ++i) {
      const Tensor& x = feeds[i].tensor;
      ASSERT_TRUE(b.inputs[i].copy_from_host(x.raw(), x.nbytes(), stream->get()).is_ok());
    }
    Status st = runner.run(dims, {nullptr, nullptr, nullptr}, b, stream->get());
    ASSERT_TRUE(st.is_ok()) << st.to_string();
    ASSERT_TRUE(stream->synchronize().is_ok());
    auto cpu = run_graph_on_cpu(*g, feeds);
    ASSERT_TRUE(cpu.is_ok());
    gpu_test::expect_close(gpu_test::download(b.outputs[0].data(), DType::kF32, {8, 33, 65}), (*cpu)[0].tensor, 1e-5,
                           fmt::format("run {}", run));
  }
}

// The builder fuses the chain, stores its cubin, and the engine's layer says what it fused.
TEST_F(GpuTest, EngineCarriesTheFusedKernel) {
  Model m;
  m.opsets = {{"", 21}};
  auto g = parse_graph(
      "graph main(%x: f32[4,64], %b: f32[64]) {\n"
      "  %two: f32[] = const f32[]{2}\n"
      "  %m: f32[4,64] = Mul(%x, %two)\n"
      "  %a: f32[4,64] = Add(%m, %b)\n"
      "  %y: f32[4,64] = Relu(%a)\n"
      "  return %y\n"
      "}\n");
  ASSERT_TRUE(g.is_ok());
  m.graph = std::move(*g);
  BuildConfig config;
  config.backend = "cuda";
  auto bytes = build_engine(m, config);
  ASSERT_TRUE(bytes.is_ok()) << bytes.status().to_string();
  auto engine = Runtime::deserialize(bytes->data(), bytes->size());
  ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
  ASSERT_EQ((*engine)->num_layers(), 1);
  auto layer = (*engine)->layer_info(0);
  ASSERT_TRUE(layer.is_ok());
  EXPECT_EQ(layer->fused, "Mul+Add+Relu");
  Tensor x = random_tensor(DType::kF32, {4, 64}), bias = random_tensor(DType::kF32, {64});
  auto dx = gpu_test::upload(x), db = gpu_test::upload(bias);
  auto dy = gpu_test::device_zeros(x.nbytes());
  auto ctx = (*engine)->create_execution_context();
  ASSERT_TRUE(ctx->set_tensor_address("x", dx.data()).is_ok());
  ASSERT_TRUE(ctx->set_tensor_address("b", db.data()).is_ok());
  ASSERT_TRUE(ctx->set_tensor_address("y", dy.data()).is_ok());
  auto stream = cuda::Stream::create();
  ASSERT_TRUE(stream.is_ok());
  Status st = ctx->enqueue(stream->get());
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  ASSERT_TRUE(stream->synchronize().is_ok());
  Tensor y = gpu_test::download(dy.data(), DType::kF32, {4, 64});
  for (int64_t i = 0; i < y.numel(); ++i) {
    const float want = std::max(0.0f, x.data<float>()[i] * 2 + bias.data<float>()[i % 64]);
    ASSERT_EQ(y.data<float>()[i], want) << i;
  }
}

}  // namespace
}  // namespace kiln
