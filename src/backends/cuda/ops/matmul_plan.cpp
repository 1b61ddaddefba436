#include "backends/cuda/ops/matmul_plan.h"

#include <any>
#include <cstdlib>
#include <mutex>
#include <optional>

#include "ir/dtype.h"

namespace kiln::cuda {
namespace {

// The algorithm chosen on a plan's first run; none when cuBLASLt's heuristic
// has nothing to offer (cuBLASLt then chooses at each call).
struct CublasLtState {
  std::optional<MatmulAlgo> algo;
};

// Where an operand's batch strides are uniform over dims [first, end): all
// broadcast (0), all present (contiguous), or mixed (-1).
int64_t inner_stride(const BatchedProduct& bp, const std::vector<int64_t>& strides, size_t first, int64_t matrix) {
  bool any_full = false, any_broadcast = false;
  for (size_t d = first; d < bp.batch.size(); ++d) {
    if (bp.batch[d] == 1) continue;
    (strides[d] == 0 ? any_broadcast : any_full) = true;
  }
  if (any_full && any_broadcast) return -1;
  return any_full ? matrix : 0;
}

}  // namespace

int64_t BatchedProduct::batch_count() const {
  int64_t c = 1;
  for (int64_t d : batch) c *= d;
  return c;
}

Expected<BatchedProduct> plan_product(std::vector<int64_t> a_dims, std::vector<int64_t> b_dims, std::string_view op) {
  if (a_dims.empty() || b_dims.empty()) return invalid_model("{}: inputs must have rank 1 or more", op);
  if (a_dims.size() == 1) a_dims.insert(a_dims.begin(), 1);
  if (b_dims.size() == 1) b_dims.push_back(1);
  BatchedProduct bp;
  bp.m = a_dims[a_dims.size() - 2], bp.k = a_dims.back(), bp.n = b_dims.back();
  if (b_dims[b_dims.size() - 2] != bp.k)
    return invalid_model("{}: A has K={} but B has K={}", op, bp.k, b_dims[b_dims.size() - 2]);
  const size_t ra = a_dims.size() - 2, rb = b_dims.size() - 2, r = std::max(ra, rb);
  bp.batch.assign(r, 1);
  bp.a_strides.assign(r, 0);
  bp.b_strides.assign(r, 0);
  int64_t sa = bp.m * bp.k, sb = bp.k * bp.n;
  for (size_t i = r; i-- > 0;) {
    const int64_t x = i + ra >= r ? a_dims[i + ra - r] : 1, z = i + rb >= r ? b_dims[i + rb - r] : 1;
    if (x != z && x != 1 && z != 1) return invalid_model("{}: batch dims {} and {} do not broadcast", op, x, z);
    bp.batch[i] = x == 1 ? z : x;
    bp.a_strides[i] = x == 1 ? 0 : sa;
    bp.b_strides[i] = z == 1 ? 0 : sb;
    sa *= x;
    sb *= z;
  }
  return bp;
}

SimpleMatmulParams simple_params(const BatchedProduct& bp, DType a_type, DType b_type, DType y_type, const void* a,
                                 const void* b, void* y) {
  SimpleMatmulParams p;
  p.a_type = a_type, p.b_type = b_type, p.y_type = y_type;
  p.a = a, p.b = b, p.y = y;
  p.m = bp.m, p.n = bp.n, p.k = bp.k;
  p.a_row = bp.k, p.a_col = 1, p.b_row = bp.n, p.b_col = 1;
  p.batch_dims = bp.batch;
  p.a_batch_strides = bp.a_strides;
  p.b_batch_strides = bp.b_strides;
  return p;
}

bool cublaslt_dtype(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16; }

namespace {

// The algorithm index a "cublaslt:<i>" tactic names; 0 (the heuristic's
// first) for "" and anything else.
int tactic_index(const std::string& tactic) {
  constexpr std::string_view prefix = "cublaslt:";
  if (tactic.rfind(prefix, 0) != 0) return 0;
  int i = std::atoi(tactic.c_str() + prefix.size());
  return i < 0 ? 0 : i;
}

}  // namespace

std::vector<std::string> cublaslt_tactics(const MatmulShape& s, size_t limit, size_t workspace_bytes) {
  // A handle of its own: tactics are listed while planning, outside any run.
  static std::mutex mu;
  static std::optional<CublasLt> handle;
  std::lock_guard<std::mutex> lock(mu);
  if (!handle) {
    auto h = CublasLt::create();
    if (!h) return {};
    handle.emplace(std::move(h).value());
  }
  auto algos = matmul_algos(*handle, s, static_cast<int>(limit), workspace_bytes);
  std::vector<std::string> out;
  if (algos)
    for (size_t i = 0; i < algos->size(); ++i) out.push_back("cublaslt:" + std::to_string(i));
  return out;
}

std::optional<MatmulShape> single_call_shape(const BatchedProduct& bp, DType t, bool tf32) {
  const int64_t stride_a = inner_stride(bp, bp.a_strides, 0, bp.m * bp.k);
  const int64_t stride_b = inner_stride(bp, bp.b_strides, 0, bp.k * bp.n);
  if (stride_a < 0 || stride_b < 0 || bp.k == 0 || !cublaslt_dtype(t)) return std::nullopt;
  MatmulShape s;
  s.dtype = t;
  s.m = bp.m, s.n = bp.n, s.k = bp.k;
  s.batch = bp.batch_count();
  s.stride_a = stride_a, s.stride_b = stride_b;
  s.allow_tf32 = tf32;
  return s;
}

namespace {

// The algorithm kept in `state` (ctx.state() unless the caller gives a slot)
// for `s`, chosen on the plan's first run (ctx.tactic()'s, or the heuristic's
// first, among those fitting `ws` bytes of workspace); null when the heuristic
// has none.
Expected<const MatmulAlgo*> chosen_algo(KernelContext& ctx, const CublasLt& lt, const MatmulShape& s, size_t ws,
                                        std::any& state) {
  if (!state.has_value()) {
    CublasLtState chosen;
    const int index = tactic_index(ctx.tactic());
    auto algos = matmul_algos(lt, s, index + 1, ws);
    if (algos.is_ok() && static_cast<int>(algos->size()) > index) {
      chosen.algo = (*algos)[static_cast<size_t>(index)];
    } else if (algos.is_ok() || algos.status().code() != ErrorCode::kUnsupported) {
      return algos.is_ok()
                 ? unsupported("{}: cuBLASLt offers no algorithm {} for this shape", ctx.node().label(), ctx.tactic())
                 : algos.status();
    }
    state = chosen;
  }
  const auto* chosen = std::any_cast<CublasLtState>(&state);
  if (!chosen) return internal_error("{}: kernel state is not a cuBLASLt choice", ctx.node().label());
  return chosen->algo ? &*chosen->algo : nullptr;
}

// The handle, after checking the layer's workspace holds `ws` bytes past `workspace_offset`.
Expected<const CublasLt*> checked_handle(KernelContext& ctx, size_t workspace_offset, size_t ws) {
  KILN_ASSIGN_OR_RETURN(const CublasLt* lt, ctx.cublaslt());
  if (ctx.workspace_bytes() < workspace_offset + ws)
    return internal_error("{}: workspace of {} bytes, {} needed", ctx.node().label(), ctx.workspace_bytes(),
                          workspace_offset + ws);
  return lt;
}

void set_workspace(KernelContext& ctx, MatmulArgs& args, size_t workspace_offset, size_t ws) {
  args.workspace = ws ? static_cast<char*>(ctx.workspace()) + workspace_offset : nullptr;
  args.workspace_bytes = ws;
}

}  // namespace

Status run_cublaslt(KernelContext& ctx, const MatmulShape& s, MatmulArgs args, bool cache, size_t workspace_offset) {
  const size_t ws = cublaslt_workspace_bytes(ctx.workspace_limit());
  KILN_ASSIGN_OR_RETURN(const CublasLt* lt, checked_handle(ctx, workspace_offset, ws));
  set_workspace(ctx, args, workspace_offset, ws);
  const MatmulAlgo* algo = nullptr;
  if (cache) {
    KILN_ASSIGN_OR_RETURN(algo, chosen_algo(ctx, *lt, s, ws, ctx.state()));
  }
  return launch_matmul(*lt, s, args, algo, ctx.stream());
}

Expected<bool> try_run_cublaslt(KernelContext& ctx, const MatmulShape& s, MatmulArgs args, size_t workspace_offset,
                                std::any* state) {
  const size_t ws = cublaslt_workspace_bytes(ctx.workspace_limit());
  KILN_ASSIGN_OR_RETURN(const CublasLt* lt, checked_handle(ctx, workspace_offset, ws));
  auto chosen = chosen_algo(ctx, *lt, s, ws, state ? *state : ctx.state());
  if (!chosen.is_ok() && chosen.status().code() == ErrorCode::kUnsupported) return false;  // no such tactic here
  KILN_RETURN_IF_ERROR(chosen.status());
  const MatmulAlgo* algo = *chosen;
  if (!algo) return false;
  set_workspace(ctx, args, workspace_offset, ws);
  Status st = launch_matmul(*lt, s, args, algo, ctx.stream());
  if (st.code() == ErrorCode::kUnsupported) return false;  // refused at launch (these operands' alignment, ...)
  KILN_RETURN_IF_ERROR(st);
  return true;
}

Status run_cublaslt_product(KernelContext& ctx, const BatchedProduct& bp, DType t, const void* a, const void* b,
                            void* y, size_t workspace_offset, const void* c) {
  // The fewest outer dims that leave an inner batch cuBLASLt can stride.
  size_t split = 0;
  int64_t stride_a = 0, stride_b = 0;
  for (;; ++split) {
    stride_a = inner_stride(bp, bp.a_strides, split, bp.m * bp.k);
    stride_b = inner_stride(bp, bp.b_strides, split, bp.k * bp.n);
    if (stride_a >= 0 && stride_b >= 0) break;
  }
  MatmulShape s;
  s.dtype = t;
  s.m = bp.m, s.n = bp.n, s.k = bp.k;
  s.batch = 1;
  for (size_t d = split; d < bp.batch.size(); ++d) s.batch *= bp.batch[d];
  s.stride_a = stride_a, s.stride_b = stride_b;
  s.has_c = c != nullptr;
  s.stride_c = c ? bp.m * bp.n : 0;  // y's layout
  s.allow_tf32 = ctx.allow_tf32();
  const size_t elem = dtype_storage_bytes(t, 1);
  int64_t outer = 1;
  for (size_t d = 0; d < split; ++d) outer *= bp.batch[d];
  MatmulArgs args{a, b, c, nullptr, y};
  args.beta = c ? 1.f : 0.f;
  if (outer == 1) return run_cublaslt(ctx, s, args, true, workspace_offset);
  // Offset operands may be less aligned than the cached algorithm assumed, so
  // cuBLASLt chooses per call here.
  for (int64_t o = 0; o < outer; ++o) {
    int64_t rest = o, off_a = 0, off_b = 0;
    for (size_t d = split; d-- > 0;) {
      const int64_t idx = rest % bp.batch[d];
      rest /= bp.batch[d];
      off_a += idx * bp.a_strides[d];
      off_b += idx * bp.b_strides[d];
    }
    const int64_t off_y = o * s.batch * bp.m * bp.n;
    args.a = static_cast<const char*>(a) + off_a * elem;
    args.b = static_cast<const char*>(b) + off_b * elem;
    args.c = c ? static_cast<const char*>(c) + off_y * elem : nullptr;
    args.d = static_cast<char*>(y) + off_y * elem;
    KILN_RETURN_IF_ERROR(run_cublaslt(ctx, s, args, false, workspace_offset));
  }
  return Status::ok();
}

}  // namespace kiln::cuda
