// ai.onnx.ml ops on the GPU (kernels/ml.cu): Binarizer, ArrayFeatureExtractor
// and LabelEncoder with numeric keys and values (string ones stay on the
// CPU backend). ArrayFeatureExtractor reads its indices on the host, so an
// index out of range is the CPU kernel's error before anything is launched.
// LabelEncoder's keys are read from the attributes once per plan, the way
// the CPU kernel reads them: compared as doubles, the first of equal keys
// wins, a NaN key (the last one) matches NaN inputs.
#include "backends/cuda/kernels/ml.cuh"

#include <algorithm>
#include <cstring>

#include "backends/cpu/dtype_dispatch.h"
#include "backends/cuda/cuda_kernel.h"
#include "backends/cuda/ops/norm_op_util.h"
#include "ir/dtype.h"

namespace kiln::cuda {
namespace {

constexpr const char* kMl = "ai.onnx.ml";

// Numeric dtypes of whole bytes, at most 64 bits (the CPU's kNumericTypes).
bool is_plain_numeric(DType t) { return is_float(t) || is_integer(t); }

Status supports_numeric_input(const Node& node, const char* op) {
  const DType t = input_dtype(node, 0);
  if (t != DType::kUndefined && !is_plain_numeric(t))
    return unsupported("{}: input of dtype {} (the CUDA kernel takes numeric dtypes)", op, dtype_name(t));
  return Status::ok();
}

Status run_binarizer(KernelContext& ctx) {
  const DeviceTensor& x = ctx.input(0);
  BinarizerParams p;
  p.dtype = x.dtype, p.x = x.data, p.y = ctx.output(0).data, p.n = x.numel();
  p.threshold = ctx.node().attr_float("threshold", 0);
  return launch_binarizer(p, ctx.stream());
}

Status supports_array_feature_extractor(const Node& node) {
  const DType t = input_dtype(node, 0), i = input_dtype(node, 1);
  if (t == DType::kString || dtype_is_packed(t) || dtype_bits(t) > 128)
    return unsupported("ArrayFeatureExtractor: input of dtype {} (the CUDA kernel takes whole-byte elements)",
                       dtype_name(t));
  if (i != DType::kUndefined && i != DType::kI64 && i != DType::kI32)
    return unsupported("ArrayFeatureExtractor: indices of dtype {} (the CUDA kernel takes int64 or int32)",
                       dtype_name(i));
  return Status::ok();
}

Status run_array_feature_extractor(KernelContext& ctx) {
  const DeviceTensor &x = ctx.input(0), &y = ctx.output(0);
  const Tensor* host_idx = ctx.host_input(1);
  if (!host_idx) return internal_error("ArrayFeatureExtractor: the indices are not on the host");
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> idx, host_idx->to_i64_vector());
  if (x.rank() == 0) return invalid_argument("ArrayFeatureExtractor: X must have rank 1 or more");
  const int64_t f = x.dims.back();
  for (int64_t i : idx) {
    if (i < 0 || i >= f) return invalid_argument("ArrayFeatureExtractor: index {} is out of range [0, {})", i, f);
  }
  const DeviceTensor& indices = ctx.input(1);
  if (indices.dtype != DType::kI64 && indices.dtype != DType::kI32)
    return unsupported("ArrayFeatureExtractor: indices of dtype {}", dtype_name(indices.dtype));
  ArrayFeatureExtractorParams p;
  p.elem_size = static_cast<int>(dtype_bits(x.dtype) / 8);
  p.x = x.data, p.y = y.data;
  p.features = f;
  p.rows = f == 0 ? 0 : x.numel() / f;
  p.indices = indices.data, p.idx64 = indices.dtype == DType::kI64;
  p.num_indices = static_cast<int64_t>(idx.size());
  if (y.numel() != p.rows * p.num_indices)
    return internal_error("ArrayFeatureExtractor: output of {} elements for {} rows of {} indices", y.numel(), p.rows,
                          p.num_indices);
  return launch_array_feature_extractor(p, ctx.stream());
}

// A LabelEncoder attribute set (keys_* or values_*) as one tensor.
Expected<Tensor> label_tensor(const Node& n, const std::string& base) {
  if (const Attribute* a = n.attr(base + "_tensor")) return a->t;
  if (const Attribute* a = n.attr(base + "_floats"))
    return Tensor::from_vector<float>(DType::kF32, {static_cast<int64_t>(a->floats.size())}, a->floats);
  if (const Attribute* a = n.attr(base + "_int64s")) return Tensor::vector_i64(a->ints);
  if (n.attr(base + "_strings")) return Tensor(DType::kString, {0});
  return invalid_model("LabelEncoder: no {}_* attribute", base);
}

// The bits of the value for keys that are not found, as the CPU kernel
// chooses it: default_tensor when it has the values' dtype and one element,
// else default_int64 / default_float, else -0.0 (floats) or -1 (integers).
uint64_t label_default_bits(const Node& n, DType dt) {
  Tensor t(dt, {1});
  if (const Attribute* a = n.attr("default_tensor"); a && a->t.dtype() == dt && a->t.numel() == 1) {
    t = a->t.reshaped({1});
  } else {
    const double v = dt == DType::kI64   ? static_cast<double>(n.attr_int("default_int64", -1))
                     : dt == DType::kF32 ? static_cast<double>(n.attr_float("default_float", -0.0f))
                                         : (dtype_is_float(dt) ? -0.0 : -1.0);
    (void)visit_dtype(dt, kNumericTypes, [&]<typename T>() {
      t.mutable_data<T>()[0] = static_cast<T>(v);
      return Status::ok();
    });
  }
  uint64_t bits = 0;
  std::memcpy(&bits, t.raw(), static_cast<size_t>(dtype_bits(dt) / 8));
  return bits;
}

Status supports_label_encoder(const Node& node) {
  KILN_ASSIGN_OR_RETURN(Tensor keys, label_tensor(node, "keys"));
  KILN_ASSIGN_OR_RETURN(Tensor values, label_tensor(node, "values"));
  if (keys.dtype() == DType::kString || values.dtype() == DType::kString)
    return unsupported("LabelEncoder: string keys or values (the CUDA kernel maps numbers to numbers)");
  if (!is_plain_numeric(keys.dtype()))
    return unsupported("LabelEncoder: keys of dtype {} (the CUDA kernel takes numeric keys)", dtype_name(keys.dtype()));
  if (!is_plain_numeric(values.dtype()))
    return unsupported("LabelEncoder: values of dtype {} (the CUDA kernel takes numeric values)",
                       dtype_name(values.dtype()));
  return supports_numeric_input(node, "LabelEncoder");
}

// The node's keys as launches: sorted, distinct, NaN apart (ctx.state()).
struct LabelPlan {
  std::vector<LabelChunk> chunks;
  int value_size = 8;
};

Expected<LabelPlan> plan_label_encoder(const Node& n) {
  KILN_ASSIGN_OR_RETURN(Tensor keys, label_tensor(n, "keys"));
  KILN_ASSIGN_OR_RETURN(Tensor values, label_tensor(n, "values"));
  if (keys.numel() != values.numel())
    return invalid_model("LabelEncoder: {} keys but {} values", keys.numel(), values.numel());
  if (!is_plain_numeric(keys.dtype()) || !is_plain_numeric(values.dtype()))
    return unsupported("LabelEncoder: keys of dtype {} and values of dtype {} (the CUDA kernel takes numeric ones)",
                       dtype_name(keys.dtype()), dtype_name(values.dtype()));
  LabelPlan plan;
  plan.value_size = static_cast<int>(dtype_bits(values.dtype()) / 8);
  auto value_bits = [&](int64_t i) {
    uint64_t bits = 0;
    std::memcpy(&bits, static_cast<const char*>(values.raw()) + i * plan.value_size,
                static_cast<size_t>(plan.value_size));
    return bits;
  };
  LabelChunk head{};
  head.first = true;
  head.fallback = label_default_bits(n, values.dtype());
  // Keys in index order; the CPU's map keeps the first of equal keys and
  // the last NaN key.
  std::vector<std::pair<double, int64_t>> sorted;
  for (int64_t i = 0; i < keys.numel(); ++i) {
    const double k = keys.element_as_double(i);
    if (k != k) {
      head.has_nan = true, head.nan_value = value_bits(i);
    } else {
      sorted.emplace_back(k, i);
    }
  }
  std::stable_sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::pair<double, int64_t>> distinct;
  for (const auto& e : sorted)
    if (distinct.empty() || distinct.back().first != e.first) distinct.push_back(e);
  plan.chunks.push_back(head);
  for (size_t i = 0; i < distinct.size(); ++i) {
    if (plan.chunks.back().count == kLabelChunk) plan.chunks.push_back(LabelChunk{});
    LabelChunk& c = plan.chunks.back();
    c.keys[c.count] = distinct[i].first;
    c.values[c.count] = value_bits(distinct[i].second);
    ++c.count;
  }
  return plan;
}

Status run_label_encoder(KernelContext& ctx) {
  std::any& state = ctx.state();
  if (!state.has_value()) {
    KILN_ASSIGN_OR_RETURN(LabelPlan plan, plan_label_encoder(ctx.node()));
    state = std::move(plan);
  }
  const auto& plan = std::any_cast<const LabelPlan&>(state);
  const DeviceTensor &x = ctx.input(0), &y = ctx.output(0);
  if (static_cast<int>(dtype_bits(y.dtype) / 8) != plan.value_size)
    return internal_error("LabelEncoder: output dtype {} disagrees with the values", dtype_name(y.dtype));
  LabelEncoderParams p;
  p.x_dtype = x.dtype, p.x = x.data, p.y = y.data, p.n = x.numel();
  p.value_size = plan.value_size;
  for (const LabelChunk& c : plan.chunks) {
    KILN_RETURN_IF_ERROR(launch_label_encoder(p, c, ctx.stream()));
  }
  return Status::ok();
}

}  // namespace

KILN_CUDA_KERNEL(kMl, "Binarizer", {.run = run_binarizer, .supports = [](const Node& n) {
                                      return supports_numeric_input(n, "Binarizer");
                                    }});
KILN_CUDA_KERNEL(kMl, "ArrayFeatureExtractor",
                 {.run = run_array_feature_extractor,
                  .host_inputs = {1},
                  .supports = supports_array_feature_extractor});
KILN_CUDA_KERNEL(kMl, "LabelEncoder", {.run = run_label_encoder, .supports = supports_label_encoder});

}  // namespace kiln::cuda
