#include "perf_client.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#ifdef KILN_WITH_GRPC
#include <absl/synchronization/mutex.h>
#include <grpcpp/grpcpp.h>

#include "grpc_service.grpc.pb.h"
#endif
#include "spin_wait.h"

namespace kiln::cli::kserve {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using json = nlohmann::json;

Status fail(std::string m) { return Status(ErrorCode::kInvalidArgument, std::move(m)); }

// A client's POSIX shared memory region (--shared-memory system): its
// inputs, one after another, then --output-shared-memory-size bytes per
// output. Removed (unmapped and unlinked) with the client.
class ShmRegion {
 public:
  struct Window {
    uint64_t offset, size;
  };
  ~ShmRegion() {
    if (map_) munmap(map_, size_);
    if (!key_.empty()) shm_unlink(key_.c_str());
  }
  // Makes the region of `index`'s client and copies the inputs into it.
  Status create(int index, const std::vector<std::vector<uint8_t>>& data, size_t outputs, uint64_t output_size) {
    name_ = "kiln_perf_" + std::to_string(getpid()) + "_" + std::to_string(index);
    uint64_t at = 0;
    for (const auto& d : data) {
      inputs_.push_back({at, d.size()});
      at += (d.size() + 63) / 64 * 64;  // each tensor at a 64-byte boundary
    }
    for (size_t i = 0; i < outputs; ++i) {
      outputs_.push_back({at, output_size});
      at += (output_size + 63) / 64 * 64;
    }
    size_ = std::max<uint64_t>(at, 1);
    const std::string key = "/" + name_;
    int fd = shm_open(key.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0) return fail("shm_open " + key + ": " + std::strerror(errno));
    key_ = key;
    if (ftruncate(fd, static_cast<off_t>(size_)) != 0) {
      close(fd);
      return fail("ftruncate " + key + ": " + std::strerror(errno));
    }
    void* map = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return fail("mmap " + key + ": " + std::strerror(errno));
    map_ = map;
    for (size_t i = 0; i < data.size(); ++i)
      if (!data[i].empty())
        std::memcpy(static_cast<uint8_t*>(map_) + inputs_[i].offset, data[i].data(), data[i].size());
    return Status::ok();
  }
  const std::string& name() const { return name_; }
  const std::string& key() const { return key_; }
  uint64_t size() const { return size_; }
  const std::vector<Window>& inputs() const { return inputs_; }
  const std::vector<Window>& outputs() const { return outputs_; }

 private:
  std::string name_, key_;
  void* map_ = nullptr;
  uint64_t size_ = 0;
  std::vector<Window> inputs_, outputs_;
};

// The region of client `index` under --shared-memory system (inputs copied
// in), or null without it.
Expected<std::unique_ptr<ShmRegion>> make_region(const PerfOptions& o, int index, const ModelInfo& info,
                                                 const std::vector<std::vector<uint8_t>>& data) {
  if (o.shared_memory != "system") return std::unique_ptr<ShmRegion>();
  auto region = std::make_unique<ShmRegion>();
  Status st = region->create(index, data, info.outputs.size(), o.output_shared_memory_size);
  if (!st.is_ok()) return st;
  return region;
}

// ---- HTTP/1.1 with keep-alive (Boost.Beast, synchronous)

class HttpClient final : public Client {
 public:
  HttpClient(std::string host, std::string port, const PerfOptions& o, int index)
      : host_(std::move(host)), port_(std::move(port)), o_(o), index_(index), stream_(ioc_) {
    base_ = "/v2/models/" + o.model + (o.version.empty() ? "" : "/versions/" + o.version);
  }
  ~HttpClient() override {
    if (registered_) static_cast<void>(post("/v2/systemsharedmemory/region/" + shm_->name() + "/unregister", ""));
  }

  Status connect() override {
    beast::error_code ec;
    tcp::resolver resolver(ioc_);
    auto results = resolver.resolve(host_, port_, ec);
    if (ec) return fail("cannot resolve " + host_ + ":" + port_ + ": " + ec.message());
    stream_.connect(results, ec);
    if (ec) return fail("cannot connect to " + host_ + ":" + port_ + ": " + ec.message());
    stream_.socket().set_option(tcp::no_delay(true), ec);
    return Status::ok();
  }

  Expected<ModelInfo> model_info() override {
    auto meta = get_json(base_);
    if (!meta) return meta.status();
    auto config = get_json(base_ + "/config");
    if (!config) return config.status();
    ModelInfo info;
    try {
      for (const char* kind : {"inputs", "outputs"})
        for (const auto& t : (*meta)[kind]) {
          TensorInfo ti{t.at("name").get<std::string>(), t.at("datatype").get<std::string>(),
                        t.at("shape").get<std::vector<int64_t>>()};
          (std::string(kind) == "inputs" ? info.inputs : info.outputs).push_back(ti);
        }
      if (config->contains("max_batch_size")) info.max_batch_size = config->at("max_batch_size").get<int64_t>();
    } catch (const json::exception& e) {
      return fail(std::string("model metadata: ") + e.what());
    }
    return info;
  }

  Expected<ServerStats> stats() override {
    auto j = get_json(base_ + "/stats");
    if (!j) return j.status();
    ServerStats s;
    try {
      for (const auto& m : j->at("model_stats")) {
        const auto& is = m.at("inference_stats");
        auto ns = [&](const char* k) { return is.at(k).at("ns").get<uint64_t>(); };
        s.success += is.at("success").at("count").get<uint64_t>();
        s.fail += is.at("fail").at("count").get<uint64_t>();
        s.success_ns += ns("success");
        s.queue_ns += ns("queue");
        s.input_ns += ns("compute_input");
        s.infer_ns += ns("compute_infer");
        s.output_ns += ns("compute_output");
        s.inference_count += m.at("inference_count").get<uint64_t>();
        s.execution_count += m.at("execution_count").get<uint64_t>();
      }
    } catch (const json::exception& e) {
      return fail(std::string("statistics: ") + e.what());
    }
    return s;
  }

  Status prepare(const ModelInfo& info, const std::vector<TensorInfo>& inputs,
                 const std::vector<std::vector<uint8_t>>& data) override {
    auto region = make_region(o_, index_, info, data);
    if (!region) return region.status();
    shm_ = std::move(*region);
    if (shm_) {
      json reg = {{"key", shm_->key()}, {"offset", 0}, {"byte_size", shm_->size()}};
      Status st = post("/v2/systemsharedmemory/region/" + shm_->name() + "/register", reg.dump());
      if (!st.is_ok()) return st;
      registered_ = true;
    }
    json header = {{"inputs", json::array()}, {"outputs", json::array()}};
    for (size_t i = 0; i < inputs.size(); ++i) {
      json params = {{"binary_data_size", data[i].size()}};
      if (shm_)
        params = {{"shared_memory_region", shm_->name()},
                  {"shared_memory_offset", shm_->inputs()[i].offset},
                  {"shared_memory_byte_size", shm_->inputs()[i].size}};
      header["inputs"].push_back({{"name", inputs[i].name},
                                  {"shape", inputs[i].shape},
                                  {"datatype", inputs[i].datatype},
                                  {"parameters", params}});
    }
    for (size_t i = 0; i < info.outputs.size(); ++i) {
      json params = {{"binary_data", true}};
      if (shm_)
        params = {{"shared_memory_region", shm_->name()},
                  {"shared_memory_offset", shm_->outputs()[i].offset},
                  {"shared_memory_byte_size", shm_->outputs()[i].size}};
      header["outputs"].push_back({{"name", info.outputs[i].name}, {"parameters", params}});
    }
    std::string body = header.dump();
    header_length_ = std::to_string(body.size());
    if (!shm_)
      for (const auto& d : data) body.append(reinterpret_cast<const char*>(d.data()), d.size());
    infer_ = http::request<http::string_body>(http::verb::post, base_ + "/infer", 11);
    infer_.set(http::field::host, host_);
    infer_.set(http::field::content_type, "application/octet-stream");
    infer_.set("Inference-Header-Content-Length", header_length_);
    infer_.keep_alive(true);
    infer_.body() = std::move(body);
    infer_.prepare_payload();
    return Status::ok();
  }

  Status infer(InferTiming& timing) override {
    auto r = exchange(infer_, &timing);
    if (!r) return r.status();
    if (r->result_int() != 200) return fail("HTTP " + std::to_string(r->result_int()) + ": " + r->body());
    return Status::ok();
  }

 private:
  // `timing`: where the request's time went (the socket is waited on for
  // the answer's first byte apart from reading it).
  Expected<http::response<http::string_body>> exchange(const http::request<http::string_body>& req,
                                                       InferTiming* timing = nullptr) {
    using Clock = std::chrono::steady_clock;
    const auto us = [](Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); };
    beast::error_code ec;
    // A connection the server closed (idle timeout) is opened again once.
    for (int attempt = 0; attempt < 2; ++attempt) {
      const auto t0 = Clock::now();
      http::write(stream_, req, ec);
      const auto t1 = Clock::now();
      http::response<http::string_body> res;
      if (!ec) {
        buffer_.clear();
        if (timing) {
          // --busy-wait-us: the answer's first byte is caught awake (spin_wait.h).
          if (o_.busy_wait_us > 0)
            server::spin_until_readable(stream_.socket().native_handle(), std::chrono::microseconds(o_.busy_wait_us));
          stream_.socket().wait(tcp::socket::wait_read, ec);
        }
        const auto t2 = Clock::now();
        http::response_parser<http::string_body> parser;
        parser.body_limit(std::numeric_limits<std::uint64_t>::max());
        if (!ec) http::read(stream_, buffer_, parser, ec);
        if (!ec) {
          if (timing) *timing = {us(t1 - t0), us(t2 - t1), us(Clock::now() - t2)};
          return parser.release();
        }
      }
      if (attempt == 0) {
        stream_.socket().close(ec);
        Status st = connect();
        if (!st.is_ok()) return st;
      }
    }
    return fail("HTTP request failed: " + ec.message());
  }

  // POST `body` (JSON) to `target`; an error unless HTTP 200.
  Status post(const std::string& target, const std::string& body) {
    http::request<http::string_body> req(http::verb::post, target, 11);
    req.set(http::field::host, host_);
    req.set(http::field::content_type, "application/json");
    req.keep_alive(true);
    req.body() = body;
    req.prepare_payload();
    auto r = exchange(req);
    if (!r) return r.status();
    if (r->result_int() != 200)
      return fail("POST " + target + ": HTTP " + std::to_string(r->result_int()) + ": " + r->body());
    return Status::ok();
  }

  Expected<json> get_json(const std::string& target) {
    http::request<http::string_body> req(http::verb::get, target, 11);
    req.set(http::field::host, host_);
    req.keep_alive(true);
    auto r = exchange(req);
    if (!r) return r.status();
    json j = json::parse(r->body(), nullptr, false);
    if (r->result_int() != 200) {
      std::string m = j.is_object() && j.contains("error") ? j["error"].dump() : r->body();
      return fail("GET " + target + ": HTTP " + std::to_string(r->result_int()) + ": " + m);
    }
    if (j.is_discarded()) return fail("GET " + target + ": the answer is not JSON");
    return j;
  }

  std::string host_, port_, base_, header_length_;
  const PerfOptions& o_;
  int index_;
  std::unique_ptr<ShmRegion> shm_;
  bool registered_ = false;
  net::io_context ioc_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> infer_;
};

// ---- gRPC (inference.GRPCInferenceService)

#ifdef KILN_WITH_GRPC
class GrpcClient final : public Client {
 public:
  GrpcClient(std::string url, const PerfOptions& o, int index) : url_(std::move(url)), o_(o), index_(index) {}
  ~GrpcClient() override {
    // Every call on the queue has completed (infer waits for its own).
    completions_.Shutdown();
    void* tag = nullptr;
    bool ok = false;
    while (completions_.Next(&tag, &ok)) {
    }
    if (!registered_) return;
    inference::SystemSharedMemoryUnregisterRequest req;
    req.set_name(shm_->name());
    inference::SystemSharedMemoryUnregisterResponse res;
    grpc::ClientContext c;
    stub_->SystemSharedMemoryUnregister(&c, req, &res);
  }

  Status connect() override {
    // As the server does (grpc_server.cpp): Debian's Abseil runs its mutex
    // deadlock detector on every lock gRPC takes (about 2 us per call).
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);
    args.SetMaxSendMessageSize(-1);
    // A distinct argument per client: its own connection, not a shared one.
    args.SetInt("kiln.perf.client", index_);
    // No transparent retries: a load generator counts every attempt, and the
    // retry filter costs each call about 4 us (it keeps the sent messages to
    // replay them).
    args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
    channel_ = grpc::CreateCustomChannel(url_, grpc::InsecureChannelCredentials(), args);
    stub_ = inference::GRPCInferenceService::NewStub(channel_);
    if (!channel_->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10)))
      return fail("cannot connect to " + url_ + " (gRPC)");
    return Status::ok();
  }

  Expected<ModelInfo> model_info() override {
    inference::ModelMetadataRequest req;
    req.set_name(o_.model);
    req.set_version(o_.version);
    inference::ModelMetadataResponse meta;
    grpc::ClientContext c1;
    grpc::Status st = stub_->ModelMetadata(&c1, req, &meta);
    if (!st.ok()) return fail("ModelMetadata: " + st.error_message());
    ModelInfo info;
    for (const auto& t : meta.inputs())
      info.inputs.push_back({t.name(), t.datatype(), {t.shape().begin(), t.shape().end()}});
    for (const auto& t : meta.outputs())
      info.outputs.push_back({t.name(), t.datatype(), {t.shape().begin(), t.shape().end()}});
    inference::ModelConfigRequest creq;
    creq.set_name(o_.model);
    creq.set_version(o_.version);
    inference::ModelConfigResponse config;
    grpc::ClientContext c2;
    st = stub_->ModelConfig(&c2, creq, &config);
    if (!st.ok()) return fail("ModelConfig: " + st.error_message());
    info.max_batch_size = config.config().max_batch_size();
    return info;
  }

  Expected<ServerStats> stats() override {
    inference::ModelStatisticsRequest req;
    req.set_name(o_.model);
    req.set_version(o_.version);
    inference::ModelStatisticsResponse res;
    grpc::ClientContext c;
    grpc::Status st = stub_->ModelStatistics(&c, req, &res);
    if (!st.ok()) return fail("ModelStatistics: " + st.error_message());
    ServerStats s;
    for (const auto& m : res.model_stats()) {
      const auto& is = m.inference_stats();
      s.success += is.success().count();
      s.fail += is.fail().count();
      s.success_ns += is.success().ns();
      s.queue_ns += is.queue().ns();
      s.input_ns += is.compute_input().ns();
      s.infer_ns += is.compute_infer().ns();
      s.output_ns += is.compute_output().ns();
      s.inference_count += m.inference_count();
      s.execution_count += m.execution_count();
    }
    return s;
  }

  Status prepare(const ModelInfo& info, const std::vector<TensorInfo>& inputs,
                 const std::vector<std::vector<uint8_t>>& data) override {
    auto region = make_region(o_, index_, info, data);
    if (!region) return region.status();
    shm_ = std::move(*region);
    if (shm_) {
      inference::SystemSharedMemoryRegisterRequest req;
      req.set_name(shm_->name());
      req.set_key(shm_->key());
      req.set_offset(0);
      req.set_byte_size(shm_->size());
      inference::SystemSharedMemoryRegisterResponse res;
      grpc::ClientContext c;
      grpc::Status gs = stub_->SystemSharedMemoryRegister(&c, req, &res);
      if (!gs.ok()) return fail("SystemSharedMemoryRegister: " + gs.error_message());
      registered_ = true;
    }
    // Shared memory parameters of window `w`, as tritonclient sets them.
    auto shm_params = [&](google::protobuf::Map<std::string, inference::InferParameter>& p,
                          const ShmRegion::Window& w) {
      p["shared_memory_region"].set_string_param(shm_->name());
      p["shared_memory_offset"].set_int64_param(static_cast<int64_t>(w.offset));
      p["shared_memory_byte_size"].set_int64_param(static_cast<int64_t>(w.size));
    };
    request_.Clear();
    request_.set_model_name(o_.model);
    request_.set_model_version(o_.version);
    for (size_t i = 0; i < inputs.size(); ++i) {
      auto* t = request_.add_inputs();
      t->set_name(inputs[i].name);
      t->set_datatype(inputs[i].datatype);
      for (int64_t d : inputs[i].shape) t->add_shape(d);
      if (shm_)
        shm_params(*t->mutable_parameters(), shm_->inputs()[i]);
      else
        request_.add_raw_input_contents(reinterpret_cast<const char*>(data[i].data()), data[i].size());
    }
    for (size_t i = 0; i < info.outputs.size(); ++i) {
      auto* out = request_.add_outputs();
      out->set_name(info.outputs[i].name);
      if (shm_) shm_params(*out->mutable_parameters(), shm_->outputs()[i]);
    }
    return Status::ok();
  }

  Status infer(InferTiming&) override {
    inference::ModelInferResponse res;
    grpc::ClientContext c;
    grpc::Status st = o_.busy_wait_us > 0 ? infer_polling(c, res) : stub_->ModelInfer(&c, request_, &res);
    if (!st.ok()) return fail("gRPC " + std::to_string(st.error_code()) + ": " + st.error_message());
    return Status::ok();
  }

 private:
  // --busy-wait-us: the call goes through this client's completion queue,
  // which the thread polls without blocking (a zero deadline: gRPC reads
  // whatever the socket holds, then returns) before it blocks in Next, so
  // that the answer is read by a thread that is awake (spin_wait.h).
  grpc::Status infer_polling(grpc::ClientContext& c, inference::ModelInferResponse& res) {
    grpc::Status st;
    auto call = stub_->AsyncModelInfer(&c, request_, &completions_);
    call->Finish(&res, &st, &completions_);
    void* tag = nullptr;
    bool ok = false;
    const bool got = server::spin_until(
        [&] {
          return completions_.AsyncNext(&tag, &ok, gpr_time_0(GPR_CLOCK_MONOTONIC)) == grpc::CompletionQueue::GOT_EVENT;
        },
        std::chrono::microseconds(o_.busy_wait_us));
    if (!got && !completions_.Next(&tag, &ok))
      return grpc::Status(grpc::StatusCode::INTERNAL, "the completion queue was shut down");
    return st;
  }

  std::string url_;
  const PerfOptions& o_;
  int index_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<inference::GRPCInferenceService::Stub> stub_;
  inference::ModelInferRequest request_;
  grpc::CompletionQueue completions_;  // --busy-wait-us's calls
  std::unique_ptr<ShmRegion> shm_;
  bool registered_ = false;
};
#endif

}  // namespace

Expected<std::unique_ptr<Client>> make_client(const PerfOptions& o, int index) {
  std::string url = o.url;
  for (const char* scheme : {"http://", "grpc://"})
    if (url.rfind(scheme, 0) == 0) url = url.substr(std::strlen(scheme));
  if (o.protocol == "grpc") {
#ifdef KILN_WITH_GRPC
    return std::unique_ptr<Client>(std::make_unique<GrpcClient>(url.empty() ? "localhost:8001" : url, o, index));
#else
    return fail("-i grpc: this kiln was built without gRPC (needs libgrpc++-dev at build time)");
#endif
  }
  if (url.empty()) url = "localhost:8000";
  auto colon = url.rfind(':');
  if (colon == std::string::npos) return fail("-u '" + o.url + "': expected HOST:PORT");
  return std::unique_ptr<Client>(std::make_unique<HttpClient>(url.substr(0, colon), url.substr(colon + 1), o, index));
}

namespace {

// Histogram `metric` of o's model in the /metrics text `body`.
HistogramBuckets model_histogram(const std::string& body, const std::string& metric, const PerfOptions& o) {
  const std::string prefix = metric + "_bucket{model=\"" + o.model + "\",version=\"";
  std::map<double, uint64_t> by_bound;
  std::istringstream lines(body);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(prefix, 0) != 0) continue;
    const auto version_end = line.find('"', prefix.size());
    const auto le = line.find("le=\"", prefix.size()), le_end = line.find('"', le + 4);
    if (version_end == std::string::npos || le == std::string::npos || le_end == std::string::npos) continue;
    if (!o.version.empty() && line.substr(prefix.size(), version_end - prefix.size()) != o.version) continue;
    const std::string bound = line.substr(le + 4, le_end - le - 4);
    const double b = bound == "+Inf" ? std::numeric_limits<double>::infinity() : std::stod(bound);
    by_bound[b] += std::stoull(line.substr(line.rfind(' ') + 1));
  }
  return HistogramBuckets(by_bound.begin(), by_bound.end());
}

}  // namespace

Expected<ServerHistograms> server_histograms(const PerfOptions& o) {
  std::string url = o.metrics_url;
  if (url.rfind("http://", 0) == 0) url = url.substr(7);
  const auto colon = url.rfind(':');
  if (colon == std::string::npos) return fail("--metrics-url '" + o.metrics_url + "': expected HOST:PORT");
  net::io_context ioc;
  beast::tcp_stream stream(ioc);
  beast::error_code ec;
  tcp::resolver resolver(ioc);
  auto results = resolver.resolve(url.substr(0, colon), url.substr(colon + 1), ec);
  if (!ec) stream.connect(results, ec);
  http::request<http::empty_body> req(http::verb::get, "/metrics", 11);
  req.set(http::field::host, url.substr(0, colon));
  if (!ec) http::write(stream, req, ec);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  if (!ec) http::read(stream, buffer, res, ec);
  if (ec) return fail("GET " + url + "/metrics: " + ec.message());
  if (res.result_int() != 200) return fail("GET " + url + "/metrics: HTTP " + std::to_string(res.result_int()));
  ServerHistograms h{model_histogram(res.body(), "kiln_inference_overhead_us", o),
                     model_histogram(res.body(), "kiln_inference_frontend_us", o)};
  if (h.overhead.empty()) return fail("/metrics at " + url + " has no kiln_inference_overhead_us of '" + o.model + "'");
  return h;
}

}  // namespace kiln::cli::kserve
