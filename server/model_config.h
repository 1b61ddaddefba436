// config.pbtxt: reading it (protobuf text format with Triton's field names),
// checking it against the engine, completing what it leaves out, and the
// kiln build options it carries as parameters.
#pragma once

#include <string>
#include <vector>

#include "kiln/builder.h"
#include "kiln/runtime.h"
#include "kiln/status.h"
#include "model_config.pb.h"

namespace kiln::server {

// Parses `text` read from `file`. Errors name the file, line, column and the
// field ("config.pbtxt:3:5: Message type "inference.ModelConfig" has no field
// named "max_batch"").
Expected<inference::ModelConfig> parse_model_config(const std::string& text, const std::string& file);

// Parses a config given as JSON (Triton's form, as the config endpoint writes
// it: snake_case field names, enums by name). Errors start with `where`.
Expected<inference::ModelConfig> parse_model_config_json(const std::string& json, const std::string& where);

// Checks the parts of a config that need no engine: batch size, dims,
// instance groups, dynamic batching, version policy, parameters.
Status check_model_config(const inference::ModelConfig& config);

// The build options carried as parameters: "precision" (fp32, fp16, bf16,
// tf32; a comma list), "min_shapes"/"opt_shapes"/"max_shapes" (one profile,
// "name:1x4,other:1x8"), "optimization_level". The batch dim is included.
Expected<BuildConfig> build_config_from_parameters(const inference::ModelConfig& config);
// The "batch_buckets" parameter: the batch sizes a model's batches run at
// (a batch of n rows runs at the smallest bucket >= n, padded). "auto" (also
// when absent): the scheduler's default (powers of two up to max_batch_size,
// max_batch_size and the preferred sizes, on GPU instances only); "none": no
// padding; else a comma list of sizes in 1..max_batch_size, kept sorted and
// unique. Errors name the parameter and the value.
struct BatchBucketsParameter {
  enum class Mode { kAuto, kNone, kList };
  Mode mode = Mode::kAuto;
  std::vector<int64_t> sizes;  // kList: sorted, unique
};
Expected<BatchBucketsParameter> batch_buckets_from_parameters(const inference::ModelConfig& config);
// A stable text form of the build options and the device the engine is built
// for (current_device), part of the engine cache key.
std::string build_config_key(const inference::ModelConfig& config, const std::string& device);

// Fills what the config leaves out from the engine (inputs, outputs, their
// dtypes and dims; max_batch_size and dynamic batching when there was no
// config file at all) and checks every declared tensor against the engine.
Status complete_model_config(inference::ModelConfig& config, const Engine& engine, bool from_file);

// Resolves the instance groups' kinds before the engine is made, for a
// process that sees `gpu_count` CUDA GPUs: KIND_AUTO becomes KIND_GPU when
// there is one, else KIND_CPU (Triton's rule); a KIND_GPU group without
// `gpus` gets every GPU; a config without groups gets one KIND_AUTO instance.
// `on_gpu` says which it came to. An error names the group: a GPU that does
// not exist, KIND_GPU without a GPU (`no_gpu` says why there is none), or
// CPU and GPU groups in one model.
Status resolve_instance_groups(inference::ModelConfig& config, int gpu_count, const std::string& no_gpu, bool& on_gpu);
// Per instance, in instance_group order: the GPU it runs on, or -1 for the
// CPU (a KIND_GPU group has `count` instances on each GPU of `gpus`).
std::vector<int> instance_gpus(const inference::ModelConfig& config);

DType dtype_from_config(inference::DataType t);
inference::DataType config_dtype(DType t);

// The config as Triton's JSON (snake_case field names).
std::string model_config_json(const inference::ModelConfig& config);

}  // namespace kiln::server
