#include "http/kserve_http.h"

#include <charconv>
#include <future>
#include <nlohmann/json.hpp>

#include "http/json_tensor.h"
#include "model_config.h"

namespace kiln::server {

int http_status(ServeError e) {
  switch (e) {
    case ServeError::kInvalidArgument: return 400;
    case ServeError::kNotFound: return 404;
    case ServeError::kUnavailable: return 503;
    case ServeError::kUnsupported: return 400;
    case ServeError::kCancelled: return 499;      // nginx's "client closed request": nobody reads it
    case ServeError::kAlreadyExists: return 400;  // Triton's for ALREADY_EXISTS
    default: return 500;
  }
}

namespace {

using nlohmann::json;

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

HttpResponse ok_json(const json& j) {
  HttpResponse r;
  r.body = dump(j);
  return r;
}

HttpResponse error_of(const ServeStatus& s) { return http_error(http_status(s.code), s.message); }

std::string url_decode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int v = 0;
      auto r = std::from_chars(s.data() + i + 1, s.data() + std::min(s.size(), i + 3), v, 16);
      if (r.ec == std::errc() && r.ptr == s.data() + i + 3) {
        out += static_cast<char>(v);
        i += 2;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

std::vector<std::string> split_path(const std::string& target) {
  std::string path = target.substr(0, target.find('?'));
  std::vector<std::string> parts;
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    if (j > i) parts.push_back(url_decode(path.substr(i, j - i)));
    i = j + 1;
  }
  return parts;
}

bool parse_u64(const std::string& s, uint64_t& v) {
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  return !s.empty() && r.ec == std::errc() && r.ptr == s.data() + s.size();
}

json tensor_meta(const std::string& name, inference::DataType dt, const google::protobuf::RepeatedField<int64_t>& dims,
                 bool batched) {
  json shape = json::array();
  if (batched) shape.push_back(-1);
  for (int64_t d : dims) shape.push_back(d);
  return {{"name", name}, {"datatype", triton_dtype_name(dtype_from_config(dt))}, {"shape", shape}};
}

json model_metadata(const LoadedModel& m) {
  const auto& c = m.config;
  json versions = json::array();
  for (const auto& [v, mv] : m.versions) versions.push_back(std::to_string(v));
  json inputs = json::array(), outputs = json::array();
  bool b = c.max_batch_size() > 0;
  for (const auto& t : c.input()) inputs.push_back(tensor_meta(t.name(), t.data_type(), t.dims(), b));
  for (const auto& t : c.output()) outputs.push_back(tensor_meta(t.name(), t.data_type(), t.dims(), b));
  return {{"name", c.name()},
          {"versions", versions},
          {"platform", c.platform().empty() ? c.backend() : c.platform()},
          {"inputs", inputs},
          {"outputs", outputs}};
}

json duration(const DurationStat& d) { return {{"count", d.count.load()}, {"ns", d.ns.load()}}; }

json model_stats_json(const std::string& name, int64_t version, ModelStats& s) {
  json batches = json::array();
  {
    std::lock_guard<std::mutex> lock(s.batch_mutex);
    for (const auto& [size, b] : s.batches)
      batches.push_back({{"batch_size", size},
                         {"compute_input", {{"count", b.count}, {"ns", b.input_ns}}},
                         {"compute_infer", {{"count", b.count}, {"ns", b.infer_ns}}},
                         {"compute_output", {{"count", b.count}, {"ns", b.output_ns}}}});
  }
  json zero = {{"count", 0}, {"ns", 0}};
  return {{"name", name},
          {"version", std::to_string(version)},
          {"last_inference", s.last_inference_ms.load()},
          {"inference_count", s.inference_count.load()},
          {"execution_count", s.execution_count.load()},
          {"inference_stats",
           {{"success", duration(s.success)},
            {"fail", duration(s.fail)},
            {"queue", duration(s.queue)},
            {"compute_input", duration(s.compute_input)},
            {"compute_infer", duration(s.compute_infer)},
            {"compute_output", duration(s.compute_output)},
            {"cache_hit", zero},
            {"cache_miss", zero}}},
          {"batch_stats", batches}};
}

class KServeRoutes {
 public:
  explicit KServeRoutes(InferenceServer& s) : server_(s), repo_(s.repository()) {}
  HttpResponse operator()(const HttpRequest& r);

 private:
  HttpResponse models(const HttpRequest& r, const std::vector<std::string>& p);
  HttpResponse repository(const HttpRequest& r, const std::vector<std::string>& p);
  HttpResponse stats(const std::string& name, int64_t version);
  HttpResponse shared_memory(const HttpRequest& r, const std::vector<std::string>& p);

  InferenceServer& server_;
  ModelRepository& repo_;
};

HttpResponse KServeRoutes::operator()(const HttpRequest& r) {
  auto p = split_path(r.target);
  if (p.empty() || p[0] != "v2") return http_error(404, "Not Found: " + r.target.substr(0, 200));
  bool get = r.method == "GET";
  if (p.size() == 1) {
    if (!get) return http_error(405, "Method Not Allowed: use GET");
    return ok_json({{"name", "kiln"},
                    {"version", KILN_VERSION},
                    {"extensions",
                     {"binary_tensor_data", "model_configuration", "statistics", "model_repository", "schedule_policy",
                      "system_shared_memory"}}});
  }
  if (p[1] == "health" && p.size() == 3 && (p[2] == "live" || p[2] == "ready")) {
    if (!get) return http_error(405, "Method Not Allowed: use GET");
    if (p[2] == "live" || repo_.ready()) return HttpResponse{200, "application/json", {}, ""};
    return http_error(400, "not every model that should be loaded is ready");
  }
  if (p[1] == "models") return models(r, p);
  if (p[1] == "repository") return repository(r, p);
  if (p[1] == "systemsharedmemory" || p[1] == "cudasharedmemory") return shared_memory(r, p);
  return http_error(404, "Not Found: " + r.target.substr(0, 200));
}

HttpResponse KServeRoutes::models(const HttpRequest& r, const std::vector<std::string>& p) {
  bool get = r.method == "GET", post = r.method == "POST";
  if (p.size() == 3 && p[2] == "stats") {
    if (!get) return http_error(405, "Method Not Allowed: use GET");
    return stats("", -1);
  }
  if (p.size() < 3) return http_error(404, "Not Found: " + r.target.substr(0, 200));
  const std::string& name = p[2];
  size_t next = 3;
  int64_t version = -1;
  if (p.size() >= 5 && p[3] == "versions") {
    uint64_t v = 0;
    if (!parse_u64(p[4], v) || v > (1ull << 62))
      return http_error(400, "'" + p[4].substr(0, 40) + "' is not a model version");
    version = static_cast<int64_t>(v);
    next = 5;
  }
  std::string action = p.size() > next ? p[next] : "";
  if (p.size() > next + 1) return http_error(404, "Not Found: " + r.target.substr(0, 200));
  if (action == "infer") {
    if (!post) return http_error(405, "Method Not Allowed: use POST");
    return handle_infer(server_, r, name, version);
  }
  if (!get) return http_error(405, "Method Not Allowed: use GET");
  if (action == "stats") return stats(name, version);
  std::shared_ptr<const LoadedModel> model;
  std::shared_ptr<ModelVersion> mv;
  ServeStatus st = repo_.find(name, version, model, mv);
  if (action == "ready") {
    if (!st.ok) return error_of(st);
    return HttpResponse{200, "application/json", {}, ""};
  }
  if (!st.ok) return error_of(st);
  if (action.empty()) return ok_json(model_metadata(*model));
  if (action == "config") {
    HttpResponse out;
    out.body = model_config_json(model->config);
    return out;
  }
  return http_error(404, "Not Found: " + r.target.substr(0, 200));
}

HttpResponse KServeRoutes::stats(const std::string& name, int64_t version) {
  json list = json::array();
  if (!name.empty()) {
    std::shared_ptr<const LoadedModel> model;
    std::shared_ptr<ModelVersion> mv;
    ServeStatus st = repo_.find(name, version, model, mv);
    if (!st.ok) return error_of(st);
    for (const auto& [v, m] : model->versions)
      if (version < 0 || v == version) list.push_back(model_stats_json(name, v, *m->stats));
  } else {
    for (const auto& [key, s] : repo_.all_stats()) list.push_back(model_stats_json(key.first, key.second, *s));
  }
  return ok_json({{"model_stats", list}});
}

// /v2/systemsharedmemory[/region/NAME]/{status,register,unregister}; the
// CUDA shared memory routes answer that kiln does not support them.
HttpResponse KServeRoutes::shared_memory(const HttpRequest& r, const std::vector<std::string>& p) {
  std::string name;
  std::string action;
  if (p.size() == 3) {
    action = p[2];
  } else if (p.size() == 5 && p[2] == "region") {
    name = p[3];
    action = p[4];
  }
  if (action != "status" && action != "register" && action != "unregister")
    return http_error(404, "Not Found: " + r.target.substr(0, 200));
  if (action == "register" && name.empty()) return http_error(404, "Not Found: " + r.target.substr(0, 200));
  const char* method = action == "status" ? "GET" : "POST";
  if (r.method != method) return http_error(405, std::string("Method Not Allowed: use ") + method);
  if (p[1] == "cudasharedmemory") return http_error(501, "CUDA shared memory is not supported by kiln serve");
  SharedMemoryRegistry& shm = server_.shared_memory();
  if (action == "status") {
    std::vector<SharedMemoryInfo> regions;
    ServeStatus st = shm.status(name, regions);
    if (!st.ok) return error_of(st);
    json list = json::array();
    for (const auto& g : regions)
      list.push_back({{"name", g.name}, {"key", g.key}, {"offset", g.offset}, {"byte_size", g.byte_size}});
    return ok_json(list);
  }
  if (action == "unregister") {
    ServeStatus st = shm.unregister(name);
    if (!st.ok) return error_of(st);
    return HttpResponse{200, "application/json", {}, ""};
  }
  json body = json::parse(r.body, nullptr, false);
  if (body.is_discarded() || !body.is_object())
    return http_error(400, "the register request body is not a JSON object");
  if (!body.contains("key") || !body["key"].is_string()) return http_error(400, "'key' must be a string");
  uint64_t offset = 0, byte_size = 0;
  auto u64 = [](const json& j, uint64_t& v) {
    if (j.is_number_unsigned()) {
      v = j.get<uint64_t>();
      return true;
    }
    return false;
  };
  if (body.contains("offset") && !u64(body["offset"], offset))
    return http_error(400, "'offset' must be a non-negative integer");
  if (!body.contains("byte_size") || !u64(body["byte_size"], byte_size))
    return http_error(400, "'byte_size' must be a non-negative integer");
  ServeStatus st = shm.register_region(name, body["key"].get<std::string>(), offset, byte_size);
  if (!st.ok) return error_of(st);
  return HttpResponse{200, "application/json", {}, ""};
}

HttpResponse KServeRoutes::repository(const HttpRequest& r, const std::vector<std::string>& p) {
  if (r.method != "POST") return http_error(405, "Method Not Allowed: use POST");
  if (p.size() == 3 && p[2] == "index") {
    bool ready_only = false;
    if (!r.body.empty()) {
      json body = json::parse(r.body, nullptr, false);
      if (body.is_discarded() || !body.is_object())
        return http_error(400, "the index request body is not a JSON object");
      if (body.contains("ready")) {
        if (!body["ready"].is_boolean()) return http_error(400, "'ready' must be true or false");
        ready_only = body["ready"].get<bool>();
      }
    }
    json list = json::array();
    for (const auto& e : repo_.index(ready_only)) {
      json j = {{"name", e.name}, {"state", e.state}};
      if (e.version >= 0) j["version"] = std::to_string(e.version);
      if (!e.reason.empty()) j["reason"] = e.reason;
      list.push_back(j);
    }
    return ok_json(list);
  }
  if (p.size() == 5 && p[2] == "models" && (p[4] == "load" || p[4] == "unload")) {
    std::string config;
    bool has_config = false;
    if (!r.body.empty()) {
      json body = json::parse(r.body, nullptr, false);
      if (body.is_discarded() || !body.is_object())
        return http_error(400, "the load request body is not a JSON object");
      if (body.contains("parameters")) {
        const json& params = body["parameters"];
        if (!params.is_object()) return http_error(400, "'parameters' must be an object");
        for (const auto& [key, value] : params.items()) {
          if (key.rfind("file:", 0) == 0)
            return http_error(400, "load parameter '" + key.substr(0, 60) + "' (file overrides) is not supported");
          if (key != "config") continue;
          if (p[4] != "load") return http_error(400, "the 'config' parameter belongs to a load");
          // Triton's form is a string holding the JSON; an object is taken as well.
          if (!value.is_string() && !value.is_object())
            return http_error(400, "load parameter 'config' must be the model configuration as a JSON string");
          config = value.is_string() ? value.get<std::string>() : dump(value);
          has_config = true;
        }
      }
    }
    ServeStatus st = p[4] == "load" ? repo_.load(p[3], has_config ? &config : nullptr) : repo_.unload(p[3]);
    if (!st.ok) return http_error(st.code == ServeError::kUnavailable ? 400 : http_status(st.code), st.message);
    return HttpResponse{200, "application/json", {}, ""};
  }
  return http_error(404, "Not Found: " + r.target.substr(0, 200));
}

}  // namespace

HttpHandler make_kserve_handler(InferenceServer& server) {
  auto routes = std::make_shared<KServeRoutes>(server);
  return [routes](const HttpRequest& r) { return (*routes)(r); };
}

}  // namespace kiln::server
