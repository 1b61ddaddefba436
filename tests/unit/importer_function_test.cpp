// The ONNX importer's model-local functions (inlined) and subgraphs.
#include <gtest/gtest.h>

#include "onnx/function_inliner.h"
#include "onnx_model_builder.h"

namespace kiln {
namespace {

using onnxtest::diagnostics_text;
using onnxtest::ModelBuilder;
constexpr int kFloat = onnx::TensorProto::FLOAT;

// com.example:Scale(X) = X * alpha, alpha defaulting to 2.
onnx::FunctionProto scale_function() {
  onnx::FunctionProto f;
  f.set_domain("com.example");
  f.set_name("Scale");
  f.add_input("X");
  f.add_output("Y");
  auto* op = f.add_opset_import();
  op->set_version(17);
  auto* def = f.add_attribute_proto();
  def->set_name("alpha");
  def->set_type(onnx::AttributeProto::FLOAT);
  def->set_f(2.0f);
  auto* c = f.add_node();
  c->set_op_type("Constant");
  c->add_output("a");
  onnxtest::attr_ref(*c, "value_float", "alpha", onnx::AttributeProto::FLOAT);
  auto* mul = f.add_node();
  mul->set_op_type("Mul");
  mul->set_name("mul");
  mul->add_input("X");
  mul->add_input("a");
  mul->add_output("Y");
  return f;
}

float constant_of(const Value* v) { return v && v->constant ? v->constant->data<float>()[0] : -1.0f; }

TEST(ImportFunction, CallsAreInlinedWithAttributeReferencesAndDefaults) {
  ModelBuilder b;
  b.opset("com.example", 1);
  *b.proto().add_functions() = scale_function();
  b.input("x", kFloat, {"batch", "2"});
  onnxtest::attr_float(b.node("com.example:Scale", {"x"}, {"y1"}, "call1"), "alpha", 3.0f);
  b.node("com.example:Scale", {"y1"}, {"y"}, "call2");
  b.output("y", kFloat, {"batch", "2"});
  auto r = b.import();
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(diagnostics_text(*r), "");
  const Graph& g = *r->model.graph;
  ASSERT_EQ(g.nodes().size(), 2u);
  const Node& first = *g.nodes()[0];
  const Node& second = *g.nodes()[1];
  EXPECT_EQ(first.op_type, "Mul");
  EXPECT_EQ(first.name, "call1/mul");
  EXPECT_EQ(first.inputs[0], g.inputs[0]);
  EXPECT_EQ(constant_of(first.inputs[1]), 3.0f);
  EXPECT_EQ(second.name, "call2/mul");
  EXPECT_EQ(second.inputs[0], first.outputs[0]);
  EXPECT_EQ(constant_of(second.inputs[1]), 2.0f);
  EXPECT_EQ(second.outputs[0], g.outputs[0]);
  EXPECT_EQ(g.outputs[0]->type.to_string(), "f32[batch,2]");
}

TEST(ImportFunction, NestedCallsAreInlined) {
  ModelBuilder b;
  b.opset("com.example", 1);
  *b.proto().add_functions() = scale_function();
  onnx::FunctionProto twice;
  twice.set_domain("com.example");
  twice.set_name("Twice");
  twice.add_input("X");
  twice.add_output("Y");
  twice.add_attribute("k");
  auto* inner1 = twice.add_node();
  inner1->set_op_type("Scale");
  inner1->set_domain("com.example");
  inner1->set_name("s1");
  inner1->add_input("X");
  inner1->add_output("T");
  onnxtest::attr_ref(*inner1, "alpha", "k", onnx::AttributeProto::FLOAT);
  auto* inner2 = twice.add_node();
  *inner2 = *inner1;
  inner2->set_name("s2");
  inner2->set_input(0, "T");
  inner2->set_output(0, "Y");
  *b.proto().add_functions() = twice;
  b.input("x", kFloat, {"2"});
  onnxtest::attr_float(b.node("com.example:Twice", {"x"}, {"y"}, "t"), "k", 5.0f);
  b.output("y", kFloat, {"2"});
  auto r = b.import();
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(diagnostics_text(*r), "");
  const Graph& g = *r->model.graph;
  ASSERT_EQ(g.nodes().size(), 2u);
  EXPECT_EQ(g.nodes()[0]->name, "t/s1/mul");
  EXPECT_EQ(g.nodes()[1]->name, "t/s2/mul");
  EXPECT_EQ(constant_of(g.nodes()[0]->inputs[1]), 5.0f);
  EXPECT_EQ(constant_of(g.nodes()[1]->inputs[1]), 5.0f);
}

TEST(ImportFunction, RecursiveFunctionIsReportedNotExpandedForever) {
  // Each call makes two: without a bound this would be 2^depth nodes.
  onnx::FunctionProto f;
  f.set_domain("com.example");
  f.set_name("Boom");
  f.add_input("X");
  f.add_output("Y");
  for (const char* out : {"A", "Y"}) {
    auto* n = f.add_node();
    n->set_domain("com.example");
    n->set_op_type("Boom");
    n->add_input(out[0] == 'A' ? "X" : "A");
    n->add_output(out);
  }
  ModelBuilder b;
  b.opset("com.example", 1);
  *b.proto().add_functions() = f;
  b.input("x", kFloat, {"2"});
  b.node("com.example:Boom", {"x"}, {"y"}, "boom");
  b.output("y", kFloat, {"2"});
  auto r = b.import();
  ASSERT_TRUE(r.is_ok());
  ASSERT_FALSE(r->diagnostics.empty());
  EXPECT_EQ(format_diagnostic(r->diagnostics[0]),
            "node 'boom/Boom0' (com.example:Boom, opset 1): invalid model: function 'com.example:Boom' calls itself "
            "(through 'com.example:Boom')");
}

TEST(ImportFunction, ExponentialNestingStopsAtTheNodeLimit) {
  // F0 calls F1 twice, F1 calls F2 twice, ...: 2^24 Relu nodes if expanded.
  // Found by counting, before anything is expanded (so it takes no time).
  ModelBuilder b;
  b.opset("com.example", 1);
  constexpr int kDepth = 24;
  for (int k = 0; k <= kDepth; ++k) {
    onnx::FunctionProto* f = b.proto().add_functions();
    f->set_domain("com.example");
    f->set_name(fmt::format("F{}", k));
    f->add_input("X");
    f->add_output("Y");
    for (const char* out : {"A", "Y"}) {
      auto* n = f->add_node();
      if (k == kDepth) {
        n->set_op_type("Relu");
      } else {
        n->set_domain("com.example");
        n->set_op_type(fmt::format("F{}", k + 1));
      }
      n->add_input(out[0] == 'A' ? "X" : "A");
      n->add_output(out);
    }
  }
  b.input("x", kFloat, {"2"});
  b.node("com.example:F0", {"x"}, {"y"}, "f0");
  b.output("y", kFloat, {"2"});
  auto r = b.import();
  ASSERT_TRUE(r.is_ok());
  ASSERT_EQ(r->diagnostics.size(), 1u) << diagnostics_text(*r);
  EXPECT_EQ(r->diagnostics[0].message,
            fmt::format("inlining the model's functions would make more than {} nodes", kMaxInlinedNodes));
  EXPECT_TRUE(r->model.graph->nodes().empty());
}

TEST(ImportFunction, CallWithTooManyInputsIsReported) {
  ModelBuilder b;
  b.opset("com.example", 1);
  *b.proto().add_functions() = scale_function();
  b.input("x", kFloat, {"2"});
  b.node("com.example:Scale", {"x", "x"}, {"y"}, "call");
  b.output("y", kFloat, {"2"});
  auto r = b.import();
  ASSERT_TRUE(r.is_ok());
  ASSERT_FALSE(r->diagnostics.empty());
  EXPECT_EQ(format_diagnostic(r->diagnostics[0]),
            "node 'call' (com.example:Scale, opset 1): invalid model: call of function 'Scale' has 2 inputs and 1 "
            "outputs; the function takes 1 and 1");
}

// cond ? -x : x, with both branches reading the outer x.
onnx::GraphProto branch(const std::string& op, const std::string& out) {
  onnx::GraphProto g;
  g.set_name(out);
  auto* n = g.add_node();
  n->set_op_type(op);
  n->set_name(out + "_node");
  n->add_input("x");
  n->add_output(out);
  auto* o = g.add_output();
  o->set_name(out);
  onnxtest::set_tensor_type(*o, kFloat, {"2"});
  return g;
}

TEST(ImportSubgraph, IfBranchesReadOuterValues) {
  ModelBuilder b;
  b.input("cond", onnx::TensorProto::BOOL, {});
  // The If comes first in the file; x is produced after it and must be sorted before.
  auto& if_node = b.node("If", {"cond"}, {"y"}, "if");
  onnxtest::attr_graph(if_node, "then_branch", branch("Neg", "t"));
  onnxtest::attr_graph(if_node, "else_branch", branch("Identity", "e"));
  b.input("x_in", kFloat, {"2"});
  b.node("Relu", {"x_in"}, {"x"}, "relu");
  b.output("y", kFloat, {"2"});
  auto r = b.import();
  ASSERT_TRUE(r.is_ok());
  for (const auto& d : r->diagnostics)  // If itself may be unsupported yet; nothing may be invalid
    EXPECT_EQ(d.reason, Diagnostic::Reason::kUnsupportedOp) << format_diagnostic(d);
  const Graph& g = *r->model.graph;
  ASSERT_EQ(g.nodes().size(), 2u);
  EXPECT_EQ(g.nodes()[0]->name, "relu");
  const Node& iff = *g.nodes()[1];
  const Value* x = g.nodes()[0]->outputs[0];
  for (const char* key : {"then_branch", "else_branch"}) {
    const Attribute* a = iff.attr(key);
    ASSERT_TRUE(a && a->g) << key;
    EXPECT_EQ(a->g->parent, &g);
    ASSERT_EQ(a->g->nodes().size(), 1u);
    EXPECT_EQ(a->g->nodes()[0]->inputs[0], x) << key;
    ASSERT_EQ(a->g->outputs.size(), 1u);
    EXPECT_EQ(a->g->outputs[0]->type.to_string(), "f32[2]");
  }
}

TEST(ImportSubgraph, DanglingReadInsideABranchNamesTheBranch) {
  ModelBuilder b;
  b.input("cond", onnx::TensorProto::BOOL, {});
  auto& if_node = b.node("If", {"cond"}, {"y"}, "if");
  onnxtest::attr_graph(if_node, "then_branch", branch("Neg", "t"));
  onnxtest::attr_graph(if_node, "else_branch", branch("Identity", "e"));
  b.output("y", kFloat, {"2"});
  auto r = b.import();
  ASSERT_TRUE(r.is_ok());
  std::string invalid;
  for (const auto& d : r->diagnostics)
    if (d.reason == Diagnostic::Reason::kInvalidModel) invalid += format_diagnostic(d) + "\n";
  EXPECT_EQ(invalid,
            "node 0 't_node' (Neg, opset 17) in main/if.then_branch: invalid model: input 'x' is not produced by "
            "any node, graph input or initializer\n"
            "node 0 'e_node' (Identity, opset 17) in main/if.else_branch: invalid model: input 'x' is not produced "
            "by any node, graph input or initializer\n");
}

}  // namespace
}  // namespace kiln
