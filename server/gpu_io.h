// Host <-> device staging for one GPU instance of a scheduler: per input and
// output a pinned host buffer and a device buffer (grown as needed), one
// stream, and events that time the copies and the compute apart. Made on the
// instance's thread after set_cuda_device, used by that thread only.
// Without the CUDA backend in this build, create() is an error.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "kiln/runtime.h"
#include "kiln/status.h"

namespace kiln::server {

// Page-locks `bytes` of host memory at `p` (a mapped shared memory region)
// for every device, so that copies from it need no staging; false where it
// cannot be (this build has no CUDA backend, no GPU, the driver declines).
bool pin_host_memory(void* p, size_t bytes, bool read_only);
// Undoes pin_host_memory (before the memory is unmapped).
void unpin_host_memory(void* p);

// A piece of an input's bytes in page-locked host memory.
struct HostPiece {
  const void* from;
  size_t bytes;
};

class GpuIo {
 public:
  // `busy_wait`: run() polls the run's last event instead of blocking on it
  // (Triton's optimization.cuda.busy_wait_events): the instance thread sees
  // the end sooner, at the cost of a core while the GPU runs.
  static Expected<std::unique_ptr<GpuIo>> create(bool busy_wait = false);
  virtual ~GpuIo() = default;

  // Starts a run; call before the first input_host. Its device timing
  // starts at the first upload_input (the host's gathering is not in it).
  virtual Status begin() = 0;
  // Pinned host memory of at least `bytes` for input `k` (kept across runs).
  virtual Expected<void*> input_host(size_t k, size_t bytes) = 0;
  // Queues input `k`'s first `bytes` to the device and binds the device copy
  // to `name` on `ctx`.
  virtual Status upload_input(ExecutionContext& ctx, size_t k, const std::string& name, size_t bytes) = 0;
  // Queues input `k`'s pieces, back to back, straight from page-locked host
  // memory to the device (no staging copy), and binds the device copy to
  // `name`. The pieces must stay put until run() returns.
  virtual Status upload_input_pieces(ExecutionContext& ctx, size_t k, const std::string& name,
                                     const std::vector<HostPiece>& pieces) = 0;
  // Binds device memory for output `k`, `bytes` long, or, when `dynamic`
  // (its size known only while running), memory an allocator sizes.
  virtual Status bind_output(ExecutionContext& ctx, size_t k, const std::string& name, size_t bytes, bool dynamic) = 0;
  // Enqueues the run between the copies in and out, waits for the end.
  // `times_ms`: copies in, compute, copies out (CUDA events).
  virtual Status run(ExecutionContext& ctx, size_t outputs, float times_ms[3]) = 0;
  // Waits for every queued copy: a run that fails before run() must not
  // leave copies reading a request's memory after its answer.
  virtual void settle() = 0;
  // Output `k`'s data on the host (pinned) after run, its size and dims.
  virtual const void* output_host(size_t k) const = 0;
  virtual size_t output_bytes(size_t k) const = 0;
  // Dims of an output sized while running (from its allocator).
  virtual const std::vector<int64_t>& output_dims(size_t k) const = 0;
};

}  // namespace kiln::server
