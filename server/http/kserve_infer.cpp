// The KServe v2 infer request and response bodies, JSON and with Triton's
// binary tensor data extension (a JSON header of Inference-Header-Content-Length
// bytes, then the tensors' raw bytes in the order the header lists them).
#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>

#include "http/json_tensor.h"
#include "http/kserve_http.h"

namespace kiln::server {
namespace {

using nlohmann::json;

constexpr uint64_t kMaxElements = uint64_t{1} << 40;

bool parse_size(const std::string& s, uint64_t& v) {
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  return !s.empty() && r.ec == std::errc() && r.ptr == s.data() + s.size();
}

// A JSON value that must be a non-negative integer.
bool get_u64(const json& j, uint64_t& v) {
  if (j.is_number_unsigned())
    v = j.get<uint64_t>();
  else if (j.is_number_integer() && j.get<int64_t>() >= 0)
    v = static_cast<uint64_t>(j.get<int64_t>());
  else
    return false;
  return true;
}

bool has_shm_params(const json& p) {
  return p.contains("shared_memory_region") || p.contains("shared_memory_byte_size") ||
         p.contains("shared_memory_offset");
}

// The shared memory parameters of a tensor's `parameters` (Triton's: region
// and byte size required, offset optional); "" or what is wrong.
std::string shm_params(const json& p, const std::string& where, std::string& region, uint64_t& offset,
                       uint64_t& byte_size) {
  if (!p.contains("shared_memory_region") || !p.contains("shared_memory_byte_size"))
    return where + ": shared memory needs both 'shared_memory_region' and 'shared_memory_byte_size'";
  if (!p["shared_memory_region"].is_string()) return where + ": 'shared_memory_region' must be a string";
  region = p["shared_memory_region"].get<std::string>();
  if (!get_u64(p["shared_memory_byte_size"], byte_size))
    return where + ": 'shared_memory_byte_size' must be a non-negative integer";
  offset = 0;
  if (p.contains("shared_memory_offset") && !get_u64(p["shared_memory_offset"], offset))
    return where + ": 'shared_memory_offset' must be a non-negative integer";
  return "";
}

std::string parse_input(const json& in, size_t index, std::string_view binary, size_t& offset, InferTensor& t,
                        const SharedMemoryRegistry* shm) {
  std::string where = "input " + std::to_string(index);
  if (!in.is_object()) return where + " is not a JSON object";
  if (!in.contains("name") || !in["name"].is_string()) return where + ": 'name' must be a string";
  t.name = in["name"].get<std::string>();
  where = "input '" + t.name + "'";
  if (!in.contains("datatype") || !in["datatype"].is_string()) return where + ": 'datatype' must be a string";
  std::string dt = in["datatype"].get<std::string>();
  t.dtype = dtype_from_triton_name(dt);
  if (t.dtype == DType::kUndefined) return where + ": unknown datatype '" + dt.substr(0, 40) + "'";
  bool strings = t.dtype == DType::kString;
  size_t elem = dtype_bytes(t.dtype);
  if (elem == 0 && !strings) return where + ": datatype " + dt + " is not supported by kiln serve";
  if (!in.contains("shape") || !in["shape"].is_array()) return where + ": 'shape' must be an array";
  uint64_t count = 1;
  for (const auto& d : in["shape"]) {
    uint64_t v;
    if (!get_u64(d, v)) return where + ": shape element " + json_brief(d) + " is not a non-negative integer";
    if (v > kMaxElements || (v != 0 && count > kMaxElements / v)) return where + ": shape has too many elements";
    count *= v;
    t.shape.push_back(static_cast<int64_t>(v));
  }
  if (t.shape.size() > 16) return where + ": shape has more than 16 dims";
  const json* params = in.contains("parameters") ? &in["parameters"] : nullptr;
  if (params && !params->is_object()) return where + ": 'parameters' must be an object";
  if (params && has_shm_params(*params)) {
    std::string region;
    uint64_t shm_offset = 0, shm_size = 0;
    std::string err = shm_params(*params, where, region, shm_offset, shm_size);
    if (!err.empty()) return err;
    if (in.contains("data")) return where + ": has both 'data' and shared memory parameters";
    if (params->contains("binary_data_size")) return where + ": has both binary_data_size and shared memory parameters";
    if (!shm) return where + ": shared memory is not available here";
    ServeStatus st = input_from_shared_memory(*shm, region, shm_offset, shm_size, count, t);
    return st.ok ? "" : st.message;
  }
  if (params && params->contains("binary_data_size")) {
    uint64_t size;
    if (!get_u64((*params)["binary_data_size"], size))
      return where + ": binary_data_size must be a non-negative integer";
    if (in.contains("data")) return where + ": has both 'data' and binary_data_size";
    if (size > binary.size() - offset)
      return where + ": binary_data_size " + std::to_string(size) + " runs past the end of the body (" +
             std::to_string(binary.size() - offset) + " binary bytes left)";
    if (strings) {
      std::string error;
      if (!deserialize_strings(reinterpret_cast<const uint8_t*>(binary.data() + offset), size, count, &t.strings,
                               error))
        return where + ": " + error;
      offset += size;
      return "";
    }
    if (size != count * elem)
      return where + ": binary_data_size " + std::to_string(size) + " but the shape and datatype need " +
             std::to_string(count * elem) + " bytes";
    // No copy: the body outlives the request (handle_infer waits for it).
    t.set_view(reinterpret_cast<const uint8_t*>(binary.data() + offset), size, nullptr);
    offset += size;
    return "";
  }
  if (!in.contains("data")) return where + ": has neither 'data' nor binary_data_size";
  std::string err = json_to_tensor_bytes(in["data"], t.dtype, static_cast<int64_t>(count), t.data);
  if (!err.empty()) return where + ": " + err;
  if (strings) {
    // The elements were checked as JSON; this only splits what was just joined.
    if (!deserialize_strings(t.data.data(), t.data.size(), count, &t.strings, err)) return where + ": " + err;
    t.data.clear();
  }
  return "";
}

std::string parse_parameters(const json& j, InferRequest& r, bool& binary_default) {
  if (!j.contains("parameters")) return "";
  const json& p = j["parameters"];
  if (!p.is_object()) return "'parameters' must be an object";
  uint64_t v;
  if (p.contains("timeout")) {
    if (!get_u64(p["timeout"], v)) return "parameter 'timeout' must be a non-negative integer (microseconds)";
    r.timeout_us = v;
  }
  if (p.contains("priority")) {
    if (!get_u64(p["priority"], v) || v > 1000000) return "parameter 'priority' must be a non-negative integer";
    r.priority = static_cast<uint32_t>(v);
  }
  if (p.contains("binary_data_output")) {
    if (!p["binary_data_output"].is_boolean()) return "parameter 'binary_data_output' must be true or false";
    binary_default = p["binary_data_output"].get<bool>();
  }
  for (const char* k : {"sequence_id", "sequence_start", "sequence_end"})
    if (p.contains(k)) return std::string("parameter '") + k + "': sequence batching is not supported";
  return "";
}

}  // namespace

bool parse_infer_request(const std::string& body, const std::string* header_length, InferRequest& r,
                         std::vector<std::string>& binary_outputs, bool& binary_default, std::string& error,
                         const SharedMemoryRegistry* shm, std::vector<SharedMemoryOutput>* shm_outputs) {
  size_t json_size = body.size();
  if (header_length) {
    uint64_t n;
    if (!parse_size(*header_length, n)) {
      error = "Inference-Header-Content-Length '" + header_length->substr(0, 40) + "' is not a number";
      return false;
    }
    if (n > body.size()) {
      error = "Inference-Header-Content-Length " + std::to_string(n) + " exceeds the body size " +
              std::to_string(body.size());
      return false;
    }
    json_size = n;
  }
  std::string_view binary(body.data() + json_size, body.size() - json_size);
  json j;
  try {
    j = json::parse(body.begin(), body.begin() + static_cast<ptrdiff_t>(json_size));
  } catch (const json::parse_error& e) {
    error = std::string("failed to parse the request JSON buffer: ") + e.what();
    return false;
  }
  if (!j.is_object()) {
    error = "the request JSON must be an object";
    return false;
  }
  if (j.contains("id")) {
    if (!j["id"].is_string()) {
      error = "'id' must be a string";
      return false;
    }
    r.id = j["id"].get<std::string>();
  }
  error = parse_parameters(j, r, binary_default);
  if (!error.empty()) return false;
  if (!j.contains("inputs") || !j["inputs"].is_array()) {
    error = "the request needs an 'inputs' array";
    return false;
  }
  size_t offset = 0;
  for (size_t i = 0; i < j["inputs"].size(); ++i) {
    InferTensor t;
    error = parse_input(j["inputs"][i], i, binary, offset, t, shm);
    if (!error.empty()) return false;
    r.inputs.push_back(std::move(t));
  }
  if (offset != binary.size()) {
    error = std::to_string(binary.size() - offset) +
            " bytes of binary data follow the JSON header but no input claims them";
    return false;
  }
  if (j.contains("outputs")) {
    if (!j["outputs"].is_array()) {
      error = "'outputs' must be an array";
      return false;
    }
    for (const auto& o : j["outputs"]) {
      if (!o.is_object() || !o.contains("name") || !o["name"].is_string()) {
        error = "each of 'outputs' needs a string 'name'";
        return false;
      }
      std::string name = o["name"].get<std::string>();
      r.outputs.push_back(name);
      if (o.contains("parameters")) {
        const json& p = o["parameters"];
        if (!p.is_object()) {
          error = "output '" + name + "': 'parameters' must be an object";
          return false;
        }
        if (p.contains("classification")) {
          error = "output '" + name + "': the classification extension is not supported";
          return false;
        }
        if (has_shm_params(p)) {
          const std::string where = "output '" + name.substr(0, 100) + "'";
          SharedMemoryOutput target;
          std::string region;
          error = shm_params(p, where, region, target.offset, target.byte_size);
          if (!error.empty()) return false;
          if (!shm || !shm_outputs) {
            error = where + ": shared memory is not available here";
            return false;
          }
          ServeStatus st = output_target(*shm, name, region, target.offset, target.byte_size, target);
          if (!st.ok) {
            error = st.message;
            return false;
          }
          shm_outputs->push_back(std::move(target));
        }
        if (p.contains("binary_data")) {
          if (!p["binary_data"].is_boolean()) {
            error = "output '" + name + "': binary_data must be true or false";
            return false;
          }
          if (p["binary_data"].get<bool>())
            binary_outputs.push_back(name);
          else
            binary_outputs.push_back("!" + name);  // explicitly JSON
        }
      }
    }
  }
  return true;
}

HttpResponse handle_infer(InferenceServer& server, const HttpRequest& http, const std::string& model, int64_t version) {
  InferRequest r;
  r.model = model;
  r.version = version;
  std::vector<std::string> binary_outputs;
  bool binary_default = false;
  std::string error;
  std::vector<SharedMemoryOutput> shm_outputs;
  auto hl = http.headers.find("inference-header-content-length");
  if (!parse_infer_request(http.body, hl == http.headers.end() ? nullptr : &hl->second, r, binary_outputs,
                           binary_default, error, &server.shared_memory(), &shm_outputs))
    return http_error(400, error);
  InferResponse resp;
  ServeStatus st = server.infer_sync(std::move(r), resp, http.client_gone);
  if (!st.ok) return http_error(http_status(st.code), st.message);
  json outputs = json::array();
  std::string binary;
  for (auto& t : resp.outputs) {
    bool as_binary = binary_default;
    for (const auto& b : binary_outputs) {
      if (b == t.name) as_binary = true;
      if (b == "!" + t.name) as_binary = false;
    }
    json o = {{"name", t.name}, {"datatype", triton_dtype_name(t.dtype)}, {"shape", t.shape}};
    auto target = std::find_if(shm_outputs.begin(), shm_outputs.end(),
                               [&](const SharedMemoryOutput& s) { return s.name == t.name; });
    if (target != shm_outputs.end()) {
      // Like Triton: no data, the region named in the output's parameters.
      st = output_to_shared_memory(*target, t);
      if (!st.ok) return http_error(http_status(st.code), st.message);
      o["parameters"] = {{"shared_memory_region", target->region}, {"shared_memory_byte_size", t.bytes().size()}};
      if (target->offset != 0) o["parameters"]["shared_memory_offset"] = target->offset;
    } else if (as_binary) {
      o["parameters"] = {{"binary_data_size", t.data.size()}};
      binary.append(reinterpret_cast<const char*>(t.data.data()), t.data.size());
    } else {
      o["data"] = tensor_bytes_to_json(t.data, t.dtype);
    }
    outputs.push_back(std::move(o));
  }
  json j = {{"model_name", resp.model}, {"model_version", std::to_string(resp.version)}, {"outputs", outputs}};
  if (!resp.id.empty()) j["id"] = resp.id;
  HttpResponse out;
  out.on_sent = std::move(resp.front_end_done);
  out.body = j.dump(-1, ' ', false, json::error_handler_t::replace);
  // Any binary output makes the body a JSON header followed by the data (even when empty).
  bool any_binary = binary_default;
  for (const auto& b : binary_outputs) any_binary |= b[0] != '!';
  if (any_binary) {
    out.headers.emplace_back("Inference-Header-Content-Length", std::to_string(out.body.size()));
    out.content_type = "application/octet-stream";
    out.body += binary;
  }
  return out;
}

}  // namespace kiln::server
