// kiln serve: the model repository with its schedulers, and the front ends
// on top (KServe v2 over HTTP and over gRPC, Prometheus metrics). Each front
// end only calls InferenceServer.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "inference.h"
#include "model_repository.h"
#include "shared_memory.h"

// True when kiln was built with the gRPC front end.
#ifdef KILN_WITH_GRPC
#define KILN_SERVER_HAS_GRPC 1
#else
#define KILN_SERVER_HAS_GRPC 0
#endif

namespace kiln::server {

struct ServerOptions {
  RepositoryOptions repository;
  std::string host = "127.0.0.1";
  int http_port = 8000;
  int grpc_port = 8001;
  bool allow_grpc = true;  // ignored when kiln is built without gRPC
  int metrics_port = 8002;
  bool allow_metrics = true;
  size_t max_request_bytes = 64 << 20;
  // An HTTP connection with no byte to read or room to write for this long
  // is closed (halfway through a request: answered 408 first).
  int http_idle_timeout_s = 60;
  int poll_seconds = 15;
};

// What the caller of InferenceServer::infer keeps until the request's
// callback has run: the model the request runs on (a reload cannot end it
// under the request) and the request's cancel flag. Release it off the
// model's scheduler threads, which run the callback: the last release of a
// model joins them.
class InferHold {
 public:
  // Drops the request from its model's queue if it is still there, and has
  // it answered kCancelled; a run already under way finishes. Safe from any
  // thread once infer() has returned and while the hold lives; a no-op for
  // a request refused at once.
  void cancel();

 private:
  friend class InferenceServer;
  std::shared_ptr<const LoadedModel> model_;
  std::shared_ptr<ModelVersion> version_;
  std::shared_ptr<std::atomic<bool>> cancelled_;
};

// Protocol-neutral server core: what every front end calls.
class InferenceServer {
 public:
  explicit InferenceServer(RepositoryOptions options) : repository_(std::move(options)) {}
  ModelRepository& repository() { return repository_; }
  // The system shared memory regions clients registered (every front end's).
  SharedMemoryRegistry& shared_memory() { return shared_memory_; }
  // Finds the model version and queues the request. `done` is called exactly
  // once: on a scheduler thread, or on this one for a request refused at
  // once (unknown model, invalid request, full queue). `hold` is filled
  // before the request is queued and must outlive `done`. Once the request
  // is queued infer() touches nothing of the caller's: `done` may hand its
  // answer to a thread that releases `hold` before infer() has returned.
  void infer(InferRequest request, InferCallback done, InferHold& hold);
  // Blocking form for thread-per-connection front ends. While the request
  // waits, `client_gone` (when set) is asked every few milliseconds; once it
  // says true the request is cancelled (InferHold::cancel).
  ServeStatus infer_sync(InferRequest request, InferResponse& response,
                         const std::function<bool()>& client_gone = nullptr);

 private:
  ModelRepository repository_;
  SharedMemoryRegistry shared_memory_;
};

// Prometheus text exposition of the server's counters (Triton's names).
std::string render_metrics(InferenceServer& server);

class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();
  // Loads the models and starts listening. Errors for a bad repository root
  // or a port that cannot be bound; a model that fails to load is not one.
  Status start();
  void stop();
  int http_port() const;
  int metrics_port() const;
  int grpc_port() const;  // 0: not serving gRPC
  InferenceServer& core() { return *core_; }

 private:
  struct Impl;
  ServerOptions options_;
  std::unique_ptr<InferenceServer> core_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::server
