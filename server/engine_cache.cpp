#include "engine_cache.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace kiln::server {
namespace fs = std::filesystem;

std::string content_hash(const std::string& bytes) {
  uint64_t a = 1469598103934665603ull, b = 0x84222325cbf29ce4ull;
  for (unsigned char c : bytes) {
    a = (a ^ c) * 1099511628211ull;
    b = (b ^ static_cast<unsigned char>(c + 0x5b)) * 0x100000001b3ull;
  }
  char out[33];
  std::snprintf(out, sizeof out, "%016llx%016llx", static_cast<unsigned long long>(a),
                static_cast<unsigned long long>(b));
  return out;
}

namespace {

Expected<std::string> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return Status(ErrorCode::kIoError, "cannot read '" + path + "'");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

Expected<std::shared_ptr<Engine>> EngineCache::get(const std::string& onnx_path, const BuildConfig& config,
                                                   const std::string& config_key) {
  auto bytes = read_file(onnx_path);
  if (!bytes) return bytes.status();
  std::string key = content_hash(*bytes + '\0' + config_key + '\0' + KILN_VERSION);
  fs::path file = dir_.empty() ? fs::path() : fs::path(dir_) / (key + ".kiln");
  if (!dir_.empty() && fs::exists(file)) {
    auto engine = Runtime::deserialize_file(file.string());
    if (engine) {
      stats_.hits.fetch_add(1);
      return engine;
    }
    // Another device or kiln version, or a damaged file: rebuild below.
    std::fprintf(stderr, "kiln serve: cached engine %s is not usable (%s); rebuilding\n", file.c_str(),
                 engine.status().to_string().c_str());
  }
  stats_.misses.fetch_add(1);
  auto start = std::chrono::steady_clock::now();
  auto plan = Builder::build_from_onnx_memory(bytes->data(), bytes->size(), config);
  if (!plan) return plan.status();
  stats_.builds.fetch_add(1);
  stats_.build_us.fetch_add(static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start).count()));
  if (!dir_.empty()) {
    std::error_code ec;
    fs::create_directories(dir_, ec);
    // Written aside and renamed, so a concurrent reader never sees half a file.
    fs::path tmp = file;
    tmp += ".tmp" + std::to_string(::getpid());
    std::ofstream f(tmp, std::ios::binary);
    f.write(reinterpret_cast<const char*>(plan->data()), static_cast<std::streamsize>(plan->size()));
    f.close();
    if (f) fs::rename(tmp, file, ec);
    if (!f || ec) {
      std::fprintf(stderr, "kiln serve: cannot write the engine cache file %s\n", file.c_str());
      fs::remove(tmp, ec);
    }
  }
  return Runtime::deserialize(plan->data(), plan->size());
}

}  // namespace kiln::server
