// Shared pieces of the GPU kernel tests: random host tensors (never zero),
// device upload/download, the CPU reference run of a one-node graph, and the
// comparison with the brief's tolerances (NaN never passes).
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/cpu_executor.h"
#include "backends/cuda/cuda_executor.h"
#include "backends/cuda/device.h"
#include "ir/graph.h"

namespace kiln::gpu_test {

// A node's attributes, and shorthands for writing them.
using Attrs = std::map<std::string, Attribute>;
inline Attribute ints(std::vector<int64_t> v) { return Attribute::of_ints(std::move(v)); }
inline Attribute i(int64_t v) { return Attribute::of_int(v); }
inline Attribute s(const char* v) { return Attribute::of_string(v); }

// Skips every test of a fixture when there is no GPU.
class GpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device";
  }
};

inline int64_t numel(const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

// Uniform in [lo, hi], nudged away from 0 so no element is exactly zero.
inline Tensor random_tensor(DType t, std::vector<int64_t> dims, float lo = -2.f, float hi = 2.f, uint32_t seed = 1) {
  std::mt19937 rng(seed * 7919u + static_cast<uint32_t>(numel(dims)));
  std::uniform_real_distribution<float> dist(lo, hi);
  Tensor out(t, dims);
  for (int64_t i = 0; i < out.numel(); ++i) {
    float v = dist(rng);
    if (std::fabs(v) < 1e-3f) v = 1e-3f + std::fabs(v);
    switch (t) {
      case DType::kF32: out.mutable_data<float>()[i] = v; break;
      case DType::kF16: out.mutable_data<uint16_t>()[i] = f32_to_f16(v); break;
      case DType::kBF16: out.mutable_data<uint16_t>()[i] = f32_to_bf16(v); break;
      case DType::kF64: out.mutable_data<double>()[i] = v; break;
      case DType::kI8: out.mutable_data<int8_t>()[i] = static_cast<int8_t>(std::lround(v)); break;
      case DType::kI16: out.mutable_data<int16_t>()[i] = static_cast<int16_t>(std::lround(v)); break;
      case DType::kI32: out.mutable_data<int32_t>()[i] = static_cast<int32_t>(std::lround(v)); break;
      case DType::kI64: out.mutable_data<int64_t>()[i] = std::lround(v); break;
      // Unsigned types take |v| (pass lo >= 0 for a plain range).
      case DType::kU8: out.mutable_data<uint8_t>()[i] = static_cast<uint8_t>(std::lround(std::fabs(v))); break;
      case DType::kU16: out.mutable_data<uint16_t>()[i] = static_cast<uint16_t>(std::lround(std::fabs(v))); break;
      case DType::kU32: out.mutable_data<uint32_t>()[i] = static_cast<uint32_t>(std::lround(std::fabs(v))); break;
      case DType::kU64: out.mutable_data<uint64_t>()[i] = static_cast<uint64_t>(std::lround(std::fabs(v))); break;
      case DType::kBool: out.mutable_data<uint8_t>()[i] = v > (lo + hi) / 2 ? 1 : 0; break;
      default: ADD_FAILURE() << "random_tensor: dtype " << dtype_name(t);
    }
  }
  return out;
}

inline cuda::DeviceBuffer upload(const Tensor& t) {
  auto buf = cuda::DeviceBuffer::allocate(t.nbytes() + 64);  // + slack for offset (misaligned) views
  EXPECT_TRUE(buf.is_ok()) << buf.status().to_string();
  EXPECT_TRUE(buf->copy_from_host(t.raw(), t.nbytes()).is_ok());
  return std::move(buf).value();
}

inline cuda::DeviceBuffer device_zeros(size_t bytes) {
  auto buf = cuda::DeviceBuffer::allocate(bytes + 64);
  EXPECT_TRUE(buf.is_ok()) << buf.status().to_string();
  EXPECT_EQ(cudaMemset(buf->data(), 0, bytes + 64), cudaSuccess);
  // cudaMemset may still be running on the legacy stream, which the tests'
  // non-blocking streams do not wait for.
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  return std::move(buf).value();
}

inline Tensor download(const void* device_ptr, DType t, std::vector<int64_t> dims) {
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  Tensor out(t, std::move(dims));
  if (out.nbytes() > 0)
    EXPECT_EQ(cudaMemcpy(out.mutable_raw(), device_ptr, out.nbytes(), cudaMemcpyDeviceToHost), cudaSuccess);
  return out;
}

// A one-node graph running `op` with `ins` as graph inputs (null tensors are
// omitted optional inputs); the values to feed it are appended to `values`.
// An op of another domain is named as the IR text does: "kiln.FusedMatMul".
inline std::unique_ptr<Graph> one_node_graph(const std::string& op, const std::vector<Tensor>& ins,
                                             std::map<std::string, Attribute> attrs, int num_outputs, int opset,
                                             std::vector<RunValue>& values) {
  auto g = std::make_unique<Graph>();
  const size_t dot = op.rfind('.');
  Node* node = dot == std::string::npos ? g->add_node(op) : g->add_node(op.substr(dot + 1), op.substr(0, dot));
  node->opset = opset;
  node->attrs = std::move(attrs);
  for (size_t i = 0; i < ins.size(); ++i) {
    if (!ins[i].is_valid()) {
      node->inputs.push_back(nullptr);
      continue;
    }
    Value* v = g->add_value("in" + std::to_string(i), Type::tensor(ins[i].dtype(), Shape::of(ins[i].dims())));
    g->inputs.push_back(v);
    node->inputs.push_back(v);
    values.push_back(RunValue::of(ins[i]));
  }
  for (int i = 0; i < num_outputs; ++i) {
    Value* v = g->add_value("out" + std::to_string(i));
    v->producer = node;
    v->producer_output = i;
    node->outputs.push_back(v);
    g->outputs.push_back(v);
  }
  return g;
}

// Runs `op` on the CPU backend (the reference); returns output `output`.
inline Tensor run_cpu(const std::string& op, const std::vector<Tensor>& ins,
                      std::map<std::string, Attribute> attrs = {}, size_t output = 0, int num_outputs = 1,
                      int opset = 28) {
  std::vector<RunValue> values;
  auto g = one_node_graph(op, ins, std::move(attrs), num_outputs, opset, values);
  auto out = run_graph_on_cpu(*g, std::move(values));
  EXPECT_TRUE(out.is_ok()) << op << " (cpu): " << out.status().to_string();
  if (!out.is_ok()) return {};
  return (*out)[output].tensor;
}

// Runs `op` through the CUDA backend's executor (upload, plan, kernel,
// download); returns output `output`. TF32 stays off unless asked for.
inline Tensor run_cuda(const std::string& op, const std::vector<Tensor>& ins,
                       std::map<std::string, Attribute> attrs = {}, size_t output = 0, int num_outputs = 1,
                       int opset = 28, bool allow_tf32 = false) {
  std::vector<RunValue> values;
  auto g = one_node_graph(op, ins, std::move(attrs), num_outputs, opset, values);
  cuda::RunOptions options;
  options.allow_tf32 = allow_tf32;
  auto out = cuda::run_graph_on_cuda(*g, std::move(values), options);
  EXPECT_TRUE(out.is_ok()) << op << " (cuda): " << out.status().to_string();
  if (!out.is_ok()) return {};
  return (*out)[output].tensor;
}

// fp32 1e-5 relative (1e-3 with TF32), fp16/bf16 1e-2; a small absolute term
// of the same size covers results that are near zero.
inline double tolerance_for(DType t, bool tf32 = false) {
  if (t == DType::kF16 || t == DType::kBF16) return 1e-2;
  return tf32 ? 1e-3 : 1e-5;
}

// Attention against the CPU oracle: online softmax sums keys in another
// order, and a score one ulp apart moves its probability by |score| ulps. In
// bf16 (8 bits) a score near 8 is 1/32 apart per ulp, so one output of a
// peaked row may be several percent off: ViT's 197 tokens gave 8% on 2 of
// 302592 elements (0.0078 on 0.092), the same on every tactic (H200).
inline double attention_tolerance(DType t) {
  if (t == DType::kF32) return 1e-4;
  if (t == DType::kF64) return 1e-10;
  return t == DType::kBF16 ? 6e-2 : 2e-2;
}

inline void expect_close(const Tensor& gpu, const Tensor& cpu, double rtol, const std::string& what) {
  ASSERT_TRUE(cpu.is_valid()) << what << ": no CPU result";
  ASSERT_EQ(gpu.dtype(), cpu.dtype()) << what;
  ASSERT_EQ(gpu.numel(), cpu.numel()) << what;
  int reported = 0;
  for (int64_t i = 0; i < cpu.numel(); ++i) {
    const double g = gpu.element_as_double(i), c = cpu.element_as_double(i);
    // Equal values pass (infinities included); NaN never does.
    const bool ok =
        !std::isnan(g) && !std::isnan(c) && (g == c || std::fabs(g - c) <= rtol * std::fabs(c) + rtol * 0.1);
    if (!ok && reported++ < 5) ADD_FAILURE() << what << ": element " << i << " gpu " << g << " cpu " << c;
  }
  EXPECT_EQ(reported, 0) << what << ": " << reported << " of " << cpu.numel() << " elements differ";
}

// |gpu - cpu| <= rtol * (|cpu| + scale), `scale` about the magnitude of a
// convolution's sum: a tactic that rounds the convolution to the dtype before
// its epilogue adds a residual or a bias leaves that rounding on results near
// zero. NaN never passes.
inline void expect_close_at_scale(const Tensor& gpu, const Tensor& cpu, double rtol, double scale,
                                  const std::string& what) {
  ASSERT_TRUE(cpu.is_valid() && gpu.is_valid()) << what;
  ASSERT_EQ(gpu.dtype(), cpu.dtype()) << what;
  ASSERT_EQ(gpu.numel(), cpu.numel()) << what;
  int bad = 0;
  for (int64_t e = 0; e < cpu.numel(); ++e) {
    const double g = gpu.element_as_double(e), c = cpu.element_as_double(e);
    if (!std::isnan(g) && std::fabs(g - c) <= rtol * (std::fabs(c) + scale)) continue;
    if (bad++ < 5) ADD_FAILURE() << what << ": element " << e << " gpu " << g << " cpu " << c;
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << cpu.numel() << " elements differ";
}

// kiln.FusedConv with `attrs`, pinned to `tactic` ("" is the default), on the
// GPU or the CPU reference; TF32 off unless asked for.
inline Tensor run_fused_conv(bool gpu, const std::vector<Tensor>& ins, const std::map<std::string, Attribute>& attrs,
                             const std::string& tactic, bool allow_tf32 = false) {
  std::vector<RunValue> values;
  auto g = one_node_graph("FusedConv", ins, attrs, 1, 1, values);
  Node& n = *g->nodes()[0];
  n.domain = "kiln";
  n.opset = 0;
  if (!tactic.empty()) n.metadata["kiln.tactic"] = tactic;
  cuda::RunOptions options;
  options.allow_tf32 = allow_tf32;
  auto out = gpu ? cuda::run_graph_on_cuda(*g, std::move(values), options) : run_graph_on_cpu(*g, std::move(values));
  EXPECT_TRUE(out.is_ok()) << (gpu ? "cuda: " : "cpu: ") << out.status().to_string();
  return out.is_ok() ? (*out)[0].tensor : Tensor();
}

// run_fused_conv with {channels_last=1}: X [N, H, W, C], W [M, KH, KW, C / group].
inline Tensor run_nhwc_fused_conv(bool gpu, const std::vector<Tensor>& ins, Attrs attrs, const std::string& tactic) {
  attrs["channels_last"] = i(1);
  return run_fused_conv(gpu, ins, attrs, tactic);
}

inline void expect_equal(const Tensor& gpu, const Tensor& cpu, const std::string& what) {
  ASSERT_TRUE(cpu.is_valid()) << what << ": no CPU result";
  ASSERT_EQ(gpu.dtype(), cpu.dtype()) << what;
  ASSERT_EQ(gpu.nbytes(), cpu.nbytes()) << what;
  EXPECT_EQ(std::memcmp(gpu.raw(), cpu.raw(), cpu.nbytes()), 0) << what;
}

inline const DType kFloatTypes[] = {DType::kF32, DType::kF16, DType::kBF16};

inline std::string shape_str(const std::vector<int64_t>& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? "," : "") + std::to_string(d[i]);
  return s + "]";
}

}  // namespace kiln::gpu_test
