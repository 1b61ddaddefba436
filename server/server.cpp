#include "server.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <future>
#include <thread>

#include "http/http_server.h"
#include "http/kserve_http.h"
#include "spin_wait.h"
#ifdef KILN_WITH_GRPC
#include "grpc/grpc_server.h"
#endif

namespace kiln::server {

void InferHold::cancel() {
  if (!cancelled_ || cancelled_->exchange(true)) return;
  version_->scheduler->wake();
}

void InferenceServer::infer(InferRequest request, InferCallback done, InferHold& hold) {
  ServeStatus st = repository_.find(request.model, request.version, hold.model_, hold.version_);
  if (!st.ok) {
    done(st, {});
    return;
  }
  request.cancelled = hold.cancelled_ = std::make_shared<std::atomic<bool>>(false);
  // `hold`, not the callback, owns the model: the callback runs on the
  // model's own threads. `hold` may be gone before submit returns (see
  // server.h), so the scheduler is kept alive here until then.
  const std::shared_ptr<ModelVersion> version = hold.version_;
  version->scheduler->submit(std::move(request), std::move(done));
}

ServeStatus InferenceServer::infer_sync(InferRequest request, InferResponse& response,
                                        const std::function<bool()>& client_gone) {
  std::promise<std::pair<ServeStatus, InferResponse>> promise;
  auto future = promise.get_future();
  InferHold hold;
  infer(
      std::move(request),
      [&promise](ServeStatus s, InferResponse r) {
        promise.set_value({std::move(s), std::move(r)});
      },
      hold);
  // The answer of a small model comes back within microseconds: catch it awake.
  spin_until([&future] { return future.wait_for(std::chrono::seconds(0)) == std::future_status::ready; },
             std::chrono::microseconds(200));
  if (client_gone) {
    while (future.wait_for(std::chrono::milliseconds(10)) != std::future_status::ready)
      if (client_gone()) hold.cancel();
  }
  auto result = future.get();
  response = std::move(result.second);
  return result.first;
}

struct Server::Impl {
  std::unique_ptr<HttpServer> http;
  std::unique_ptr<HttpServer> metrics;
#ifdef KILN_WITH_GRPC
  std::unique_ptr<GrpcServer> grpc;
#endif
  std::thread poller;
  std::mutex mutex;
  std::condition_variable cv;
  bool stopping = false;
};

Server::Server(ServerOptions options)
    : options_(std::move(options)),
      core_(std::make_unique<InferenceServer>(options_.repository)),
      impl_(std::make_unique<Impl>()) {}

Server::~Server() { stop(); }

Status Server::start() {
  Status st = core_->repository().start();
  if (!st.is_ok()) return st;
  HttpServerOptions h;
  h.host = options_.host;
  h.port = options_.http_port;
  h.max_body_bytes = options_.max_request_bytes;
  h.idle_timeout_s = options_.http_idle_timeout_s;
  impl_->http = std::make_unique<HttpServer>(h, make_kserve_handler(*core_));
  st = impl_->http->start();
  if (!st.is_ok()) return st.with_context("HTTP service");
#ifdef KILN_WITH_GRPC
  if (options_.allow_grpc) {
    impl_->grpc = std::make_unique<GrpcServer>(
        *core_, GrpcServerOptions{options_.host, options_.grpc_port, options_.max_request_bytes});
    st = impl_->grpc->start();
    if (!st.is_ok()) return st.with_context("gRPC service");
  }
#endif
  if (options_.allow_metrics) {
    HttpServerOptions m = h;
    m.port = options_.metrics_port;
    m.max_body_bytes = 1 << 16;
    InferenceServer* core = core_.get();
    impl_->metrics = std::make_unique<HttpServer>(m, [core](const HttpRequest& r) {
      std::string path = r.target.substr(0, r.target.find('?'));
      if (path != "/metrics") return http_error(404, "Not Found: the metrics are at /metrics");
      if (r.method != "GET") return http_error(405, "Method Not Allowed: use GET");
      HttpResponse out;
      out.content_type = "text/plain; version=0.0.4; charset=utf-8";
      out.body = render_metrics(*core);
      return out;
    });
    st = impl_->metrics->start();
    if (!st.is_ok()) return st.with_context("metrics service");
  }
  if (options_.repository.mode == ControlMode::kPoll) {
    impl_->poller = std::thread([this] {
      std::unique_lock<std::mutex> lock(impl_->mutex);
      while (!impl_->cv.wait_for(lock, std::chrono::seconds(std::max(1, options_.poll_seconds)),
                                 [this] { return impl_->stopping; })) {
        lock.unlock();
        core_->repository().poll();
        lock.lock();
      }
    });
  }
  return Status::ok();
}

void Server::stop() {
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  if (impl_->poller.joinable()) impl_->poller.join();
  if (impl_->http) impl_->http->stop();
#ifdef KILN_WITH_GRPC
  if (impl_->grpc) impl_->grpc->stop();
#endif
  if (impl_->metrics) impl_->metrics->stop();
}

int Server::http_port() const { return impl_->http ? impl_->http->port() : 0; }
int Server::metrics_port() const { return impl_->metrics ? impl_->metrics->port() : 0; }
#ifdef KILN_WITH_GRPC
int Server::grpc_port() const { return impl_->grpc ? impl_->grpc->port() : 0; }
#else
int Server::grpc_port() const { return 0; }
#endif

}  // namespace kiln::server
