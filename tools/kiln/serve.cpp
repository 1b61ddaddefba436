// kiln serve --model-repository DIR: serves the models of Triton-style
// repositories over KServe v2 HTTP and gRPC, with Prometheus metrics. Runs until
// SIGINT or SIGTERM.
#include <fmt/format.h>
#include <signal.h>

#include <cstdlib>
#include <filesystem>

#include "commands.h"
#include "server.h"

namespace kiln::cli {
namespace {

struct ServeOptions {
  std::vector<std::string> repositories;
  std::string host = "127.0.0.1";
  int http_port = 8000, grpc_port = 8001, metrics_port = 8002;
  bool allow_metrics = true, allow_grpc = true;
  bool grpc_port_given = false;
  std::string control_mode = "none";
  std::vector<std::string> load_models;
  int poll_secs = 15;
  size_t max_request_bytes = 64 << 20;
  int http_idle_timeout_s = 60;
  std::string cache_dir;
  bool no_cache = false;
};

std::string default_cache_dir() {
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/kiln/engines";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/kiln/engines";
  return ".kiln_cache";
}

int serve(const ServeOptions& o) {
  server::ServerOptions so;
  so.repository.roots = o.repositories;
  so.repository.startup_models = o.load_models;
  so.repository.mode = o.control_mode == "poll"       ? server::ControlMode::kPoll
                       : o.control_mode == "explicit" ? server::ControlMode::kExplicit
                                                      : server::ControlMode::kNone;
  if (!o.load_models.empty() && so.repository.mode != server::ControlMode::kExplicit) {
    fmt::print(stderr, "kiln serve: --load-model needs --model-control-mode=explicit\n");
    return kExitUsageError;
  }
  so.repository.cache_dir = o.no_cache ? "" : (o.cache_dir.empty() ? default_cache_dir() : o.cache_dir);
  so.host = o.host;
  so.http_port = o.http_port;
  so.grpc_port = o.grpc_port;
  so.metrics_port = o.metrics_port;
  so.allow_metrics = o.allow_metrics;
  so.allow_grpc = o.allow_grpc;
  if (!KILN_SERVER_HAS_GRPC && o.grpc_port_given && o.allow_grpc)
    fmt::print(stderr, "kiln serve: --grpc-port: gRPC is not built in (needs libgrpc++-dev at build time)\n");
  so.max_request_bytes = o.max_request_bytes;
  so.http_idle_timeout_s = o.http_idle_timeout_s;
  so.poll_seconds = o.poll_secs;

  // Signals are taken by sigwait below, never by the server's threads.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  server::Server srv(so);
  Status st = srv.start();
  if (!st.is_ok()) {
    fmt::print(stderr, "kiln serve: {}\n", st.to_string());
    return kExitUsageError;
  }
  fmt::print(stderr, "kiln serve: HTTP on {}:{}", o.host, srv.http_port());
  if (o.allow_metrics) fmt::print(stderr, ", metrics on {}:{}/metrics", o.host, srv.metrics_port());
  if (srv.grpc_port() > 0)
    fmt::print(stderr, ", gRPC on {}:{}\n", o.host, srv.grpc_port());
  else
    fmt::print(stderr, " (gRPC {})\n", KILN_SERVER_HAS_GRPC ? "off" : "is not built in");
  int sig = 0;
  sigwait(&signals, &sig);
  fmt::print(stderr, "kiln serve: stopping ({})\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
  srv.stop();
  return kExitOk;
}

}  // namespace

void add_serve_command(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<ServeOptions>();
  auto* cmd = app.add_subcommand("serve", "Serve models over KServe v2 HTTP and gRPC (Triton-compatible)");
  cmd->add_option("--model-repository", o->repositories, "Model repository folder (repeatable)")->required();
  cmd->add_option("--host", o->host, "Address to listen on")->capture_default_str();
  cmd->add_option("--http-port", o->http_port, "HTTP port (0: any free port)")->capture_default_str();
  auto* grpc_port = cmd->add_option(
      "--grpc-port", o->grpc_port,
      KILN_SERVER_HAS_GRPC ? "gRPC port (0: any free port)" : "gRPC port (gRPC is not built in: ignored)");
  grpc_port->capture_default_str();
  cmd->add_option("--allow-grpc", o->allow_grpc, "Serve KServe v2 over gRPC")->capture_default_str();
  cmd->add_option("--metrics-port", o->metrics_port, "Prometheus metrics port")->capture_default_str();
  cmd->add_option("--allow-metrics", o->allow_metrics, "Serve /metrics")->capture_default_str();
  cmd->add_option("--model-control-mode", o->control_mode, "none, poll or explicit")
      ->check(CLI::IsMember({"none", "poll", "explicit"}))
      ->capture_default_str();
  cmd->add_option("--load-model", o->load_models, "Model to load at startup in explicit mode ('*': all)");
  cmd->add_option("--repository-poll-secs", o->poll_secs, "Poll interval in poll mode")->capture_default_str();
  cmd->add_option("--max-request-bytes", o->max_request_bytes, "Largest accepted request body")->capture_default_str();
  cmd->add_option("--http-idle-timeout-secs", o->http_idle_timeout_s,
                  "Close an HTTP connection that sends or takes no byte for this long (a request cut short: 408)")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();
  cmd->add_option("--engine-cache-dir", o->cache_dir, "Engine cache folder (default ~/.cache/kiln/engines)");
  cmd->add_flag("--no-engine-cache", o->no_cache, "Build ONNX models at every load");
  cmd->callback([o, grpc_port, &exit_code] {
    o->grpc_port_given = grpc_port->count() > 0;
    exit_code = serve(*o);
  });
}

}  // namespace kiln::cli
