#include "backends/cuda/ops/cudnn_conv.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cfloat>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <utility>
#include <vector>

#include "backends/cuda/cuda_status.h"
#include "backends/cuda/cudnn_handle.h"

namespace kiln::cuda {

// Tensor unique ids in the operation graph and the variant pack.
constexpr int64_t kUidX = 1, kUidW = 2, kUidY = 3, kUidBias = 4, kUidZ = 5;
// The fused graph's virtual intermediates: the convolution, then each
// pointwise op's result but the last (which is Y).
constexpr int64_t kUidVirtual = 100;
// Every device pointer the executor and the tests hand out is at least
// 16-byte aligned; the kernel checks before running a plan.
constexpr int64_t kByteAlignment = 16;

namespace {

using cudnn_backend::create;
using cudnn_backend::Descriptor;
using cudnn_backend::finalize;
using cudnn_backend::set;
using cudnn_backend::set_descriptor;

cudnnDataType_t cudnn_type(DType t) {
  switch (t) {
    case DType::kF16: return CUDNN_DATA_HALF;
    case DType::kBF16: return CUDNN_DATA_BFLOAT16;
    default: return CUDNN_DATA_FLOAT;
  }
}

// The cuDNN spatial dims of a 3-slot geometry array: the last two (1-D runs
// as 2-D with a height of 1) or all three.
std::vector<int64_t> spatial_of(const int64_t (&a)[3], int spatial) {
  return spatial == 3 ? std::vector<int64_t>{a[0], a[1], a[2]} : std::vector<int64_t>{a[1], a[2]};
}

// dims are always [N, C, spatial...] (cuDNN's logical order); channels_last
// lays the tensor out as [N, spatial..., C] through the strides.
Expected<Descriptor> make_tensor(int64_t uid, cudnnDataType_t type, std::vector<int64_t> dims, bool is_virtual = false,
                                 bool channels_last = false) {
  KILN_ASSIGN_OR_RETURN(Descriptor t, create(CUDNN_BACKEND_TENSOR_DESCRIPTOR));
  std::vector<int64_t> strides(dims.size());
  int64_t stride = 1;
  if (channels_last && dims.size() >= 3) {
    strides[1] = 1;
    stride = dims[1];
    for (size_t i = dims.size(); i-- > 2;) {
      strides[i] = stride;
      stride *= dims[i];
    }
    strides[0] = stride;
  } else {
    for (size_t i = dims.size(); i-- > 0;) {
      strides[i] = stride;
      stride *= dims[i];
    }
  }
  const int64_t n = static_cast<int64_t>(dims.size());
  KILN_RETURN_IF_ERROR(set(t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type));
  KILN_RETURN_IF_ERROR(set(t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, n, dims.data()));
  KILN_RETURN_IF_ERROR(set(t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, n, strides.data()));
  KILN_RETURN_IF_ERROR(set(t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid));
  KILN_RETURN_IF_ERROR(set(t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &kByteAlignment));
  if (is_virtual) {
    KILN_RETURN_IF_ERROR(set(t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &is_virtual));
  }
  KILN_RETURN_IF_ERROR(finalize(t));
  return t;
}

std::vector<int64_t> concat(std::vector<int64_t> head, const std::vector<int64_t>& tail) {
  head.insert(head.end(), tail.begin(), tail.end());
  return head;
}

Expected<Descriptor> make_convolution(const CudnnConvSpec& s) {
  KILN_ASSIGN_OR_RETURN(Descriptor c, create(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR));
  const cudnnDataType_t compute = CUDNN_DATA_FLOAT;
  const cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  const int64_t nd = s.spatial == 3 ? 3 : 2;
  const std::vector<int64_t> dilations = spatial_of(s.g.dilation, s.spatial),
                             strides = spatial_of(s.g.stride, s.spatial), pre = spatial_of(s.g.pad_begin, s.spatial),
                             post = spatial_of(s.g.pad_end, s.spatial);
  KILN_RETURN_IF_ERROR(set(c, CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &compute));
  KILN_RETURN_IF_ERROR(set(c, CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode));
  KILN_RETURN_IF_ERROR(set(c, CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &nd));
  KILN_RETURN_IF_ERROR(set(c, CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, nd, dilations.data()));
  KILN_RETURN_IF_ERROR(set(c, CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, nd, strides.data()));
  KILN_RETURN_IF_ERROR(set(c, CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, nd, pre.data()));
  KILN_RETURN_IF_ERROR(set(c, CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, nd, post.data()));
  KILN_RETURN_IF_ERROR(finalize(c));
  return c;
}

// Whether an engine's numerics fit the rules: f16/bf16 accumulate in float;
// f32 stays full fp32 (no TF32 tensor cores, no down-converted inputs) unless
// the build allowed TF32; FFT engines are left out everywhere (their rounding
// error scales with the whole plane, not with one output's sum).
bool engine_allowed(const CudnnEngineTraits& traits, const CudnnConvSpec& s) {
  const bool strict_f32 = s.dtype == DType::kF32 && !s.allow_tf32;
  for (const cudnnBackendNumericalNote_t n : traits.numerical) {
    if (n == CUDNN_NUMERICAL_NOTE_FFT || n == CUDNN_NUMERICAL_NOTE_REDUCED_PRECISION_REDUCTION) return false;
    if (strict_f32 && (n == CUDNN_NUMERICAL_NOTE_TENSOR_CORE || n == CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS))
      return false;
  }
  return cudnn_engine_runs_as_is(traits);
}

}  // namespace

class CudnnConvPlan {
 public:
  // Descriptors the plan was built from, kept alive as long as the plan: its
  // own, and the graph's, which the plans of one enumeration share.
  std::vector<Descriptor> parts;
  std::shared_ptr<const std::vector<Descriptor>> graph_parts;
  Descriptor plan;
  int64_t workspace = 0;
};

size_t workspace_size(const CudnnConvPlan& plan) { return static_cast<size_t>(plan.workspace); }

std::string CudnnConvSpec::key() const {
  return fmt::format("{}|{}|{}|{}|{}|{},{},{},{}|{}|{}|{}|{}|{}|{}|{}|{}", dtype_name(dtype), transpose, allow_tf32,
                     accumulate, spatial, g.batch, g.in_channels, g.out_channels, g.group, fmt::join(g.in, ","),
                     fmt::join(g.out, ","), fmt::join(g.kernel, ","), fmt::join(g.stride, ","),
                     fmt::join(g.dilation, ","), fmt::join(g.pad_begin, ","), fmt::join(g.pad_end, ","),
                     workspace_limit) +
         fmt::format("|e{}|cfg{}|f{}{}{}{}:{}|nhwc{}", engine_index, config ? config->to_string() : "-", fused,
                     fused_bias, fused_residual, static_cast<int>(activation), clip_hi, channels_last);
}

namespace {

// One pointwise op of the fused epilogue, computed in float: out = mode(in, b)
// (b null for the unary activations).
Expected<Descriptor> make_pointwise(cudnnPointwiseMode_t mode, const CudnnConvSpec& s, const Descriptor& in,
                                    const Descriptor* b, const Descriptor& out, std::vector<Descriptor>& parts) {
  KILN_ASSIGN_OR_RETURN(Descriptor pw, create(CUDNN_BACKEND_POINTWISE_DESCRIPTOR));
  const cudnnDataType_t prec = CUDNN_DATA_FLOAT;
  KILN_RETURN_IF_ERROR(set(pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode));
  KILN_RETURN_IF_ERROR(set(pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &prec));
  if (mode == CUDNN_POINTWISE_RELU_FWD) {
    const float lower = 0.f, upper = s.activation == EpilogueActivation::kClip ? s.clip_hi : FLT_MAX;
    KILN_RETURN_IF_ERROR(set(pw, CUDNN_ATTR_POINTWISE_RELU_LOWER_CLIP, CUDNN_TYPE_FLOAT, 1, &lower));
    KILN_RETURN_IF_ERROR(set(pw, CUDNN_ATTR_POINTWISE_RELU_UPPER_CLIP, CUDNN_TYPE_FLOAT, 1, &upper));
  }
  if (mode == CUDNN_POINTWISE_SWISH_FWD) {
    const float beta = 1.f;  // x * sigmoid(beta * x)
    KILN_RETURN_IF_ERROR(set(pw, CUDNN_ATTR_POINTWISE_SWISH_BETA, CUDNN_TYPE_FLOAT, 1, &beta));
  }
  KILN_RETURN_IF_ERROR(finalize(pw));
  KILN_ASSIGN_OR_RETURN(Descriptor op, create(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR));
  KILN_RETURN_IF_ERROR(set_descriptor(op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, pw));
  KILN_RETURN_IF_ERROR(set_descriptor(op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, in));
  if (b) {
    KILN_RETURN_IF_ERROR(set_descriptor(op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, *b));
  }
  KILN_RETURN_IF_ERROR(set_descriptor(op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, out));
  KILN_RETURN_IF_ERROR(finalize(op));
  parts.push_back(std::move(pw));
  return op;
}

// The fused epilogue after the convolution's virtual result `conv_out`:
// bias add, residual add, activation, in that order, the last writing Y.
// Appends its operations to `ops`.
Status add_epilogue(const CudnnConvSpec& s, const Descriptor& conv_out, const std::vector<int64_t>& y_dims,
                    std::vector<Descriptor>& ops, std::vector<Descriptor>& parts) {
  struct Step {
    cudnnPointwiseMode_t mode;
    int64_t operand_uid;  // 0: unary
  };
  std::vector<Step> steps;
  if (s.fused_bias) steps.push_back({CUDNN_POINTWISE_ADD, kUidBias});
  if (s.fused_residual) steps.push_back({CUDNN_POINTWISE_ADD, kUidZ});
  switch (s.activation) {
    case EpilogueActivation::kRelu:
    case EpilogueActivation::kClip: steps.push_back({CUDNN_POINTWISE_RELU_FWD, 0}); break;
    case EpilogueActivation::kSigmoid: steps.push_back({CUDNN_POINTWISE_SIGMOID_FWD, 0}); break;
    case EpilogueActivation::kSilu: steps.push_back({CUDNN_POINTWISE_SWISH_FWD, 0}); break;
    default: break;
  }
  if (steps.empty()) return invalid_argument("cuDNN fused convolution without an epilogue");
  const cudnnDataType_t type = cudnn_type(s.dtype);
  std::vector<int64_t> bias_dims(y_dims.size(), 1);
  bias_dims[1] = y_dims[1];
  const Descriptor* in = &conv_out;
  std::vector<Descriptor> outs;
  outs.reserve(steps.size());  // `in` points into it
  for (size_t i = 0; i < steps.size(); ++i) {
    const bool last = i + 1 == steps.size();
    Descriptor operand;
    if (steps[i].operand_uid == kUidBias) {
      KILN_ASSIGN_OR_RETURN(operand, make_tensor(kUidBias, type, bias_dims, false, s.channels_last));
    } else if (steps[i].operand_uid == kUidZ) {
      KILN_ASSIGN_OR_RETURN(operand, make_tensor(kUidZ, type, y_dims, false, s.channels_last));
    }
    Descriptor out;
    if (last) {
      KILN_ASSIGN_OR_RETURN(out, make_tensor(kUidY, type, y_dims, false, s.channels_last));
    } else {
      KILN_ASSIGN_OR_RETURN(
          out, make_tensor(kUidVirtual + 1 + static_cast<int64_t>(i), CUDNN_DATA_FLOAT, y_dims, true, s.channels_last));
    }
    KILN_ASSIGN_OR_RETURN(Descriptor op,
                          make_pointwise(steps[i].mode, s, *in, operand.get() ? &operand : nullptr, out, parts));
    ops.push_back(std::move(op));
    if (operand.get()) parts.push_back(std::move(operand));
    outs.push_back(std::move(out));
    in = &outs.back();
  }
  for (Descriptor& d : outs) parts.push_back(std::move(d));
  return Status::ok();
}

// The operation graph of one convolution: X [N, C, in], W, Y [N, M, out];
// ConvTranspose is the backward data of the forward convolution from Y to X.
Expected<Descriptor> make_graph(cudnnHandle_t handle, const CudnnConvSpec& s, std::vector<Descriptor>& parts) {
  const cudnnDataType_t type = cudnn_type(s.dtype);
  const WindowGeometry& g = s.g;
  const std::vector<int64_t> w_head = s.transpose ? std::vector<int64_t>{g.in_channels, g.out_channels / g.group}
                                                  : std::vector<int64_t>{g.out_channels, g.in_channels / g.group};
  KILN_ASSIGN_OR_RETURN(
      Descriptor x,
      make_tensor(kUidX, type, concat({g.batch, g.in_channels}, spatial_of(g.in, s.spatial)), false, s.channels_last));
  KILN_ASSIGN_OR_RETURN(
      Descriptor w, make_tensor(kUidW, type, concat(w_head, spatial_of(g.kernel, s.spatial)), false, s.channels_last));
  const std::vector<int64_t> y_dims = concat({g.batch, g.out_channels}, spatial_of(g.out, s.spatial));
  const bool fused = s.fused && !s.transpose;
  KILN_ASSIGN_OR_RETURN(Descriptor y, fused ? make_tensor(kUidVirtual, CUDNN_DATA_FLOAT, y_dims, true, s.channels_last)
                                            : make_tensor(kUidY, type, y_dims, false, s.channels_last));
  KILN_ASSIGN_OR_RETURN(Descriptor conv, make_convolution(s));
  const float alpha = 1.f, beta = s.accumulate ? 1.f : 0.f;
  Descriptor op;
  if (s.transpose) {
    KILN_ASSIGN_OR_RETURN(op, create(CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR));
    KILN_RETURN_IF_ERROR(set_descriptor(op, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DX, y));
    KILN_RETURN_IF_ERROR(set_descriptor(op, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_W, w));
    KILN_RETURN_IF_ERROR(set_descriptor(op, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DY, x));
    KILN_RETURN_IF_ERROR(set_descriptor(op, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_CONV_DESC, conv));
    KILN_RETURN_IF_ERROR(set(op, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_ALPHA, CUDNN_TYPE_FLOAT, 1, &alpha));
    KILN_RETURN_IF_ERROR(set(op, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_BETA, CUDNN_TYPE_FLOAT, 1, &beta));
  } else {
    KILN_ASSIGN_OR_RETURN(op, create(CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR));
    KILN_RETURN_IF_ERROR(set_descriptor(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, x));
    KILN_RETURN_IF_ERROR(set_descriptor(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, w));
    KILN_RETURN_IF_ERROR(set_descriptor(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, y));
    KILN_RETURN_IF_ERROR(set_descriptor(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC, conv));
    KILN_RETURN_IF_ERROR(set(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_TYPE_FLOAT, 1, &alpha));
    KILN_RETURN_IF_ERROR(set(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, CUDNN_TYPE_FLOAT, 1, &beta));
  }
  KILN_RETURN_IF_ERROR(finalize(op));
  std::vector<Descriptor> ops;
  ops.push_back(std::move(op));
  if (fused) {
    KILN_RETURN_IF_ERROR(add_epilogue(s, y, y_dims, ops, parts));
  }
  KILN_ASSIGN_OR_RETURN(Descriptor graph, create(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR));
  std::vector<cudnnBackendDescriptor_t> raw;
  for (const Descriptor& o : ops) raw.push_back(o.get());
  KILN_RETURN_IF_ERROR(set(graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                           static_cast<int64_t>(raw.size()), raw.data()));
  KILN_RETURN_IF_ERROR(set(graph, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle));
  KILN_RETURN_IF_ERROR(finalize(graph));
  for (Descriptor* d : {&x, &w, &y, &conv}) parts.push_back(std::move(*d));
  for (Descriptor& o : ops) parts.push_back(std::move(o));
  return graph;
}

// The plan of one engine config, or null when the numerics rules or the
// workspace limit rule it out or the engine declines the problem. The plan
// keeps the config and `keep` (descriptors the config refers to).
Expected<std::shared_ptr<CudnnConvPlan>> try_config(cudnnHandle_t handle, const CudnnConvSpec& s, Descriptor& config,
                                                    const CudnnEngineTraits& traits,
                                                    std::vector<Descriptor> keep = {}) {
  if (!engine_allowed(traits, s)) return std::shared_ptr<CudnnConvPlan>();
  KILN_ASSIGN_OR_RETURN(Descriptor plan, create(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR));
  KILN_RETURN_IF_ERROR(set(plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle));
  KILN_RETURN_IF_ERROR(set_descriptor(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, config));
  if (cudnnBackendFinalize(plan.get()) != CUDNN_STATUS_SUCCESS) return std::shared_ptr<CudnnConvPlan>();
  int64_t workspace = 0, count = 0;
  KILN_CUDA_RETURN_IF_ERROR(cudnnBackendGetAttribute(plan.get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE,
                                                     CUDNN_TYPE_INT64, 1, &count, &workspace));
  if (workspace < 0 || static_cast<size_t>(workspace) > s.workspace_limit) return std::shared_ptr<CudnnConvPlan>();
  auto result = std::make_shared<CudnnConvPlan>();
  result->plan = std::move(plan);
  result->workspace = workspace;
  result->parts.push_back(std::move(config));
  for (Descriptor& d : keep) result->parts.push_back(std::move(d));
  return result;
}

struct UsablePlan {
  std::shared_ptr<CudnnConvPlan> plan;
  CudnnEngineCandidate candidate;
};

// The usable plans of the spec's graph in tactic order, as
// cudnn_conv_engine_candidates lists them (a config whose queries fail is
// passed over like one that declines): one graph and one pass over the
// lists, so each config is finalized once.
std::vector<UsablePlan> search_plans(cudnnHandle_t handle, const CudnnConvSpec& s, size_t limit, bool exhaustive) {
  std::vector<UsablePlan> plans;
  auto parts = std::make_shared<std::vector<Descriptor>>();
  Expected<Descriptor> graph = make_graph(handle, s, *parts);
  if (!graph.is_ok()) return plans;
  size_t listed = 0;           // usable configs of the heuristic list so far
  std::set<std::string> seen;  // ids of the configs tried
  // The heuristic list keeps cuDNN's order, repeats included (the i of
  // "cudnn:<i>"); the exhaustive extras need an id (their tactic's name) and
  // are tried once each.
  auto consider = [&](Descriptor& config, CudnnEngineSource source, std::vector<Descriptor> keep = {}) {
    Expected<CudnnEngineTraits> traits = cudnn_engine_traits(config);
    if (!traits.is_ok()) return;
    const bool in_list =
        listed < limit && (source == CudnnEngineSource::kHeuristicA || source == CudnnEngineSource::kFallback);
    const bool named = traits->id.engine >= 0;
    const bool fresh = named && seen.insert(traits->id.to_string()).second;
    if (!in_list && !fresh) return;
    Expected<std::shared_ptr<CudnnConvPlan>> plan = try_config(handle, s, config, *traits, std::move(keep));
    if (!plan.is_ok() || !*plan) return;
    UsablePlan u;
    u.candidate.id = traits->id;
    u.candidate.source = source;
    u.candidate.workspace = static_cast<size_t>((*plan)->workspace);
    u.candidate.heuristic_index = in_list ? static_cast<int>(listed++) : -1;
    u.plan = std::move(plan).value();
    plans.push_back(std::move(u));
  };
  for (cudnnBackendHeurMode_t mode : {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK}) {
    if (listed >= limit && !exhaustive) break;
    Expected<std::vector<Descriptor>> configs = cudnn_heuristic_configs(*graph, mode);
    if (!configs.is_ok()) continue;  // mode A may not know the problem; the fallback list may
    const CudnnEngineSource source =
        mode == CUDNN_HEUR_MODE_A ? CudnnEngineSource::kHeuristicA : CudnnEngineSource::kFallback;
    for (Descriptor& config : *configs) {
      if (listed >= limit && !exhaustive) break;
      consider(config, source);
    }
  }
  if (exhaustive) {
    if (Expected<std::vector<Descriptor>> configs = cudnn_heuristic_configs(*graph, CUDNN_HEUR_MODE_B);
        configs.is_ok()) {
      for (Descriptor& config : *configs) consider(config, CudnnEngineSource::kHeuristicB);
    }
    const Expected<int64_t> count = cudnn_engine_global_count(*graph);
    for (int64_t engine = 0; count.is_ok() && engine < *count; ++engine) {
      // Most engines decline any one graph, here or when the plan finalizes.
      Expected<CudnnOwnedConfig> owned = cudnn_engine_config(*graph, CudnnEngineConfigId{engine, {}});
      if (owned.is_ok()) consider(owned->config, CudnnEngineSource::kGlobalIndex, std::move(owned->parts));
    }
  }
  parts->push_back(std::move(graph).value());
  for (const UsablePlan& u : plans) u.plan->graph_parts = parts;
  return plans;
}

// The plan of the config spec.config names, null where it is not usable.
std::shared_ptr<const CudnnConvPlan> plan_of_config(cudnnHandle_t handle, const CudnnConvSpec& s) {
  auto parts = std::make_shared<std::vector<Descriptor>>();
  Expected<Descriptor> graph = make_graph(handle, s, *parts);
  if (!graph.is_ok()) return nullptr;
  Expected<CudnnOwnedConfig> owned = cudnn_engine_config(*graph, *s.config);
  if (!owned.is_ok()) return nullptr;
  Expected<CudnnEngineTraits> traits = cudnn_engine_traits(owned->config);
  if (!traits.is_ok()) return nullptr;
  Expected<std::shared_ptr<CudnnConvPlan>> plan =
      try_config(handle, s, owned->config, *traits, std::move(owned->parts));
  if (!plan.is_ok() || !*plan) return nullptr;
  parts->push_back(std::move(graph).value());
  (*plan)->graph_parts = parts;
  return std::move(plan).value();
}

}  // namespace

std::shared_ptr<const CudnnConvPlan> cudnn_conv_plan(const CudnnConvSpec& spec) {
  return CudnnPlanCache<CudnnConvPlan>::instance().get(spec.key(), [&](cudnnHandle_t handle) {
    if (spec.config) return plan_of_config(handle, spec);
    // Engine i is the last of the first i + 1 usable ones.
    const auto index = static_cast<size_t>(std::max(0, spec.engine_index));
    std::vector<UsablePlan> plans = search_plans(handle, spec, index + 1, false);
    return plans.size() > index ? std::shared_ptr<const CudnnConvPlan>(plans.back().plan) : nullptr;
  });
}

std::vector<CudnnEngineCandidate> cudnn_conv_engine_candidates(CudnnConvSpec spec, size_t heuristic_limit,
                                                               bool exhaustive) {
  std::vector<CudnnEngineCandidate> out;
  if (heuristic_limit == 0 && !exhaustive) return out;
  CudnnPlanCache<CudnnConvPlan>::instance().fill([&](cudnnHandle_t handle, const auto& put) {
    std::vector<UsablePlan> plans = search_plans(handle, spec, heuristic_limit, exhaustive);
    size_t listed = 0;
    for (UsablePlan& u : plans) {
      use_cudnn_engine(u.candidate.choice(), spec);
      listed += u.candidate.heuristic_index >= 0 ? 1 : 0;
      put(spec.key(), std::move(u.plan));
      out.push_back(std::move(u.candidate));
    }
    if (listed < heuristic_limit) {  // the first index with no plan, as cudnn_conv_plan would cache it
      use_cudnn_engine({static_cast<int>(listed), std::nullopt}, spec);
      put(spec.key(), nullptr);
    }
  });
  return out;
}

int cudnn_conv_engine_count(CudnnConvSpec spec, int limit) {
  if (limit <= 0) return 0;
  return static_cast<int>(cudnn_conv_engine_candidates(std::move(spec), static_cast<size_t>(limit), false).size());
}

void use_cudnn_engine(const CudnnEngineChoice& choice, CudnnConvSpec& spec) {
  spec.engine_index = choice.index;
  spec.config = choice.config;
}

std::optional<CudnnEngineChoice> parse_cudnn_tactic(std::string_view tactic, std::string_view family) {
  if (tactic.substr(0, family.size()) != family) return std::nullopt;
  std::string_view rest = tactic.substr(family.size());
  constexpr std::string_view kAll = "_all:";
  if (rest.substr(0, kAll.size()) == kAll) {
    std::optional<CudnnEngineConfigId> id = parse_cudnn_engine_config(rest.substr(kAll.size()));
    if (!id) return std::nullopt;
    return CudnnEngineChoice{0, std::move(id)};
  }
  if (rest.substr(0, 1) != ":") return std::nullopt;
  // As the index has always been read: what is not a number, or is
  // negative, is the first.
  const int i = std::atoi(std::string(rest.substr(1)).c_str());
  return CudnnEngineChoice{std::max(0, i), std::nullopt};
}

std::string cudnn_config_tactic(std::string_view family, const CudnnEngineConfigId& id) {
  return fmt::format("{}_all:{}", family, id.to_string());
}

std::string cudnn_candidate_tactic(std::string_view family, const CudnnEngineCandidate& c) {
  if (c.heuristic_index >= 0) return fmt::format("{}:{}", family, c.heuristic_index);
  return cudnn_config_tactic(family, c.id);
}

void select_cudnn_engine(std::string_view tactic, std::string_view family, CudnnConvSpec& spec) {
  use_cudnn_engine(parse_cudnn_tactic(tactic, family).value_or(CudnnEngineChoice{}), spec);
}

Status execute_cudnn_conv(cudnnHandle_t handle, cudaStream_t stream, const CudnnConvPlan& plan, const void* x,
                          const void* w, void* y, void* workspace, const void* bias, const void* z) {
  KILN_CUDA_RETURN_IF_ERROR(cudnnSetStream(handle, stream));
  KILN_ASSIGN_OR_RETURN(Descriptor pack, create(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR));
  std::vector<int64_t> uids = {kUidX, kUidW, kUidY};
  std::vector<void*> pointers = {const_cast<void*>(x), const_cast<void*>(w), y};
  if (bias) uids.push_back(kUidBias), pointers.push_back(const_cast<void*>(bias));
  if (z) uids.push_back(kUidZ), pointers.push_back(const_cast<void*>(z));
  const auto n = static_cast<int64_t>(uids.size());
  KILN_RETURN_IF_ERROR(set(pack, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids.data()));
  KILN_RETURN_IF_ERROR(set(pack, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, pointers.data()));
  KILN_RETURN_IF_ERROR(set(pack, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace));
  KILN_RETURN_IF_ERROR(finalize(pack));
  KILN_CUDA_RETURN_IF_ERROR(cudnnBackendExecute(handle, plan.plan.get(), pack.get()));
  return Status::ok();
}

}  // namespace kiln::cuda
