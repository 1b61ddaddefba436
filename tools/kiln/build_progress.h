// The build's progress as `kiln build` and `kiln bench` show it: the phase on
// stderr once a second while a long build runs, and the builder's notes
// (tactics timed, memory planned) on stdout.
#pragma once

#include <fmt/format.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "kiln/builder.h"

namespace kiln::cli {

// Prints the build's phase on stderr once a second, so a long build shows
// it is alive; a build under a second prints nothing.
class ProgressLine final : public BuildProgress {
 public:
  ProgressLine() : start_(std::chrono::steady_clock::now()), thread_([this] { loop(); }) {}
  ~ProgressLine() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void phase_start(const std::string& phase) override {
    std::lock_guard<std::mutex> lock(mu_);
    phase_ = phase;
  }
  void phase_finish(const std::string&) override {}
  void note(const std::string& text) override {
    std::lock_guard<std::mutex> lock(mu_);
    fmt::print("{}\n", text);
  }

 private:
  void loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!cv_.wait_for(lock, std::chrono::seconds(1), [this] { return done_; }))
      fmt::print(stderr, "[build] {} ({:.0f} s)\n", phase_,
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
  }

  std::chrono::steady_clock::time_point start_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::string phase_ = "starting";
  bool done_ = false;
  std::thread thread_;  // last: starts after the members it reads
};

}  // namespace kiln::cli
