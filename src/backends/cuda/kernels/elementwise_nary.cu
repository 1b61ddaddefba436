// The host side of broadcasting (shape collapsing), and the ops of more than
// two operands: Where (three-way broadcast select) and the variadic folds
// Sum, Mean, Max, Min. Also the byte-to-bool normalization of BitCast.
#include <fmt/ranges.h>

#include "backends/cuda/kernels/elementwise_core.cuh"
#include "backends/cuda/kernels/elementwise_ops.cuh"

namespace kiln::cuda {

Expected<CollapsedShape> collapse_shapes(const std::vector<int64_t>& out,
                                         const std::vector<std::vector<int64_t>>& operands) {
  const size_t rank = out.size(), count = operands.size();
  std::vector<std::vector<int64_t>> padded(count);
  for (size_t k = 0; k < count; ++k) {
    const auto& in = operands[k];
    if (in.size() > rank)
      return invalid_argument("shape [{}] does not broadcast to [{}]", fmt::join(in, ","), fmt::join(out, ","));
    padded[k].assign(rank - in.size(), 1);
    padded[k].insert(padded[k].end(), in.begin(), in.end());
    for (size_t d = 0; d < rank; ++d)
      if (padded[k][d] != out[d] && padded[k][d] != 1)
        return invalid_argument("shape [{}] does not broadcast to [{}]", fmt::join(in, ","), fmt::join(out, ","));
  }
  // Which operands are full (not broadcast) along a dim, one bit each.
  auto pattern = [&](size_t d) {
    uint32_t bits = 0;
    for (size_t k = 0; k < count; ++k)
      if (padded[k][d] != 1) bits |= 1u << k;
    return bits;
  };
  CollapsedShape c;
  std::vector<uint32_t> patterns;
  for (size_t d = 0; d < rank; ++d) {
    if (out[d] == 1) continue;
    const uint32_t bits = pattern(d);
    if (!patterns.empty() && patterns.back() == bits) {
      c.dims.back() *= out[d];
    } else {
      c.dims.push_back(out[d]);
      patterns.push_back(bits);
    }
  }
  if (c.dims.empty()) {
    c.dims.push_back(1);
    patterns.push_back(~0u);
  }
  if (c.dims.size() > static_cast<size_t>(kMaxRank))
    return unsupported("broadcast of rank {} after merging dims (the CUDA kernels take up to {})", c.dims.size(),
                       kMaxRank);
  c.strides.assign(count, std::vector<int64_t>(c.dims.size(), 0));
  for (size_t k = 0; k < count; ++k) {
    int64_t stride = 1;
    for (size_t d = c.dims.size(); d-- > 0;) {
      if (!(patterns[d] & (1u << k))) continue;
      c.strides[k][d] = stride;
      stride *= c.dims[d];
    }
  }
  return c;
}

bool side_of(const CollapsedShape& c, size_t k, Side& side) {
  const auto& s = c.strides[k];
  if (c.dims.size() == 1) {
    side = {s[0] != 0 ? SideMode::kFull : SideMode::kScalar, 1};
    return true;
  }
  if (c.dims.size() != 2) return false;
  const int64_t inner = c.dims[1];
  if (s[0] == inner && s[1] == 1) {
    side = {SideMode::kFull, 1};
  } else if (s[0] == 0 && s[1] == 1) {
    side = {SideMode::kRow, inner};
  } else if (s[0] == 1 && s[1] == 0) {
    side = {SideMode::kCol, inner};
  } else {
    side = {SideMode::kScalar, 1};  // both strides 0
  }
  return true;
}

bool mid_broadcast_of(const CollapsedShape& c, MidBroadcast& g) {
  if (c.dims.size() != 3 || c.strides.size() != 2) return false;
  const int64_t mid = c.dims[1], inner = c.dims[2];
  auto is_full = [&](const std::vector<int64_t>& s) { return s[0] == mid * inner && s[1] == inner && s[2] == 1; };
  auto is_mid = [&](const std::vector<int64_t>& s) { return s[0] == inner && s[1] == 0 && s[2] == 1; };
  // The kernel counts units within an outer slice in 32 bits.
  if (mid * inner >= (int64_t(1) << 31)) return false;
  if (is_mid(c.strides[0]) && is_full(c.strides[1])) {
    g.a_is_mid = true;
  } else if (is_full(c.strides[0]) && is_mid(c.strides[1])) {
    g.a_is_mid = false;
  } else {
    return false;
  }
  g.outer = c.dims[0];
  g.slice = static_cast<uint32_t>(mid * inner);
  g.inner = static_cast<uint32_t>(inner);
  g.packed = false;
  return true;
}

namespace {

// ---- Where -------------------------------------------------------------------

template <typename E>
struct WhereOp {
  const uint8_t* cond;
  const E* x;
  const E* other;
  E* y;
  template <typename I>
  __device__ __forceinline__ void operator()(I i, const I (&off)[3]) const {
    y[i] = cond[off[0]] ? x[off[1]] : other[off[2]];
  }
};

template <typename E>
Status run_where(const WhereParams& p, const CollapsedShape& c, int64_t n, cudaStream_t stream) {
  WhereOp<E> op{static_cast<const uint8_t*>(p.cond), static_cast<const E*>(p.x), static_cast<const E*>(p.other),
                static_cast<E*>(p.y)};
  return launch_broadcast_op<3>(op, c, n, stream);
}

// ---- Sum, Mean, Max, Min -----------------------------------------------------

template <typename C>
__device__ __forceinline__ C fold_step(FoldFn fn, C acc, C v) {
  if constexpr (std::is_floating_point_v<C>) {
    if (fn == FoldFn::kMax || fn == FoldFn::kMin) {
      if (acc != acc) return acc;  // NaN propagates
      if (v != v) return v;
    }
  }
  switch (fn) {
    case FoldFn::kMax: return acc < v ? v : acc;
    case FoldFn::kMin: return v < acc ? v : acc;
    default: return wrap_add(acc, v);
  }
}

// One pass over up to kMaxFoldInputs operands; operands past `count` are
// unused (their strides are 0). `divisor` (Mean's input count) applies on
// the last pass only.
template <typename T>
struct FoldOp {
  using C = compute_of<T>;
  FoldFn fn;
  int count;
  C divisor;
  const T* in[kMaxFoldInputs];
  T* y;
  template <typename I>
  __device__ __forceinline__ void operator()(I i, const I (&off)[kMaxFoldInputs]) const {
    C acc = widen(in[0][off[0]]);
#pragma unroll
    for (int k = 1; k < kMaxFoldInputs; ++k)
      if (k < count) acc = fold_step(fn, acc, widen(in[k][off[k]]));
    if (divisor != C(0)) acc = acc / divisor;
    y[i] = narrow<T>(acc);
  }
};

template <typename T>
Status run_fold(const FoldParams& p, int64_t n, cudaStream_t stream) {
  using C = compute_of<T>;
  const size_t total = p.inputs.size();
  size_t next = 0;
  while (next < total) {
    // Later passes continue from y (operand 0), which holds the fold so far.
    FoldOp<T> op{p.fn, 0, C(0), {}, static_cast<T*>(p.y)};
    std::vector<std::vector<int64_t>> dims;
    if (next > 0) {
      op.in[op.count++] = static_cast<const T*>(p.y);
      dims.push_back(p.y_dims);
    }
    while (next < total && op.count < kMaxFoldInputs) {
      op.in[op.count++] = static_cast<const T*>(p.inputs[next]);
      dims.push_back(p.dims[next++]);
    }
    if (next == total && p.fn == FoldFn::kMean) op.divisor = static_cast<C>(total);
    while (dims.size() < static_cast<size_t>(kMaxFoldInputs)) dims.push_back({});  // unused: all broadcast
    for (int k = op.count; k < kMaxFoldInputs; ++k) op.in[k] = op.in[0];
    KILN_ASSIGN_OR_RETURN(CollapsedShape c, collapse_shapes(p.y_dims, dims));
    KILN_RETURN_IF_ERROR(launch_broadcast_op<kMaxFoldInputs>(op, c, n, stream));
  }
  return Status::ok();
}

bool is_16bit_float(DType t) { return t == DType::kF16 || t == DType::kBF16; }

struct NonzeroFn {
  __device__ bool operator()(uint8_t v) const { return v != 0; }
};

}  // namespace

Status launch_where(const WhereParams& p, cudaStream_t stream) {
  const int64_t n = product(p.y_dims, 0, p.y_dims.size());
  if (n == 0) return Status::ok();
  KILN_ASSIGN_OR_RETURN(CollapsedShape c, collapse_shapes(p.y_dims, {p.cond_dims, p.x_dims, p.other_dims}));
  switch (p.elem_size) {
    case 1: return run_where<uint8_t>(p, c, n, stream);
    case 2: return run_where<uint16_t>(p, c, n, stream);
    case 4: return run_where<uint32_t>(p, c, n, stream);
    case 8: return run_where<uint64_t>(p, c, n, stream);
    default: return unsupported("Where: elements of {} bytes", p.elem_size);
  }
}

Status launch_fold(const FoldParams& p, cudaStream_t stream) {
  static constexpr BinaryFn kPairFn[] = {BinaryFn::kAdd, BinaryFn::kMean2, BinaryFn::kMax, BinaryFn::kMin};
  if (p.inputs.empty()) return invalid_argument("variadic elementwise op without inputs");
  if (p.inputs.size() != p.dims.size()) return internal_error("launch_fold: one dims per input");
  if (p.inputs.size() > static_cast<size_t>(kMaxFoldInputs) && is_16bit_float(p.dtype) &&
      (p.fn == FoldFn::kSum || p.fn == FoldFn::kMean))
    return unsupported("Sum/Mean of {} {} inputs (the CUDA kernel folds up to {} 16-bit inputs)", p.inputs.size(),
                       dtype_name(p.dtype), kMaxFoldInputs);
  if (p.fn == FoldFn::kMean && !(is_16bit_float(p.dtype) || p.dtype == DType::kF32 || p.dtype == DType::kF64))
    return unsupported("Mean: dtype {} (floats only)", dtype_name(p.dtype));
  if (p.inputs.size() == 2) {  // the common case takes the packed binary paths
    BinaryFnParams b;
    b.fn = kPairFn[static_cast<int>(p.fn)];
    b.dtype = b.b_dtype = p.dtype;
    b.a = p.inputs[0];
    b.a_dims = p.dims[0];
    b.b = p.inputs[1];
    b.b_dims = p.dims[1];
    b.y = p.y;
    b.y_dims = p.y_dims;
    return launch_binary_fn(b, stream);
  }
  const int64_t n = product(p.y_dims, 0, p.y_dims.size());
  if (n == 0) return Status::ok();
  KILN_CUDA_DISPATCH_NUMERIC(p.dtype, "variadic elementwise op", return run_fold<T>(p, n, stream));
  return Status::ok();
}

Status launch_to_bool_bytes(const void* x, void* y, int64_t n, cudaStream_t stream) {
  return launch_map1<uint8_t, bool>(NonzeroFn{}, x, y, n, stream);
}

}  // namespace kiln::cuda
