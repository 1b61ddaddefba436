#include "model_config.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cerrno>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "inference.h"

namespace kiln::server {
namespace {

using inference::ModelConfig;

class ErrorList final : public google::protobuf::io::ErrorCollector {
 public:
  explicit ErrorList(std::string file) : file_(std::move(file)) {}
  void AddError(int line, int column, const std::string& message) override {
    // The parser counts from 0; editors count from 1.
    errors_ += (errors_.empty() ? "" : "; ") + file_ + ":" + std::to_string(line + 1) + ":" +
               std::to_string(column + 1) + ": " + message;
  }
  const std::string& errors() const { return errors_; }

 private:
  std::string file_;
  std::string errors_;
};

Status bad(const std::string& msg) { return Status(ErrorCode::kInvalidArgument, msg); }

std::string dims_text(const std::vector<int64_t>& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? "," : "") + std::to_string(d[i]);
  return s + "]";
}

template <typename Field>
std::vector<int64_t> to_vec(const Field& f) {
  return std::vector<int64_t>(f.begin(), f.end());
}

// "x:1x4,y:2x8" -> {{x,{1,4}},{y,{2,8}}}
Expected<std::vector<std::pair<std::string, std::vector<int64_t>>>> parse_shapes(const std::string& key,
                                                                                 const std::string& text) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  std::stringstream items(text);
  std::string item;
  while (std::getline(items, item, ',')) {
    size_t colon = item.rfind(':');
    if (colon == std::string::npos || colon == 0)
      return bad("parameter '" + key + "': '" + item + "' is not NAME:DIMxDIM");
    std::vector<int64_t> dims;
    std::stringstream ds(item.substr(colon + 1));
    std::string d;
    while (std::getline(ds, d, 'x')) {
      char* end = nullptr;
      long long v = std::strtoll(d.c_str(), &end, 10);
      if (d.empty() || *end || v < 0) return bad("parameter '" + key + "': '" + d + "' in '" + item + "' is not a dim");
      dims.push_back(v);
    }
    out.emplace_back(item.substr(0, colon), std::move(dims));
  }
  return out;
}

Status check_dims(const std::string& what, const google::protobuf::RepeatedField<int64_t>& dims) {
  for (int64_t d : dims)
    if (d < -1 || d == 0) return bad(what + ": dim " + std::to_string(d) + " must be -1 or positive");
  return Status::ok();
}

}  // namespace

Expected<ModelConfig> parse_model_config(const std::string& text, const std::string& file) {
  ModelConfig config;
  ErrorList errors(file);
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, &config))
    return bad(errors.errors().empty() ? file + ": not a valid config" : errors.errors());
  return config;
}

Expected<ModelConfig> parse_model_config_json(const std::string& json, const std::string& where) {
  ModelConfig config;
  google::protobuf::util::JsonParseOptions o;
  o.ignore_unknown_fields = false;  // a misspelt field is an error, as in config.pbtxt
  auto st = google::protobuf::util::JsonStringToMessage(json, &config, o);
  if (!st.ok()) return bad(where + ": not a valid model configuration: " + std::string(st.message()));
  return config;
}

Status check_model_config(const ModelConfig& c) {
  if (c.max_batch_size() < 0) return bad("max_batch_size " + std::to_string(c.max_batch_size()) + " is negative");
  std::set<std::string> names;
  for (const auto& in : c.input()) {
    if (in.name().empty()) return bad("input: a name is required");
    if (!names.insert(in.name()).second) return bad("input '" + in.name() + "' is declared twice");
    Status st = check_dims("input '" + in.name() + "' dims", in.dims());
    if (!st.is_ok()) return st;
    if (in.is_shape_tensor()) return bad("input '" + in.name() + "': is_shape_tensor is not supported");
  }
  for (const auto& out : c.output()) {
    if (out.name().empty()) return bad("output: a name is required");
    if (!names.insert(out.name()).second) return bad("output '" + out.name() + "' is declared twice");
    Status st = check_dims("output '" + out.name() + "' dims", out.dims());
    if (!st.is_ok()) return st;
  }
  for (const auto& g : c.instance_group()) {
    if (g.count() < 0) return bad("instance_group: count " + std::to_string(g.count()) + " is negative");
    if (g.kind() == inference::ModelInstanceGroup::KIND_MODEL)
      return bad("instance_group: kind KIND_MODEL is not supported");
  }
  if (c.has_dynamic_batching()) {
    const auto& db = c.dynamic_batching();
    for (int p : db.preferred_batch_size())
      if (p <= 0 || p > c.max_batch_size())
        return bad("dynamic_batching: preferred_batch_size " + std::to_string(p) + " is outside 1..max_batch_size (" +
                   std::to_string(c.max_batch_size()) + ")");
    if (db.priority_levels() > 0 && db.default_priority_level() > db.priority_levels())
      return bad("dynamic_batching: default_priority_level " + std::to_string(db.default_priority_level()) +
                 " exceeds priority_levels " + std::to_string(db.priority_levels()));
    for (const auto& [level, policy] : db.priority_queue_policy())
      if (level == 0 || level > db.priority_levels())
        return bad("dynamic_batching: priority_queue_policy level " + std::to_string(level) + " is outside 1.." +
                   std::to_string(db.priority_levels()));
  }
  if (c.version_policy().has_latest() && c.version_policy().latest().num_versions() == 0)
    return bad("version_policy: latest num_versions must be at least 1");
  auto buckets = batch_buckets_from_parameters(c);
  if (!buckets) return buckets.status();
  auto bc = build_config_from_parameters(c);
  return bc.status();
}

Expected<BatchBucketsParameter> batch_buckets_from_parameters(const ModelConfig& c) {
  BatchBucketsParameter out;
  auto it = c.parameters().find("batch_buckets");
  if (it == c.parameters().end()) return out;
  const std::string& text = it->second.string_value();
  if (text == "auto") return out;
  if (text == "none") {
    out.mode = BatchBucketsParameter::Mode::kNone;
    return out;
  }
  const std::string what = "parameter 'batch_buckets': ";
  if (text.empty()) return bad(what + "the value is empty (a comma list of batch sizes, \"auto\" or \"none\")");
  out.mode = BatchBucketsParameter::Mode::kList;
  std::stringstream items(text);
  std::string item;
  // getline drops a trailing empty item: "4,8," is caught here.
  if (text.back() == ',') return bad(what + "'" + text + "' ends with a comma");
  while (std::getline(items, item, ',')) {
    size_t b = item.find_first_not_of(' '), e = item.find_last_not_of(' ');
    std::string v = b == std::string::npos ? "" : item.substr(b, e - b + 1);
    char* end = nullptr;
    errno = 0;
    long long n = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end || errno == ERANGE)
      return bad(what + "'" + v + "' in '" + text + "' is not a batch size (a comma list of batch sizes, \"auto\" or " +
                 "\"none\")");
    if (n <= 0 || n > c.max_batch_size())
      return bad(what + "batch size " + v + " is outside 1..max_batch_size (" + std::to_string(c.max_batch_size()) +
                 ")");
    out.sizes.push_back(n);
  }
  std::sort(out.sizes.begin(), out.sizes.end());
  out.sizes.erase(std::unique(out.sizes.begin(), out.sizes.end()), out.sizes.end());
  return out;
}

Expected<BuildConfig> build_config_from_parameters(const ModelConfig& c) {
  BuildConfig bc;
  const auto& params = c.parameters();
  if (auto it = params.find("precision"); it != params.end()) {
    std::stringstream ss(it->second.string_value());
    std::string p;
    while (std::getline(ss, p, ',')) {
      if (p == "fp16")
        bc.fp16 = true;
      else if (p == "bf16")
        bc.bf16 = true;
      else if (p == "tf32")
        bc.tf32 = true;
      else if (p == "strongly_typed")
        bc.strongly_typed = true;
      else if (p != "fp32")
        return bad("parameter 'precision': '" + p + "' is not fp32, fp16, bf16, tf32 or strongly_typed");
    }
  }
  if (auto it = params.find("optimization_level"); it != params.end()) {
    const std::string& v = it->second.string_value();
    if (v.size() != 1 || v[0] < '0' || v[0] > '5')
      return bad("parameter 'optimization_level': '" + v + "' is not 0..5");
    bc.optimization_level = v[0] - '0';
  }
  std::vector<std::pair<std::string, std::vector<int64_t>>> shapes[3];
  const char* keys[3] = {"min_shapes", "opt_shapes", "max_shapes"};
  bool any = false;
  for (int k = 0; k < 3; ++k) {
    auto it = params.find(keys[k]);
    if (it == params.end()) continue;
    auto parsed = parse_shapes(keys[k], it->second.string_value());
    if (!parsed) return parsed.status();
    shapes[k] = std::move(*parsed);
    any = true;
  }
  if (any) {
    if (shapes[0].size() != shapes[2].size() || shapes[0].empty())
      return bad("parameters 'min_shapes' and 'max_shapes' must name the same inputs");
    OptimizationProfile p;
    for (size_t i = 0; i < shapes[0].size(); ++i) {
      const auto& [name, lo] = shapes[0][i];
      std::vector<int64_t> hi, opt;
      for (const auto& [n, d] : shapes[2])
        if (n == name) hi = d;
      for (const auto& [n, d] : shapes[1])
        if (n == name) opt = d;
      if (hi.empty()) return bad("parameter 'max_shapes' has no shape for '" + name + "'");
      if (opt.empty()) opt = hi;
      Status st = p.set_shape_range(name, lo, opt, hi);
      if (!st.is_ok()) return bad("profile parameters: " + st.message());
    }
    bc.profiles.push_back(std::move(p));
  }
  return bc;
}

Status resolve_instance_groups(ModelConfig& c, int gpu_count, const std::string& no_gpu, bool& on_gpu) {
  using Group = inference::ModelInstanceGroup;
  if (c.instance_group_size() == 0) c.add_instance_group()->set_count(1);
  bool cpu = false, gpu = false;
  for (int i = 0; i < c.instance_group_size(); ++i) {
    Group& g = *c.mutable_instance_group(i);
    std::string where = "instance_group " + std::to_string(i);
    if (g.kind() == Group::KIND_AUTO) g.set_kind(gpu_count > 0 ? Group::KIND_GPU : Group::KIND_CPU);
    if (g.kind() == Group::KIND_CPU) {
      cpu = true;
      continue;
    }
    if (g.kind() != Group::KIND_GPU) continue;  // KIND_MODEL: check_model_config refuses it
    gpu = true;
    for (int id : g.gpus())
      if (id < 0 || id >= gpu_count)
        return bad(where + ": KIND_GPU names GPU " + std::to_string(id) + ", which does not exist: this process sees " +
                   std::to_string(gpu_count) + " CUDA GPU" + (gpu_count == 1 ? "" : "s") +
                   (gpu_count == 0 ? " (" + no_gpu + ")" : ""));
    if (gpu_count == 0) return bad(where + ": KIND_GPU needs a CUDA GPU, but " + no_gpu);
    if (g.gpus_size() == 0)
      for (int id = 0; id < gpu_count; ++id) g.add_gpus(id);
  }
  if (cpu && gpu)
    return bad(
        "instance_group: KIND_CPU and KIND_GPU groups in one model are not supported (a model has one engine "
        "backend)");
  on_gpu = gpu;
  return Status::ok();
}

std::vector<int> instance_gpus(const ModelConfig& c) {
  std::vector<int> out;
  for (const auto& g : c.instance_group()) {
    int n = std::max(1, g.count());
    if (g.kind() == inference::ModelInstanceGroup::KIND_GPU) {
      for (int id : g.gpus()) out.insert(out.end(), static_cast<size_t>(n), id);
    } else {
      out.insert(out.end(), static_cast<size_t>(n), -1);
    }
  }
  return out;
}

std::string build_config_key(const ModelConfig& c, const std::string& device) {
  std::string key = "device=" + device;
  for (const char* k : {"precision", "min_shapes", "opt_shapes", "max_shapes", "optimization_level"}) {
    auto it = c.parameters().find(k);
    key += std::string(";") + k + "=" + (it == c.parameters().end() ? "" : it->second.string_value());
  }
  return key;
}

DType dtype_from_config(inference::DataType t) {
  switch (t) {
    case inference::TYPE_BOOL: return DType::kBool;
    case inference::TYPE_UINT8: return DType::kU8;
    case inference::TYPE_UINT16: return DType::kU16;
    case inference::TYPE_UINT32: return DType::kU32;
    case inference::TYPE_UINT64: return DType::kU64;
    case inference::TYPE_INT8: return DType::kI8;
    case inference::TYPE_INT16: return DType::kI16;
    case inference::TYPE_INT32: return DType::kI32;
    case inference::TYPE_INT64: return DType::kI64;
    case inference::TYPE_FP16: return DType::kF16;
    case inference::TYPE_FP32: return DType::kF32;
    case inference::TYPE_FP64: return DType::kF64;
    case inference::TYPE_STRING: return DType::kString;
    case inference::TYPE_BF16: return DType::kBF16;
    default: return DType::kUndefined;
  }
}

inference::DataType config_dtype(DType t) {
  for (int i = 1; i <= 14; ++i)
    if (dtype_from_config(static_cast<inference::DataType>(i)) == t) return static_cast<inference::DataType>(i);
  return inference::TYPE_INVALID;
}

namespace {

// Whether every input and output has a dynamic first dim (a batch dim).
bool engine_batches(const Engine& e) {
  for (int i = 0; i < e.num_io_tensors(); ++i) {
    auto s = e.tensor_shape(e.io_tensor_name(i));
    if (!s || s->empty() || (*s)[0] != -1) return false;
  }
  return e.num_io_tensors() > 0;
}

// Checks a declared tensor (dims without the batch dim) against the engine's.
template <typename T>
Status check_tensor(const T& t, const Engine& e, int64_t max_batch, TensorIOMode mode, const char* what) {
  if (e.tensor_io_mode(t.name()) != mode)
    return bad(std::string(what) + " '" + t.name() + "' is not an " + what + " of the model");
  DType want = e.tensor_dtype(t.name());
  if (dtype_from_config(t.data_type()) != want)
    return bad(std::string(what) + " '" + t.name() + "': config data_type " + inference::DataType_Name(t.data_type()) +
               " but the model has " + inference::DataType_Name(config_dtype(want)));
  std::vector<int64_t> dims = t.has_reshape() ? to_vec(t.reshape().shape()) : to_vec(t.dims());
  if (max_batch > 0) dims.insert(dims.begin(), -1);
  auto shape = e.tensor_shape(t.name());
  if (!shape) return shape.status();
  bool ok = shape->size() == dims.size();
  for (size_t i = 0; ok && i < dims.size(); ++i) ok = (*shape)[i] == -1 || dims[i] == -1 || (*shape)[i] == dims[i];
  if (max_batch > 0 && ok) ok = (*shape)[0] == -1;
  if (!ok)
    return bad(std::string(what) + " '" + t.name() + "': config dims " + dims_text(dims) +
               (max_batch > 0 ? " (with the batch dim)" : "") + " do not match the model's " + dims_text(*shape));
  return Status::ok();
}

template <typename T>
void fill_tensor(T* t, const Engine& e, const std::string& name, bool batched) {
  t->set_name(name);
  t->set_data_type(config_dtype(e.tensor_dtype(name)));
  auto shape = e.tensor_shape(name);
  if (!shape) return;
  for (size_t i = batched ? 1 : 0; i < shape->size(); ++i) t->add_dims((*shape)[i]);
}

}  // namespace

Status complete_model_config(ModelConfig& c, const Engine& e, bool from_file) {
  if (!from_file && c.max_batch_size() == 0 && engine_batches(e)) {
    c.set_max_batch_size(8);
    c.mutable_dynamic_batching();
  }
  if (c.max_batch_size() > 0 && !engine_batches(e))
    return bad("max_batch_size " + std::to_string(c.max_batch_size()) +
               " needs a dynamic first dim on every input and output of the model");
  bool batched = c.max_batch_size() > 0;
  // Tensors left out are filled in only when the config lists none of that kind.
  const bool fill_inputs = c.input_size() == 0, fill_outputs = c.output_size() == 0;
  for (int i = 0; i < e.num_io_tensors(); ++i) {
    std::string name = e.io_tensor_name(i);
    bool input = e.tensor_io_mode(name) == TensorIOMode::kInput;
    bool declared = false;
    if (input)
      for (const auto& t : c.input()) declared |= t.name() == name;
    else
      for (const auto& t : c.output()) declared |= t.name() == name;
    if (declared) continue;
    if (input && !fill_inputs) return bad("config lists inputs but not the model's input '" + name + "'");
    if (input)
      fill_tensor(c.add_input(), e, name, batched);
    else if (fill_outputs)
      fill_tensor(c.add_output(), e, name, batched);
  }
  for (auto& t : *c.mutable_input()) {
    if (t.data_type() == inference::TYPE_INVALID) t.set_data_type(config_dtype(e.tensor_dtype(t.name())));
    Status st = check_tensor(t, e, c.max_batch_size(), TensorIOMode::kInput, "input");
    if (!st.is_ok()) return st;
  }
  for (auto& t : *c.mutable_output()) {
    if (t.data_type() == inference::TYPE_INVALID) t.set_data_type(config_dtype(e.tensor_dtype(t.name())));
    Status st = check_tensor(t, e, c.max_batch_size(), TensorIOMode::kOutput, "output");
    if (!st.is_ok()) return st;
  }
  if (c.instance_group_size() == 0) c.add_instance_group()->set_count(1);
  for (auto& g : *c.mutable_instance_group()) {
    if (g.count() == 0) g.set_count(1);
    if (g.kind() == inference::ModelInstanceGroup::KIND_AUTO) g.set_kind(inference::ModelInstanceGroup::KIND_CPU);
  }
  if (!c.version_policy().has_all() && !c.version_policy().has_specific() && !c.version_policy().has_latest())
    c.mutable_version_policy()->mutable_latest()->set_num_versions(1);
  return check_model_config(c);
}

namespace {

// Protobuf's JSON writes 64-bit integers as strings; Triton's clients expect
// numbers for these fields, as Triton's own JSON gives them.
void int64_fields_to_numbers(nlohmann::json& j) {
  static const std::set<std::string> fields = {"dims",
                                               "shape",
                                               "versions",
                                               "max_queue_delay_microseconds",
                                               "priority_levels",
                                               "default_priority_level",
                                               "default_timeout_microseconds"};
  auto number = [](nlohmann::json& v) {
    if (!v.is_string()) return;
    const std::string& s = v.get_ref<const std::string&>();
    char* end = nullptr;
    long long n = std::strtoll(s.c_str(), &end, 10);
    if (!s.empty() && *end == 0) v = n;
  };
  if (j.is_array()) {
    for (auto& e : j) int64_fields_to_numbers(e);
    return;
  }
  if (!j.is_object()) return;
  for (auto& [key, value] : j.items()) {
    if (fields.count(key)) {
      if (value.is_array())
        for (auto& e : value) number(e);
      else
        number(value);
    } else {
      int64_fields_to_numbers(value);
    }
  }
}

}  // namespace

std::string model_config_json(const ModelConfig& c) {
  std::string out;
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  o.always_print_primitive_fields = true;
  if (!google::protobuf::util::MessageToJsonString(c, &out, o).ok()) return "{}";
  nlohmann::json j = nlohmann::json::parse(out, nullptr, false);
  if (j.is_discarded()) return out;
  int64_fields_to_numbers(j);
  return j.dump();
}

}  // namespace kiln::server
