// sink_transposes, before and after, as IR text.
#include <gtest/gtest.h>

#include "ir/parser.h"
#include "ir/printer.h"
#include "passes/pass.h"

namespace kiln {
namespace {

std::string sink(const std::string& text) {
  auto g = parse_graph(text);
  if (!g) return g.status().to_string();
  PassContext ctx;
  Status st = sink_transposes(**g, ctx);
  if (!st.is_ok()) return st.to_string();
  return print_graph(**g);
}

TEST(SinkTransposes, MovesBelowAReluAndAnAddOfTwoTransposes) {
  EXPECT_EQ(sink("graph main(%x: f32[1,2,4,4], %y: f32[1,2,4,4]) {\n"
                 "  %t: f32[1,4,4,2] = Transpose(%x) {perm=[0,2,3,1]}\n"
                 "  %u: f32[1,4,4,2] = Transpose(%y) {perm=[0,2,3,1]}\n"
                 "  %r: f32[1,4,4,2] = Relu(%t)\n"
                 "  %s: f32[1,4,4,2] = Add(%r, %u)\n"
                 "  return %s\n"
                 "}\n"),
            "graph main(%x: f32[1,2,4,4], %y: f32[1,2,4,4]) {\n"
            "  %r_inner: f32[1,2,4,4] = Relu(%x)\n"
            "  %s_inner: f32[1,2,4,4] = Add(%r_inner, %y)\n"
            "  %s: f32[1,4,4,2] = Transpose(%s_inner) {perm=[0,2,3,1]}\n"
            "  return %s\n"
            "}\n");
}

// The NHWC pair around a Relu between two layers cancels outright.
TEST(SinkTransposes, CancelsAgainstTheInverseBelow) {
  EXPECT_EQ(sink("graph main(%x: f32[1,2,3,4]) {\n"
                 "  %t: f32[1,3,4,2] = Transpose(%x) {perm=[0,2,3,1]}\n"
                 "  %r: f32[1,3,4,2] = Relu(%t)\n"
                 "  %b: f32[1,2,3,4] = Transpose(%r) {perm=[0,3,1,2]}\n"
                 "  %c: f32[1,2,3,4] = Sigmoid(%b)\n"
                 "  return %c\n"
                 "}\n"),
            "graph main(%x: f32[1,2,3,4]) {\n"
            "  %r_inner: f32[1,2,3,4] = Relu(%x)\n"
            "  %c: f32[1,2,3,4] = Sigmoid(%r_inner)\n"
            "  return %c\n"
            "}\n");
}

// A constant operand is permuted by the inverse: the NHWC constant
// [n,h,w,c] = [1,2,1,2] {1,2,3,4} becomes NCHW [1,2,2,1].
TEST(SinkTransposes, PermutesAConstantOperand) {
  std::string out = sink(
      "graph main(%x: f32[1,2,2,1]) {\n"
      "  %k: f32[1,2,1,2] = const f32[1,2,1,2]{1,2,3,4}\n"
      "  %t: f32[1,2,1,2] = Transpose(%x) {perm=[0,2,3,1]}\n"
      "  %m: f32[1,2,1,2] = Mul(%t, %k)\n"
      "  return %m\n"
      "}\n");
  // NCHW[0,c,h,0] = NHWC[0,h,0,c]: c=0: {1,3}, c=1: {2,4}.
  EXPECT_NE(out.find("const f32[1,2,2,1]{1,3,2,4}"), std::string::npos) << out;
  EXPECT_NE(out.find("%m: f32[1,2,1,2] = Transpose(%m_inner) {perm=[0,2,3,1]}"), std::string::npos) << out;
}

// A squeeze-excitation scale [N,C,1,1] is small: it gets its own Transpose.
TEST(SinkTransposes, TransposesASmallOperand) {
  std::string out = sink(
      "graph main(%x: f32[1,16,4,4], %s: f32[1,1,1,16]) {\n"
      "  %t: f32[1,4,4,16] = Transpose(%x) {perm=[0,2,3,1]}\n"
      "  %m: f32[1,4,4,16] = Mul(%t, %s)\n"
      "  return %m\n"
      "}\n");
  EXPECT_NE(out.find("%s_permuted: f32[1,16,1,1] = Transpose(%s) {perm=[0,3,1,2]}"), std::string::npos) << out;
  EXPECT_NE(out.find("%m_inner: f32[1,16,4,4] = Mul(%x, %s_permuted)"), std::string::npos) << out;
}

const char* kStays =
    "graph main(%x: f32[1,2,4,4], %w: f32[2,4]) {\n"
    "  %t: f32[1,4,4,2] = Transpose(%x) {perm=[0,2,3,1]}\n"
    "  %r: f32[1,4,4,2] = Relu(%t)\n"
    "  %mm: f32[1,4,4,4] = MatMul(%t, %w)\n"
    "  return %r, %mm\n"
    "}\n";

// The Transpose is also read by a MatMul: moving it would add a second one.
TEST(SinkTransposes, StaysWhenAnotherReaderNeedsIt) { EXPECT_EQ(sink(kStays), kStays); }

// A large operand in the other layout would need a Transpose as big as the output.
TEST(SinkTransposes, StaysBesideALargeOperand) {
  const char* text =
      "graph main(%x: f32[1,2,4,4], %y: f32[1,4,4,2]) {\n"
      "  %t: f32[1,4,4,2] = Transpose(%x) {perm=[0,2,3,1]}\n"
      "  %a: f32[1,4,4,2] = Add(%t, %y)\n"
      "  return %a\n"
      "}\n";
  EXPECT_EQ(sink(text), text);
}

}  // namespace
}  // namespace kiln
