#include "onnx_model_builder.h"

#include <cctype>

namespace kiln::onnxtest {

ModelBuilder::ModelBuilder(int64_t opset, int64_t ir_version) {
  model_.set_ir_version(ir_version);
  model_.set_producer_name("kiln-test");
  if (opset > 0) {
    auto* o = model_.add_opset_import();
    o->set_domain("");
    o->set_version(opset);
  }
  model_.mutable_graph()->set_name("test");
}

void set_tensor_type(onnx::ValueInfoProto& vi, int elem_type, const std::vector<std::string>& dims) {
  auto* tt = vi.mutable_type()->mutable_tensor_type();
  tt->set_elem_type(elem_type);
  auto* shape = tt->mutable_shape();
  for (const auto& d : dims) {
    auto* dim = shape->add_dim();
    if (d == "?") continue;
    if (!d.empty() && (std::isdigit(static_cast<unsigned char>(d[0])) || d[0] == '-'))
      dim->set_dim_value(std::stoll(d));
    else
      dim->set_dim_param(d);
  }
}

onnx::ValueInfoProto& ModelBuilder::input(const std::string& name, int elem_type,
                                          const std::vector<std::string>& dims) {
  auto* vi = graph().add_input();
  vi->set_name(name);
  set_tensor_type(*vi, elem_type, dims);
  return *vi;
}

onnx::ValueInfoProto& ModelBuilder::input_unranked(const std::string& name, int elem_type) {
  auto* vi = graph().add_input();
  vi->set_name(name);
  vi->mutable_type()->mutable_tensor_type()->set_elem_type(elem_type);
  return *vi;
}

onnx::ValueInfoProto& ModelBuilder::output(const std::string& name, int elem_type,
                                           const std::vector<std::string>& dims) {
  auto* vi = graph().add_output();
  vi->set_name(name);
  set_tensor_type(*vi, elem_type, dims);
  return *vi;
}

onnx::ValueInfoProto& ModelBuilder::output_untyped(const std::string& name) {
  auto* vi = graph().add_output();
  vi->set_name(name);
  return *vi;
}

onnx::NodeProto& ModelBuilder::node(const std::string& op_type, const std::vector<std::string>& inputs,
                                    const std::vector<std::string>& outputs, const std::string& name) {
  auto* n = graph().add_node();
  n->set_op_type(op_type);
  auto colon = op_type.rfind(':');
  if (colon != std::string::npos) {  // "com.example:Foo"
    n->set_domain(op_type.substr(0, colon));
    n->set_op_type(op_type.substr(colon + 1));
  }
  n->set_name(name);
  for (const auto& i : inputs) n->add_input(i);
  for (const auto& o : outputs) n->add_output(o);
  return *n;
}

onnx::TensorProto float_tensor(const std::string& name, const std::vector<int64_t>& dims,
                               const std::vector<float>& values) {
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : dims) t.add_dims(d);
  t.set_raw_data(values.data(), values.size() * sizeof(float));
  return t;
}

onnx::TensorProto& ModelBuilder::initializer(const std::string& name, const std::vector<int64_t>& dims,
                                             const std::vector<float>& values) {
  auto* t = graph().add_initializer();
  *t = float_tensor(name, dims, values);
  return *t;
}

void ModelBuilder::opset(const std::string& domain, int64_t version) {
  auto* o = model_.add_opset_import();
  o->set_domain(domain);
  o->set_version(version);
}

std::string ModelBuilder::bytes() const { return model_.SerializeAsString(); }

Expected<ImportResult> ModelBuilder::import(const ImportOptions& options) const {
  std::string b = bytes();
  return import_onnx_bytes(b.data(), b.size(), options);
}

static onnx::AttributeProto& new_attr(onnx::NodeProto& n, const std::string& name,
                                      onnx::AttributeProto::AttributeType type) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(type);
  return *a;
}

onnx::AttributeProto& attr_int(onnx::NodeProto& n, const std::string& name, int64_t v) {
  auto& a = new_attr(n, name, onnx::AttributeProto::INT);
  a.set_i(v);
  return a;
}

onnx::AttributeProto& attr_float(onnx::NodeProto& n, const std::string& name, float v) {
  auto& a = new_attr(n, name, onnx::AttributeProto::FLOAT);
  a.set_f(v);
  return a;
}

onnx::AttributeProto& attr_string(onnx::NodeProto& n, const std::string& name, const std::string& v) {
  auto& a = new_attr(n, name, onnx::AttributeProto::STRING);
  a.set_s(v);
  return a;
}

onnx::AttributeProto& attr_ints(onnx::NodeProto& n, const std::string& name, const std::vector<int64_t>& v) {
  auto& a = new_attr(n, name, onnx::AttributeProto::INTS);
  for (int64_t x : v) a.add_ints(x);
  return a;
}

onnx::AttributeProto& attr_floats(onnx::NodeProto& n, const std::string& name, const std::vector<float>& v) {
  auto& a = new_attr(n, name, onnx::AttributeProto::FLOATS);
  for (float x : v) a.add_floats(x);
  return a;
}

onnx::AttributeProto& attr_strings(onnx::NodeProto& n, const std::string& name, const std::vector<std::string>& v) {
  auto& a = new_attr(n, name, onnx::AttributeProto::STRINGS);
  for (const auto& x : v) a.add_strings(x);
  return a;
}

onnx::AttributeProto& attr_tensor(onnx::NodeProto& n, const std::string& name, const onnx::TensorProto& t) {
  auto& a = new_attr(n, name, onnx::AttributeProto::TENSOR);
  *a.mutable_t() = t;
  return a;
}

onnx::AttributeProto& attr_graph(onnx::NodeProto& n, const std::string& name, const onnx::GraphProto& g) {
  auto& a = new_attr(n, name, onnx::AttributeProto::GRAPH);
  *a.mutable_g() = g;
  return a;
}

onnx::AttributeProto& attr_ref(onnx::NodeProto& n, const std::string& name, const std::string& ref, int type) {
  auto& a = new_attr(n, name, static_cast<onnx::AttributeProto::AttributeType>(type));
  a.set_ref_attr_name(ref);
  return a;
}

std::string diagnostics_text(const ImportResult& r) { return format_diagnostics(r.diagnostics); }

}  // namespace kiln::onnxtest
