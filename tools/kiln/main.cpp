// kiln: build, run, benchmark, inspect and serve ONNX models.
#include <cstdio>

#include "commands.h"

int main(int argc, char** argv) {
  CLI::App app{"kiln: an inference compiler, runtime and server for ONNX models", "kiln"};
  app.set_version_flag("--version", std::string("kiln ") + KILN_VERSION);
  app.require_subcommand(1);
  int exit_code = kiln::cli::kExitOk;
  kiln::cli::add_inspect_command(app, exit_code);
  kiln::cli::add_conformance_command(app, exit_code);
  kiln::cli::add_ops_command(app, exit_code);
  kiln::cli::add_build_command(app, exit_code);
  kiln::cli::add_run_command(app, exit_code);
  kiln::cli::add_bench_command(app, exit_code);
#ifdef KILN_WITH_SERVER
  kiln::cli::add_serve_command(app, exit_code);
  kiln::cli::add_perf_command(app, exit_code);
#endif
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : kiln::cli::kExitUsageError;
  }
  return exit_code;
}
