// kiln_server pieces that need no engine: config.pbtxt parsing and checks,
// build options from parameters, JSON tensors, infer request parsing, BYTES
// serialization, the GPU metrics' text.
#include <gtest/gtest.h>

#include "gpu_metrics.h"
#include "http/json_tensor.h"
#include "http/kserve_http.h"
#include "model_config.h"
#include "model_stats.h"
#include "scheduler.h"

namespace kiln::server {
namespace {

TEST(ServerConfig, ParsesTritonFieldsUnchanged) {
  auto c = parse_model_config(R"(
name: "m" platform: "onnxruntime_onnx" max_batch_size: 8
input [ { name: "x" data_type: TYPE_FP32 dims: [ -1, 4 ] reshape { shape: [ 4, -1 ] } optional: true } ]
output [ { name: "y" data_type: TYPE_INT64 dims: [ 2 ] } ]
version_policy: { specific { versions: [ 1, 3 ] } }
instance_group [ { count: 2 kind: KIND_GPU gpus: [ 0, 1 ] } ]
dynamic_batching { preferred_batch_size: [ 4, 8 ] max_queue_delay_microseconds: 100
  priority_levels: 2 default_priority_level: 1
  default_queue_policy { timeout_action: REJECT default_timeout_microseconds: 5 max_queue_size: 3 }
  priority_queue_policy { key: 2 value { max_queue_size: 1 } } }
model_warmup [ { name: "w" batch_size: 1 inputs { key: "x" value { data_type: TYPE_FP32 dims: [ 4 ] zero_data: true } } } ]
parameters { key: "precision" value { string_value: "fp16" } }
)",
                              "config.pbtxt");
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  EXPECT_EQ(c->max_batch_size(), 8);
  EXPECT_EQ(c->input(0).reshape().shape(1), -1);
  EXPECT_EQ(c->dynamic_batching().default_queue_policy().max_queue_size(), 3u);
  EXPECT_TRUE(check_model_config(*c).is_ok());
  auto bc = build_config_from_parameters(*c);
  ASSERT_TRUE(bc.is_ok());
  EXPECT_TRUE(bc->fp16);
}

inference::ModelConfig groups(const std::string& text) {
  auto c = parse_model_config(text, "config.pbtxt");
  EXPECT_TRUE(c.is_ok()) << c.status().message();
  return c.is_ok() ? *c : inference::ModelConfig();
}

TEST(ServerInstanceGroups, AutoIsGpuWhenThereIsOneElseCpu) {
  using Group = inference::ModelInstanceGroup;
  bool on_gpu = true;
  auto c = groups("");
  ASSERT_TRUE(resolve_instance_groups(c, 0, "none", on_gpu).is_ok());
  EXPECT_FALSE(on_gpu);
  ASSERT_EQ(c.instance_group_size(), 1);
  EXPECT_EQ(c.instance_group(0).kind(), Group::KIND_CPU);
  EXPECT_EQ(instance_gpus(c), std::vector<int>({-1}));

  c = groups("instance_group [ { count: 2 } ]");
  ASSERT_TRUE(resolve_instance_groups(c, 2, "", on_gpu).is_ok());
  EXPECT_TRUE(on_gpu);
  EXPECT_EQ(c.instance_group(0).kind(), Group::KIND_GPU);
  // Triton's rule: `count` instances on each GPU.
  EXPECT_EQ(instance_gpus(c), std::vector<int>({0, 0, 1, 1}));
}

TEST(ServerInstanceGroups, GpusNamedAndCountPerGpu) {
  bool on_gpu = false;
  auto c =
      groups("instance_group [ { count: 1 kind: KIND_GPU gpus: [ 1 ] }, { count: 2 kind: KIND_GPU gpus: [ 0 ] } ]");
  ASSERT_TRUE(resolve_instance_groups(c, 2, "", on_gpu).is_ok());
  EXPECT_TRUE(on_gpu);
  EXPECT_EQ(instance_gpus(c), std::vector<int>({1, 0, 0}));
}

TEST(ServerInstanceGroups, PreciseErrors) {
  bool on_gpu = false;
  auto c = groups("instance_group [ { kind: KIND_GPU } ]");
  EXPECT_EQ(resolve_instance_groups(c, 0, "no CUDA GPU is visible to this process", on_gpu).message(),
            "instance_group 0: KIND_GPU needs a CUDA GPU, but no CUDA GPU is visible to this process");
  c = groups("instance_group [ { kind: KIND_CPU }, { kind: KIND_GPU gpus: [ 2 ] } ]");
  EXPECT_EQ(resolve_instance_groups(c, 2, "", on_gpu).message(),
            "instance_group 1: KIND_GPU names GPU 2, which does not exist: this process sees 2 CUDA GPUs");
  c = groups("instance_group [ { kind: KIND_CPU }, { kind: KIND_GPU } ]");
  EXPECT_EQ(resolve_instance_groups(c, 1, "", on_gpu).message(),
            "instance_group: KIND_CPU and KIND_GPU groups in one model are not supported (a model has one engine "
            "backend)");
}

TEST(ServerEngineCache, KeyHoldsTheDevice) {
  auto c = groups("parameters { key: \"precision\" value { string_value: \"fp16\" } }");
  EXPECT_EQ(build_config_key(c, "cuda:sm_90 NVIDIA H100 80GB HBM3"),
            "device=cuda:sm_90 NVIDIA H100 80GB HBM3;precision=fp16;min_shapes=;opt_shapes=;max_shapes=;"
            "optimization_level=");
  EXPECT_NE(build_config_key(c, "cuda:sm_80 NVIDIA A100"), build_config_key(c, "cuda:sm_90 NVIDIA H100 80GB HBM3"));
}

TEST(ServerConfig, UnknownFieldNamesFileLineAndField) {
  auto c = parse_model_config("name: \"m\"\n  max_batch: 4\n", "repo/m/config.pbtxt");
  ASSERT_FALSE(c.is_ok());
  EXPECT_NE(c.status().message().find("repo/m/config.pbtxt:2:"), std::string::npos) << c.status().message();
  EXPECT_NE(c.status().message().find("max_batch"), std::string::npos);
}

// Triton's optimization.cuda graphs and busy_wait_events are read; the
// optimization settings kiln does not implement are rejected by name.
TEST(ServerConfig, OptimizationCudaGraphsAndBusyWaitOnly) {
  auto c = parse_model_config("name: \"m\"\noptimization { cuda { graphs: true busy_wait_events: true } }\n",
                              "config.pbtxt");
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  EXPECT_TRUE(c->optimization().cuda().graphs());
  EXPECT_TRUE(c->optimization().cuda().busy_wait_events());
  auto other = parse_model_config("name: \"m\"\noptimization { graph { level: 1 } }\n", "repo/m/config.pbtxt");
  ASSERT_FALSE(other.is_ok());
  EXPECT_NE(other.status().message().find("repo/m/config.pbtxt:2:"), std::string::npos) << other.status().message();
  EXPECT_NE(other.status().message().find("graph"), std::string::npos) << other.status().message();
}

TEST(ServerConfig, PreferredBatchSizeAboveMaxIsRejected) {
  auto c = parse_model_config("max_batch_size: 4 dynamic_batching { preferred_batch_size: 8 }", "c");
  ASSERT_TRUE(c.is_ok());
  Status st = check_model_config(*c);
  EXPECT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("preferred_batch_size 8"), std::string::npos);
}

TEST(ServerConfig, ProfilesFromParameters) {
  auto c = parse_model_config(R"(parameters { key: "min_shapes" value { string_value: "x:1x4" } }
parameters { key: "max_shapes" value { string_value: "x:8x4" } })",
                              "c");
  ASSERT_TRUE(c.is_ok());
  auto bc = build_config_from_parameters(*c);
  ASSERT_TRUE(bc.is_ok()) << bc.status().message();
  ASSERT_EQ(bc->profiles.size(), 1u);
  EXPECT_EQ(bc->profiles[0].find("x")->max, (std::vector<int64_t>{8, 4}));
  auto bad = parse_model_config(R"(parameters { key: "precision" value { string_value: "fp7" } })", "c");
  EXPECT_NE(build_config_from_parameters(*bad).status().message().find("'fp7'"), std::string::npos);
}

Expected<BatchBucketsParameter> buckets_param(int max_batch, const std::string& value) {
  inference::ModelConfig c;
  c.set_max_batch_size(max_batch);
  (*c.mutable_parameters())["batch_buckets"].set_string_value(value);
  return batch_buckets_from_parameters(c);
}

TEST(ServerBatchBuckets, ParameterAutoNoneAndList) {
  using Mode = BatchBucketsParameter::Mode;
  auto absent = batch_buckets_from_parameters(inference::ModelConfig());
  ASSERT_TRUE(absent.is_ok());
  EXPECT_EQ(absent->mode, Mode::kAuto);
  EXPECT_EQ(buckets_param(8, "auto")->mode, Mode::kAuto);
  EXPECT_EQ(buckets_param(8, "none")->mode, Mode::kNone);
  auto list = buckets_param(8, "8, 4,4");
  ASSERT_TRUE(list.is_ok()) << list.status().message();
  EXPECT_EQ(list->mode, Mode::kList);
  EXPECT_EQ(list->sizes, (std::vector<int64_t>{4, 8}));
}

TEST(ServerBatchBuckets, BadParameterNamesTheFieldAndValue) {
  EXPECT_EQ(buckets_param(8, "").status().message(),
            "parameter 'batch_buckets': the value is empty (a comma list of batch sizes, \"auto\" or \"none\")");
  EXPECT_EQ(buckets_param(8, "4,x").status().message(),
            "parameter 'batch_buckets': 'x' in '4,x' is not a batch size (a comma list of batch sizes, \"auto\" or "
            "\"none\")");
  EXPECT_EQ(buckets_param(8, "4,,8").status().message(),
            "parameter 'batch_buckets': '' in '4,,8' is not a batch size (a comma list of batch sizes, \"auto\" or "
            "\"none\")");
  EXPECT_EQ(buckets_param(8, "4,8,").status().message(), "parameter 'batch_buckets': '4,8,' ends with a comma");
  EXPECT_EQ(buckets_param(8, "0").status().message(),
            "parameter 'batch_buckets': batch size 0 is outside 1..max_batch_size (8)");
  EXPECT_EQ(buckets_param(8, "9").status().message(),
            "parameter 'batch_buckets': batch size 9 is outside 1..max_batch_size (8)");
  EXPECT_EQ(buckets_param(0, "1").status().message(),
            "parameter 'batch_buckets': batch size 1 is outside 1..max_batch_size (0)");
  // check_model_config rejects it too (the loader adds the file).
  auto c = parse_model_config(
      "max_batch_size: 4 parameters { key: \"batch_buckets\" value { string_value: \"2,-1\" } }", "c");
  ASSERT_TRUE(c.is_ok());
  EXPECT_EQ(check_model_config(*c).message(),
            "parameter 'batch_buckets': batch size -1 is outside 1..max_batch_size (4)");
}

TEST(ServerBatchBuckets, AutoListFromMaxBatchAndPreferredSizes) {
  const BatchBucketsParameter automatic;
  EXPECT_EQ(batch_buckets(automatic, true, 1, {}, 1, 1), (std::vector<int64_t>{1}));
  EXPECT_EQ(batch_buckets(automatic, true, 8, {}, 1, 8), (std::vector<int64_t>{1, 2, 4, 8}));
  // max_batch_size itself and the preferred sizes join the powers of two.
  EXPECT_EQ(batch_buckets(automatic, true, 6, {3, 4}, 1, 6), (std::vector<int64_t>{1, 2, 3, 4, 6}));
  // CPU instances: none unless listed; no batching: none.
  EXPECT_TRUE(batch_buckets(automatic, false, 8, {}, 1, 8).empty());
  EXPECT_TRUE(batch_buckets(automatic, true, 0, {}, 1, 1).empty());
  BatchBucketsParameter none;
  none.mode = BatchBucketsParameter::Mode::kNone;
  EXPECT_TRUE(batch_buckets(none, true, 8, {}, 1, 8).empty());
  BatchBucketsParameter list;
  list.mode = BatchBucketsParameter::Mode::kList;
  list.sizes = {4, 8};
  EXPECT_EQ(batch_buckets(list, false, 8, {2}, 1, 8), (std::vector<int64_t>{4, 8}));
}

TEST(ServerBatchBuckets, ClampedToTheProfileBatchRange) {
  // Profile batch 2..4 of an engine with max_batch_size 8: 1 -> 2, 8 -> 4.
  EXPECT_EQ(batch_buckets(BatchBucketsParameter(), true, 8, {}, 2, 4), (std::vector<int64_t>{2, 4}));
  BatchBucketsParameter list;
  list.mode = BatchBucketsParameter::Mode::kList;
  list.sizes = {1, 3, 8};
  EXPECT_EQ(batch_buckets(list, false, 8, {}, 2, 6), (std::vector<int64_t>{2, 3, 6}));
}

TEST(ServerJsonTensor, NestedDataAndRangeChecks) {
  std::vector<uint8_t> out;
  EXPECT_EQ(json_to_tensor_bytes(nlohmann::json::parse("[[1,2],[3,4]]"), DType::kI16, 4, out), "");
  EXPECT_EQ(out.size(), 8u);
  out.clear();
  EXPECT_NE(json_to_tensor_bytes(nlohmann::json::parse("[70000]"), DType::kI16, 1, out).find("not a valid INT16"),
            std::string::npos);
  out.clear();
  EXPECT_NE(json_to_tensor_bytes(nlohmann::json::parse("[1,2,3]"), DType::kF32, 2, out).find("more than the 2"),
            std::string::npos);
  out.clear();
  EXPECT_EQ(json_to_tensor_bytes(nlohmann::json::parse("[1.5, -2]"), DType::kF16, 2, out), "");
  EXPECT_EQ(tensor_bytes_to_json(out, DType::kF16).dump(), "[1.5,-2.0]");
}

TEST(ServerInferRequest, BinaryDataAfterTheHeader) {
  std::string header = R"({"inputs":[{"name":"x","datatype":"INT32","shape":[2],"parameters":{"binary_data_size":8}}],
"outputs":[{"name":"y","parameters":{"binary_data":true}}]})";
  std::string body = header + std::string("\1\0\0\0\2\0\0\0", 8);
  std::string hl = std::to_string(header.size());
  InferRequest r;
  std::vector<std::string> bin;
  bool def = false;
  std::string err;
  ASSERT_TRUE(parse_infer_request(body, &hl, r, bin, def, err)) << err;
  ASSERT_EQ(r.inputs.size(), 1u);
  // A view of the body, not a copy.
  ASSERT_EQ(r.inputs[0].bytes().size(), 8u);
  EXPECT_EQ(r.inputs[0].bytes().data(), reinterpret_cast<const uint8_t*>(body.data() + header.size()));
  EXPECT_TRUE(r.inputs[0].data.empty());
  EXPECT_EQ(bin, std::vector<std::string>{"y"});
  std::string extra = body + "zz";
  InferRequest r2;
  EXPECT_FALSE(parse_infer_request(extra, &hl, r2, bin, def, err));
  EXPECT_NE(err.find("2 bytes of binary data"), std::string::npos) << err;
}

TEST(ServerConfig, JsonOverrideUsesTritonFieldNames) {
  auto c = parse_model_config_json(
      R"({"max_batch_size": 4, "input": [{"name": "x", "data_type": "TYPE_STRING", "dims": [2]}],
          "dynamic_batching": {"max_queue_delay_microseconds": 100}})",
      "load parameter 'config'");
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  EXPECT_EQ(c->max_batch_size(), 4);
  EXPECT_EQ(c->input(0).data_type(), inference::TYPE_STRING);
  EXPECT_EQ(c->dynamic_batching().max_queue_delay_microseconds(), 100u);
  auto bad = parse_model_config_json(R"({"max_batch": 4})", "load parameter 'config'");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().message().rfind("load parameter 'config': not a valid model configuration", 0), 0u)
      << bad.status().message();
}

TEST(ServerBytes, SerializedStringsRoundTrip) {
  std::vector<std::string> in = {"ab", "", std::string("\0\xff", 2)};
  std::vector<uint8_t> data;
  serialize_strings(in.data(), in.size(), data);
  EXPECT_EQ(data, (std::vector<uint8_t>{2, 0, 0, 0, 'a', 'b', 0, 0, 0, 0, 2, 0, 0, 0, 0, 0xff}));
  std::vector<std::string> out;
  std::string err;
  ASSERT_TRUE(deserialize_strings(data.data(), data.size(), 3, &out, err)) << err;
  EXPECT_EQ(out, in);
  EXPECT_FALSE(deserialize_strings(data.data(), data.size(), 2, nullptr, err));
  EXPECT_EQ(err, "6 bytes follow the 2 BYTES elements of the shape");
  EXPECT_FALSE(deserialize_strings(data.data(), data.size(), 4, nullptr, err));
  EXPECT_EQ(err, "BYTES data ends at element 3 of 4 (each element is a 4-byte length, then the bytes)");
  EXPECT_FALSE(deserialize_strings(data.data(), 5, 1, nullptr, err));
  EXPECT_EQ(err, "BYTES element 0 has length 2 but only 1 bytes follow");
}

TEST(ServerBytes, InferRequestKeepsParsedStrings) {
  // Binary BYTES data is parsed once, into the tensor's strings.
  std::string header = R"({"inputs": [{"name": "t", "datatype": "BYTES", "shape": [1, 2],
                            "parameters": {"binary_data_size": 11}}]})";
  std::string hl = std::to_string(header.size());
  std::string ok = header + std::string("\x02\0\0\0ab\x01\0\0\0c", 11);
  InferRequest r;
  std::vector<std::string> bin;
  bool def = false;
  std::string err;
  ASSERT_TRUE(parse_infer_request(ok, &hl, r, bin, def, err)) << err;
  ASSERT_EQ(r.inputs.size(), 1u);
  EXPECT_EQ(r.inputs[0].strings, (std::vector<std::string>{"ab", "c"}));
  EXPECT_TRUE(r.inputs[0].data.empty());
  // A malformed payload keeps its precise error.
  std::string bad = header + std::string("\x09\0\0\0abcdefg", 11);
  InferRequest r2;
  EXPECT_FALSE(parse_infer_request(bad, &hl, r2, bin, def, err));
  EXPECT_EQ(err, "input 't': BYTES element 0 has length 9 but only 7 bytes follow");
  // JSON data ends up in the same place.
  InferRequest r3;
  ASSERT_TRUE(
      parse_infer_request(R"({"inputs": [{"name": "t", "datatype": "BYTES", "shape": [2], "data": ["x", ""]}]})",
                          nullptr, r3, bin, def, err))
      << err;
  ASSERT_EQ(r3.inputs.size(), 1u);
  EXPECT_EQ(r3.inputs[0].strings, (std::vector<std::string>{"x", ""}));
  EXPECT_TRUE(r3.inputs[0].data.empty());
}

TEST(ServerJsonTensor, BytesElementsAreStrings) {
  std::vector<uint8_t> out;
  EXPECT_EQ(json_to_tensor_bytes(nlohmann::json::parse(R"([["a"], ["bc"]])"), DType::kString, 2, out), "");
  EXPECT_EQ(out, (std::vector<uint8_t>{1, 0, 0, 0, 'a', 2, 0, 0, 0, 'b', 'c'}));
  EXPECT_EQ(tensor_bytes_to_json(out, DType::kString), nlohmann::json::parse(R"(["a", "bc"])"));
  std::vector<uint8_t> bad;
  EXPECT_EQ(json_to_tensor_bytes(nlohmann::json::parse(R"(["a", 1])"), DType::kString, 2, bad),
            "'data' element 1 (1) is not a valid BYTES");
}

TEST(ServerGpuMetrics, TritonNamesAndGpuUuidLabel) {
  EXPECT_EQ(format_gpu_metrics({}), "");
  std::vector<GpuSample> s = {{"GPU-a1", 0.25, 85899345920ull, 1073741824ull}, {"GPU-b2", 0, 100, 0}};
  EXPECT_EQ(format_gpu_metrics(s),
            "# HELP nv_gpu_utilization GPU utilization rate [0.0 - 1.0)\n"
            "# TYPE nv_gpu_utilization gauge\n"
            "nv_gpu_utilization{gpu_uuid=\"GPU-a1\"} 0.25\n"
            "nv_gpu_utilization{gpu_uuid=\"GPU-b2\"} 0\n"
            "# HELP nv_gpu_memory_total_bytes GPU total memory, in bytes\n"
            "# TYPE nv_gpu_memory_total_bytes gauge\n"
            "nv_gpu_memory_total_bytes{gpu_uuid=\"GPU-a1\"} 85899345920\n"
            "nv_gpu_memory_total_bytes{gpu_uuid=\"GPU-b2\"} 100\n"
            "# HELP nv_gpu_memory_used_bytes GPU used memory, in bytes\n"
            "# TYPE nv_gpu_memory_used_bytes gauge\n"
            "nv_gpu_memory_used_bytes{gpu_uuid=\"GPU-a1\"} 1073741824\n"
            "nv_gpu_memory_used_bytes{gpu_uuid=\"GPU-b2\"} 0\n");
}

// Buckets 8 to a decade: (10^(i/8), 10^((i+1)/8)] microseconds, the first
// from 0, the last past 100 s.
TEST(ServerOverheadHistogram, BucketsByUpperBound) {
  EXPECT_EQ(DurationHistogram::bucket_of(0), 0);
  EXPECT_EQ(DurationHistogram::bucket_of(1333), 0);  // 1.333 us <= 10^(1/8) = 1.3335
  EXPECT_EQ(DurationHistogram::bucket_of(1334), 1);
  EXPECT_EQ(DurationHistogram::bucket_of(10000), 7);  // exactly 10 us: the bucket up to 10
  EXPECT_EQ(DurationHistogram::bucket_of(10001), 8);
  EXPECT_EQ(DurationHistogram::bucket_of(100'000'000'000ull), DurationHistogram::kBuckets - 1);  // 100 s
  EXPECT_EQ(DurationHistogram::bucket_of(100'001'000'000ull), DurationHistogram::kBuckets);
  DurationHistogram h;
  h.add(5000);
  h.add(5000);
  h.add(2'000'000);
  EXPECT_EQ(h.counts[DurationHistogram::bucket_of(5000)].load(), 2u);
  EXPECT_EQ(h.sum_ns.load(), 2'010'000u);
}

}  // namespace
}  // namespace kiln::server
