// The NVRTC code generator of kiln::FusedElementwise: sources for a few
// programs compile to sm_90 cubins, identical kernels compile once, and a
// compile failure is an error naming the layer with NVRTC's log. NVRTC needs
// no GPU, so this runs in CI.
#ifdef KILN_WITH_CUDA

#include "backends/cuda/nvrtc_codegen.h"

#include <gtest/gtest.h>

#include "ir/parser.h"
#include "passes/pass.h"

namespace kiln {
namespace {

bool is_elf(const std::vector<uint8_t>& b) {
  return b.size() > 4 && b[0] == 0x7f && b[1] == 'E' && b[2] == 'L' && b[3] == 'F';
}

ElementwiseProgram program(int inputs, std::vector<float> constants, std::vector<ElementwiseInstruction> code) {
  ElementwiseProgram p;
  p.num_inputs = inputs;
  p.constants = std::move(constants);
  p.code = std::move(code);
  return p;
}

ElementwiseInstruction ins(ElementwiseOpcode op, int a, int b = -1, int c = -1, DType t = DType::kF32) {
  ElementwiseInstruction i;
  i.op = op;
  i.args[0] = a, i.args[1] = b, i.args[2] = c;
  i.dtype = t;
  return i;
}

TEST(NvrtcCodegen, EveryOpcodeCompilesForSm90InEachDtype) {
  using Op = ElementwiseOpcode;
  // Slots: inputs 0,1; constants 2,3; results from 4.
  std::vector<ElementwiseInstruction> code = {ins(Op::kMul, 0, 1), ins(Op::kAdd, 4, 2)};
  for (Op op : {Op::kSub, Op::kDiv, Op::kPow, Op::kMax, Op::kMin, Op::kLeakyRelu})
    code.push_back(ins(op, static_cast<int>(code.size()) + 3, 1));
  for (Op op : {Op::kNeg, Op::kAbs, Op::kExp, Op::kLog, Op::kSqrt, Op::kReciprocal, Op::kRelu, Op::kSigmoid, Op::kTanh,
                Op::kErf, Op::kSoftplus, Op::kHardSwish, Op::kGelu, Op::kGeluTanh, Op::kCast})
    code.push_back(ins(op, static_cast<int>(code.size()) + 3));
  for (Op op : {Op::kClip, Op::kHardSigmoid}) code.push_back(ins(op, static_cast<int>(code.size()) + 3, 2, 3));
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16}) {
    for (auto& i : code) i.dtype = t;
    auto src = cuda::fused_elementwise_source(program(2, {-0.5f, 0.5f}, code), {t, DType::kF32});
    ASSERT_TRUE(src.is_ok()) << src.status().to_string();
    auto cubin = cuda::compile_to_cubin(*src, 90, "test layer");
    ASSERT_TRUE(cubin.is_ok()) << cubin.status().to_string() << "\n" << *src;
    EXPECT_TRUE(is_elf(*cubin)) << dtype_name(t);
  }
}

TEST(NvrtcCodegen, ImmediatesAreExactBitPatterns) {
  auto src = cuda::fused_elementwise_source(program(1, {0.1f}, {ins(ElementwiseOpcode::kMul, 0, 1)}), {DType::kF32});
  ASSERT_TRUE(src.is_ok());
  EXPECT_NE(src->find("__int_as_float((int)0x3dcccccdu)"), std::string::npos) << *src;
}

TEST(NvrtcCodegen, RejectsInputsItCannotRead) {
  auto src = cuda::fused_elementwise_source(program(1, {}, {ins(ElementwiseOpcode::kExp, 0)}), {DType::kF64});
  ASSERT_FALSE(src.is_ok());
  EXPECT_EQ(src.status().message(), "fused kernel: input 0 is f64; it reads f32, f16 or bf16");
}

TEST(NvrtcCodegen, CompileErrorNamesTheLayerAndCarriesTheLog) {
  auto cubin = cuda::compile_to_cubin("extern \"C\" __global__ void k() { undeclared_thing(); }", 90, "fused_7");
  ASSERT_FALSE(cubin.is_ok());
  const std::string msg = cubin.status().message();
  EXPECT_EQ(msg.rfind("fused_7: NVRTC could not compile the fused kernel for sm_90: NVRTC_ERROR_COMPILATION", 0), 0u)
      << msg;
  EXPECT_NE(msg.find("undeclared_thing"), std::string::npos) << msg;
}

TEST(NvrtcCodegen, UnknownArchitectureIsAnInvalidOption) {
  auto cubin = cuda::compile_to_cubin("extern \"C\" __global__ void k() {}", 7, "fused_1");
  ASSERT_FALSE(cubin.is_ok());
  EXPECT_NE(cubin.status().message().find("fused_1: NVRTC could not compile the fused kernel for sm_7: "
                                          "NVRTC_ERROR_INVALID_OPTION"),
            std::string::npos)
      << cubin.status().message();
}

// Two chains with the same program and dtypes (shapes are not in the source)
// share one compiled kernel; both nodes get it.
TEST(NvrtcCodegen, IdenticalChainsCompileOnce) {
  auto g = parse_graph(
      "graph main(%x: f16[8], %z: f16[2,8]) {\n"
      "  %a: f16[8] = Exp(%x)\n"
      "  %b: f16[8] = Neg(%a)\n"
      "  %c: f16[2,8] = Exp(%z)\n"
      "  %d: f16[2,8] = Neg(%c)\n"
      "  return %b, %d\n"
      "}\n");
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  PassContext ctx;
  ASSERT_TRUE(fuse_elementwise(**g, ctx).is_ok());
  ASSERT_EQ((*g)->nodes().size(), 2u);
  auto compiled = cuda::compile_fused_kernels(**g, 90);
  ASSERT_TRUE(compiled.is_ok()) << compiled.status().to_string();
  EXPECT_EQ(*compiled, 1u);
  for (const auto& n : (*g)->nodes()) {
    const Attribute* cubin = n->attr("cubin");
    ASSERT_NE(cubin, nullptr);
    EXPECT_EQ(cubin->t.dtype(), DType::kU8);
    EXPECT_GT(cubin->t.numel(), 0);
  }
}

}  // namespace
}  // namespace kiln

#endif  // KILN_WITH_CUDA
