// The persistent engine cache: an ONNX model is built once per (model bytes,
// build options, backend, kiln version) and the engine file kept on disk, so
// a restart only deserializes. An engine built for another device or kiln
// version fails to deserialize (the runtime checks both) and is rebuilt.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "kiln/builder.h"
#include "kiln/runtime.h"

namespace kiln::server {

struct EngineCacheStats {
  std::atomic<uint64_t> hits{0};
  std::atomic<uint64_t> misses{0};
  std::atomic<uint64_t> builds{0};
  std::atomic<uint64_t> build_us{0};  // total time spent building
};

class EngineCache {
 public:
  // An empty `dir` disables the cache (every load builds).
  explicit EngineCache(std::string dir) : dir_(std::move(dir)) {}

  // The engine for `onnx_path` built with `config`; `config_key` is the
  // config's stable text form.
  Expected<std::shared_ptr<Engine>> get(const std::string& onnx_path, const BuildConfig& config,
                                        const std::string& config_key);
  const EngineCacheStats& stats() const { return stats_; }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  EngineCacheStats stats_;
};

// 128-bit FNV-1a of the bytes, as 32 hex digits (a content hash, not a MAC).
std::string content_hash(const std::string& bytes);

}  // namespace kiln::server
