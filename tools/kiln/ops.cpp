// kiln ops: the op table, with each backend's support. `--markdown` prints the
// table that docs/ops.md carries (a test keeps the two the same).
#include <fmt/format.h>

#include "backends/cpu/cpu_kernel.h"
#ifdef KILN_WITH_CUDA
#include "backends/cuda/cuda_kernel.h"
#include "backends/cuda/run_plan.h"
#endif
#include "commands.h"
#include "onnx/importer.h"
#include "ops/op_schema.h"

namespace kiln::cli {
namespace {

// Whether the importer rewrites every node of the op into other ops (an
// upgrade applies below an opset newer than any it reads: Upsample becomes
// Resize). Such an op has no kernel of its own on any backend; it runs
// wherever the ops it becomes run.
bool always_rewritten(const OpSchema& s) {
  for (const OpUpgrade& up : s.upgrades)
    if (up.below_opset > kMaxOpset) return true;
  return false;
}

std::string cpu_support(const OpSchema& s) {
  if (always_rewritten(s)) return "rewritten";
  return CpuKernelRegistry::instance().find(s.domain, s.name) ? "yes" : "no";
}

// The CUDA backend's support of an op: a GPU kernel, bodies run on the
// device or sequences held on the device ("yes"), evaluated on the host from shapes ("host"), or only with
// --allowCpuFallback ("fallback").
std::string cuda_support(const OpSchema& s) {
  if (always_rewritten(s)) return "rewritten";
#ifdef KILN_WITH_CUDA
  if (cuda::KernelRegistry::instance().find(s.domain, s.name)) return "yes";
  if (cuda::is_device_control_flow(s.domain, s.name)) return "yes";
  if (cuda::is_device_sequence_op(s.domain, s.name)) return "yes";
  if (s.domain.empty() && (s.name == "Shape" || s.name == "Size")) return "host";
  return "fallback";
#else
  return "no";
#endif
}

int run_ops(bool markdown) {
  auto schemas = OpRegistry::instance().all();
  if (markdown) {
    fmt::print("| domain | op | since opset | CPU | CUDA |\n|---|---|---|---|---|\n");
    for (const OpSchema* s : schemas)
      fmt::print("| {} | {} | {} | {} | {} |\n", s->domain.empty() ? "ai.onnx" : s->domain, s->name, s->since_opset,
                 cpu_support(*s), cuda_support(*s));
    return kExitOk;
  }
  size_t with_cpu = 0, with_cuda = 0;
  for (const OpSchema* s : schemas) {
    const std::string cpu = cpu_support(*s), gpu = cuda_support(*s);
    with_cpu += cpu == "yes";
    with_cuda += gpu == "yes";
    fmt::print("{:<28} {:<24} cpu:{:<4} cuda:{}\n", s->domain.empty() ? "ai.onnx" : s->domain, s->name, cpu, gpu);
  }
  fmt::print("{} ops, {} with a CPU kernel, {} with a CUDA kernel\n", schemas.size(), with_cpu, with_cuda);
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
