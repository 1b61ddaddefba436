// One of the two translation units that include the cuDNN frontend (heavy
// headers, with ops/cudnn_attention.cpp): cmake/Cuda.cmake defines
// KILN_HAVE_CUDNN_FRONTEND for these files alone when the frontend's headers
// are found (scripts/install_deps.sh puts them in .deps/cudnn_frontend/include).
#include "backends/cuda/ops/cudnn_matmul.h"

#include <fmt/format.h>

#include <algorithm>
#include <cfloat>
#include <utility>

#include "backends/cuda/cuda_status.h"
#include "backends/cuda/cudnn_handle.h"
#include "backends/cuda/ops/matmul_plan.h"

#if KILN_HAVE_CUDNN_FRONTEND
#include <cudnn_frontend.h>

#include <exception>
#include <mutex>
#include <unordered_map>
#endif

namespace kiln::cuda {

namespace {

// The spec less its engine index: the product whose engine configs are numbered.
std::string product_key(const CudnnMatmulSpec& s) {
  return fmt::format("{}|{},{},{},{}|b{}|bias{}|act{}|w{}", dtype_name(s.dtype), s.batch, s.m, s.n, s.k, s.b_batched,
                     s.has_bias, static_cast<int>(s.activation), s.workspace_limit);
}

}  // namespace

std::string CudnnMatmulSpec::key() const { return product_key(*this) + fmt::format("|e{}", engine_index); }

std::optional<CudnnMatmulSpec> cudnn_matmul_spec(DType dtype, const std::vector<int64_t>& a,
                                                 const std::vector<int64_t>& b, bool has_bias,
                                                 BiasActivation activation, size_t workspace_limit) {
  if (dtype != DType::kF16 && dtype != DType::kBF16) return std::nullopt;
  Expected<BatchedProduct> bp = plan_product(a, b, "FusedMatMul");
  if (!bp.is_ok() || bp->m <= 0 || bp->n <= 0 || bp->k <= 0 || bp->batch_count() <= 0) return std::nullopt;
  // The batching cuBLASLt takes in one call: each operand has every batch or
  // is one matrix for all.
  const std::optional<MatmulShape> one_call = single_call_shape(*bp, dtype, false);
  if (!one_call) return std::nullopt;
  CudnnMatmulSpec s;
  s.dtype = dtype;
  s.m = bp->m, s.n = bp->n, s.k = bp->k;
  s.has_bias = has_bias;
  s.activation = activation;
  s.workspace_limit = workspace_limit;
  const int64_t batch = one_call->batch;
  if (batch == 1 || (one_call->stride_b == 0 && one_call->stride_a != 0)) {
    s.m *= batch;  // A contiguous over the batch, B shared: one [batch * m, k] @ [k, n]
  } else if (one_call->stride_a != 0 && one_call->stride_b != 0) {
    s.batch = batch;
    s.b_batched = true;
  } else {
    return std::nullopt;  // one A for every B: not a single cuDNN matmul of this form
  }
  return s;
}

std::optional<int> cudnn_matmul_tactic_index(const std::string& tactic) {
  constexpr std::string_view prefix = "cudnn:";
  if (tactic.size() <= prefix.size() || tactic.size() > prefix.size() + 6 || tactic.rfind(prefix, 0) != 0)
    return std::nullopt;
  int index = 0;
  for (size_t i = prefix.size(); i < tactic.size(); ++i) {
    if (tactic[i] < '0' || tactic[i] > '9') return std::nullopt;
    index = index * 10 + (tactic[i] - '0');
  }
  return index;
}

std::string cudnn_matmul_tactic(int index) { return "cudnn:" + std::to_string(index); }

int cudnn_matmul_engine_count(CudnnMatmulSpec spec, int limit) {
  int n = 0;
  for (; n < limit; ++n) {
    spec.engine_index = n;
    if (!cudnn_matmul_plan(spec)) break;
  }
  return n;
}

#if KILN_HAVE_CUDNN_FRONTEND

namespace fe = cudnn_frontend;

// Tensor unique ids in the graph and the variant pack.
constexpr int64_t kUidA = 1, kUidB = 2, kUidBias = 3, kUidY = 4;

// Every engine config of one product (a spec less its engine index) on one
// device: one frontend graph whose configs are built in the heuristics' order
// only as far as the tactics asked for reach, so listing n tactics builds each
// config once. Configs that fail to build or exceed the workspace limit are
// passed over. Building one config while another runs is safe: a run reads
// only its own built plan and the variant pack template, made once.
class CudnnMatmulEngines {
 public:
  struct Usable {
    int64_t plan_index = 0;  // of the graph's engine configs
    int64_t workspace = 0;
  };

  CudnnMatmulEngines(std::shared_ptr<fe::graph::Graph> graph, size_t workspace_limit)
      : graph(std::move(graph)), workspace_limit_(workspace_limit) {}

  // The usable config number `index`, building configs up to it; nullopt
  // past the last.
  std::optional<Usable> usable(int index) const {
    std::lock_guard<std::mutex> lock(mu_);
    while (static_cast<int64_t>(usable_.size()) <= index && next_ < graph->get_execution_plan_count()) {
      const int64_t i = next_++;
      Usable u{i, 0};
      if (graph->build_plan_at_index(i).is_bad() || graph->get_workspace_size_plan_at_index(i, u.workspace).is_bad() ||
          u.workspace < 0 || static_cast<size_t>(u.workspace) > workspace_limit_)
        continue;
      // Made here, not on the first execute (which may be under graph capture).
      if (graph->prepare_variant_pack_template().is_bad()) continue;
      usable_.push_back(u);
    }
    if (index < 0 || static_cast<size_t>(index) >= usable_.size()) return std::nullopt;
    return usable_[static_cast<size_t>(index)];
  }

  const std::shared_ptr<fe::graph::Graph> graph;

 private:
  const size_t workspace_limit_;
  mutable std::mutex mu_;
  mutable int64_t next_ = 0;
  mutable std::vector<Usable> usable_;
};

class CudnnMatmulPlan {
 public:
  std::shared_ptr<const CudnnMatmulEngines> engines;
  int64_t plan_index = 0;
  int64_t workspace = 0;
  bool has_bias = false;
};

namespace {

fe::DataType_t fe_type(DType t) { return t == DType::kBF16 ? fe::DataType_t::BFLOAT16 : fe::DataType_t::HALF; }

Status fe_status(fe::error_t e, const char* step) {
  if (e.is_good()) return Status::ok();
  return unsupported("cuDNN matmul {}: {}", step, e.get_message());
}

// The operation graph: the product into a virtual float C, then the bias
// add and the activation (each present or not), the last writing Y.
std::shared_ptr<fe::graph::Graph> make_graph(const CudnnMatmulSpec& s) {
  auto graph = std::make_shared<fe::graph::Graph>();
  graph->set_io_data_type(fe_type(s.dtype))
      .set_intermediate_data_type(fe::DataType_t::FLOAT)
      .set_compute_data_type(fe::DataType_t::FLOAT);
  auto tensor = [&](const char* name, int64_t uid, std::vector<int64_t> dims) {
    const std::vector<int64_t> strides = {dims[1] * dims[2], dims[2], 1};
    return graph->tensor(fe::graph::Tensor_attributes()
                             .set_name(name)
                             .set_uid(uid)
                             .set_dim(std::move(dims))
                             .set_stride(strides)
                             .set_data_type(fe_type(s.dtype)));
  };
  auto a = tensor("A", kUidA, {s.batch, s.m, s.k});
  auto b = tensor("B", kUidB, {s.b_batched ? s.batch : 1, s.k, s.n});
  auto y = graph->matmul(
      a, b, fe::graph::Matmul_attributes().set_name("product").set_compute_data_type(fe::DataType_t::FLOAT));
  if (s.has_bias) {
    auto bias = tensor("bias", kUidBias, {1, 1, s.n});
    y = graph->pointwise(y, bias,
                         fe::graph::Pointwise_attributes()
                             .set_name("bias")
                             .set_mode(fe::PointwiseMode_t::ADD)
                             .set_compute_data_type(fe::DataType_t::FLOAT));
  }
  auto activation =
      fe::graph::Pointwise_attributes().set_name("activation").set_compute_data_type(fe::DataType_t::FLOAT);
  switch (s.activation) {
    case BiasActivation::kRelu:
      activation.set_mode(fe::PointwiseMode_t::RELU_FWD).set_relu_lower_clip(0.f).set_relu_upper_clip(FLT_MAX);
      break;
    case BiasActivation::kGelu: activation.set_mode(fe::PointwiseMode_t::GELU_FWD); break;
    case BiasActivation::kGeluTanh: activation.set_mode(fe::PointwiseMode_t::GELU_APPROX_TANH_FWD); break;
    case BiasActivation::kNone: break;
  }
  if (s.activation != BiasActivation::kNone) y = graph->pointwise(y, activation);
  y->set_output(true)
      .set_uid(kUidY)
      .set_dim({s.batch, s.m, s.n})
      .set_stride({s.m * s.n, s.n, 1})
      .set_data_type(fe_type(s.dtype));
  return graph;
}

// The product's graph with its engine configs listed, none built yet:
// heuristics mode A then the fallback list, less those over the workspace
// limit and those that reduce in reduced precision (f16/bf16 accumulate in
// float, as everywhere in kiln).
Expected<std::shared_ptr<CudnnMatmulEngines>> list_engines(cudnnHandle_t handle, const CudnnMatmulSpec& s) {
  std::shared_ptr<fe::graph::Graph> graph = make_graph(s);
  KILN_RETURN_IF_ERROR(fe_status(graph->validate(), "validate"));
  KILN_RETURN_IF_ERROR(fe_status(graph->build_operation_graph(handle), "build_operation_graph"));
  KILN_RETURN_IF_ERROR(fe_status(graph->create_execution_plans({fe::HeurMode_t::A, fe::HeurMode_t::FALLBACK}),
                                 "create_execution_plans"));
  graph->deselect_workspace_greater_than(static_cast<int64_t>(std::min<size_t>(s.workspace_limit, INT64_MAX)))
      .deselect_numeric_notes({fe::NumericalNote_t::REDUCED_PRECISION_REDUCTION});
  return std::make_shared<CudnnMatmulEngines>(std::move(graph), s.workspace_limit);
}

// The plan of engine config spec.engine_index among the usable ones.
std::shared_ptr<const CudnnMatmulPlan> build_plan(const CudnnMatmulSpec& s) {
  std::shared_ptr<const CudnnMatmulEngines> engines = CudnnPlanCache<CudnnMatmulEngines>::instance().get(
      product_key(s), [&](cudnnHandle_t handle) -> std::shared_ptr<const CudnnMatmulEngines> {
        Expected<std::shared_ptr<CudnnMatmulEngines>> listed = list_engines(handle, s);
        return listed.is_ok() ? std::move(listed).value() : nullptr;
      });
  if (!engines) return nullptr;
  const std::optional<CudnnMatmulEngines::Usable> usable = engines->usable(s.engine_index);
  if (!usable) return nullptr;
  auto plan = std::make_shared<CudnnMatmulPlan>();
  plan->engines = std::move(engines);
  plan->plan_index = usable->plan_index;
  plan->workspace = usable->workspace;
  plan->has_bias = s.has_bias;
  return plan;
}

// build_plan, with the frontend's exceptions (a missing symbol, a bad
// allocation) declining the spec too.
std::shared_ptr<const CudnnMatmulPlan> try_build_plan(const CudnnMatmulSpec& s) {
  try {
    return build_plan(s);
  } catch (const std::exception&) {
    return nullptr;
  }
}

}  // namespace

bool cudnn_matmul_compiled() { return true; }

std::shared_ptr<const CudnnMatmulPlan> cudnn_matmul_plan(const CudnnMatmulSpec& spec) {
  return CudnnPlanCache<CudnnMatmulPlan>::instance().get(spec.key(),
                                                         [&](cudnnHandle_t) { return try_build_plan(spec); });
}

size_t workspace_size(const CudnnMatmulPlan& plan) { return static_cast<size_t>(plan.workspace); }

Status execute_cudnn_matmul(cudnnHandle_t handle, cudaStream_t stream, const CudnnMatmulPlan& plan, const void* a,
                            const void* b, const void* bias, void* y, void* workspace) {
  if ((bias != nullptr) != plan.has_bias)
    return internal_error("cuDNN matmul: the plan {} a bias", plan.has_bias ? "needs" : "takes no");
  KILN_CUDA_RETURN_IF_ERROR(cudnnSetStream(handle, stream));
  std::unordered_map<int64_t, void*> pack = {{kUidA, const_cast<void*>(a)}, {kUidB, const_cast<void*>(b)}, {kUidY, y}};
  if (bias) pack.emplace(kUidBias, const_cast<void*>(bias));
  fe::error_t e = plan.engines->graph->execute_plan_at_index(handle, pack, workspace, plan.plan_index);
  if (e.is_bad()) return internal_error("cuDNN matmul execute: {}", e.get_message());
  return Status::ok();
}

#else  // !KILN_HAVE_CUDNN_FRONTEND

class CudnnMatmulPlan {};

bool cudnn_matmul_compiled() { return false; }

std::shared_ptr<const CudnnMatmulPlan> cudnn_matmul_plan(const CudnnMatmulSpec&) { return nullptr; }

size_t workspace_size(const CudnnMatmulPlan&) { return 0; }

Status execute_cudnn_matmul(cudnnHandle_t, cudaStream_t, const CudnnMatmulPlan&, const void*, const void*, const void*,
                            void*, void*) {
  return unsupported("cuDNN matmul: kiln was built without the cuDNN frontend");
}

#endif  // KILN_HAVE_CUDNN_FRONTEND

}  // namespace kiln::cuda
