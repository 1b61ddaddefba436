// The CLI's subcommands, one file each. Exit codes: 0 success; 1 the model,
// engine or data has a problem (invalid, unsupported, mismatching outputs);
// 2 the command line or a file is wrong (bad flag, missing file).
#pragma once

#include <CLI/CLI.hpp>

namespace kiln::cli {

constexpr int kExitOk = 0;
constexpr int kExitModelError = 1;
constexpr int kExitUsageError = 2;

// Each adds its subcommand to `app`; the callback stores the exit code in `exit_code`.
void add_inspect_command(CLI::App& app, int& exit_code);
void add_conformance_command(CLI::App& app, int& exit_code);
void add_ops_command(CLI::App& app, int& exit_code);
void add_build_command(CLI::App& app, int& exit_code);
void add_run_command(CLI::App& app, int& exit_code);
void add_bench_command(CLI::App& app, int& exit_code);
void add_serve_command(CLI::App& app, int& exit_code);
void add_perf_command(CLI::App& app, int& exit_code);

}  // namespace kiln::cli
