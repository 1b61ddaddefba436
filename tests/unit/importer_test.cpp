// The ONNX importer on broken files and broken graphs: every problem is a clean
// Status or a diagnostic that names it, never a crash or a huge allocation.
#include <gtest/gtest.h>

#include <random>

#include "onnx_model_builder.h"
#include "ops/shape_inference.h"

namespace kiln {
namespace {

using onnxtest::diagnostics_text;
using onnxtest::ModelBuilder;
constexpr int kFloat = onnx::TensorProto::FLOAT;

// x[batch,4] -> Relu -> Neg -> y, with an initializer and metadata: small, but
// it has every top-level field kind, so its prefixes cut through all of them.
ModelBuilder small_model() {
  ModelBuilder b;
  b.input("x", kFloat, {"batch", "4"});
  b.initializer("w", {4}, {1, 2, 3, 4});
  b.node("Relu", {"x"}, {"r"}, "relu");
  b.node("Add", {"r", "w"}, {"y"}, "add");
  b.output("y", kFloat, {"batch", "4"});
  auto* kv = b.proto().add_metadata_props();
  kv->set_key("author");
  kv->set_value("kiln");
  return b;
}

Expected<ImportResult> import_string(const std::string& s) { return import_onnx_bytes(s.data(), s.size()); }

TEST(ImportBytes, SmallModelImportsCleanly) {
  auto r = small_model().import();
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(diagnostics_text(*r), "");
  const Graph& g = *r->model.graph;
  ASSERT_EQ(g.inputs.size(), 1u);
  EXPECT_EQ(g.inputs[0]->type.to_string(), "f32[batch,4]");
  ASSERT_EQ(g.outputs.size(), 1u);
  EXPECT_EQ(g.outputs[0]->type.to_string(), "f32[batch,4]");
  EXPECT_EQ(g.nodes().size(), 2u);
}

TEST(ImportBytes, EmptyFileIsCorrupt) {
  auto r = import_string("");
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kCorrupt);
  EXPECT_EQ(r.status().message(), "the file is empty");
}

TEST(ImportBytes, TextFileIsNotAModel) {
  auto r = import_string("this is a text file, not an ONNX model\n");
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kCorrupt);
  EXPECT_EQ(r.status().message(), "not a valid ONNX model: the protobuf is truncated or corrupt");
}

TEST(ImportBytes, PngHeaderIsNotAModel) {
  auto r = import_string(std::string("\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16));
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kCorrupt);
}

TEST(ImportBytes, ValidProtobufWithoutGraphIsNotAModel) {
  onnx::TensorProto t;  // field 1 (dims) parses as ModelProto.ir_version
  t.add_dims(3);
  auto r = import_string(t.SerializeAsString());
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().message(), "not a valid ONNX model: it has no graph (is this an ONNX file?)");
}

TEST(ImportBytes, EveryTruncatedPrefixGivesAStatusOrDiagnostics) {
  std::string full = small_model().bytes();
  int clean = 0;
  for (size_t n = 0; n < full.size(); ++n) {
    auto r = import_string(full.substr(0, n));
    if (!r.is_ok()) {
      EXPECT_FALSE(r.status().message().empty()) << n;
      continue;
    }
    for (const auto& d : r->diagnostics) EXPECT_FALSE(d.message.empty()) << n;
    if (r->ok()) {
      ++clean;
      EXPECT_TRUE(r->model.metadata.empty()) << n;
    }
  }
  // A prefix that ends between top-level fields is a complete, smaller model.
  // Only the last field, metadata_props, can go unnoticed: without the graph
  // or the opset_import the model is rejected or reported.
  EXPECT_EQ(clean, 1);
}

TEST(ImportBytes, RandomByteFlipsGiveAStatusOrDiagnostics) {
  std::string full = small_model().bytes();
  std::mt19937 rng(1234);
  for (int iter = 0; iter < 3000; ++iter) {
    std::string s = full;
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) s[rng() % s.size()] ^= static_cast<char>(1 + rng() % 255);
    auto r = import_string(s);
    if (!r.is_ok()) {
      EXPECT_FALSE(r.status().message().empty()) << iter;
      continue;
    }
    for (const auto& d : r->diagnostics) EXPECT_FALSE(d.message.empty()) << iter;
  }
}

TEST(ImportVersions, IrVersionTooNewIsUnsupported) {
  ModelBuilder b = small_model();
  b.proto().set_ir_version(kMaxIrVersion + 1);
  auto r = b.import();
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kUnsupported);
  EXPECT_EQ(r.status().message(), "the model has IR version 15; kiln reads IR versions up to 14");
}

TEST(ImportVersions, MissingIrVersionIsCorrupt) {
  ModelBuilder b = small_model();
  b.proto().clear_ir_version();
  auto r = b.import();
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().message(), "not a valid ONNX model: ir_version is missing");
}

TEST(ImportVersions, OpsetAboveNewestIsReportedOnce) {
  ModelBuilder b = small_model();
  b.proto().mutable_opset_import(0)->set_version(29);
  auto r = b.import();
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(diagnostics_text(*r),
            "model: unsupported op: the model imports ai.onnx opset 29; kiln reads opsets 1 to 28 "
            "(hint: re-export the model with a supported opset)\n");
}

TEST(ImportVersions, OpsetZeroIsReportedOnce) {
  ModelBuilder b = small_model();
  b.proto().mutable_opset_import(0)->set_version(0);
  auto r = b.import();
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(diagnostics_text(*r),
            "model: unsupported op: the model imports ai.onnx opset 0; kiln reads opsets 1 to 28 "
            "(hint: re-export the model with a supported opset)\n");
}

TEST(ImportVersions, DomainImportedTwiceIsReported) {
  ModelBuilder b = small_model();
  b.opset("ai.onnx", 13);
  auto r = b.import();
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(diagnostics_text(*r), "model: invalid model: opset_import lists domain 'ai.onnx' twice (17 and 13)\n");
}

TEST(ImportVersions, NoOpsetImportFromIr3IsReported) {
  ModelBuilder b(0, 3);
  b.input("x", kFloat, {"2"});
  b.output("x", kFloat, {"2"});
  auto r = b.import();
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(diagnostics_text(*r),
            "model: invalid model: the model (IR version 3) has no opset_import (hint: every model from IR version 3 "
            "on names the opsets it uses)\n");
}

TEST(ImportVersions, NoOpsetImportBeforeIr3MeansOpset1) {
  ModelBuilder b(0, 2);
  b.input("x", kFloat, {"2"});
  b.node("Relu", {"x"}, {"y"});
  b.output("y", kFloat, {"2"});
  auto r = b.import();
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->model.opset_version(""), 1);
  ASSERT_EQ(r->model.graph->nodes().size(), 1u);
  EXPECT_EQ(r->model.graph->nodes()[0]->opset, 1);
}

TEST(ImportVersions, UnknownDomainWithoutOpsetImportIsReported) {
  ModelBuilder b;
  b.input("x", kFloat, {"2"});
  b.node("com.example:Foo", {"x"}, {"y"}, "foo");
  b.output("y", kFloat, {"2"});
  auto r = b.import();
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(diagnostics_text(*r),
            "node 0 'foo' (com.example:Foo, opset 0): invalid model: the model imports no opset for domain "
            "'com.example' (hint: add an opset_import entry for the domain)\n");
}

TEST(ImportGraph, CycleIsReportedNamingItsNodes) {
  ModelBuilder b;
  b.input("x", kFloat, {"2"});
  b.node("Add", {"x", "b"}, {"a"}, "first");
  b.node("Neg", {"a"}, {"b"}, "second");
  b.output("b", kFloat, {"2"});
  auto r = b.import();
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(diagnostics_text(*r),
            "model: invalid model: the graph has a cycle through 2 nodes: 'first' (Add), 'second' (Neg)\n");
}

TEST(ImportGraph, NodesAfterACycleAreReadAndNotReported) {
  ModelBuilder b;
  b.input("x", kFloat, {"2"});
  b.node("Neg", {"c"}, {"y"}, "after");
  b.node("Add", {"x", "b"}, {"a"}, "first");
  b.node("Neg", {"a"}, {"b"}, "second");
  b.node("Relu", {"b"}, {"c"}, "between");
  b.output("y", kFloat, {"2"});
  auto r = b.import();
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(diagnostics_text(*r),
            "model: invalid model: the graph has a cycle through 2 nodes: 'first' (Add), 'second' (Neg)\n");
  const Graph& g = *r->model.graph;
  ASSERT_EQ(g.nodes().size(), 2u);
  EXPECT_EQ(g.nodes()[0]->name, "between");
  EXPECT_EQ(g.nodes()[1]->name, "after");
  EXPECT_EQ(g.outputs[0], g.nodes()[1]->outputs[0]);
}

TEST(ImportGraph, NodeReadingItsOwnOutputIsACycle) {
  ModelBuilder b;
  b.input("x", kFloat, {"2"});
  b.node("Add", {"x", "y"}, {"y"}, "loop");
  b.output("y", kFloat, {"2"});
  auto r = b.import();
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(diagnostics_text(*r), "model: invalid model: the graph has a cycle through 1 node: 'loop' (Add)\n");
}

TEST(ImportGraph, NodesOutOfOrderAreSorted) {
  ModelBuilder b;
  b.input("x", kFloat, {"2"});
  b.node("Neg", {"a"}, {"y"}, "second");
  b.node("Relu", {"x"}, {"a"}, "first");
  b.output("y", kFloat, {"2"});
  auto r = b.import();
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(diagnostics_text(*r), "");
  ASSERT_EQ(r->model.graph->nodes().size(), 2u);
  EXPECT_EQ(r->model.graph->nodes()[0]->name, "first");
  EXPECT_EQ(r->model.graph->outputs[0]->type.to_string(), "f32[2]");
}

TEST(ImportGraph, DanglingInputIsReported) {
  ModelBuilder b;
  b.input("x", kFloat, {"2"});
  b.node("Add", {"x", "nowhere"}, {"y"}, "add");
  b.output("y", kFloat, {"2"});
  auto r = b.import();
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(diagnostics_text(*r),
            "node 0 'add' (Add, opset 17): invalid model: input 'nowhere' is not produced by any node, graph input or "
            "initializer\n");
}

TEST(ImportGraph, ValueProducedTwiceIsReported) {
  ModelBuilder b;
  b.input("x", kFloat, {"2"});
  b.node("Relu", {"x"}, {"y"}, "one");
  b.node("Neg", {"x"}, {"y"}, "two");
  b.output("y", kFloat, {"2"});
  auto r = b.import();
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(diagnostics_text(*r), "node 1 'two' (Neg, opset 17): invalid model: value 'y' is produced twice\n");
  // Readers and the graph output keep the first producer.
  const Graph& g = *r->model.graph;
  ASSERT_EQ(g.nodes().size(), 1u);
  EXPECT_EQ(g.outputs[0], g.nodes()[0]->outputs[0]);
}

TEST(ImportGraph, NodeOverwritingAGraphInputIsReported) {
  ModelBuilder b;
  b.input("x", kFloat, {"2"});
  b.node("Relu", {"x"}, {"x"}, "again");
  b.output("x", kFloat, {"2"});
  auto r = b.import();
  ASSERT_TRUE(r.is_ok());
  EXPECT_NE(diagnostics_text(*r), "");
}

TEST(ImportGraph, GraphInputListedTwiceIsReported) {
  ModelBuilder b;
  b.input("x", kFloat, {"2"});
  b.input("x", kFloat, {"2"});
  b.output("x", kFloat, {"2"});
  auto r = b.import();
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(diagnostics_text(*r), "model: invalid model: graph input 'x' is listed twice\n");
}

TEST(ImportGraph, UnnamedInputAndInitializerAreReported) {
  ModelBuilder b;
  b.input("", kFloat, {"2"});
  b.initializer("", {1}, {1});
  b.input("x", kFloat, {"2"});
  b.output("x", kFloat, {"2"});
  auto r = b.import();
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(diagnostics_text(*r),
            "model: invalid model: an initializer has no name\n"
            "model: invalid model: a graph input has no name\n");
  EXPECT_EQ(r->model.graph->inputs.size(), 1u);
}

TEST(ImportGraph, MissingGraphOutputIsReported) {
  ModelBuilder b;
  b.input("x", kFloat, {"2"});
  b.output("z", kFloat, {"2"});
  auto r = b.import();
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(diagnostics_text(*r),
            "model: invalid model: graph output 'z' is not produced by any node, input or initializer\n");
}

TEST(ImportGraph, DuplicateInitializerIsReported) {
  ModelBuilder b;
  b.initializer("w", {1}, {1});
  b.initializer("w", {1}, {2});
  b.output("w", kFloat, {"1"});
  auto r = b.import();
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(diagnostics_text(*r), "model: invalid model: initializer 'w' is defined twice\n");
}

TEST(ImportGraph, NegativeDimInInputIsReported) {
  ModelBuilder b;
  b.input("x", kFloat, {"2", "-3"});
  b.node("Relu", {"x"}, {"y"}, "relu");
  b.output("y", kFloat, {"2", "3"});
  auto r = b.import();
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(diagnostics_text(*r), "model: invalid model: graph input: 'x' declares a negative dim -3\n");
}

TEST(ImportGraph, NegativeDimInInitializerIsReported) {
  ModelBuilder b;
  b.initializer("w", {2, -1}, {});
  b.output("w", kFloat, {"2"});
  auto r = b.import();
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(diagnostics_text(*r), "model: invalid model: initializer 'w': tensor 'w' has a negative dim [2,-1]\n");
}

TEST(ImportGraph, ThreeUnsupportedNodesGiveOneReportNamingAll) {
  ModelBuilder b;
  b.opset("com.example", 1);
  b.input("x", kFloat, {"2"});
  b.node("com.example:Foo", {"x"}, {"a"}, "foo");
  b.node("Relu", {"a"}, {"b"}, "relu");
  b.node("com.example:Bar", {"b"}, {"c"}, "bar");
  b.node("com.example:Baz", {"c"}, {"y"}, "baz");
  b.output("y", kFloat, {"2"});
  auto r = b.import();
  ASSERT_TRUE(r.is_ok());
  const char* hint = "(hint: kiln has no kernels for this custom domain; export the model without the custom op)";
  EXPECT_EQ(diagnostics_text(*r),
            fmt::format("node 0 'foo' (com.example:Foo, opset 1): unsupported op: kiln has no op 'Foo' in domain "
                        "'com.example' {0}\n"
                        "node 2 'bar' (com.example:Bar, opset 1): unsupported op: kiln has no op 'Bar' in domain "
                        "'com.example' {0}\n"
                        "node 3 'baz' (com.example:Baz, opset 1): unsupported op: kiln has no op 'Baz' in domain "
                        "'com.example' {0}\n",
                        hint));
  // The declared output type survives the unknown op in front of it.
  EXPECT_EQ(r->model.graph->outputs[0]->type.to_string(), "f32[2]");
}

TEST(ImportGraph, NodeAndModelMetadataAreKept) {
  ModelBuilder b = small_model();
  b.proto().set_doc_string("a model");
  b.proto().set_model_version(7);
  b.proto().set_domain("org.kiln");
  onnx::NodeProto* n = b.graph().mutable_node(0);
  n->set_doc_string("the relu");
  auto* kv = n->add_metadata_props();
  kv->set_key("origin");
  kv->set_value("layer1");
  auto r = b.import();
  ASSERT_TRUE(r.is_ok());
  const Model& m = r->model;
  EXPECT_EQ(m.producer_name, "kiln-test");
  EXPECT_EQ(m.doc_string, "a model");
  EXPECT_EQ(m.model_version, 7);
  EXPECT_EQ(m.domain, "org.kiln");
  EXPECT_EQ(m.metadata.at("author"), "kiln");
  const Node& relu = *m.graph->nodes()[0];
  EXPECT_EQ(relu.doc_string, "the relu");
  EXPECT_EQ(relu.metadata.at("origin"), "layer1");
}

// An opset-9 Dropout asking for the mask but given no data (found by the
// fuzzer): one precise diagnostic, not an out-of-range read.
TEST(ImportGraph, DropoutMaskWithoutDataIsReported) {
  ModelBuilder b(9);
  b.input("x", kFloat, {"4"});
  b.node("Dropout", {}, {"y", "mask"});
  b.output("mask", kFloat, {"4"});
  auto r = b.import();
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_NE(diagnostics_text(*r).find("Dropout: the mask output needs the data input"), std::string::npos)
      << diagnostics_text(*r);
}

TEST(ImportGraph, InitializersListedAsInputsStayConstants) {
  ModelBuilder b(7, 3);
  b.input("x", kFloat, {"4"});
  b.input("w", kFloat, {"4"});
  b.initializer("w", {4}, {1, 2, 3, 4});
  b.node("Add", {"x", "w"}, {"y"});
  b.output("y", kFloat, {"4"});
  auto r = b.import();
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(diagnostics_text(*r), "");
  const Graph& g = *r->model.graph;
  ASSERT_EQ(g.inputs.size(), 1u);
  EXPECT_EQ(g.inputs[0]->name, "x");
  ASSERT_EQ(g.initializers.size(), 1u);
  EXPECT_EQ(g.initializers[0]->name, "w");
  EXPECT_EQ(g.nodes()[0]->inputs[1], g.initializers[0]);
}

TEST(ImportAttributes, AttributesWithoutTypeTakeItFromTheirField) {
  ModelBuilder b;
  b.opset("com.example", 1);
  b.input("x", kFloat, {"2"});
  auto& n = b.node("com.example:Foo", {"x"}, {"y"}, "foo");
  onnxtest::attr_int(n, "i", 5).clear_type();
  onnxtest::attr_float(n, "f", 0.5f).clear_type();
  onnxtest::attr_string(n, "s", "hi").clear_type();
  onnxtest::attr_ints(n, "is", {1, 2}).clear_type();
  onnxtest::attr_floats(n, "fs", {1.5f}).clear_type();
  onnxtest::attr_strings(n, "ss", {"a", "b"}).clear_type();
  onnxtest::attr_tensor(n, "t", onnxtest::float_tensor("", {1}, {3})).clear_type();
  b.output("y", kFloat, {"2"});
  auto r = b.import();
  ASSERT_TRUE(r.is_ok());
  ASSERT_EQ(r->model.graph->nodes().size(), 1u);
  const Node& foo = *r->model.graph->nodes()[0];
  EXPECT_EQ(foo.attr_int("i", 0), 5);
  EXPECT_EQ(foo.attr_float("f", 0), 0.5f);
  EXPECT_EQ(foo.attr_string("s", ""), "hi");
  EXPECT_EQ(foo.attr_ints("is"), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(foo.attr_floats("fs"), (std::vector<float>{1.5f}));
  ASSERT_NE(foo.attr("ss"), nullptr);
  EXPECT_EQ(foo.attr("ss")->strings, (std::vector<std::string>{"a", "b"}));
  ASSERT_NE(foo.attr("t"), nullptr);
  EXPECT_EQ(foo.attr("t")->kind, Attribute::Kind::kTensor);
  EXPECT_EQ(foo.attr("t")->t.data<float>()[0], 3.0f);
}

TEST(ImportAttributes, AttributeGivenTwiceIsReported) {
  ModelBuilder b;
  b.input("x", kFloat, {"2"});
  auto& n = b.node("LeakyRelu", {"x"}, {"y"}, "lrelu");
  onnxtest::attr_float(n, "alpha", 0.1f);
  onnxtest::attr_float(n, "alpha", 0.2f);
  b.output("y", kFloat, {"2"});
  auto r = b.import();
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(diagnostics_text(*r),
            "node 0 'lrelu' (LeakyRelu, opset 17): invalid model: attribute 'alpha' is given twice\n");
}

TEST(ImportAttributes, AttributeReferenceOutsideAFunctionIsReported) {
  ModelBuilder b;
  b.input("x", kFloat, {"2"});
  auto& n = b.node("LeakyRelu", {"x"}, {"y"}, "lrelu");
  onnxtest::attr_ref(n, "alpha", "a", onnx::AttributeProto::FLOAT);
  b.output("y", kFloat, {"2"});
  auto r = b.import();
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(diagnostics_text(*r),
            "node 0 'lrelu' (LeakyRelu, opset 17): invalid model: attribute 'alpha' refers to 'a' outside a "
            "function\n");
}

}  // namespace
}  // namespace kiln
