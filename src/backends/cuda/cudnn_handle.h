// An owned cuDNN handle (the graph API's entry point). Move-only.
#pragma once

#include <cuda_runtime.h>
#include <cudnn.h>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "support/status.h"

namespace kiln::cuda {

class Cudnn {
 public:
  Cudnn() = default;
  static Expected<Cudnn> create();
  ~Cudnn();
  Cudnn(Cudnn&& other) noexcept;
  Cudnn& operator=(Cudnn&& other) noexcept;
  Cudnn(const Cudnn&) = delete;
  Cudnn& operator=(const Cudnn&) = delete;
  cudnnHandle_t get() const { return handle_; }

 private:
  cudnnHandle_t handle_ = nullptr;
};

// Plans built once per key and device, process-wide, each with the device's
// own handle (made on first use). A failed build is cached too (null), so a
// shape cuDNN declines is asked about once. Never destroyed: plans may
// outlive the static destruction order.
template <typename Plan>
class CudnnPlanCache {
 public:
  using Build = std::function<std::shared_ptr<const Plan>(cudnnHandle_t)>;
  std::shared_ptr<const Plan> get(const std::string& key, const Build& build) {
    int device = 0;
    if (cudaGetDevice(&device) != cudaSuccess) return nullptr;
    const std::string at = key + "@" + std::to_string(device);
    std::lock_guard<std::mutex> lock(mu_);
    auto it = plans_.find(at);
    if (it != plans_.end()) return it->second;
    cudnnHandle_t handle = handle_locked(device);
    if (!handle) return nullptr;
    std::shared_ptr<const Plan> plan = build(handle);
    plans_.emplace(at, plan);
    return plan;
  }
  // For builders that make several plans in one pass: runs fill(handle, put)
  // under the cache's lock with the current device's handle, where
  // put(key, plan) caches a plan under `key` unless one is there already.
  // False when there is no device or handle.
  using Put = std::function<void(const std::string&, std::shared_ptr<const Plan>)>;
  bool fill(const std::function<void(cudnnHandle_t, const Put&)>& fill) {
    int device = 0;
    if (cudaGetDevice(&device) != cudaSuccess) return false;
    std::lock_guard<std::mutex> lock(mu_);
    cudnnHandle_t handle = handle_locked(device);
    if (!handle) return false;
    fill(handle, [&](const std::string& key, std::shared_ptr<const Plan> plan) {
      plans_.emplace(key + "@" + std::to_string(device), std::move(plan));
    });
    return true;
  }
  static CudnnPlanCache& instance() {
    static auto* cache = new CudnnPlanCache;
    return *cache;
  }

 private:
  // The device's handle, made on first use; null when cuDNN cannot make one.
  cudnnHandle_t handle_locked(int device) {
    auto handle = handles_.find(device);
    if (handle == handles_.end()) {
      Expected<Cudnn> created = Cudnn::create();
      if (!created.is_ok()) return nullptr;
      handle = handles_.emplace(device, std::move(created).value()).first;
    }
    return handle->second.get();
  }

  std::mutex mu_;
  std::map<std::string, std::shared_ptr<const Plan>> plans_;
  std::map<int, Cudnn> handles_;
};

}  // namespace kiln::cuda
