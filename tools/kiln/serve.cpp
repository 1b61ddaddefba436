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

// The server's own options, which the flags set directly (their defaults
// are ServerOptions'), and what the command line says otherwise.
struct ServeOptions {
  server::ServerOptions server;
  bool grpc_port_given = false;
  std::string control_mode = "none";
  std::string cache_dir;
  bool no_cache = false;
};

std::string default_cache_dir() {
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/kiln/engines";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/kiln/engines";
  return ".kiln_cache";
}

int serve(const ServeOptions& o) {
  server::ServerOptions so = o.server;
  so.repository.mode = o.control_mode == "poll"       ? server::ControlMode::kPoll
                       : o.control_mode == "explicit" ? server::ControlMode::kExplicit
                                                      : server::ControlMode::kNone;
  if (!so.repository.startup_models.empty() && so.repository.mode != server::ControlMode::kExplicit) {
    fmt::print(stderr, "kiln serve: --load-model needs --model-control-mode=explicit\n");
    return kExitUsageError;
  }
  so.repository.cache_dir = o.no_cache ? "" : (o.cache_dir.empty() ? default_cache_dir() : o.cache_dir);
  if (!KILN_SERVER_HAS_GRPC && o.grpc_port_given && so.allow_grpc)
    fmt::print(stderr, "kiln serve: --grpc-port: gRPC is not built in (needs libgrpc++-dev at build time)\n");

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
  fmt::print(stderr, "kiln serve: HTTP on {}:{}", so.host, srv.http_port());
  if (so.allow_metrics) fmt::print(stderr, ", metrics on {}:{}/metrics", so.host, srv.metrics_port());
  if (srv.grpc_port() > 0)
    fmt::print(stderr, ", gRPC on {}:{}\n", so.host, srv.grpc_port());
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
  cmd->add_option("--model-repository", o->server.repository.roots, "Model repository folder (repeatable)")->required();
  cmd->add_option("--host", o->server.host, "Address to listen on")->capture_default_str();
  cmd->add_option("--http-port", o->server.http_port, "HTTP port (0: any free port)")->capture_default_str();
  auto* grpc_port = cmd->add_option(
      "--grpc-port", o->server.grpc_port,
      KILN_SERVER_HAS_GRPC ? "gRPC port (0: any free port)" : "gRPC port (gRPC is not built in: ignored)");
  grpc_port->capture_default_str();
  cmd->add_option("--allow-grpc", o->server.allow_grpc, "Serve KServe v2 over gRPC")->capture_default_str();
  cmd->add_option("--metrics-port", o->server.metrics_port, "Prometheus metrics port")->capture_default_str();
  cmd->add_option("--allow-metrics", o->server.allow_metrics, "Serve /metrics")->capture_default_str();
  cmd->add_option("--model-control-mode", o->control_mode, "none, poll or explicit")
      ->check(CLI::IsMember({"none", "poll", "explicit"}))
      ->capture_default_str();
  cmd->add_option("--load-model", o->server.repository.startup_models,
                  "Model to load at startup in explicit mode ('*': all)");
  cmd->add_option("--repository-poll-secs", o->server.poll_seconds, "Poll interval in poll mode")
      ->capture_default_str();
  cmd->add_option("--max-request-bytes", o->server.max_request_bytes, "Largest accepted request body")
      ->capture_default_str();
  cmd->add_option("--http-idle-timeout-secs", o->server.http_idle_timeout_s,
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
