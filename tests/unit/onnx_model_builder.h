// Builds small ONNX ModelProtos in tests, so importer tests read as the model
// they describe:
//   ModelBuilder b;
//   b.input("x", onnx::TensorProto::FLOAT, {"batch", "4"});
//   b.node("Relu", {"x"}, {"y"});
//   b.output("y", onnx::TensorProto::FLOAT, {"batch", "4"});
//   auto r = b.import();
#pragma once

#include <onnx/onnx-ml.pb.h>

#include <string>
#include <vector>

#include "onnx/importer.h"

namespace kiln::onnxtest {

class ModelBuilder {
 public:
  // A model of IR version `ir_version` importing ai.onnx at `opset`; opset 0
  // imports no default domain at all.
  explicit ModelBuilder(int64_t opset = 17, int64_t ir_version = 8);

  onnx::ModelProto& proto() { return model_; }
  onnx::GraphProto& graph() { return *model_.mutable_graph(); }

  // Dims: a number is a fixed dim, "?" an unknown one, anything else a symbol.
  // No dims at all ({}) is a scalar; use `input_unranked` for an unknown rank.
  onnx::ValueInfoProto& input(const std::string& name, int elem_type, const std::vector<std::string>& dims);
  onnx::ValueInfoProto& input_unranked(const std::string& name, int elem_type);
  onnx::ValueInfoProto& output(const std::string& name, int elem_type, const std::vector<std::string>& dims);
  onnx::ValueInfoProto& output_untyped(const std::string& name);
  onnx::NodeProto& node(const std::string& op_type, const std::vector<std::string>& inputs,
                        const std::vector<std::string>& outputs, const std::string& name = "");
  onnx::TensorProto& initializer(const std::string& name, const std::vector<int64_t>& dims,
                                 const std::vector<float>& values);
  void opset(const std::string& domain, int64_t version);

  std::string bytes() const;
  Expected<ImportResult> import(const ImportOptions& options = {}) const;

 private:
  onnx::ModelProto model_;
};

// Fills a ValueInfoProto's tensor type (see ModelBuilder::input for dims).
void set_tensor_type(onnx::ValueInfoProto& vi, int elem_type, const std::vector<std::string>& dims);

// A float tensor with raw_data.
onnx::TensorProto float_tensor(const std::string& name, const std::vector<int64_t>& dims,
                               const std::vector<float>& values);

// Attributes, added to `n` with their type set as a current producer would.
onnx::AttributeProto& attr_int(onnx::NodeProto& n, const std::string& name, int64_t v);
onnx::AttributeProto& attr_float(onnx::NodeProto& n, const std::string& name, float v);
onnx::AttributeProto& attr_string(onnx::NodeProto& n, const std::string& name, const std::string& v);
onnx::AttributeProto& attr_ints(onnx::NodeProto& n, const std::string& name, const std::vector<int64_t>& v);
onnx::AttributeProto& attr_floats(onnx::NodeProto& n, const std::string& name, const std::vector<float>& v);
onnx::AttributeProto& attr_strings(onnx::NodeProto& n, const std::string& name, const std::vector<std::string>& v);
onnx::AttributeProto& attr_tensor(onnx::NodeProto& n, const std::string& name, const onnx::TensorProto& t);
onnx::AttributeProto& attr_graph(onnx::NodeProto& n, const std::string& name, const onnx::GraphProto& g);
// An attribute of a function body that takes the caller's attribute `ref`.
onnx::AttributeProto& attr_ref(onnx::NodeProto& n, const std::string& name, const std::string& ref, int type);

// The messages of all diagnostics, one per line, as format_diagnostic writes them.
std::string diagnostics_text(const ImportResult& r);

}  // namespace kiln::onnxtest
