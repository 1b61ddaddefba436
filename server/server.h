// kiln serve: the model repository with its schedulers, and the front ends
// on top (KServe v2 over HTTP, Prometheus metrics). The gRPC front end (part
// 2) is another client of InferenceServer, like KServeHttp.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "inference.h"
#include "model_repository.h"

namespace kiln::server {

struct ServerOptions {
  RepositoryOptions repository;
  std::string host = "127.0.0.1";
  int http_port = 8000;
  int grpc_port = 8001;  // reserved for the gRPC front end (not served yet)
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
  // Finds the model version and queues the request; `done` is called once.
  void infer(InferRequest request, InferCallback done);
  // Blocking form for thread-per-connection front ends.
  ServeStatus infer_sync(InferRequest request, InferResponse& response);

 private:
  ModelRepository repository_;
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
  InferenceServer& core() { return *core_; }

 private:
  struct Impl;
  ServerOptions options_;
  std::unique_ptr<InferenceServer> core_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::server
