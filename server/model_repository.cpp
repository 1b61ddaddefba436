#include "model_repository.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "kiln/device.h"
#include "model_config.h"

namespace kiln::server {
namespace fs = std::filesystem;

namespace {

bool is_version_name(const std::string& s) {
  return !s.empty() && s.size() < 18 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

ServeStatus unavailable(std::string m) { return ServeStatus::error(ServeError::kUnavailable, std::move(m)); }

// The versions the policy selects among those present, newest first.
Expected<std::vector<int64_t>> select_versions(const inference::ModelConfig& c, std::vector<int64_t> present) {
  std::sort(present.rbegin(), present.rend());
  const auto& p = c.version_policy();
  if (p.has_all()) return present;
  if (p.has_specific()) {
    std::vector<int64_t> out;
    for (int64_t v : p.specific().versions()) {
      if (std::find(present.begin(), present.end(), v) == present.end())
        return Status(ErrorCode::kNotFound, "version_policy: version " + std::to_string(v) + " has no folder");
      out.push_back(v);
    }
    return out;
  }
  size_t n = p.has_latest() ? p.latest().num_versions() : 1;
  if (present.size() > n) present.resize(n);
  return present;
}

// Fills a warmup input: zeros, random bytes, or a file under MODEL/warmup/.
// BYTES inputs are serialized: zero and random data are empty strings, a
// file holds the serialized elements (warm_up parses them).
Status warmup_data(const inference::ModelWarmup::Input& in, const std::string& dir, size_t bytes, bool strings,
                   std::vector<uint8_t>& data) {
  data.assign(bytes, 0);
  if (in.has_random_data() && !strings) {
    std::mt19937 rng(1);
    // Small bytes: integers stay small and floats finite.
    for (auto& b : data) b = static_cast<uint8_t>(rng() & 0x3f);
  } else if (in.has_input_data_file()) {
    fs::path file = fs::path(dir) / "warmup" / in.input_data_file();
    std::ifstream f(file, std::ios::binary);
    if (!f) return Status(ErrorCode::kNotFound, "input_data_file '" + file.string() + "' cannot be read");
    data.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    if (data.size() != bytes && !strings)
      return Status(ErrorCode::kInvalidArgument, "input_data_file '" + file.string() + "' has " +
                                                     std::to_string(data.size()) + " bytes, the input needs " +
                                                     std::to_string(bytes));
  }
  return Status::ok();
}

// Runs the config's model_warmup requests; a failure fails the load.
Status warm_up(const ModelVersion& mv, const std::string& dir) {
  const inference::ModelConfig& c = mv.scheduler->config();
  for (const auto& w : c.model_warmup()) {
    InferRequest r;
    r.model = mv.name;
    int64_t batch = std::max<int64_t>(1, w.batch_size());
    for (const auto& [name, in] : w.inputs()) {
      InferTensor t;
      t.name = name;
      t.dtype = dtype_from_config(in.data_type());
      if (c.max_batch_size() > 0) t.shape.push_back(batch);
      t.shape.insert(t.shape.end(), in.dims().begin(), in.dims().end());
      int64_t n = 1;
      for (int64_t d : t.shape) n *= d < 0 ? 0 : d;
      bool strings = t.dtype == DType::kString;
      Status st = warmup_data(in, dir, static_cast<size_t>(n) * (strings ? 4 : dtype_bytes(t.dtype)), strings, t.data);
      if (!st.is_ok()) return st.with_context("model_warmup '" + w.name() + "'");
      std::string error;
      if (strings && !deserialize_strings(t.data.data(), t.data.size(), static_cast<uint64_t>(n), &t.strings, error))
        return Status(ErrorCode::kInvalidArgument, "model_warmup '" + w.name() + "': input '" + name + "': " + error);
      if (strings) t.data.clear();
      r.inputs.push_back(std::move(t));
    }
    uint32_t count = std::max<uint32_t>(1, w.count());
    for (uint32_t k = 0; k < count; ++k) {
      ServeStatus st = mv.scheduler->warmup(r);
      if (!st.ok) return Status(ErrorCode::kInvalidArgument, "model_warmup '" + w.name() + "': " + st.message);
    }
    std::fprintf(stderr, "kiln serve: model '%s': warmup '%s' ran %u times at batch size %lld\n", mv.name.c_str(),
                 w.name().c_str(), count, static_cast<long long>(batch));
  }
  return Status::ok();
}

}  // namespace

std::string folder_signature(const std::string& dir) {
  std::string sig;
  std::error_code ec;
  std::vector<std::string> lines;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    auto t = fs::last_write_time(it->path(), ec).time_since_epoch().count();
    lines.push_back(it->path().string() + ":" + std::to_string(it->file_size(ec)) + ":" + std::to_string(t));
  }
  std::sort(lines.begin(), lines.end());
  for (const auto& l : lines) sig += l + "\n";
  return sig;
}

ModelRepository::ModelRepository(RepositoryOptions options)
    : options_(std::move(options)), cache_(options_.cache_dir) {}

ModelRepository::~ModelRepository() {
  std::lock_guard<std::mutex> lock(mutex_);
  entries_.clear();
}

// Model folders by name across all roots; names found in two roots go to
// `duplicates` (Triton refuses those too).
std::map<std::string, std::string> ModelRepository::scan(std::map<std::string, std::string>& duplicates) const {
  std::map<std::string, std::string> found;
  for (const auto& root : options_.roots) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(root, ec)) {
      if (!e.is_directory(ec)) continue;
      std::string name = e.path().filename().string();
      if (name.empty() || name[0] == '.') continue;
      if (found.count(name))
        duplicates[name] = found[name] + " and " + e.path().string();
      else
        found[name] = e.path().string();
    }
  }
  for (const auto& [name, where] : duplicates) found.erase(name);
  return found;
}

Status ModelRepository::start() {
  for (const auto& root : options_.roots)
    if (!fs::is_directory(root))
      return Status(ErrorCode::kNotFound, "--model-repository '" + root + "' is not a folder");
  std::map<std::string, std::string> dups;
  auto found = scan(dups);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& [name, dir] : found) entries_[name].dir = dir;
    for (const auto& [name, where] : dups) {
      Entry& e = entries_[name];
      e.wanted = true;
      e.reason = "model '" + name + "' is in more than one repository: " + where;
    }
  }
  std::set<std::string> to_load;
  if (options_.mode != ControlMode::kExplicit) {
    for (const auto& [name, dir] : found) to_load.insert(name);
  } else {
    for (const auto& m : options_.startup_models) {
      if (m == "*") {
        for (const auto& [name, dir] : found) to_load.insert(name);
      } else if (!found.count(m)) {
        std::lock_guard<std::mutex> lock(mutex_);
        Entry& e = entries_[m];
        e.wanted = true;
        e.reason = "--load-model '" + m + "': no such model in the repositories";
      } else {
        to_load.insert(m);
      }
    }
  }
  for (const auto& name : to_load) {
    std::lock_guard<std::mutex> load_lock(load_mutex_);
    ServeStatus st = load_entry(name, found[name]);
    if (!st.ok)
      std::fprintf(stderr, "kiln serve: model '%s' failed to load: %s\n", name.c_str(), st.message.c_str());
    else
      std::fprintf(stderr, "kiln serve: model '%s' is ready\n", name.c_str());
  }
  return Status::ok();
}

std::shared_ptr<ModelStats> ModelRepository::stats_for(const std::string& name, int64_t version) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto& s = stats_[{name, version}];
  if (!s) s = std::make_shared<ModelStats>();
  return s;
}

// The engine of one version: an ONNX model built (or found in the cache) for
// the CPU or for the config's first GPU, or a .kiln engine as it is. A GPU
// model's engine is made with that GPU as the thread's device.
Expected<std::shared_ptr<Engine>> ModelRepository::load_engine(const std::string& file,
                                                               const inference::ModelConfig& config, bool on_gpu) {
  if (on_gpu) {
    Status st = set_cuda_device(instance_gpus(config).at(0));
    if (!st.is_ok()) return st;
  }
  if (fs::path(file).extension() == ".onnx") {
    auto bc = build_config_from_parameters(config);
    if (!bc) return bc.status();
    bc->backend = on_gpu ? "cuda" : "cpu";
    auto device = current_device(bc->backend);
    if (!device) return device.status();
    return cache_.get(file, *bc, build_config_key(config, *device));
  }
  auto engine = Runtime::deserialize_file(file);
  if (!engine) return engine.status();
  std::string want = on_gpu ? "cuda" : "cpu";
  if ((*engine)->backend() != want)
    return Status(ErrorCode::kInvalidArgument, "the engine is for the " + (*engine)->backend() +
                                                   " backend but the instance groups are " +
                                                   (on_gpu ? "KIND_GPU" : "KIND_CPU"));
  return engine;
}

Expected<std::shared_ptr<LoadedModel>> ModelRepository::build_model(const std::string& name, const std::string& dir,
                                                                    const std::string* config_override) {
  auto model = std::make_shared<LoadedModel>();
  inference::ModelConfig& config = model->config;
  fs::path cfg_path = fs::path(dir) / "config.pbtxt";
  // A load's config override (Triton's JSON) takes the place of config.pbtxt.
  std::string where = config_override ? "load parameter 'config'" : cfg_path.string();
  bool from_file = config_override || fs::exists(cfg_path);
  if (from_file) {
    Expected<inference::ModelConfig> parsed = inference::ModelConfig();
    if (config_override) {
      parsed = parse_model_config_json(*config_override, where);
    } else {
      std::ifstream f(cfg_path);
      std::stringstream ss;
      ss << f.rdbuf();
      parsed = parse_model_config(ss.str(), where);
    }
    if (!parsed) return parsed.status();
    config = std::move(*parsed);
    if (!config.name().empty() && config.name() != name)
      return Status(ErrorCode::kInvalidArgument,
                    where + ": name '" + config.name() + "' differs from the model's folder name '" + name + "'");
    Status st = check_model_config(config);
    if (!st.is_ok()) return Status(st.code(), where + ": " + st.message());
  }
  config.set_name(name);
  // Where the instances run, before any engine is made (KIND_AUTO: a GPU
  // when there is one, unless the model does not run there: the CPU then).
  const inference::ModelConfig as_written = config;
  // Why there is no GPU, when there is none: no CUDA backend, or no GPU seen.
  const std::string no_gpu = no_cuda_gpu_reason();
  std::vector<int64_t> versions;
  std::vector<std::pair<int64_t, std::shared_ptr<Engine>>> engines;
  for (int gpu_count = cuda_device_count();; gpu_count = 0) {
    config = as_written;
    bool on_gpu = false;
    {
      Status st = resolve_instance_groups(config, gpu_count, no_gpu, on_gpu);
      if (!st.is_ok()) return Status(st.code(), where + ": " + st.message());
    }
    bool auto_gpu = on_gpu;
    for (const auto& g : as_written.instance_group()) auto_gpu &= g.kind() == inference::ModelInstanceGroup::KIND_AUTO;
    if (versions.empty()) {
      std::vector<int64_t> present;
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(dir, ec))
        if (e.is_directory(ec) && is_version_name(e.path().filename().string()))
          present.push_back(std::stoll(e.path().filename().string()));
      auto selected = select_versions(config, present);
      if (!selected) return selected.status();
      if (selected->empty())
        return Status(ErrorCode::kNotFound, "no version folder (such as " + dir + "/1) holds a model");
      versions = std::move(*selected);
    }
    engines.clear();
    Status off_gpu;  // why KIND_AUTO's GPU choice failed
    for (int64_t v : versions) {
      fs::path vdir = fs::path(dir) / std::to_string(v);
      std::vector<std::string> names = {"model.kiln", "model.onnx"};
      if (!config.default_model_filename().empty()) names = {config.default_model_filename()};
      std::string file;
      for (const auto& n : names)
        if (file.empty() && fs::is_regular_file(vdir / n)) file = (vdir / n).string();
      if (file.empty())
        return Status(ErrorCode::kNotFound, "version " + std::to_string(v) + ": no " + names[0] +
                                                (names.size() > 1 ? " or " + names[1] : "") + " in " + vdir.string());
      if (config.platform().empty() && config.backend().empty())
        config.set_platform(fs::path(file).extension() == ".onnx" ? "onnxruntime_onnx" : "kiln_plan");
      auto engine = load_engine(file, config, on_gpu);
      if (!engine && auto_gpu) {
        off_gpu = engine.status();
        break;
      }
      if (!engine) return engine.status().with_context("version " + std::to_string(v) + " (" + file + ")");
      engines.emplace_back(v, *engine);
    }
    if (off_gpu.is_ok()) break;
    // KIND_AUTO chose the GPU but the model does not run there (an op
    // without a GPU kernel, string tensors, a CPU engine): the CPU then.
    std::fprintf(stderr, "kiln serve: model '%s': KIND_AUTO: not on the GPU (%s); instances run on the CPU\n",
                 name.c_str(), off_gpu.to_string().c_str());
  }
  // The newest version completes the config; every version must match it.
  inference::ModelConfig original = config;
  Status st = complete_model_config(config, *engines.front().second, from_file);
  if (!st.is_ok()) return st.with_context(from_file ? where : name);
  for (size_t i = 1; i < engines.size(); ++i) {
    inference::ModelConfig copy = original;
    st = complete_model_config(copy, *engines[i].second, from_file);
    if (!st.is_ok()) return st.with_context("version " + std::to_string(engines[i].first));
  }
  for (auto& [v, engine] : engines) {
    auto mv = std::make_shared<ModelVersion>();
    mv->name = name;
    mv->version = v;
    mv->engine = engine;
    mv->stats = stats_for(name, v);
    mv->scheduler = std::make_shared<Scheduler>(engine, config, mv->stats, v);
    model->versions[v] = mv;
    st = mv->scheduler->ready();
    if (!st.is_ok()) return st.with_context("version " + std::to_string(v));
    st = warm_up(*mv, dir);
    if (!st.is_ok()) return st.with_context("version " + std::to_string(v));
  }
  return model;
}

ServeStatus ModelRepository::load_entry(const std::string& name, const std::string& dir,
                                        const std::string* config_override) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    Entry& e = entries_[name];
    e.dir = dir;
    e.wanted = true;
    if (!e.loaded) e.state = "LOADING";
  }
  std::string signature = folder_signature(dir);
  auto model = build_model(name, dir, config_override);
  std::shared_ptr<const LoadedModel> old;
  std::lock_guard<std::mutex> lock(mutex_);
  Entry& e = entries_[name];
  e.signature = signature;
  if (!model) {
    // A failed reload keeps serving the version already loaded (Triton does too).
    e.reason = model.status().message();
    e.state = e.loaded ? "READY" : "UNAVAILABLE";
    return unavailable("failed to load '" + name + "': " + e.reason);
  }
  old = std::move(e.loaded);
  e.loaded = std::move(*model);
  e.state = "READY";
  e.reason.clear();
  return ServeStatus::success();
}

ServeStatus ModelRepository::load(const std::string& name, const std::string* config_override) {
  if (options_.mode != ControlMode::kExplicit)
    return unavailable("explicit model load / unload is not allowed unless --model-control-mode=explicit");
  std::lock_guard<std::mutex> load_lock(load_mutex_);
  std::map<std::string, std::string> dups;
  auto found = scan(dups);
  if (dups.count(name)) return unavailable("model '" + name + "' is in more than one repository: " + dups[name]);
  auto it = found.find(name);
  if (it == found.end()) return unavailable("failed to load '" + name + "', failed to poll from model repository");
  return load_entry(name, it->second, config_override);
}

ServeStatus ModelRepository::unload(const std::string& name) {
  if (options_.mode != ControlMode::kExplicit)
    return unavailable("explicit model load / unload is not allowed unless --model-control-mode=explicit");
  std::lock_guard<std::mutex> load_lock(load_mutex_);
  std::shared_ptr<const LoadedModel> old;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = entries_.find(name);
    if (it == entries_.end()) return ServeStatus::success();  // Triton: unloading an unknown model succeeds
    old = std::move(it->second.loaded);
    it->second.wanted = false;
    it->second.state = "UNAVAILABLE";
    it->second.reason = "unloaded";
  }
  // `old` is released here, outside the lock; its schedulers finish the
  // requests they hold first.
  return ServeStatus::success();
}

void ModelRepository::poll() {
  std::lock_guard<std::mutex> load_lock(load_mutex_);
  std::map<std::string, std::string> dups;
  auto found = scan(dups);
  std::vector<std::pair<std::string, std::string>> changed;
  std::vector<std::shared_ptr<const LoadedModel>> removed;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [name, e] : entries_)
      if (!found.count(name) && !dups.count(name) && e.wanted) {
        removed.push_back(std::move(e.loaded));
        e.wanted = false;
        e.state = "UNAVAILABLE";
        e.reason = "removed from the repository";
      }
    for (const auto& [name, dir] : found) {
      auto it = entries_.find(name);
      if (it == entries_.end() || it->second.signature != folder_signature(dir) || !it->second.wanted)
        changed.emplace_back(name, dir);
    }
  }
  for (const auto& [name, dir] : changed) {
    ServeStatus st = load_entry(name, dir);
    std::fprintf(stderr, "kiln serve: poll: model '%s' %s%s\n", name.c_str(),
                 st.ok ? "(re)loaded" : "failed: ", st.ok ? "" : st.message.c_str());
  }
}

std::vector<IndexEntry> ModelRepository::index(bool ready_only) const {
  std::vector<IndexEntry> out;
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& [name, e] : entries_) {
    if (e.loaded) {
      for (const auto& [v, mv] : e.loaded->versions) out.push_back({name, v, "READY", ""});
    } else if (!ready_only) {
      out.push_back({name, -1, e.state, e.reason});
    }
  }
  return out;
}

bool ModelRepository::ready() const {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& [name, e] : entries_)
    if (e.wanted && !e.loaded) return false;
  return true;
}

ServeStatus ModelRepository::find(const std::string& name, int64_t version, std::shared_ptr<const LoadedModel>& model,
                                  std::shared_ptr<ModelVersion>& found) const {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = entries_.find(name);
    if (it != entries_.end()) model = it->second.loaded;
  }
  if (!model)
    return ServeStatus::error(ServeError::kNotFound, "Request for unknown model: '" + name + "' is not found");
  if (version < 0) {
    found = model->versions.rbegin()->second;
    return ServeStatus::success();
  }
  auto v = model->versions.find(version);
  if (v == model->versions.end())
    return ServeStatus::error(ServeError::kNotFound, "Request for unknown model: '" + name + "' version " +
                                                         std::to_string(version) + " is not found");
  found = v->second;
  return ServeStatus::success();
}

std::vector<std::pair<std::pair<std::string, int64_t>, std::shared_ptr<ModelStats>>> ModelRepository::all_stats()
    const {
  std::lock_guard<std::mutex> lock(mutex_);
  return {stats_.begin(), stats_.end()};
}

}  // namespace kiln::server
