// The model repositories (Triton's layout: MODEL/config.pbtxt and numeric
// version folders holding model.kiln or model.onnx), the models loaded from
// them, and the control modes none, poll and explicit. A reload builds the new
// model completely before swapping it in; requests already holding the old
// one finish on it.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "engine_cache.h"
#include "inference.h"
#include "model_config.pb.h"
#include "model_stats.h"
#include "scheduler.h"

namespace kiln::server {

enum class ControlMode { kNone, kPoll, kExplicit };

struct RepositoryOptions {
  std::vector<std::string> roots;
  ControlMode mode = ControlMode::kNone;
  std::vector<std::string> startup_models;  // explicit mode; "*" loads all
  std::string cache_dir;                    // empty: no engine cache
};

struct ModelVersion {
  std::string name;
  int64_t version = 0;
  std::shared_ptr<Engine> engine;
  std::shared_ptr<Scheduler> scheduler;
  std::shared_ptr<ModelStats> stats;
};

struct LoadedModel {
  inference::ModelConfig config;
  std::map<int64_t, std::shared_ptr<ModelVersion>> versions;
};

struct IndexEntry {
  std::string name;
  int64_t version = -1;  // -1: the model as a whole (not loaded)
  std::string state;     // READY, UNAVAILABLE, LOADING
  std::string reason;
};

class ModelRepository {
 public:
  explicit ModelRepository(RepositoryOptions options);
  ~ModelRepository();

  // Scans the roots and loads what the mode says; a model that fails is
  // recorded with its reason and does not stop the others. Errors only for a
  // root that is not a folder.
  Status start();
  // Explicit mode only. `config_override` (Triton's load parameter
  // "config": the model configuration as JSON) replaces config.pbtxt for
  // this load; an invalid one fails the load and keeps what was loaded.
  ServeStatus load(const std::string& name, const std::string* config_override = nullptr);
  ServeStatus unload(const std::string& name);
  // Poll mode: loads new and changed models, unloads removed ones.
  void poll();

  std::vector<IndexEntry> index(bool ready_only) const;
  // True when every model that should be loaded is.
  bool ready() const;
  // The loaded model, or an error naming the unknown model or version.
  ServeStatus find(const std::string& name, int64_t version, std::shared_ptr<const LoadedModel>& model,
                   std::shared_ptr<ModelVersion>& found) const;
  // Every (name, version) with statistics, loaded or not.
  std::vector<std::pair<std::pair<std::string, int64_t>, std::shared_ptr<ModelStats>>> all_stats() const;
  const EngineCacheStats& cache_stats() const { return cache_.stats(); }
  ControlMode mode() const { return options_.mode; }

 private:
  struct Entry {
    std::string dir;
    bool wanted = false;
    std::string state = "UNAVAILABLE";
    std::string reason;
    std::string signature;
    std::shared_ptr<const LoadedModel> loaded;
  };

  std::map<std::string, std::string> scan(std::map<std::string, std::string>& duplicates) const;
  ServeStatus load_entry(const std::string& name, const std::string& dir, const std::string* config_override = nullptr);
  Expected<std::shared_ptr<LoadedModel>> build_model(const std::string& name, const std::string& dir,
                                                     const std::string* config_override);
  Expected<std::shared_ptr<Engine>> load_engine(const std::string& file, const inference::ModelConfig& config,
                                                bool on_gpu);
  std::shared_ptr<ModelStats> stats_for(const std::string& name, int64_t version);

  RepositoryOptions options_;
  EngineCache cache_;
  mutable std::mutex mutex_;
  std::mutex load_mutex_;  // one load or unload at a time
  std::map<std::string, Entry> entries_;
  std::map<std::pair<std::string, int64_t>, std::shared_ptr<ModelStats>> stats_;
};

// A signature of the files under `dir` (names, sizes, times) that changes when
// any of them does.
std::string folder_signature(const std::string& dir);

}  // namespace kiln::server
