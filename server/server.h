// kiln serve: the model repository with its schedulers, and the front ends
// on top (KServe v2 over HTTP and over gRPC, Prometheus metrics). Each front
// end only calls InferenceServer.
#pragma once

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
  int poll_seconds = 15;
};

// Protocol-neutral server core: what every front end calls.
class InferenceServer {
 public:
  explicit InferenceServer(RepositoryOptions options) : repository_(std::move(options)) {}
  ModelRepository& repository() { return repository_; }
  // The system shared memory regions clients registered (every front end's).
  SharedMemoryRegistry& shared_memory() { return shared_memory_; }
  // Finds the model version and queues the request; `done` is called once.
  void infer(InferRequest request, InferCallback done);
  // Blocking form for thread-per-connection front ends. While the request
  // waits, `client_gone` (when set) is asked every few milliseconds; once it
  // says true the request is cancelled: dropped from the queue unrun, and
  // answered with kCancelled (a run already under way finishes).
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
