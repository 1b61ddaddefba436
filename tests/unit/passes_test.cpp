// Each pass, before and after, as IR text.
#include <gtest/gtest.h>

#include "backends/cpu/cpu_kernel.h"
#include "ir/parser.h"
#include "ir/printer.h"
#include "ops/infer_util.h"
#include "passes/pass.h"

namespace kiln {
namespace {

// A test-only op in its own domain, so the tests need no real kernels:
// test.AddOne(x: f32) = x + 1.
[[maybe_unused]] const bool registered = [] {
  OpRegistration(
      OpSchema{.domain = "test", .name = "AddOne", .min_inputs = 1, .max_inputs = 1, .infer = infer_same_as_input0});
  CpuKernelRegistration("test", "AddOne", [](CpuKernelContext& ctx) -> Status {
    KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.allocate_output(0));
    for (int64_t i = 0; i < out->numel(); ++i) out->mutable_data<float>()[i] = ctx.input(0).data<float>()[i] + 1;
    return Status::ok();
  });
  return true;
}();

std::string run(PassFn pass, const char* text) {
  auto g = parse_graph(text);
  if (!g) return g.status().to_string();
  PassContext ctx;
  Status st = pass(**g, ctx);
  if (!st.is_ok()) return st.to_string();
  return print_graph(**g);
}

TEST(FoldConstants, ReplacesNodesWhoseInputsAreConstantsAndDropsUnreadConstants) {
  EXPECT_EQ(run(fold_constants,
                "graph main(%x: f32[2]) {\n"
                "  %w: f32[2] = const f32[2]{1,2}\n"
                "  %y: f32[2] = test.AddOne(%w)\n"
                "  %z: f32[2] = Add(%x, %y)\n"
                "  return %z\n"
                "}\n"),
            "graph main(%x: f32[2]) {\n"
            "  %y: f32[2] = const f32[2]{2,3}\n"
            "  %z: f32[2] = Add(%x, %y)\n"
            "  return %z\n"
            "}\n");
}

TEST(FoldConstants, LeavesNodesThatReadGraphInputs) {
  const char* text =
      "graph main(%x: f32[2]) {\n"
      "  %y: f32[2] = test.AddOne(%x)\n"
      "  return %y\n"
      "}\n";
  EXPECT_EQ(run(fold_constants, text), text);
}

TEST(FoldConstants, LeavesResultsOverTheSizeLimit) {
  auto g = parse_graph(
      "graph main() {\n"
      "  %w: f32[4] = const f32[4]{1,2,3,4}\n"
      "  %y: f32[4] = test.AddOne(%w)\n"
      "  return %y\n"
      "}\n");
  ASSERT_TRUE(g.is_ok());
  PassContext ctx;
  ctx.max_folded_bytes = 8;
  ASSERT_TRUE(fold_constants(**g, ctx).is_ok());
  EXPECT_EQ((*g)->nodes().size(), 1u);
}

TEST(EliminateDeadNodes, RemovesNodesNobodyReads) {
  EXPECT_EQ(run(eliminate_dead_nodes,
                "graph main(%x: f32[2]) {\n"
                "  %a: f32[2] = Relu(%x)\n"
                "  %b: f32[2] = Neg(%a)\n"
                "  %c: f32[2] = Neg(%x)\n"
                "  return %c\n"
                "}\n"),
            "graph main(%x: f32[2]) {\n"
            "  %c: f32[2] = Neg(%x)\n"
            "  return %c\n"
            "}\n");
}

TEST(EliminateIdentity, ReadersReadTheInput) {
  EXPECT_EQ(run(eliminate_identity,
                "graph main(%x: f32[2]) {\n"
                "  %y: f32[2] = Identity(%x)\n"
                "  %z: f32[2] = Relu(%y)\n"
                "  return %z\n"
                "}\n"),
            "graph main(%x: f32[2]) {\n"
            "  %z: f32[2] = Relu(%x)\n"
            "  return %z\n"
            "}\n");
}

TEST(EliminateIdentity, KeepsAnIdentityThatNamesAGraphOutput) {
  const char* text =
      "graph main(%x: f32[2]) {\n"
      "  %y: f32[2] = Identity(%x)\n"
      "  return %y\n"
      "}\n";
  EXPECT_EQ(run(eliminate_identity, text), text);
}

TEST(EliminateCommonSubexpressions, MergesEqualNodes) {
  EXPECT_EQ(run(eliminate_common_subexpressions,
                "graph main(%x: f32[2]) {\n"
                "  %a: f32[2] = Relu(%x)\n"
                "  %b: f32[2] = Relu(%x)\n"
                "  %c: f32[2] = Add(%a, %b)\n"
                "  return %c\n"
                "}\n"),
            "graph main(%x: f32[2]) {\n"
            "  %a: f32[2] = Relu(%x)\n"
            "  %c: f32[2] = Add(%a, %a)\n"
            "  return %c\n"
            "}\n");
}

TEST(EliminateCommonSubexpressions, KeepsNodesWithOtherAttributes) {
  const char* text =
      "graph main(%x: f32[2]) {\n"
      "  %a: f32[2] = Softmax(%x) {axis=0}\n"
      "  %b: f32[2] = Softmax(%x) {axis=-1}\n"
      "  %c: f32[2] = Add(%a, %b)\n"
      "  return %c\n"
      "}\n";
  EXPECT_EQ(run(eliminate_common_subexpressions, text), text);
}

}  // namespace
}  // namespace kiln
