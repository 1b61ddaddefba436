// kiln ops: the op table, with each backend's support. `--markdown` prints the
// table that docs/ops.md carries (a test keeps the two the same).
#include <fmt/format.h>

#include "backends/cpu/cpu_kernel.h"
#include "commands.h"
#include "ops/op_schema.h"

namespace kiln::cli {
namespace {

int run_ops(bool markdown) {
  auto schemas = OpRegistry::instance().all();
  const auto& cpu = CpuKernelRegistry::instance();
  if (markdown) {
    fmt::print("| domain | op | since opset | CPU |\n|---|---|---|---|\n");
    for (const OpSchema* s : schemas)
      fmt::print("| {} | {} | {} | {} |\n", s->domain.empty() ? "ai.onnx" : s->domain, s->name, s->since_opset,
                 cpu.find(s->domain, s->name) ? "yes" : "no");
    return kExitOk;
  }
  size_t with_cpu = 0;
  for (const OpSchema* s : schemas) {
    bool has_cpu = cpu.find(s->domain, s->name) != nullptr;
    with_cpu += has_cpu;
    fmt::print("{:<28} {:<24} cpu:{}\n", s->domain.empty() ? "ai.onnx" : s->domain, s->name, has_cpu ? "yes" : "no");
  }
  fmt::print("{} ops, {} with a CPU kernel\n", schemas.size(), with_cpu);
  return kExitOk;
}

}  // namespace

void add_ops_command(CLI::App& app, int& exit_code) {
  auto markdown = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("ops", "List the ops kiln knows and which backends run them");
  cmd->add_flag("--markdown", *markdown, "Print the table of docs/ops.md");
  cmd->callback([markdown, &exit_code] { exit_code = run_ops(*markdown); });
}

}  // namespace kiln::cli
