// ModelInferRequest -> InferRequest and InferResponse -> ModelInferResponse:
// tensor data from raw_input_contents (what tritonclient sends) or from the
// typed InferTensorContents fields, parameters, requested outputs.
#include <cstring>

#include "grpc_service.h"

namespace kiln::server {
namespace {

using inference::InferParameter;
using inference::InferTensorContents;
using inference::ModelInferRequest;

constexpr uint64_t kMaxElements = uint64_t{1} << 40;

ServeStatus invalid(std::string m) { return ServeStatus::error(ServeError::kInvalidArgument, std::move(m)); }

// Appends `count` elements of `src` converted to T (the tensor's element type).
template <typename T, typename Src>
void put(const google::protobuf::RepeatedField<Src>& src, std::vector<uint8_t>& out) {
  out.resize(static_cast<size_t>(src.size()) * sizeof(T));
  for (int i = 0; i < src.size(); ++i) {
    T v = static_cast<T>(src.Get(i));
    std::memcpy(out.data() + static_cast<size_t>(i) * sizeof(T), &v, sizeof(T));
  }
}

int contents_count(const InferTensorContents& c) {
  return c.bool_contents_size() + c.int_contents_size() + c.int64_contents_size() + c.uint_contents_size() +
         c.uint64_contents_size() + c.fp32_contents_size() + c.fp64_contents_size() + c.bytes_contents_size();
}

// The typed field Triton reads for the datatype; -1 when it has none (FP16, BF16).
int typed_count(const InferTensorContents& c, DType t) {
  switch (t) {
    case DType::kBool: return c.bool_contents_size();
    case DType::kI8:
    case DType::kI16:
    case DType::kI32: return c.int_contents_size();
    case DType::kU8:
    case DType::kU16:
    case DType::kU32: return c.uint_contents_size();
    case DType::kI64: return c.int64_contents_size();
    case DType::kU64: return c.uint64_contents_size();
    case DType::kF32: return c.fp32_contents_size();
    case DType::kF64: return c.fp64_contents_size();
    case DType::kString: return c.bytes_contents_size();
    default: return -1;
  }
}

void typed_bytes(const InferTensorContents& c, DType t, std::vector<uint8_t>& out) {
  switch (t) {
    case DType::kBool: put<uint8_t>(c.bool_contents(), out); break;
    case DType::kI8: put<int8_t>(c.int_contents(), out); break;
    case DType::kI16: put<int16_t>(c.int_contents(), out); break;
    case DType::kI32: put<int32_t>(c.int_contents(), out); break;
    case DType::kU8: put<uint8_t>(c.uint_contents(), out); break;
    case DType::kU16: put<uint16_t>(c.uint_contents(), out); break;
    case DType::kU32: put<uint32_t>(c.uint_contents(), out); break;
    case DType::kI64: put<int64_t>(c.int64_contents(), out); break;
    case DType::kU64: put<uint64_t>(c.uint64_contents(), out); break;
    case DType::kF32: put<float>(c.fp32_contents(), out); break;
    case DType::kF64: put<double>(c.fp64_contents(), out); break;
    default: break;  // kString: parse_input takes bytes_contents as they are
  }
}

// A non-negative integer parameter, as int64_param or uint64_param.
bool param_u64(const InferParameter& p, uint64_t& v) {
  if (p.parameter_choice_case() == InferParameter::kUint64Param) {
    v = p.uint64_param();
    return true;
  }
  if (p.parameter_choice_case() == InferParameter::kInt64Param && p.int64_param() >= 0) {
    v = static_cast<uint64_t>(p.int64_param());
    return true;
  }
  return false;
}

using Params = google::protobuf::Map<std::string, InferParameter>;

bool has_shm_params(const Params& p) {
  return p.count("shared_memory_region") || p.count("shared_memory_byte_size") || p.count("shared_memory_offset");
}

// A tensor's shared memory parameters (Triton's: region and byte size
// required, offset optional).
ServeStatus shm_params(const Params& p, const std::string& where, std::string& region, uint64_t& offset,
                       uint64_t& byte_size) {
  auto r = p.find("shared_memory_region");
  auto b = p.find("shared_memory_byte_size");
  if (r == p.end() || b == p.end())
    return invalid(where + ": shared memory needs both 'shared_memory_region' and 'shared_memory_byte_size'");
  if (r->second.parameter_choice_case() != InferParameter::kStringParam)
    return invalid(where + ": 'shared_memory_region' must be a string");
  region = r->second.string_param();
  if (!param_u64(b->second, byte_size))
    return invalid(where + ": 'shared_memory_byte_size' must be a non-negative integer");
  offset = 0;
  auto o = p.find("shared_memory_offset");
  if (o != p.end() && !param_u64(o->second, offset))
    return invalid(where + ": 'shared_memory_offset' must be a non-negative integer");
  return ServeStatus::success();
}

// `raw_index`: the next of raw_input_contents, which only the inputs not in
// shared memory have (in order).
ServeStatus parse_input(const ModelInferRequest& req, int index, int& raw_index, const SharedMemoryRegistry* shm,
                        bool view_raw, InferTensor& t) {
  const auto& in = req.inputs(index);
  t.name = in.name();
  std::string where = "input '" + t.name.substr(0, 100) + "'";
  t.dtype = dtype_from_triton_name(in.datatype());
  if (t.dtype == DType::kUndefined) return invalid(where + ": unknown datatype '" + in.datatype().substr(0, 40) + "'");
  bool strings = t.dtype == DType::kString;
  size_t elem = dtype_bytes(t.dtype);
  if (elem == 0 && !strings) return invalid(where + ": datatype " + in.datatype() + " is not supported by kiln serve");
  if (in.shape_size() > 16) return invalid(where + ": shape has more than 16 dims");
  uint64_t count = 1;
  for (int64_t d : in.shape()) {
    if (d < 0) return invalid(where + ": shape element " + std::to_string(d) + " is negative");
    uint64_t v = static_cast<uint64_t>(d);
    if (v > kMaxElements || (v != 0 && count > kMaxElements / v))
      return invalid(where + ": shape has too many elements");
    count *= v;
    t.shape.push_back(d);
  }
  uint64_t bytes = count * elem;
  if (has_shm_params(in.parameters())) {
    std::string region;
    uint64_t offset = 0, size = 0;
    ServeStatus st = shm_params(in.parameters(), where, region, offset, size);
    if (!st.ok) return st;
    if (in.has_contents() && contents_count(in.contents()) > 0)
      return invalid(where + ": has both contents and shared memory parameters");
    if (!shm) return invalid(where + ": shared memory is not available here");
    return input_from_shared_memory(*shm, region, offset, size, count, t);
  }
  if (req.raw_input_contents_size() > 0) {
    if (in.has_contents() && contents_count(in.contents()) > 0)
      return invalid("contents field must not be specified when using raw_input_contents for " + where);
    if (raw_index >= req.raw_input_contents_size())
      return invalid(where + ": no raw_input_contents left for it (" + std::to_string(req.raw_input_contents_size()) +
                     " given, one per input not in shared memory)");
    const std::string& raw = req.raw_input_contents(raw_index++);
    std::string error;
    if (strings) {
      if (!deserialize_strings(reinterpret_cast<const uint8_t*>(raw.data()), raw.size(), count, &t.strings, error))
        return invalid(where + ": raw_input_contents: " + error);
      return ServeStatus::success();
    }
    if (raw.size() != bytes)
      return invalid(where + ": raw_input_contents holds " + std::to_string(raw.size()) +
                     " bytes but the shape and datatype need " + std::to_string(bytes));
    if (view_raw)
      t.set_view(reinterpret_cast<const uint8_t*>(raw.data()), raw.size(), nullptr);
    else
      t.data.assign(raw.begin(), raw.end());
    return ServeStatus::success();
  }
  int n = typed_count(in.contents(), t.dtype);
  if (n < 0) return invalid(where + ": datatype " + in.datatype() + " has no typed contents; use raw_input_contents");
  if (contents_count(in.contents()) != n)
    return invalid(where + ": contents are set in a field other than the one for datatype " + in.datatype());
  if (static_cast<uint64_t>(n) != count)
    return invalid(where + ": " + std::to_string(n) + " elements in contents but the shape needs " +
                   std::to_string(count));
  if (strings)
    t.strings.assign(in.contents().bytes_contents().begin(), in.contents().bytes_contents().end());
  else
    typed_bytes(in.contents(), t.dtype, t.data);
  return ServeStatus::success();
}

ServeStatus parse_parameters(const ModelInferRequest& req, InferRequest& r) {
  for (const auto& [key, p] : req.parameters()) {
    uint64_t v = 0;
    if (key == "timeout") {
      if (!param_u64(p, v)) return invalid("parameter 'timeout' must be a non-negative integer (microseconds)");
      r.timeout_us = v;
    } else if (key == "priority") {
      if (!param_u64(p, v) || v > 1000000) return invalid("parameter 'priority' must be a non-negative integer");
      r.priority = static_cast<uint32_t>(v);
    } else if (key == "sequence_id" || key == "sequence_start" || key == "sequence_end") {
      return ServeStatus::error(ServeError::kUnsupported,
                                "parameter '" + key + "': sequence batching is not supported");
    }
  }
  return ServeStatus::success();
}

}  // namespace

ServeStatus request_from_grpc(const ModelInferRequest& in, InferRequest& r, const SharedMemoryRegistry* shm,
                              std::vector<SharedMemoryOutput>* shm_outputs, bool view_raw) {
  r.model = in.model_name();
  if (!parse_model_version(in.model_version(), r.version))
    return invalid("'" + in.model_version().substr(0, 40) + "' is not a model version");
  r.id = in.id();
  ServeStatus st = parse_parameters(in, r);
  if (!st.ok) return st;
  int raw_inputs = 0;
  for (const auto& i : in.inputs()) raw_inputs += has_shm_params(i.parameters()) ? 0 : 1;
  if (in.raw_input_contents_size() > 0 && in.raw_input_contents_size() != raw_inputs)
    return invalid("expected " + std::to_string(raw_inputs) +
                   " raw_input_contents (one per input not in shared memory), got " +
                   std::to_string(in.raw_input_contents_size()));
  int raw_index = 0;
  for (int i = 0; i < in.inputs_size(); ++i) {
    InferTensor t;
    st = parse_input(in, i, raw_index, shm, view_raw, t);
    if (!st.ok) return st;
    r.inputs.push_back(std::move(t));
  }
  for (const auto& o : in.outputs()) {
    if (o.parameters().count("classification"))
      return ServeStatus::error(ServeError::kUnsupported,
                                "output '" + o.name() + "': the classification extension is not supported");
    r.outputs.push_back(o.name());
    if (!has_shm_params(o.parameters())) continue;
    const std::string where = "output '" + o.name().substr(0, 100) + "'";
    SharedMemoryOutput target;
    std::string region;
    st = shm_params(o.parameters(), where, region, target.offset, target.byte_size);
    if (!st.ok) return st;
    if (!shm || !shm_outputs) return invalid(where + ": shared memory is not available here");
    st = output_target(*shm, o.name(), region, target.offset, target.byte_size, target);
    if (!st.ok) return st;
    shm_outputs->push_back(std::move(target));
  }
  return ServeStatus::success();
}

ServeStatus response_to_grpc(InferResponse&& in, inference::ModelInferResponse& out,
                             const std::vector<SharedMemoryOutput>* shm_outputs) {
  out.set_model_name(in.model);
  out.set_model_version(std::to_string(in.version));
  out.set_id(in.id);
  for (auto& t : in.outputs) {
    auto* o = out.add_outputs();
    o->set_name(t.name);
    o->set_datatype(triton_dtype_name(t.dtype));
    for (int64_t d : t.shape) o->add_shape(d);
    const SharedMemoryOutput* target = nullptr;
    if (shm_outputs)
      for (const auto& s : *shm_outputs)
        if (s.name == t.name) target = &s;
    if (target) {
      // Like Triton: the region named in the output's parameters, and an
      // empty raw_output_contents so that the others keep their indices.
      ServeStatus st = output_to_shared_memory(*target, t);
      if (!st.ok) return st;
      auto& p = *o->mutable_parameters();
      p["shared_memory_region"].set_string_param(target->region);
      p["shared_memory_byte_size"].set_int64_param(static_cast<int64_t>(t.bytes().size()));
      if (target->offset != 0) p["shared_memory_offset"].set_int64_param(static_cast<int64_t>(target->offset));
      out.add_raw_output_contents();
      continue;
    }
    out.add_raw_output_contents(reinterpret_cast<const char*>(t.data.data()), t.data.size());
  }
  return ServeStatus::success();
}

}  // namespace kiln::server
