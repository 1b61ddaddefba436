// Health, metadata, configuration, statistics and model repository RPCs.
#include "grpc_service.h"

#include <charconv>

#include "model_config.h"

namespace kiln::server {

using grpc::ServerContext;
using grpc::Status;
using grpc::StatusCode;

Status grpc_status(const ServeStatus& s) {
  if (s.ok) return Status::OK;
  switch (s.code) {
    case ServeError::kInvalidArgument: return Status(StatusCode::INVALID_ARGUMENT, s.message);
    case ServeError::kNotFound: return Status(StatusCode::NOT_FOUND, s.message);
    case ServeError::kUnavailable: return Status(StatusCode::UNAVAILABLE, s.message);
    case ServeError::kUnsupported: return Status(StatusCode::UNIMPLEMENTED, s.message);
    case ServeError::kCancelled: return Status(StatusCode::CANCELLED, s.message);
    case ServeError::kAlreadyExists: return Status(StatusCode::ALREADY_EXISTS, s.message);
    default: return Status(StatusCode::INTERNAL, s.message);
  }
}

bool parse_model_version(const std::string& text, int64_t& version) {
  if (text.empty()) {
    version = -1;
    return true;
  }
  uint64_t v = 0;
  auto r = std::from_chars(text.data(), text.data() + text.size(), v);
  if (r.ec != std::errc() || r.ptr != text.data() + text.size() || v > (uint64_t{1} << 62)) return false;
  version = static_cast<int64_t>(v);
  return true;
}

ServeStatus KServeGrpcService::find(const std::string& name, const std::string& version,
                                    std::shared_ptr<const LoadedModel>& model, std::shared_ptr<ModelVersion>& found) {
  int64_t v = -1;
  if (!parse_model_version(version, v))
    return ServeStatus::error(ServeError::kInvalidArgument, "'" + version.substr(0, 40) + "' is not a model version");
  return server_.repository().find(name, v, model, found);
}

Status KServeGrpcService::ServerLive(ServerContext*, const inference::ServerLiveRequest*,
                                     inference::ServerLiveResponse* out) {
  out->set_live(true);
  return Status::OK;
}

Status KServeGrpcService::ServerReady(ServerContext*, const inference::ServerReadyRequest*,
                                      inference::ServerReadyResponse* out) {
  out->set_ready(server_.repository().ready());
  return Status::OK;
}

// Like Triton: an unknown model is not ready (no error); a bad version is one.
Status KServeGrpcService::ModelReady(ServerContext*, const inference::ModelReadyRequest* in,
                                     inference::ModelReadyResponse* out) {
  std::shared_ptr<const LoadedModel> model;
  std::shared_ptr<ModelVersion> mv;
  ServeStatus st = find(in->name(), in->version(), model, mv);
  if (!st.ok && st.code == ServeError::kInvalidArgument) return grpc_status(st);
  out->set_ready(st.ok);
  return Status::OK;
}

Status KServeGrpcService::ServerMetadata(ServerContext*, const inference::ServerMetadataRequest*,
                                         inference::ServerMetadataResponse* out) {
  out->set_name("kiln");
  out->set_version(KILN_VERSION);
  for (const char* e :
       {"model_configuration", "statistics", "model_repository", "schedule_policy", "system_shared_memory"})
    out->add_extensions(e);
  return Status::OK;
}

namespace {

void tensor_meta(const std::string& name, inference::DataType dt, const google::protobuf::RepeatedField<int64_t>& dims,
                 bool batched, inference::ModelMetadataResponse::TensorMetadata* t) {
  t->set_name(name);
  t->set_datatype(triton_dtype_name(dtype_from_config(dt)));
  if (batched) t->add_shape(-1);
  for (int64_t d : dims) t->add_shape(d);
}

void duration(const DurationStat& d, inference::StatisticDuration* out) {
  out->set_count(d.count.load());
  out->set_ns(d.ns.load());
}

void model_stats(const std::string& name, int64_t version, ModelStats& s, inference::ModelStatistics* out) {
  out->set_name(name);
  out->set_version(std::to_string(version));
  out->set_last_inference(s.last_inference_ms.load());
  out->set_inference_count(s.inference_count.load());
  out->set_execution_count(s.execution_count.load());
  auto* is = out->mutable_inference_stats();
  duration(s.success, is->mutable_success());
  duration(s.fail, is->mutable_fail());
  duration(s.queue, is->mutable_queue());
  duration(s.compute_input, is->mutable_compute_input());
  duration(s.compute_infer, is->mutable_compute_infer());
  duration(s.compute_output, is->mutable_compute_output());
  is->mutable_cache_hit();
  is->mutable_cache_miss();
  std::lock_guard<std::mutex> lock(s.batch_mutex);
  for (const auto& [size, b] : s.batches) {
    auto* bs = out->add_batch_stats();
    bs->set_batch_size(size);
    bs->mutable_compute_input()->set_count(b.count);
    bs->mutable_compute_input()->set_ns(b.input_ns);
    bs->mutable_compute_infer()->set_count(b.count);
    bs->mutable_compute_infer()->set_ns(b.infer_ns);
    bs->mutable_compute_output()->set_count(b.count);
    bs->mutable_compute_output()->set_ns(b.output_ns);
  }
}

// Load parameters: "config" (the model configuration as JSON, a
// string_param) overrides config.pbtxt; file overrides are refused, not ignored.
ServeStatus load_parameters(const google::protobuf::Map<std::string, inference::ModelRepositoryParameter>& params,
                            const std::string*& config) {
  config = nullptr;
  for (const auto& [key, value] : params) {
    if (key.rfind("file:", 0) == 0)
      return ServeStatus::error(ServeError::kInvalidArgument,
                                "load parameter '" + key.substr(0, 60) + "' (file overrides) is not supported");
    if (key != "config") continue;
    if (value.parameter_choice_case() != inference::ModelRepositoryParameter::kStringParam)
      return ServeStatus::error(ServeError::kInvalidArgument,
                                "load parameter 'config' must be the model configuration as a JSON string");
    config = &value.string_param();
  }
  return ServeStatus::success();
}

}  // namespace

Status KServeGrpcService::ModelMetadata(ServerContext*, const inference::ModelMetadataRequest* in,
                                        inference::ModelMetadataResponse* out) {
  std::shared_ptr<const LoadedModel> model;
  std::shared_ptr<ModelVersion> mv;
  ServeStatus st = find(in->name(), in->version(), model, mv);
  if (!st.ok) return grpc_status(st);
  const auto& c = model->config;
  out->set_name(c.name());
  for (const auto& [v, m] : model->versions) out->add_versions(std::to_string(v));
  out->set_platform(c.platform().empty() ? c.backend() : c.platform());
  bool b = c.max_batch_size() > 0;
  for (const auto& t : c.input()) tensor_meta(t.name(), t.data_type(), t.dims(), b, out->add_inputs());
  for (const auto& t : c.output()) tensor_meta(t.name(), t.data_type(), t.dims(), b, out->add_outputs());
  return Status::OK;
}

Status KServeGrpcService::ModelConfig(ServerContext*, const inference::ModelConfigRequest* in,
                                      inference::ModelConfigResponse* out) {
  std::shared_ptr<const LoadedModel> model;
  std::shared_ptr<ModelVersion> mv;
  ServeStatus st = find(in->name(), in->version(), model, mv);
  if (!st.ok) return grpc_status(st);
  *out->mutable_config() = model->config;
  return Status::OK;
}

Status KServeGrpcService::ModelStatistics(ServerContext*, const inference::ModelStatisticsRequest* in,
                                          inference::ModelStatisticsResponse* out) {
  if (in->name().empty()) {
    for (const auto& [key, s] : server_.repository().all_stats())
      model_stats(key.first, key.second, *s, out->add_model_stats());
    return Status::OK;
  }
  std::shared_ptr<const LoadedModel> model;
  std::shared_ptr<ModelVersion> mv;
  ServeStatus st = find(in->name(), in->version(), model, mv);
  if (!st.ok) return grpc_status(st);
  int64_t version = -1;
  parse_model_version(in->version(), version);
  for (const auto& [v, m] : model->versions)
    if (version < 0 || v == version) model_stats(in->name(), v, *m->stats, out->add_model_stats());
  return Status::OK;
}

Status KServeGrpcService::RepositoryIndex(ServerContext*, const inference::RepositoryIndexRequest* in,
                                          inference::RepositoryIndexResponse* out) {
  for (const auto& e : server_.repository().index(in->ready())) {
    auto* m = out->add_models();
    m->set_name(e.name);
    if (e.version >= 0) m->set_version(std::to_string(e.version));
    m->set_state(e.state);
    m->set_reason(e.reason);
  }
  return Status::OK;
}

// A model that fails to load is the request's problem (INVALID_ARGUMENT, as
// Triton answers), not an unavailable server.
static Status load_status(const ServeStatus& st) {
  if (!st.ok && st.code == ServeError::kUnavailable) return Status(StatusCode::INVALID_ARGUMENT, st.message);
  return grpc_status(st);
}

Status KServeGrpcService::RepositoryModelLoad(ServerContext*, const inference::RepositoryModelLoadRequest* in,
                                              inference::RepositoryModelLoadResponse*) {
  const std::string* config = nullptr;
  ServeStatus st = load_parameters(in->parameters(), config);
  if (!st.ok) return grpc_status(st);
  return load_status(server_.repository().load(in->model_name(), config));
}

Status KServeGrpcService::RepositoryModelUnload(ServerContext*, const inference::RepositoryModelUnloadRequest* in,
                                                inference::RepositoryModelUnloadResponse*) {
  return load_status(server_.repository().unload(in->model_name()));
}

}  // namespace kiln::server
