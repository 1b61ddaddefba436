// kiln build MODEL.onnx -o MODEL.kiln: imports, checks and plans a model and
// writes the engine file. Flags follow trtexec where it has one
// (--saveEngine, --minShapes/--optShapes/--maxShapes, --fp16, --stronglyTyped,
// --memPoolSize, --timingCacheFile, --builderOptimizationLevel).
#include <fmt/format.h>

#include <chrono>

#include "build_flags.h"
#include "build_progress.h"
#include "commands.h"
#include "kiln/builder.h"
#include "support/file.h"

namespace kiln::cli {
namespace {

struct BuildOptions {
  std::string model;
  std::string output;
  BuilderFlags flags;
};

int exit_code_for(const Status& st) {
  switch (st.code()) {
    case ErrorCode::kNotFound:
    case ErrorCode::kIoError:
    case ErrorCode::kInvalidArgument: return kExitUsageError;
    default: return kExitModelError;
  }
}

int run_build(const BuildOptions& o) {
  if (o.output.empty()) {
    fmt::print(stderr, "kiln build: give the engine's path with -o or --saveEngine\n");
    return kExitUsageError;
  }
  auto config = build_config_from_flags(o.flags);
  if (!config) {
    fmt::print(stderr, "kiln build: {}\n", config.status().message());
    return kExitUsageError;
  }
  auto start = std::chrono::steady_clock::now();
  Expected<std::vector<uint8_t>> plan = std::vector<uint8_t>{};
  {
    ProgressLine progress;
    config->progress = &progress;
    plan = Builder::build_from_onnx_file(o.model, *config);
  }
  if (!plan) {
    fmt::print(stderr, "kiln build: {}\n", plan.status().to_string());
    return exit_code_for(plan.status());
  }
  Status st = write_file(o.output, plan->data(), plan->size());
  if (!st.is_ok()) {
    fmt::print(stderr, "kiln build: {}\n", st.to_string());
    return kExitUsageError;
  }
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  fmt::print("built {} ({} bytes, backend {}, {} profile{}) in {:.0f} ms\n", o.output, plan->size(), config->backend,
             config->profiles.size(), config->profiles.size() == 1 ? "" : "s", ms);
  return kExitOk;
}

}  // namespace

void add_build_command(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<BuildOptions>();
  CLI::App* cmd = app.add_subcommand("build", "Build an engine file from an ONNX model");
  cmd->add_option("model", o->model, "ONNX model file")->required();
  cmd->add_option("-o,--output,--saveEngine", o->output, "Engine file to write");
  add_builder_flags(*cmd, o->flags);
  cmd->callback([o, &exit_code] { exit_code = run_build(*o); });
}

}  // namespace kiln::cli
