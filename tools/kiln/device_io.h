// Host <-> device staging for `kiln run` and `kiln bench` on engines whose
// backend is "cuda": device copies of the inputs and outputs, page-locked
// host staging for them (as trtexec's host buffers), one stream, and CUDA
// events that time the copies and the compute apart. Without the CUDA
// backend in this build, create() is an error.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "kiln/runtime.h"
#include "kiln/status.h"

namespace kiln {
class Tensor;
}

namespace kiln::cli {

// Per-iteration device times in ms (CUDA events on the stream).
struct DeviceTimes {
  double h2d_ms = 0, compute_ms = 0, d2h_ms = 0;
  double enqueue_ms = 0;  // host time spent in ExecutionContext::enqueue
};

class DeviceIo {
 public:
  static Expected<std::unique_ptr<DeviceIo>> create();
  virtual ~DeviceIo() = default;

  virtual void* stream() const = 0;
  // Binds a device copy of input `name` (uploaded now) to the context; each
  // run uploads the bytes `host` held at this call, kept in pinned memory.
  virtual Status bind_input(ExecutionContext& ctx, const std::string& name, const Tensor& host) = 0;
  // Binds a device buffer for output `name` (the host tensor gets its data
  // back with download_outputs); outputs of unknown size use an allocator.
  virtual Status bind_output(ExecutionContext& ctx, const std::string& name, Tensor* host) = 0;
  // One run: inputs up (unless `copies` is false), enqueue, outputs down;
  // waits for the end and returns the device times.
  virtual Expected<DeviceTimes> run(ExecutionContext& ctx, bool copies) = 0;
  // Copies every bound output back into its host tensor (synchronous).
  virtual Status download_outputs() = 0;
};

// What the runtime binds for a host tensor: its bytes, or its array of
// std::string for a string tensor.
void* host_address(Tensor& t);
const void* host_address(const Tensor& t);

// Binds input `name` to `host` (whose dtype must be the engine's) and sets its
// shape: host memory, or a device copy through `io` when it is given.
Status bind_input(ExecutionContext& ctx, const std::string& name, const Tensor& host, DeviceIo* io);

}  // namespace kiln::cli
