// Identity: the output is the input (shared storage, no copy); works for
// tensors, sequences and optionals alike.
#include "backends/cpu/cpu_kernel.h"

namespace kiln {
namespace {

Status run_identity(CpuKernelContext& ctx) {
  ctx.set_output(0, ctx.input_value(0));
  return Status::ok();
}

}  // namespace

KILN_CPU_KERNEL("", "Identity", run_identity);

}  // namespace kiln
