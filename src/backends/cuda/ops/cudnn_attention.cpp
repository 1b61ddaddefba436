// The only translation unit that includes the cuDNN frontend (heavy headers):
// cmake/Cuda.cmake defines KILN_HAVE_CUDNN_FRONTEND for this file alone when
// the frontend's headers are found (scripts/install_deps.sh puts them in
// .deps/cudnn_frontend/include).
#include "backends/cuda/ops/cudnn_attention.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <initializer_list>
#include <map>
#include <mutex>
#include <utility>

#include "backends/cuda/cuda_status.h"
#include "backends/cuda/cudnn_handle.h"

#if KILN_HAVE_CUDNN_FRONTEND
#include <cudnn_frontend.h>

#include <exception>
#include <unordered_map>
#endif

namespace kiln::cuda {
namespace {

// Row-major strides of `dims`.
std::array<int64_t, 4> dense_strides(const std::array<int64_t, 4>& dims) {
  std::array<int64_t, 4> s{};
  int64_t stride = 1;
  for (size_t i = 4; i-- > 0;) {
    s[i] = stride;
    stride *= dims[i];
  }
  return s;
}

// [B, H, S, D] as kiln lays it out: BHSD (4-D) or packed (B, S, H*D) (3-D).
std::array<int64_t, 4> layout_strides(bool packed, int64_t heads, int64_t len, int64_t head) {
  if (packed) return {len * heads * head, head, heads * head, 1};
  return {heads * len * head, len * head, head, 1};
}

bool given(const Node& n, size_t i) { return i < n.inputs.size() && n.inputs[i] != nullptr; }

}  // namespace

std::string CudnnSdpaSpec::key() const {
  return fmt::format("{}|{},{},{},{},{},{}|q{}|k{}|v{}|o{}|s{}|c{}|b{}:{}:{}:{}|w{}", dtype_name(dtype), batch, q_heads,
                     kv_heads, q_len, kv_len, head, fmt::join(q_strides, ","), fmt::join(k_strides, ","),
                     fmt::join(v_strides, ","), fmt::join(o_strides, ","), scale, causal, has_bias,
                     dtype_name(bias_dtype), fmt::join(bias_dims, ","), fmt::join(bias_strides, ","), workspace_limit);
}

std::optional<CudnnSdpaSpec> cudnn_sdpa_spec(const Node& node, DType dtype, const std::vector<int64_t>& q,
                                             const std::vector<int64_t>& k, const std::vector<int64_t>& v,
                                             DType mask_dtype, const std::vector<int64_t>* mask,
                                             size_t workspace_limit) {
  if (dtype != DType::kF16 && dtype != DType::kBF16) return std::nullopt;
  // No KV cache in or out, no nonpad_kv_seqlen, no qk_matmul_output.
  if (given(node, 4) || given(node, 5) || given(node, 6)) return std::nullopt;
  for (size_t i = 1; i < node.outputs.size(); ++i)
    if (node.outputs[i]) return std::nullopt;
  if (node.attr_float("softcap", 0.0f) != 0.0f) return std::nullopt;
  if (node.attr_int("left_window_size", -1) >= 0 || node.attr_int("right_window_size", -1) >= 0) return std::nullopt;
  if (q.size() != k.size() || q.size() != v.size() || (q.size() != 3 && q.size() != 4)) return std::nullopt;

  CudnnSdpaSpec s;
  s.dtype = dtype;
  s.workspace_limit = workspace_limit;
  const bool packed = q.size() == 3;
  int64_t v_head = 0;
  s.batch = q[0];
  if (packed) {
    s.q_heads = node.attr_int("q_num_heads", 0);
    s.kv_heads = node.attr_int("kv_num_heads", 0);
    if (s.q_heads <= 0 || s.kv_heads <= 0 || q[2] % s.q_heads || k[2] % s.kv_heads || v[2] % s.kv_heads)
      return std::nullopt;
    s.q_len = q[1], s.kv_len = k[1], s.head = q[2] / s.q_heads, v_head = v[2] / s.kv_heads;
    if (k != std::vector<int64_t>{s.batch, s.kv_len, s.kv_heads * s.head} || v[0] != s.batch || v[1] != s.kv_len)
      return std::nullopt;
  } else {
    s.q_heads = q[1], s.q_len = q[2], s.head = q[3];
    s.kv_heads = k[1], s.kv_len = k[2], v_head = v[3];
    if (k != std::vector<int64_t>{s.batch, s.kv_heads, s.kv_len, s.head} || v[0] != s.batch || v[1] != s.kv_heads ||
        v[2] != s.kv_len)
      return std::nullopt;
  }
  if (s.batch <= 0 || s.q_len <= 0 || s.kv_len <= 0 || s.kv_heads <= 0 || s.q_heads % s.kv_heads != 0)
    return std::nullopt;
  if (s.head != v_head || s.head % 8 != 0 || s.head <= 0 || s.head > 128) return std::nullopt;
  s.causal = node.attr_int("is_causal", 0) != 0;
  if (s.causal && s.q_len != s.kv_len) return std::nullopt;  // cuDNN's top-left diagonal is kiln's only then
  s.scale = node.has_attr("scale") ? node.attr_float("scale", 1.0f)
                                   : static_cast<float>(1.0 / std::sqrt(static_cast<double>(s.head)));
  s.q_strides = layout_strides(packed, s.q_heads, s.q_len, s.head);
  s.k_strides = layout_strides(packed, s.kv_heads, s.kv_len, s.head);
  s.v_strides = layout_strides(packed, s.kv_heads, s.kv_len, s.head);
  s.o_strides = layout_strides(packed, s.q_heads, s.q_len, s.head);

  if (mask) {
    // A float attn_mask over all keys, broadcast (right-aligned) to (B, Hq, Sq, Skv).
    if (mask_dtype != DType::kF16 && mask_dtype != DType::kBF16 && mask_dtype != DType::kF32) return std::nullopt;
    const std::vector<int64_t>& m = *mask;
    if (m.empty() || m.size() > 4 || m.back() != s.kv_len) return std::nullopt;
    const std::array<int64_t, 4> target = {s.batch, s.q_heads, s.q_len, s.kv_len};
    s.bias_dims = {1, 1, 1, 1};
    for (size_t a = 0; a < m.size(); ++a) {
      const size_t axis = 4 - m.size() + a;
      if (m[a] != 1 && m[a] != target[axis]) return std::nullopt;
      s.bias_dims[axis] = m[a];
    }
    s.has_bias = true;
    s.bias_dtype = mask_dtype;
    s.bias_strides = dense_strides(s.bias_dims);
  }
  return s;
}

void use_packed_qkv_rows(CudnnSdpaSpec& spec, int64_t row) {
  for (std::array<int64_t, 4>* s : {&spec.q_strides, &spec.k_strides, &spec.v_strides})
    *s = {spec.q_len * row, spec.head, row, 1};
}

#if KILN_HAVE_CUDNN_FRONTEND

namespace fe = cudnn_frontend;

// Tensor unique ids in the graph and the variant pack.
constexpr int64_t kUidQ = 1, kUidK = 2, kUidV = 3, kUidBias = 4, kUidO = 5;

class CudnnSdpaPlan {
 public:
  std::shared_ptr<fe::graph::Graph> graph;
  int64_t workspace = 0;
  bool has_bias = false;
};

namespace {

fe::DataType_t fe_type(DType t) {
  switch (t) {
    case DType::kF16: return fe::DataType_t::HALF;
    case DType::kBF16: return fe::DataType_t::BFLOAT16;
    default: return fe::DataType_t::FLOAT;
  }
}

std::vector<int64_t> vec(const std::array<int64_t, 4>& a) { return {a.begin(), a.end()}; }

Status fe_status(fe::error_t e, const char* step) {
  if (e.is_good()) return Status::ok();
  return unsupported("cuDNN SDPA {}: {}", step, e.get_message());
}

// The graph of one attention, built for `handle`'s device: validated, lowered
// to a backend operation graph, engines from heuristics mode A then the
// fallback list, the first that is supported within the workspace limit.
// `expand_bias` gives a bias broadcast over queries its full Sq extent with
// stride 0 (for engines that take no Sq of 1).
Expected<std::shared_ptr<CudnnSdpaPlan>> build_plan(cudnnHandle_t handle, const CudnnSdpaSpec& s, bool expand_bias) {
  auto graph = std::make_shared<fe::graph::Graph>();
  graph->set_io_data_type(fe_type(s.dtype))
      .set_intermediate_data_type(fe::DataType_t::FLOAT)
      .set_compute_data_type(fe::DataType_t::FLOAT);
  auto tensor = [&](const char* name, int64_t uid, std::vector<int64_t> dims, std::vector<int64_t> strides,
                    DType type) {
    return graph->tensor(fe::graph::Tensor_attributes()
                             .set_name(name)
                             .set_uid(uid)
                             .set_dim(std::move(dims))
                             .set_stride(std::move(strides))
                             .set_data_type(fe_type(type)));
  };
  auto q = tensor("Q", kUidQ, {s.batch, s.q_heads, s.q_len, s.head}, vec(s.q_strides), s.dtype);
  auto k = tensor("K", kUidK, {s.batch, s.kv_heads, s.kv_len, s.head}, vec(s.k_strides), s.dtype);
  auto v = tensor("V", kUidV, {s.batch, s.kv_heads, s.kv_len, s.head}, vec(s.v_strides), s.dtype);
  fe::graph::SDPA_attributes attrs;
  attrs.set_name("kiln_attention").set_generate_stats(false).set_attn_scale(s.scale);
  if (s.causal) {
    attrs.set_diagonal_alignment(fe::DiagonalAlignment_t::TOP_LEFT).set_diagonal_band_right_bound(0);
  }
  if (s.has_bias) {
    std::vector<int64_t> dims = vec(s.bias_dims), strides = vec(s.bias_strides);
    if (expand_bias && dims[2] == 1) dims[2] = s.q_len, strides[2] = 0;
    attrs.set_bias(tensor("bias", kUidBias, std::move(dims), std::move(strides), s.bias_dtype));
  }
  auto [o, stats] = graph->sdpa(q, k, v, std::move(attrs));
  (void)stats;
  o->set_output(true)
      .set_uid(kUidO)
      .set_dim({s.batch, s.q_heads, s.q_len, s.head})
      .set_stride(vec(s.o_strides))
      .set_data_type(fe_type(s.dtype));

  KILN_RETURN_IF_ERROR(fe_status(graph->validate(), "validate"));
  KILN_RETURN_IF_ERROR(fe_status(graph->build_operation_graph(handle), "build_operation_graph"));
  KILN_RETURN_IF_ERROR(fe_status(graph->create_execution_plans({fe::HeurMode_t::A, fe::HeurMode_t::FALLBACK}),
                                 "create_execution_plans"));
  graph->deselect_workspace_greater_than(static_cast<int64_t>(std::min<size_t>(s.workspace_limit, INT64_MAX)));
  KILN_RETURN_IF_ERROR(fe_status(graph->check_support(), "check_support"));
  KILN_RETURN_IF_ERROR(fe_status(graph->build_plans(fe::BuildPlanPolicy_t::HEURISTICS_CHOICE), "build_plans"));
  auto plan = std::make_shared<CudnnSdpaPlan>();
  KILN_RETURN_IF_ERROR(fe_status(graph->get_workspace_size(plan->workspace), "get_workspace_size"));
  if (plan->workspace < 0 || static_cast<size_t>(plan->workspace) > s.workspace_limit)
    return unsupported("cuDNN SDPA: workspace of {} bytes over the limit of {}", plan->workspace, s.workspace_limit);
  plan->graph = std::move(graph);
  plan->has_bias = s.has_bias;
  return plan;
}

// build_plan, then with the bias expanded where that may help; the frontend's
// exceptions (a missing symbol, a bad allocation) decline the spec too.
std::shared_ptr<CudnnSdpaPlan> try_build(cudnnHandle_t handle, const CudnnSdpaSpec& s) {
  try {
    Expected<std::shared_ptr<CudnnSdpaPlan>> plan = build_plan(handle, s, false);
    if (plan.is_ok()) return std::move(plan).value();
    if (!s.has_bias || s.bias_dims[2] != 1 || s.q_len == 1) return nullptr;
    plan = build_plan(handle, s, true);
    return plan.is_ok() ? std::move(plan).value() : nullptr;
  } catch (const std::exception&) {
    return nullptr;
  }
}

}  // namespace

bool cudnn_sdpa_compiled() { return true; }

std::shared_ptr<const CudnnSdpaPlan> cudnn_sdpa_plan(const CudnnSdpaSpec& spec) {
  return CudnnPlanCache<CudnnSdpaPlan>::instance().get(spec.key(),
                                                       [&](cudnnHandle_t handle) { return try_build(handle, spec); });
}

size_t workspace_size(const CudnnSdpaPlan& plan) { return static_cast<size_t>(plan.workspace); }

Status execute_cudnn_sdpa(cudnnHandle_t handle, cudaStream_t stream, const CudnnSdpaPlan& plan, const void* q,
                          const void* k, const void* v, const void* bias, void* o, void* workspace) {
  if ((bias != nullptr) != plan.has_bias)
    return internal_error("cuDNN SDPA: the plan {} a bias", plan.has_bias ? "needs" : "takes no");
  KILN_CUDA_RETURN_IF_ERROR(cudnnSetStream(handle, stream));
  std::unordered_map<int64_t, void*> pack = {
      {kUidQ, const_cast<void*>(q)}, {kUidK, const_cast<void*>(k)}, {kUidV, const_cast<void*>(v)}, {kUidO, o}};
  if (bias) pack.emplace(kUidBias, const_cast<void*>(bias));
  fe::error_t e = plan.graph->execute(handle, pack, workspace);
  if (e.is_bad()) return internal_error("cuDNN SDPA execute: {}", e.get_message());
  return Status::ok();
}

#else  // !KILN_HAVE_CUDNN_FRONTEND

class CudnnSdpaPlan {};

bool cudnn_sdpa_compiled() { return false; }

std::shared_ptr<const CudnnSdpaPlan> cudnn_sdpa_plan(const CudnnSdpaSpec&) { return nullptr; }

size_t workspace_size(const CudnnSdpaPlan&) { return 0; }

Status execute_cudnn_sdpa(cudnnHandle_t, cudaStream_t, const CudnnSdpaPlan&, const void*, const void*, const void*,
                          const void*, void*, void*) {
  return unsupported("cuDNN SDPA: kiln was built without the cuDNN frontend");
}

#endif  // KILN_HAVE_CUDNN_FRONTEND

}  // namespace kiln::cuda
