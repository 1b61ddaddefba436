// The scheduler of one loaded model version: checks requests against the
// model's config, queues them (bounded, by priority level, with timeouts),
// forms batches (dynamic batching: preferred batch sizes, queue delay) and runs
// them on the model's instances, one thread and one ExecutionContext each.
// A GPU instance (instance_group KIND_GPU) runs on its GPU: the thread selects
// it, the GPU's engine (one per GPU, shared by its instances) gives the
// context, and the inputs and outputs are copied through pinned host memory.
// Batch buckets: a batch of n rows runs at the smallest bucket >= n, padded,
// so that an instance sees a few batch sizes only (a GPU engine builds its
// plans per shape); each instance runs every bucket once before ready()
// (unless an input has a dynamic dim besides the batch dim without a
// profile's opt size to warm it at).
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gpu_io.h"
#include "inference.h"
#include "kiln/runtime.h"
#include "model_config.h"
#include "model_config.pb.h"
#include "model_stats.h"

namespace kiln::server {

// The batch sizes a model's batches run at, sorted and unique; empty: each
// batch runs at its own size. `param` "auto" gives, for GPU instances only,
// the powers of two below max_batch, max_batch itself and the preferred batch
// sizes; an explicit list applies to any instance. Every size is clamped to
// the engine profile's batch range [profile_min, profile_max]. None without
// batching (max_batch 0).
std::vector<int64_t> batch_buckets(const BatchBucketsParameter& param, bool gpu, int64_t max_batch,
                                   const std::vector<int64_t>& preferred, int64_t profile_min, int64_t profile_max);

class Scheduler {
 public:
  // `engine` was built or loaded for the config's first GPU (instance_gpus),
  // or for the CPU. Starts the instances; ready() says how that went.
  Scheduler(std::shared_ptr<Engine> engine, inference::ModelConfig config, std::shared_ptr<ModelStats> stats,
            int64_t version);
  // Finishes every queued request, then stops the instances.
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Waits until every instance has its context (and, on a GPU, its engine
  // and buffers); the first failure, naming the instance, otherwise.
  Status ready();

  // Checks the request and queues it; `done` is called exactly once (at once
  // for a request that is invalid or finds the queue full).
  void submit(InferRequest request, InferCallback done);

  // Wakes the instances waiting for work, so that they drop the queued
  // requests that were cancelled since.
  void wake();

  // Runs one request on the calling thread with a context of its own,
  // bypassing the queue and the statistics (model_warmup).
  ServeStatus warmup(const InferRequest& request);

  const inference::ModelConfig& config() const { return config_; }

 private:
  struct Pending {
    InferRequest request;
    InferCallback done;
    Clock::time_point enqueued;
    Clock::time_point deadline;                     // max() when none
    int64_t rows = 1;                               // the request's batch size (1 without batching)
    std::vector<std::vector<int64_t>> engine_dims;  // per config input, for the engine
  };
  struct Policy {
    uint64_t timeout_us = 0;
    bool allow_override = false;
    uint32_t max_queue_size = 0;  // 0: unbounded
    bool reject_on_timeout = true;
  };

  // Memory for outputs whose size is known only while running.
  class VectorAllocator final : public OutputAllocator {
   public:
    void* reallocate_output(const std::string&, void*, size_t size, size_t) override {
      data.resize(size > 0 ? size : 1);
      return data.data();
    }
    void notify_shape(const std::string&, const std::vector<int64_t>& d) override { dims = d; }
    std::string* reallocate_string_output(const std::string&, size_t count) override {
      strings.assign(count > 0 ? count : 1, std::string());
      return strings.data();
    }
    std::vector<uint8_t> data;
    std::vector<std::string> strings;
    std::vector<int64_t> dims;
  };
  struct BoundOutput {
    std::string name;
    const uint8_t* host = nullptr;  // a GPU instance's output, copied back
    size_t host_bytes = 0;
    std::vector<uint8_t> data;
    std::vector<int64_t> dims;
    std::vector<std::string> strings;  // kString outputs
    VectorAllocator alloc;
    bool dynamic = false;
    bool is_string = false;
  };

  ServeStatus check(const InferRequest& r, Pending& p) const;
  ServeStatus bind_outputs(ExecutionContext& ctx, GpuIo* io, std::vector<BoundOutput>& outs);
  Expected<std::shared_ptr<Engine>> engine_for(int gpu);
  Status init_instance(int gpu, std::unique_ptr<ExecutionContext>& ctx, std::unique_ptr<GpuIo>& io);
  ServeStatus split_outputs(const std::vector<Pending>& batch, int64_t rows, std::vector<BoundOutput>& outs,
                            std::vector<InferResponse>& out);
  std::vector<Pending> next_batch(std::vector<Pending>& expired);
  size_t take_count(const std::vector<int64_t>& prefix_rows, bool delay_passed) const;
  void run_instance(int index);
  void run_batch(ExecutionContext& ctx, GpuIo* io, std::vector<Pending>& batch);
  ServeStatus execute(ExecutionContext& ctx, GpuIo* io, std::vector<Pending>& batch, std::vector<InferResponse>& out,
                      uint64_t times_ns[3]);
  bool compatible(const Pending& a, const Pending& b) const;
  // The batch size a batch of `rows` runs at: the smallest bucket >= rows,
  // else rows.
  int64_t bucket_for(int64_t rows) const;
  // A request of `rows` rows of zeros (BYTES: empty strings), dynamic dims
  // other than the batch at the engine profile's opt size; false, with why,
  // when a dynamic dim has none.
  bool zero_request(int64_t rows, InferRequest& r, std::string& why) const;
  // Runs every bucket once on the instance's context (plans built, memory sized).
  Status warm_buckets(ExecutionContext& ctx, GpuIo* io);

  std::shared_ptr<Engine> engine_;
  inference::ModelConfig config_;
  std::shared_ptr<ModelStats> stats_;
  int64_t version_;
  int64_t max_batch_;
  bool dynamic_;
  std::vector<int64_t> preferred_;
  std::vector<int64_t> buckets_;
  std::string no_warm_;  // why the buckets are not warmed (empty: they are)
  uint64_t delay_us_ = 0;
  uint32_t default_level_ = 1;
  std::vector<Policy> policies_;  // per priority level, 0-based

  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::deque<Pending>> queues_;  // per priority level
  // Changed under mutex_; read without it by an idle instance spinning for work.
  std::atomic<size_t> queued_ = 0;
  std::atomic<bool> spinning_ = false;  // an idle instance is polling the queue
  bool stopping_ = false;
  std::vector<std::thread> instances_;
  std::vector<int> instance_gpus_;  // per instance: the GPU, -1 for the CPU
  int engine_gpu_ = -1;             // the GPU `engine_` is for
  std::map<int, std::shared_ptr<Engine>> gpu_engines_;
  std::mutex init_mutex_;  // guards gpu_engines_ and the three below
  std::condition_variable init_cv_;
  int initialized_ = 0;
  Status init_status_;
  uint64_t warm_ms_ = 0;  // the slowest instance's warm_buckets
};

}  // namespace kiln::server
