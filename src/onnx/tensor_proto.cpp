#include "onnx/tensor_proto.h"

#include <fmt/ranges.h>
#include <onnx/onnx-ml.pb.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <limits>

#include "support/file.h"

namespace kiln {
namespace {

template <typename Field>
Status check_count(const Field& field, int64_t want, const std::string& name, const char* field_name) {
  if (static_cast<int64_t>(field.size()) != want)
    return make_error(ErrorCode::kCorrupt, "tensor '{}' has {} values in {} but its dims need {}", name, field.size(),
                      field_name, want);
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

// A non-negative decimal int64, the whole string.
bool parse_size(const std::string& s, int64_t& out) {
  if (s.empty() || s[0] == '-' || s[0] == '+') return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

// A relative path that stays inside the model's folder: no "..", no root.
bool stays_inside(const std::filesystem::path& rel) {
  if (rel.empty() || rel.has_root_path()) return false;
  for (const auto& part : rel)
    if (part == "..") return false;
  return true;
}

// Whether `path`, links resolved, is inside `base` (links resolved). A path
// that does not exist passes: reading it reports that better.
bool resolves_inside(const std::filesystem::path& base, const std::filesystem::path& path) {
  std::error_code ec;
  auto b = std::filesystem::weakly_canonical(base, ec);
  if (ec) return true;
  auto f = std::filesystem::weakly_canonical(path, ec);
  if (ec) return true;
  return std::mismatch(b.begin(), b.end(), f.begin(), f.end()).first == b.end();
}

Expected<Tensor> read_external(const onnx::TensorProto& p, DType dt, std::vector<int64_t> dims, size_t want,
                               const TensorReadOptions& options) {
  if (dt == DType::kString)
    return invalid_model("tensor '{}': string tensors cannot keep their data externally", p.name());
  std::string location;
  int64_t offset = 0, length = -1;
  for (const auto& kv : p.external_data()) {
    if (kv.key() == "location") {
      location = kv.value();
    } else if (kv.key() == "offset" || kv.key() == "length") {
      int64_t v = 0;
      if (!parse_size(kv.value(), v))
        return invalid_model("tensor '{}': external data field {}='{}' is not a non-negative integer", p.name(),
                             kv.key(), kv.value());
      (kv.key() == "offset" ? offset : length) = v;
    }
  }
  if (location.empty()) return invalid_model("tensor '{}' says its data is external but names no location", p.name());
  std::filesystem::path rel(location);
  if (!stays_inside(rel))
    return invalid_model("tensor '{}': external data location '{}' must be a relative path inside the model's folder",
                         p.name(), location);
  std::filesystem::path base(options.base_dir.empty() ? "." : options.base_dir);
  std::string path = (base / rel).string();
  if (!resolves_inside(base, base / rel))
    return invalid_model("tensor '{}': external data location '{}' is a link that leads outside the model's folder",
                         p.name(), location);
  auto bytes = map_file(path);
  if (!bytes)
    return make_error(ErrorCode::kNotFound, "tensor '{}': external data file '{}' cannot be read: {}", p.name(), path,
                      bytes.status().message());
  if (length < 0) length = static_cast<int64_t>(want);
  if (static_cast<uint64_t>(offset) > bytes->size ||
      static_cast<uint64_t>(length) > bytes->size - static_cast<size_t>(offset))
    return make_error(ErrorCode::kCorrupt, "tensor '{}': external data [{}, +{}) is outside '{}' ({} bytes)", p.name(),
                      offset, length, path, bytes->size);
  if (static_cast<size_t>(length) != want)
    return make_error(ErrorCode::kCorrupt, "tensor '{}': external data has {} bytes but dims {} of {} need {}",
                      p.name(), length, Shape::of(dims).to_string(), dtype_name(dt), want);
  const std::byte* data = bytes->data + offset;
  // Kernels read elements in place: an offset that breaks the element's
  // alignment gets a copy rather than misaligned loads.
  size_t align = std::max(1, dtype_bits(dt) / 8);
  if (align > 8) align = 8;
  if (reinterpret_cast<uintptr_t>(data) % align != 0) {
    Tensor t(dt, std::move(dims));
    if (want) std::memcpy(t.mutable_raw(), data, want);
    return t;
  }
  return Tensor::view(dt, std::move(dims), data, want, bytes->owner);
}

// Bytes `n` elements of `dt` take, or -1 when that overflows int64.
int64_t storage_bytes(DType dt, int64_t n) {
  int bits = std::max(dtype_bits(dt), 1);
  if (n > std::numeric_limits<int64_t>::max() / bits) return -1;
  return static_cast<int64_t>(dtype_storage_bytes(dt, n));
}

}  // namespace

Expected<Tensor> tensor_from_proto(const onnx::TensorProto& p, const TensorReadOptions& options) {
  if (!dtype_is_known(p.data_type()))
    return make_error(ErrorCode::kUnsupported, "tensor '{}' has data type {}, which kiln does not know", p.name(),
                      p.data_type());
  auto dt = static_cast<DType>(p.data_type());
  std::vector<int64_t> dims(p.dims().begin(), p.dims().end());
  for (int64_t d : dims)
    if (d < 0) return invalid_model("tensor '{}' has a negative dim [{}]", p.name(), fmt::join(dims, ","));
  int64_t n = checked_numel(dims);
  if (n < 0 || storage_bytes(dt, n) < 0)
    return invalid_model("tensor '{}' dims {} overflow", p.name(), Shape::of(dims).to_string());
  if (p.has_segment()) return unsupported("tensor '{}' is segmented", p.name());

  if (p.data_location() == onnx::TensorProto::EXTERNAL)
    return read_external(p, dt, std::move(dims), dtype_storage_bytes(dt, n), options);

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
    case DType::kU32:
    case DType::kU64: KILN_RETURN_IF_ERROR(check_count(p.uint64_data(), n, p.name(), "uint64_data")); break;
    default: {
      int per = dtype_bits(dt) < 8 ? 8 / std::max(dtype_bits(dt), 1) : 1;
      if (dtype_bits(dt) == 6) return unsupported("tensor '{}': 6-bit types in int32_data", p.name());
      KILN_RETURN_IF_ERROR(check_count(p.int32_data(), (n + per - 1) / per, p.name(), "int32_data"));
    }
  }
  Tensor t(dt, dims);
  switch (dt) {
    case DType::kF32:
    case DType::kC64:
      if (!p.float_data().empty()) std::memcpy(t.mutable_raw(), p.float_data().data(), want);
      break;
    case DType::kF64:
    case DType::kC128:
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
    default: KILN_RETURN_IF_ERROR(fill_from_int32(p, t));
  }
  return t;
}

// Flat position of sparse value k: indices are flat ([nnz]) or coordinates ([nnz, rank]).
Expected<int64_t> sparse_position(const std::vector<int64_t>& idx, bool flat, int64_t k,
                                  const std::vector<int64_t>& dims, int64_t n) {
  if (flat) {
    if (idx[k] < 0 || idx[k] >= n) return invalid_model("sparse tensor index {} is out of range", idx[k]);
    return idx[k];
  }
  const int64_t* c = idx.data() + k * static_cast<int64_t>(dims.size());
  int64_t pos = 0;
  for (size_t d = 0; d < dims.size(); ++d) {
    if (c[d] < 0 || c[d] >= dims[d]) {
      std::string coords;
      for (size_t e = 0; e < dims.size(); ++e) coords += fmt::format("{}{}", e ? "," : "", c[e]);
      return invalid_model("sparse tensor index ({}) is outside {}", coords, Shape::of(dims).to_string());
    }
    pos = pos * dims[d] + c[d];
  }
  return pos;
}

Expected<Tensor> tensor_from_sparse_proto(const onnx::SparseTensorProto& sp, const TensorReadOptions& options) {
  KILN_ASSIGN_OR_RETURN(Tensor values, tensor_from_proto(sp.values(), options));
  KILN_ASSIGN_OR_RETURN(Tensor indices, tensor_from_proto(sp.indices(), options));
  std::vector<int64_t> dims(sp.dims().begin(), sp.dims().end());
  int64_t n = checked_numel(dims);
  if (n < 0 || storage_bytes(values.dtype(), n) < 0)
    return invalid_model("sparse tensor dims {} are invalid", Shape::of(dims).to_string());
  DType dt = values.dtype();
  bool is_string = dt == DType::kString;
  int esize = dtype_bits(dt) / 8;
  if (!is_string && (esize == 0 || dtype_bits(dt) % 8 != 0)) return unsupported("sparse tensors of {}", dtype_name(dt));
  // The IR keeps tensors dense: a small file must not turn into a huge allocation.
  constexpr int64_t kStringBytes = sizeof(std::string);
  int64_t dense_bytes = !is_string                                               ? storage_bytes(dt, n)
                        : n > std::numeric_limits<int64_t>::max() / kStringBytes ? std::numeric_limits<int64_t>::max()
                                                                                 : n * kStringBytes;
  if (dense_bytes > options.max_sparse_dense_bytes)
    return invalid_model("sparse tensor {}{} would need {} bytes when made dense, over the limit of {}", dtype_name(dt),
                         Shape::of(dims).to_string(), dense_bytes, options.max_sparse_dense_bytes);
  if (values.rank() != 1)
    return invalid_model("sparse tensor values must be 1-D, are {}", Shape::of(values.dims()).to_string());
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> idx, indices.to_i64_vector());
  int64_t nnz = values.numel();
  bool flat = indices.rank() == 1;
  if ((flat && indices.numel() != nnz) ||
      (!flat && (indices.rank() != 2 || indices.dim(0) != nnz || indices.dim(1) != static_cast<int64_t>(dims.size()))))
    return invalid_model("sparse tensor indices {} do not match {} values", Shape::of(indices.dims()).to_string(), nnz);
  Tensor dense(dt, dims);
  auto* out = is_string ? nullptr : static_cast<uint8_t*>(dense.mutable_raw());
  const auto* in = is_string ? nullptr : static_cast<const uint8_t*>(values.raw());
  for (int64_t k = 0; k < nnz; ++k) {
    KILN_ASSIGN_OR_RETURN(int64_t pos, sparse_position(idx, flat, k, dims, n));
    if (is_string)
      dense.strings()[pos] = values.strings()[k];
    else
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
    case onnx::TypeProto::VALUE_NOT_SET: return Type();
    default: return unsupported("'{}' has a map, sparse or opaque type, which kiln does not support", origin);
  }
}

}  // namespace kiln
