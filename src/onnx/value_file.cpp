#include "onnx/value_file.h"

#include <onnx/onnx-data.pb.h>
#include <onnx/onnx-ml.pb.h>

#include <filesystem>

#include "onnx/tensor_proto.h"
#include "support/file.h"

namespace kiln {
namespace {

template <typename Message>
Status parse(const std::string& path, Message& m, const char* what) {
  KILN_ASSIGN_OR_RETURN(FileBytes bytes, map_file(path));
  if (bytes.size > static_cast<size_t>(INT32_MAX) || !m.ParseFromArray(bytes.data, static_cast<int>(bytes.size)))
    return make_error(ErrorCode::kCorrupt, "'{}' is not a serialized ONNX {}", path, what);
  return Status::ok();
}

Expected<std::vector<Tensor>> tensors_of(const onnx::SequenceProto& s, const std::string& path) {
  if (s.elem_type() != onnx::SequenceProto::TENSOR && s.elem_type() != onnx::SequenceProto::UNDEFINED)
    return unsupported("'{}': sequences of non-tensors are not supported", path);
  std::vector<Tensor> out;
  for (const auto& t : s.tensor_values()) {
    KILN_ASSIGN_OR_RETURN(Tensor x, tensor_from_proto(t));
    out.push_back(std::move(x));
  }
  return out;
}

}  // namespace

Expected<RunValue> read_value_file(const std::string& path, const Type& expected, std::string* name) {
  switch (expected.kind) {
    case Type::Kind::kTensor: {
      KILN_ASSIGN_OR_RETURN(Tensor t, read_tensor_file(path, name));
      // Older onnx releases wrote bfloat16 test data as uint16 tensors.
      if (expected.dtype == DType::kBF16 && t.dtype() == DType::kU16) t = t.bitcast(DType::kBF16);
      return RunValue::of(std::move(t));
    }
    case Type::Kind::kSequence: {
      onnx::SequenceProto s;
      KILN_RETURN_IF_ERROR(parse(path, s, "SequenceProto"));
      if (name) *name = s.name();
      KILN_ASSIGN_OR_RETURN(auto ts, tensors_of(s, path));
      return RunValue::of_sequence(std::move(ts));
    }
    case Type::Kind::kOptional: {
      onnx::OptionalProto o;
      KILN_RETURN_IF_ERROR(parse(path, o, "OptionalProto"));
      if (name) *name = o.name();
      RunValue v;
      v.kind = Type::Kind::kOptional;
      v.present = o.has_tensor_value() || o.has_sequence_value();
      if (o.has_tensor_value()) {
        KILN_ASSIGN_OR_RETURN(v.tensor, tensor_from_proto(o.tensor_value()));
      } else if (o.has_sequence_value()) {
        v.holds_sequence = true;
        KILN_ASSIGN_OR_RETURN(v.sequence, tensors_of(o.sequence_value(), path));
      } else if (expected.elem && expected.elem->kind == Type::Kind::kSequence) {
        v.holds_sequence = true;
      }
      return v;
    }
  }
  return internal_error("unknown value kind");
}

Status write_value_file(const std::string& path, const RunValue& value, const std::string& name) {
  std::string bytes;
  auto fill_seq = [&](onnx::SequenceProto& s, const std::vector<Tensor>& ts) {
    s.set_name(name);
    s.set_elem_type(onnx::SequenceProto::TENSOR);
    for (const Tensor& t : ts) tensor_to_proto(t, "", s.add_tensor_values());
  };
  switch (value.kind) {
    case Type::Kind::kTensor: return write_tensor_file(path, value.tensor, name);
    case Type::Kind::kSequence: {
      onnx::SequenceProto s;
      fill_seq(s, value.sequence);
      s.SerializeToString(&bytes);
      break;
    }
    case Type::Kind::kOptional: {
      onnx::OptionalProto o;
      o.set_name(name);
      if (value.present && value.holds_sequence) {
        o.set_elem_type(onnx::OptionalProto::SEQUENCE);
        fill_seq(*o.mutable_sequence_value(), value.sequence);
      } else if (value.present) {
        o.set_elem_type(onnx::OptionalProto::TENSOR);
        tensor_to_proto(value.tensor, "", o.mutable_tensor_value());
      }
      o.SerializeToString(&bytes);
      break;
    }
  }
  return write_file(path, bytes.data(), bytes.size());
}

}  // namespace kiln
