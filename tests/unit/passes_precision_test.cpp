// assign_precision: which ops go to 16 bits, where Casts go, what keeps f32.
#include <gtest/gtest.h>

#include "ir/parser.h"
#include "ir/printer.h"
#include "ir/rewrite.h"
#include "passes/pass.h"

namespace kiln {
namespace {

std::string lowered(const char* text, DType target = DType::kF16) {
  auto g = parse_graph(text);
  if (!g) return g.status().to_string();
  Status st = assign_precision(**g, target);
  if (!st.is_ok()) return st.to_string();
  (*g)->erase_nodes_if([](const Node&) { return false; });
  return print_graph(**g);
}

// A Loop whose body reads %y of the graph around it: %y goes to 16 bits
// (MatMul), the body keeps its f32 types and reads an f32 Cast made before
// the Loop.
TEST(AssignPrecision, BodyReadsOfLoweredValuesComeBackToF32) {
  auto g = parse_graph(
      "graph main(%x: f32[2,2], %m: i64[]) {\n"
      "  %w: f32[2,2] = const f32[2,2]{1,2,3,4}\n"
      "  %y: f32[2,2] = MatMul(%x, %w)\n"
      "  %r: f32[2,2] = Loop(%m, _, %x)\n"
      "  return %r\n"
      "}\n");
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  auto body = parse_graph(
      "graph body(%i: i64[], %c: bool[], %acc: f32[2,2], %y: f32[2,2]) {\n"
      "  %next: f32[2,2] = Sub(%acc, %y)\n"
      "  return %c, %next\n"
      "}\n");
  ASSERT_TRUE(body.is_ok()) << body.status().to_string();
  Value* y = (*g)->find_value("y");
  replace_uses(**body, (*body)->inputs[3], y);  // the body reads the outer %y
  (*body)->inputs.resize(3);
  (*body)->parent = g->get();
  Attribute a;
  a.kind = Attribute::Kind::kGraph;
  a.g = *body;
  (*g)->mutable_nodes()[1]->attrs["body"] = a;
  ASSERT_TRUE(assign_precision(**g, DType::kF16).is_ok());
  (*g)->erase_nodes_if([](const Node&) { return false; });
  EXPECT_EQ(print_graph(**g),
            "graph main(%x: f32[2,2], %m: i64[]) {\n"
            "  %w_lp: f16[2,2] = const f16[2,2]{1,2,3,4}\n"
            "  %x_lp: f16[2,2] = Cast(%x) {to=10}\n"
            "  %y: f16[2,2] = MatMul(%x_lp, %w_lp)\n"
            "  %y_f32: f32[2,2] = Cast(%y) {to=1}\n"
            "  %r: f32[2,2] = Loop(%m, _, %x)\n"
            "    body:\n"
            "      graph body(%i: i64[], %c: bool[], %acc: f32[2,2]) {\n"
            "        %next: f32[2,2] = Sub(%acc, %y_f32)\n"
            "        return %c, %next\n"
            "      }\n"
            "  return %r\n"
            "}\n");
}

// ViT reads the patch tokens' Shape for the class token's Expand: Shape and
// Size read only the dims, so no f32 copy of the 16-bit tokens is made for them.
TEST(AssignPrecision, ShapeAndSizeReadA16BitValueWithoutACast) {
  EXPECT_EQ(lowered("graph main(%x: f32[b,2]) {\n"
                    "  %w: f32[2,2] = const f32[2,2]{1,2,3,4}\n"
                    "  %y: f32[b,2] = MatMul(%x, %w)\n"
                    "  %s: i64[2] = Shape(%y)\n"
                    "  %n: i64[] = Size(%y)\n"
                    "  return %y, %s, %n\n"
                    "}\n"),
            "graph main(%x: f32[b,2]) {\n"
            "  %w_lp: f16[2,2] = const f16[2,2]{1,2,3,4}\n"
            "  %x_lp: f16[b,2] = Cast(%x) {to=10}\n"
            "  %y_lp: f16[b,2] = MatMul(%x_lp, %w_lp)\n"
            "  %y: f32[b,2] = Cast(%y_lp) {to=1}\n"
            "  %s: i64[2] = Shape(%y_lp)\n"
            "  %n: i64[] = Size(%y_lp)\n"
            "  return %y, %s, %n\n"
            "}\n");
}

TEST(AssignPrecision, MatMulGoesTo16BitsExpStaysF32AndOutputsKeepTheirType) {
  EXPECT_EQ(lowered("graph main(%x: f32[2,2]) {\n"
                    "  %w: f32[2,2] = const f32[2,2]{1,2,3,4}\n"
                    "  %y: f32[2,2] = MatMul(%x, %w)\n"
                    "  %z: f32[2,2] = Exp(%y)\n"
                    "  %r: f32[2,2] = Relu(%z)\n"
                    "  return %r\n"
                    "}\n"),
            "graph main(%x: f32[2,2]) {\n"
            "  %w_lp: f16[2,2] = const f16[2,2]{1,2,3,4}\n"
            "  %x_lp: f16[2,2] = Cast(%x) {to=10}\n"
            "  %y: f16[2,2] = MatMul(%x_lp, %w_lp)\n"
            "  %y_f32: f32[2,2] = Cast(%y) {to=1}\n"
            "  %z: f32[2,2] = Exp(%y_f32)\n"
            "  %z_lp: f16[2,2] = Cast(%z) {to=10}\n"
            "  %r_lp: f16[2,2] = Relu(%z_lp)\n"
            "  %r: f32[2,2] = Cast(%r_lp) {to=1}\n"
            "  return %r\n"
            "}\n");
}

TEST(AssignPrecision, ResizeScalesAndIntegerInputsKeepTheirTypes) {
  EXPECT_EQ(lowered("graph main(%x: f32[1,1,2,2]) {\n"
                    "  %s: f32[4] = const f32[4]{1,1,2,2}\n"
                    "  %y: f32[1,1,4,4] = Resize(%x, _, %s)\n"
                    "  return %y\n"
                    "}\n",
                    DType::kBF16),
            "graph main(%x: f32[1,1,2,2]) {\n"
            "  %s: f32[4] = const f32[4]{1,1,2,2}\n"
            "  %x_lp: bf16[1,1,2,2] = Cast(%x) {to=16}\n"
            "  %y_lp: bf16[1,1,4,4] = Resize(%x_lp, _, %s)\n"
            "  %y: f32[1,1,4,4] = Cast(%y_lp) {to=1}\n"
            "  return %y\n"
            "}\n");
}

// kiln::FusedConv (another domain) is on the list; its residual Z is lowered with X.
TEST(AssignPrecision, FusedConvGoesTo16BitsResidualIncluded) {
  EXPECT_EQ(lowered("graph main(%x: f32[1,1,2,2], %id: f32[1,1,2,2]) {\n"
                    "  %w: f32[1,1,1,1] = const f32[1,1,1,1]{2}\n"
                    "  %y: f32[1,1,2,2] = kiln.FusedConv(%x, %w, _, %id) {activation=\"Relu\"}\n"
                    "  return %y\n"
                    "}\n"),
            "graph main(%x: f32[1,1,2,2], %id: f32[1,1,2,2]) {\n"
            "  %w_lp: f16[1,1,1,1] = const f16[1,1,1,1]{2}\n"
            "  %x_lp: f16[1,1,2,2] = Cast(%x) {to=10}\n"
            "  %id_lp: f16[1,1,2,2] = Cast(%id) {to=10}\n"
            "  %y_lp: f16[1,1,2,2] = kiln.FusedConv(%x_lp, %w_lp, _, %id_lp) {activation=\"Relu\"}\n"
            "  %y: f32[1,1,2,2] = Cast(%y_lp) {to=1}\n"
            "  return %y\n"
            "}\n");
}

// kiln.FusedMatMul is on the list by its domain-qualified name; its bias takes the output's 16-bit type.
TEST(AssignPrecision, FusedMatMulAndItsBiasGoTo16Bits) {
  EXPECT_EQ(lowered("graph main(%x: f32[2,2]) {\n"
                    "  %w: f32[2,2] = const f32[2,2]{1,2,3,4}\n"
                    "  %b: f32[2] = const f32[2]{1,2}\n"
                    "  %y: f32[2,2] = kiln.FusedMatMul(%x, %w, %b) {activation=\"Gelu\"}\n"
                    "  return %y\n"
                    "}\n"),
            "graph main(%x: f32[2,2]) {\n"
            "  %w_lp: f16[2,2] = const f16[2,2]{1,2,3,4}\n"
            "  %b_lp: f16[2] = const f16[2]{1,2}\n"
            "  %x_lp: f16[2,2] = Cast(%x) {to=10}\n"
            "  %y_lp: f16[2,2] = kiln.FusedMatMul(%x_lp, %w_lp, %b_lp) {activation=\"Gelu\"}\n"
            "  %y: f32[2,2] = Cast(%y_lp) {to=1}\n"
            "  return %y\n"
            "}\n");
}

// Its residual (input 4, after an omitted bias) is lowered like A: the product reads it as its 16-bit C.
TEST(AssignPrecision, FusedMatMulResidualGoesTo16BitsLikeA) {
  EXPECT_EQ(lowered("graph main(%x: f32[2,2], %r: f32[2,2]) {\n"
                    "  %w: f32[2,2] = const f32[2,2]{1,2,3,4}\n"
                    "  %y: f32[2,2] = kiln.FusedMatMul(%x, %w, _, %r) {activation=\"\"}\n"
                    "  return %y\n"
                    "}\n"),
            "graph main(%x: f32[2,2], %r: f32[2,2]) {\n"
            "  %w_lp: f16[2,2] = const f16[2,2]{1,2,3,4}\n"
            "  %x_lp: f16[2,2] = Cast(%x) {to=10}\n"
            "  %r_lp: f16[2,2] = Cast(%r) {to=10}\n"
            "  %y_lp: f16[2,2] = kiln.FusedMatMul(%x_lp, %w_lp, _, %r_lp) {activation=\"\"}\n"
            "  %y: f32[2,2] = Cast(%y_lp) {to=1}\n"
            "  return %y\n"
            "}\n");
}

}  // namespace
}  // namespace kiln
