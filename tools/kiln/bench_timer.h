// How `kiln bench` times an iteration on the engine's device, kept apart so a
// backend slots in its own clock: the host's steady clock for "cpu" (a run
// has finished when enqueue returns); CUDA events recorded on the stream for
// "cuda" (to come with that backend).
#pragma once

#include <chrono>
#include <memory>
#include <string>

namespace kiln::cli {

class IterationTimer {
 public:
  virtual ~IterationTimer() = default;
  // Marks the start and the end of the device's work on `stream`.
  virtual void record_start(void* stream) = 0;
  virtual void record_end(void* stream) = 0;
  // Device time between the last start and end, in ms; waits for the end.
  virtual double elapsed_ms() = 0;
};

class HostTimer final : public IterationTimer {
 public:
  void record_start(void*) override { start_ = std::chrono::steady_clock::now(); }
  void record_end(void*) override { end_ = std::chrono::steady_clock::now(); }
  double elapsed_ms() override { return std::chrono::duration<double, std::milli>(end_ - start_).count(); }

 private:
  std::chrono::steady_clock::time_point start_, end_;
};

// The timer for an engine's backend; null for a backend this build cannot time.
inline std::unique_ptr<IterationTimer> make_iteration_timer(const std::string& backend) {
  if (backend == "cpu") return std::make_unique<HostTimer>();
  return nullptr;
}

}  // namespace kiln::cli
