// A small HTTP/1.1 server on Boost.Beast: one thread per connection (requests
// on one connection are served in order, keep-alive honoured), a bound on
// the body size and on open connections, an idle timeout. Protocol-neutral:
// the KServe routes and /metrics are handlers passed in.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "kiln/status.h"

namespace kiln::server {

struct HttpRequest {
  std::string method;                          // "GET", "POST", ...
  std::string target;                          // path and query
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;
  // True once the client has closed (or reset) its connection; set by
  // HttpServer, cheap to call (a poll with no wait).
  std::function<bool()> client_gone;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // Called once the response is written, with the ns from the request's
  // header read to the response's last byte (InferResponse::front_end_done).
  std::function<void(uint64_t ns)> on_sent;
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0: any free port (see HttpServer::port)
  size_t max_body_bytes = 64 << 20;
  int idle_timeout_s = 60;
  int max_connections = 1024;
};

class HttpServer {
 public:
  HttpServer(HttpServerOptions options, HttpHandler handler);
  ~HttpServer();
  // Binds and starts accepting; an error names the address that failed.
  Status start();
  // Stops accepting, closes every connection and waits for their threads.
  void stop();
  int port() const { return port_; }

 private:
  void accept_loop();
  void serve_connection(int fd);
  HttpResponse handle(const HttpRequest& request);

  struct Impl;
  HttpServerOptions options_;
  HttpHandler handler_;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
  std::thread acceptor_thread_;
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;
  std::condition_variable idle_;
  std::multiset<int> open_fds_;  // a closed fd number may be reused before it is erased
};

// {"error": message} with Triton's error body.
HttpResponse http_error(int status, const std::string& message);

}  // namespace kiln::server
