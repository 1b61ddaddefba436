// KServe v2 over gRPC (Triton's inference.GRPCInferenceService): the listening
// server. Like the HTTP front end it only calls InferenceServer.
#pragma once

#include <memory>
#include <string>

#include "kiln/status.h"
#include "server.h"

namespace kiln::server {

struct GrpcServerOptions {
  std::string host = "127.0.0.1";
  int port = 8001;  // 0: any free port
  size_t max_request_bytes = 64 << 20;
};

class GrpcServer {
 public:
  GrpcServer(InferenceServer& core, GrpcServerOptions options);
  ~GrpcServer();
  Status start();  // errors for a port that cannot be bound
  void stop();     // cancels open streams after a short grace period
  int port() const { return port_; }

 private:
  struct Impl;
  InferenceServer& core_;
  GrpcServerOptions options_;
  int port_ = 0;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::server
