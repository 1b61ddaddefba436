#include "onnx/tensor_proto.h"

#include <onnx/onnx-ml.pb.h>

#include <cstring>
#include <filesystem>

#include "support/file.h"

namespace kiln {
namespace {

template <typename Field>
Status check_count(const Field& field, int64_t want, const std::string& name, const char* field_name) {
  if (static_cast<int64_t>(field.size()) != want)
    return make_error(ErrorCode::kCorrupt, "tensor '{}' has {} values in {} but its dims need {}", name,
                      field.size(), field_name, want);
  return Status::ok();
}

// Elements stored one per int32_data entry (or packed two per entry for 4-bit,
// four per entry for 2-bit types).
Status fill_from_int32(const onnx::TensorProto& p, Tensor& t) {
  DType dt = t.dtype();
  int bits = dtype_bits(dt);
  int64_t n = t.numel();
  auto* out = static_cast<uint8_t*>(t.mutable_raw());
  if (bits < 8) {
    int per = 8 / bits;  // elements per byte, and per int32 entry by the spec
    int64_t entries = (n + per - 1) / per;
    KILN_RETURN_IF_ERROR(check_count(p.int32_data(), entries, p.name(), "int32_data"));
    for (int64_t i = 0; i < entries; ++i) out[i] = static_cast<uint8_t>(p.int32_data(static_cast<int>(i)));
    return Status::ok();
  }
  KILN_RETURN_IF_ERROR(check_count(p.int32_data(), n, p.name(), "int32_data"));
  for (int64_t i = 0; i < n; ++i) {
    int32_t v = p.int32_data(static_cast<int>(i));
    switch (bits) {
      case 8: out[i] = static_cast<uint8_t>(v); break;
      case 16: reinterpret_cast<uint16_t*>(out)[i] = static_cast<uint16_t>(v); break;
      case 32: reinterpret_cast<int32_t*>(out)[i] = v; break;
      default: return unsupported("tensor '{}': {} in int32_data", p.name(), dtype_name(dt));
    }
  }
  return Status::ok();
}

Expected<Tensor> read_external(const onnx::TensorProto& p, DType dt, std::vector<int64_t> dims,
                               const TensorReadOptions& options) {
  std::string location;
  int64_t offset = 0, length = -1;
  for (const auto& kv : p.external_data()) {
    try {
      if (kv.key() == "location") location = kv.value();
      else if (kv.key() == "offset") offset = std::stoll(kv.value());
      else if (kv.key() == "length") length = std::stoll(kv.value());
    } catch (const std::exception&) {
      return invalid_model("tensor '{}': external data field {}='{}' is not a number", p.name(), kv.key(), kv.value());
    }
  }
  if (location.empty()) return invalid_model("tensor '{}' says its data is external but names no location", p.name());
  std::filesystem::path rel(location);
  if (rel.is_absolute() || location.find("..") != std::string::npos)
    return invalid_model("tensor '{}': external data location '{}' must be a relative path inside the model's folder",
                         p.name(), location);
  std::string path = (std::filesystem::path(options.base_dir.empty() ? "." : options.base_dir) / rel).string();
  auto bytes = map_file(path);
  if (!bytes)
    return make_error(ErrorCode::kNotFound, "tensor '{}': external data file '{}' cannot be read: {}", p.name(),
                      path, bytes.status().message());
  size_t want = dtype_storage_bytes(dt, checked_numel(dims));
  if (length < 0) length = static_cast<int64_t>(want);
  if (offset < 0 || static_cast<size_t>(offset) > bytes->size ||
      static_cast<size_t>(length) > bytes->size - static_cast<size_t>(offset))
    return make_error(ErrorCode::kCorrupt, "tensor '{}': external data [{}, +{}) is outside '{}' ({} bytes)", p.name(),
                      offset, length, path, bytes->size);
  if (static_cast<size_t>(length) != want)
    return make_error(ErrorCode::kCorrupt, "tensor '{}': external data has {} bytes but dims {} of {} need {}",
                      p.name(), length, Shape::of(dims).to_string(), dtype_name(dt), want);
  return Tensor::view(dt, std::move(dims), bytes->data + offset, want, bytes->owner);
}

}  // namespace

Expected<Tensor> tensor_from_proto(const onnx::TensorProto& p, const TensorReadOptions& options) {
  if (!dtype_is_known(p.data_type()))
    return make_error(ErrorCode::kUnsupported, "tensor '{}' has data type {}, which kiln does not know", p.name(),
                      p.data_type());
  auto dt = static_cast<DType>(p.data_type());
  std::vector<int64_t> dims(p.dims().begin(), p.dims().end());
  for (int64_t d : dims)
    if (d < 0) return invalid_model("tensor '{}' has a negative dim {}", p.name(), Shape::of(dims).to_string());
  int64_t n = checked_numel(dims);
  if (n < 0) return invalid_model("tensor '{}' dims {} overflow", p.name(), Shape::of(dims).to_string());
  if (p.has_segment()) return unsupported("tensor '{}' is segmented", p.name());

  if (p.data_location() == onnx::TensorProto::EXTERNAL) return read_external(p, dt, std::move(dims), options);

  if (dt == DType::kString) {
    KILN_RETURN_IF_ERROR(check_count(p.string_data(), n, p.name(), "string_data"));
    Tensor t(dt, dims);
    for (int64_t i = 0; i < n; ++i) t.strings()[i] = p.string_data(static_cast<int>(i));
    return t;
  }
  size_t want = dtype_storage_bytes(dt, n);
  if (p.has_raw_data()) {
    if (p.raw_data().size() != want)
      return make_error(ErrorCode::kCorrupt, "tensor '{}' has {} bytes of raw_data but dims {} of {} need {}", p.name(),
                        p.raw_data().size(), Shape::of(dims).to_string(), dtype_name(dt), want);
    Tensor t(dt, dims);
    if (want) std::memcpy(t.mutable_raw(), p.raw_data().data(), want);
    return t;
  }
  // Typed fields: check the count before allocating.
  switch (dt) {
    case DType::kF32: KILN_RETURN_IF_ERROR(check_count(p.float_data(), n, p.name(), "float_data")); break;
    case DType::kC64: KILN_RETURN_IF_ERROR(check_count(p.float_data(), 2 * n, p.name(), "float_data")); break;
    case DType::kF64: KILN_RETURN_IF_ERROR(check_count(p.double_data(), n, p.name(), "double_data")); break;
    case DType::kC128: KILN_RETURN_IF_ERROR(check_count(p.double_data(), 2 * n, p.name(), "double_data")); break;
    case DType::kI64: KILN_RETURN_IF_ERROR(check_count(p.int64_data(), n, p.name(), "int64_data")); break;
    case DType::kU32: case DType::kU64:
      KILN_RETURN_IF_ERROR(check_count(p.uint64_data(), n, p.name(), "uint64_data"));
      break;
    default: {
      int per = dtype_bits(dt) < 8 ? 8 / std::max(dtype_bits(dt), 1) : 1;
      if (dtype_bits(dt) == 6) return unsupported("tensor '{}': 6-bit types in int32_data", p.name());
      KILN_RETURN_IF_ERROR(check_count(p.int32_data(), (n + per - 1) / per, p.name(), "int32_data"));
    }
  }
  Tensor t(dt, dims);
  switch (dt) {
    case DType::kF32: case DType::kC64:
      if (!p.float_data().empty()) std::memcpy(t.mutable_raw(), p.float_data().data(), want);
      break;
    case DType::kF64: case DType::kC128:
      if (!p.double_data().empty()) std::memcpy(t.mutable_raw(), p.double_data().data(), want);
      break;
    case DType::kI64:
      if (n) std::memcpy(t.mutable_raw(), p.int64_data().data(), want);
      break;
    case DType::kU64:
      if (n) std::memcpy(t.mutable_raw(), p.uint64_data().data(), want);
      break;
    case DType::kU32: {
      auto* out = t.mutable_data<uint32_t>();
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<uint32_t>(p.uint64_data(static_cast<int>(i)));
      break;
    }
    default:
      KILN_RETURN_IF_ERROR(fill_from_int32(p, t));
  }
  return t;
}

Expected<Tensor> tensor_from_sparse_proto(const onnx::SparseTensorProto& sp, const TensorReadOptions& options) {
  KILN_ASSIGN_OR_RETURN(Tensor values, tensor_from_proto(sp.values(), options));
  KILN_ASSIGN_OR_RETURN(Tensor indices, tensor_from_proto(sp.indices(), options));
  std::vector<int64_t> dims(sp.dims().begin(), sp.dims().end());
  int64_t n = checked_numel(dims);
  if (n < 0) return invalid_model("sparse tensor dims {} are invalid", Shape::of(dims).to_string());
  KILN_ASSIGN_OR_RETURN(Tensor dense, Tensor::allocate(values.dtype(), dims, size_t(1) << 32));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> idx, indices.to_i64_vector());
  int64_t nnz = values.numel();
  int esize = dtype_bits(values.dtype()) / 8;
  if (esize == 0) return unsupported("sparse tensors of {}", dtype_name(values.dtype()));
  bool flat = indices.rank() == 1;
  if ((flat && indices.numel() != nnz) || (!flat && (indices.rank() != 2 || indices.dim(0) != nnz ||
                                                    indices.dim(1) != static_cast<int64_t>(dims.size()))))
    return invalid_model("sparse tensor indices {} do not match {} values", Shape::of(indices.dims()).to_string(), nnz);
  auto* out = static_cast<uint8_t*>(dense.mutable_raw());
  const auto* in = static_cast<const uint8_t*>(values.raw());
  for (int64_t k = 0; k < nnz; ++k) {
    int64_t pos = 0;
    if (flat) {
      pos = idx[k];
    } else {
      for (size_t d = 0; d < dims.size(); ++d) pos = pos * dims[d] + idx[k * dims.size() + d];
    }
    if (pos < 0 || pos >= n) return invalid_model("sparse tensor index {} is out of range", pos);
    std::memcpy(out + pos * esize, in + k * esize, esize);
  }
  return dense;
}

void tensor_to_proto(const Tensor& t, const std::string& name, onnx::TensorProto* p) {
  p->Clear();
  p->set_name(name);
  p->set_data_type(static_cast<int>(t.dtype()));
  for (int64_t d : t.dims()) p->add_dims(d);
  if (t.dtype() == DType::kString) {
    for (const auto& s : t.strings()) p->add_string_data(s);
  } else {
    p->set_raw_data(t.raw(), t.nbytes());
  }
}

Expected<Tensor> read_tensor_file(const std::string& path, std::string* name) {
  KILN_ASSIGN_OR_RETURN(FileBytes bytes, map_file(path));
  onnx::TensorProto p;
  if (bytes.size > static_cast<size_t>(INT32_MAX) || !p.ParseFromArray(bytes.data, static_cast<int>(bytes.size)))
    return make_error(ErrorCode::kCorrupt, "'{}' is not a serialized ONNX TensorProto", path);
  if (p.data_type() == 0) return make_error(ErrorCode::kCorrupt, "'{}' holds a TensorProto with no data type", path);
  if (name) *name = p.name();
  TensorReadOptions opts;
  opts.base_dir = std::filesystem::path(path).parent_path().string();
  auto t = tensor_from_proto(p, opts);
  if (!t) return t.status().with_context(path);
  return t;
}

Status write_tensor_file(const std::string& path, const Tensor& t, const std::string& name) {
  onnx::TensorProto p;
  tensor_to_proto(t, name, &p);
  std::string bytes;
  if (!p.SerializeToString(&bytes)) return internal_error("cannot serialize tensor '{}'", name);
  return write_file(path, bytes.data(), bytes.size());
}

static Expected<Shape> shape_from_proto(const onnx::TensorShapeProto& sp, const std::string& origin) {
  Dims dims;
  for (const auto& d : sp.dim()) {
    if (d.has_dim_value()) {
      if (d.dim_value() < 0) return invalid_model("'{}' declares a negative dim {}", origin, d.dim_value());
      dims.emplace_back(d.dim_value());
    } else if (d.has_dim_param() && !d.dim_param().empty()) {
      dims.push_back(Dim::symbolic(d.dim_param()));
    } else {
      dims.push_back(Dim::unknown());
    }
  }
  return Shape(std::move(dims));
}

Expected<Type> type_from_proto(const onnx::TypeProto& tp, const std::string& origin) {
  switch (tp.value_case()) {
    case onnx::TypeProto::kTensorType: {
      const auto& tt = tp.tensor_type();
      Type t;
      if (tt.elem_type() != 0) {
        if (!dtype_is_known(tt.elem_type()))
          return unsupported("'{}' has element type {}, which kiln does not know", origin, tt.elem_type());
        t.dtype = static_cast<DType>(tt.elem_type());
      }
      if (tt.has_shape()) {
        KILN_ASSIGN_OR_RETURN(t.shape, shape_from_proto(tt.shape(), origin));
      }
      return t;
    }
    case onnx::TypeProto::kSequenceType: {
      if (!tp.sequence_type().has_elem_type()) return Type::sequence_of(Type());
      KILN_ASSIGN_OR_RETURN(Type e, type_from_proto(tp.sequence_type().elem_type(), origin));
      return Type::sequence_of(std::move(e));
    }
    case onnx::TypeProto::kOptionalType: {
      if (!tp.optional_type().has_elem_type()) return Type::optional_of(Type());
      KILN_ASSIGN_OR_RETURN(Type e, type_from_proto(tp.optional_type().elem_type(), origin));
      return Type::optional_of(std::move(e));
    }
    case onnx::TypeProto::VALUE_NOT_SET:
      return Type();
    default:
      return unsupported("'{}' has a map, sparse or opaque type, which kiln does not support", origin);
  }
}

}  // namespace kiln
