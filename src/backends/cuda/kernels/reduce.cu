// Four kernels, by the shape of the reduction (see ReducePlan):
// - the reduced axes are one trailing run (inner == 1): rows, a warp or a
//   block per row (row_launch.cuh), 16-byte loads along the row; a few long
//   rows (a whole-tensor reduction) are cut into chunks over many blocks whose
//   partial results a second kernel combines;
// - one run with kept dims after it (inner > 1): columns. A block covers 32
//   threads' adjacent columns (8 bytes each when aligned; coalesced) and 8
//   rows at a time; a long reduced run is
//   split over blockIdx.y, whose partial results a second kernel combines,
//   so a first-axis reduction fills the GPU like a last-axis one;
// - reduced axes not one run, innermost dim reduced: a group per output
//   walking its elements through per-dim strides (coalesced within the
//   innermost run);
// - otherwise (innermost dim kept, or nothing reduced): a thread per output,
//   adjacent threads reading adjacent addresses.
// Each op is a combine (sum, product, max, min) between an element-wise
// transform (|x|, x^2, exp) and a finish (mean, sqrt, log).
#include <algorithm>

#include "backends/cuda/kernels/reduce.cuh"
#include "backends/cuda/kernels/reduce_common.cuh"
#include "backends/cuda/kernels/row_launch.cuh"

namespace kiln::cuda {
namespace {

enum class Pre : uint8_t { kNone, kAbs, kSquare, kExp, kExpMinusAux, kSquaredDeviation };
enum class Post : uint8_t { kNone, kMean, kSqrt, kLog, kAuxPlusLog };

template <typename A>
struct ReduceFn {
  A identity{};
  Pre pre = Pre::kNone;
  Post post = Post::kNone;
  int64_t count = 1;       // elements per output (for the mean)
  const A* aux = nullptr;  // a value per output: the max (LogSumExp) or the mean (variance)
};

template <typename A>
__device__ __forceinline__ A exp_acc(A v) {
  if constexpr (std::is_same_v<A, float>)
    return expf(v);
  else
    return exp(v);
}

template <typename A>
__device__ __forceinline__ A apply_pre(A v, Pre pre, A aux) {
  switch (pre) {
    case Pre::kAbs:
      if constexpr (std::is_unsigned_v<A>)  // integers wrap in uint64: |x| of the signed value
        return static_cast<int64_t>(v) < 0 ? A(0) - v : v;
      else
        return v < A(0) ? -v : v;
    case Pre::kSquare: return v * v;
    case Pre::kSquaredDeviation: {
      const A d = v - aux;
      return d * d;
    }
    default: break;
  }
  if constexpr (std::is_floating_point_v<A>) {
    if (pre == Pre::kExp) return exp_acc(v);
    if (pre == Pre::kExpMinusAux) return exp_acc(v - aux);
  }
  return v;
}

template <typename A>
__device__ __forceinline__ A apply_post(A acc, const ReduceFn<A>& fn, A aux) {
  if constexpr (std::is_floating_point_v<A>) {
    switch (fn.post) {
      case Post::kMean: return acc / static_cast<A>(fn.count);
      case Post::kSqrt: return sqrt(acc);
      case Post::kLog: return log(acc);
      // An infinite max is the result itself (exp(x - max) would be NaN).
      case Post::kAuxPlusLog: return isinf(aux) ? aux : aux + log(acc);
      default: break;
    }
  }
  return acc;
}

template <typename T, typename A>
__device__ __forceinline__ A load_pre(const T* p, int64_t i, const ReduceFn<A>& fn, A aux) {
  return apply_pre(to_acc<A>(p[i]), fn.pre, aux);
}

template <typename T, typename A, typename O, Combine C>
__global__ void __launch_bounds__(1024) reduce_rows_kernel(const T* __restrict__ x, O* __restrict__ y, int64_t rows,
                                                           int64_t cols, int group, ReduceFn<A> fn) {
  __shared__ A smem[32];
  constexpr int V = sizeof(T) >= 16 ? 1 : 16 / sizeof(T);
  const bool vec = cols % V == 0 && (reinterpret_cast<uintptr_t>(x) & 15u) == 0;
  const int groups_per_block = blockDim.x / group;
  const int lane = threadIdx.x % group;
  const int64_t base = int64_t(blockIdx.x) * groups_per_block;
  const int64_t step = int64_t(gridDim.x) * groups_per_block;
  const int64_t iters = (rows - base + step - 1) / step;  // the same for the whole block
  for (int64_t it = 0; it < iters; ++it) {
    const int64_t row = base + threadIdx.x / group + it * step;
    const bool active = row < rows;
    const A aux = active && fn.aux ? fn.aux[row] : A(0);
    A acc = fn.identity;
    if (active && vec) {
      const auto* xv = reinterpret_cast<const Pack<T, V>*>(x + row * cols);
      const int64_t n = cols / V;
#pragma unroll 2
      for (int64_t c = lane; c < n; c += group) {
        const Pack<T, V> pk = xv[c];
#pragma unroll
        for (int j = 0; j < V; ++j) acc = combine_acc<C>(acc, apply_pre(to_acc<A>(pk.v[j]), fn.pre, aux));
      }
    } else if (active) {
      for (int64_t c = lane; c < cols; c += group) acc = combine_acc<C>(acc, load_pre(x + row * cols, c, fn, aux));
    }
    acc = group_reduce_acc<C>(acc, group, smem);
    if (active && lane == 0) y[row] = from_acc<O>(apply_post(acc, fn, aux));
  }
}

constexpr int kRowChunkBlock = 512;

// A few long rows: block (chunk blockIdx.x, row blockIdx.y) writes its chunk's
// partial result to partials[chunk * rows + row] (finish_partials_kernel's layout).
template <typename T, typename A, Combine C>
__global__ void __launch_bounds__(kRowChunkBlock)
    reduce_row_chunks_kernel(const T* __restrict__ x, A* __restrict__ partials, int64_t rows, int64_t cols,
                             int64_t chunk_len, ReduceFn<A> fn) {
  __shared__ A smem[32];
  const int64_t row = blockIdx.y, begin = int64_t(blockIdx.x) * chunk_len;
  const int64_t len = chunk_len < cols - begin ? chunk_len : cols - begin;
  const T* xc = x + row * cols + begin;
  const A aux = fn.aux ? fn.aux[row] : A(0);
  A acc = fn.identity;
  row_visit(xc, len, threadIdx.x, blockDim.x, rows_vectorizable<T>(xc, len),
            [&](T v, int64_t) { acc = combine_acc<C>(acc, apply_pre(to_acc<A>(v), fn.pre, aux)); });
  acc = group_reduce_acc<C>(acc, blockDim.x, smem);
  if (threadIdx.x == 0) partials[int64_t(blockIdx.x) * rows + row] = acc;
}

constexpr int kColTile = 32;  // threads of a block side by side along the columns: one warp
constexpr int kColRows = 8;   // rows a block reads at once (one per warp)

// Columns a thread reads with one load (8 bytes) when the rows allow it.
template <typename T>
constexpr int kColVec = sizeof(T) >= 8 ? 1 : 8 / static_cast<int>(sizeof(T));

template <typename T, typename A, typename O, Combine C, int CPT>
__global__ void __launch_bounds__(kColTile* kColRows)
    reduce_columns_kernel(const T* __restrict__ x, O* __restrict__ y, A* __restrict__ partials, int64_t outer,
                          int64_t reduce, int64_t inner, int64_t chunk_len, ReduceFn<A> fn) {
  constexpr int kWidth = kColTile * CPT;
  __shared__ A smem[kColRows][kWidth + 1];
  const int tx = threadIdx.x % kColTile, ty = threadIdx.x / kColTile;
  const int64_t tiles_per_outer = (inner + kWidth - 1) / kWidth, tiles = outer * tiles_per_outer;
  const int64_t r0 = int64_t(blockIdx.y) * chunk_len, r1 = r0 + chunk_len < reduce ? r0 + chunk_len : reduce;
  const bool split = gridDim.y > 1;
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {  // uniform per block: barriers are safe
    const int64_t o = tile / tiles_per_outer, in = (tile - o * tiles_per_outer) * kWidth + tx * CPT;
    const int64_t out = o * inner + in;
    const bool active = in < inner;  // with CPT > 1, inner is a multiple of CPT: all CPT columns are
    A acc[CPT], aux[CPT];
#pragma unroll
    for (int j = 0; j < CPT; ++j) {
      acc[j] = fn.identity;
      aux[j] = active && fn.aux ? fn.aux[out + j] : A(0);
    }
    if (active) {
      const T* p = x + o * reduce * inner + in;
#pragma unroll 4
      for (int64_t r = r0 + ty; r < r1; r += kColRows) {
        if constexpr (CPT == 1) {
          acc[0] = combine_acc<C>(acc[0], load_pre(p, r * inner, fn, aux[0]));
        } else {
          const Pack<T, CPT> pk = *reinterpret_cast<const Pack<T, CPT>*>(p + r * inner);
#pragma unroll
          for (int j = 0; j < CPT; ++j) acc[j] = combine_acc<C>(acc[j], apply_pre(to_acc<A>(pk.v[j]), fn.pre, aux[j]));
        }
      }
    }
#pragma unroll
    for (int j = 0; j < CPT; ++j) smem[ty][tx * CPT + j] = acc[j];
    __syncthreads();
    if (ty == 0 && active) {
#pragma unroll
      for (int j = 0; j < CPT; ++j) {
        A a = acc[j];
        for (int k = 1; k < kColRows; ++k) a = combine_acc<C>(a, smem[k][tx * CPT + j]);
        if (split)
          partials[int64_t(blockIdx.y) * outer * inner + out + j] = a;
        else
          y[out + j] = from_acc<O>(apply_post(a, fn, aux[j]));
      }
    }
    __syncthreads();
  }
}

template <typename A, typename O, Combine C>
__global__ void finish_partials_kernel(const A* __restrict__ partials, O* __restrict__ y, int64_t n_out, int64_t chunks,
                                       ReduceFn<A> fn) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n_out; i += stride) {
    A acc = partials[i];
    for (int64_t c = 1; c < chunks; ++c) acc = combine_acc<C>(acc, partials[c * n_out + i]);
    y[i] = from_acc<O>(apply_post(acc, fn, fn.aux ? fn.aux[i] : A(0)));
  }
}

// Kept and reduced dims (merged runs, size-1 dims dropped) with their strides.
struct StridedGeometry {
  int kept_rank = 0, reduced_rank = 0;
  int64_t kept_dims[kMaxRank], kept_strides[kMaxRank];
  int64_t reduced_dims[kMaxRank], reduced_strides[kMaxRank];
};

__device__ __forceinline__ int64_t unravel_offset(int64_t i, int rank, const int64_t* dims, const int64_t* strides) {
  if (rank == 1) return i * strides[0];
  int64_t off = 0;
  for (int d = rank - 1; d >= 0; --d) {
    const int64_t q = i / dims[d];
    off += (i - q * dims[d]) * strides[d];
    i = q;
  }
  return off;
}

template <typename T, typename A, typename O, Combine C>
__global__ void reduce_strided_threads_kernel(const T* __restrict__ x, O* __restrict__ y, int64_t n_out, int64_t n_red,
                                              StridedGeometry g, ReduceFn<A> fn) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n_out; i += stride) {
    const int64_t base = unravel_offset(i, g.kept_rank, g.kept_dims, g.kept_strides);
    const A aux = fn.aux ? fn.aux[i] : A(0);
    A acc = fn.identity;
    for (int64_t r = 0; r < n_red; ++r)
      acc = combine_acc<C>(
          acc, load_pre(x, base + unravel_offset(r, g.reduced_rank, g.reduced_dims, g.reduced_strides), fn, aux));
    y[i] = from_acc<O>(apply_post(acc, fn, aux));
  }
}

template <typename T, typename A, typename O, Combine C>
__global__ void __launch_bounds__(1024)
    reduce_strided_groups_kernel(const T* __restrict__ x, O* __restrict__ y, int64_t n_out, int64_t n_red, int group,
                                 StridedGeometry g, ReduceFn<A> fn) {
  __shared__ A smem[32];
  const int groups_per_block = blockDim.x / group;
  const int lane = threadIdx.x % group;
  const int64_t first = int64_t(blockIdx.x) * groups_per_block;
  const int64_t step = int64_t(gridDim.x) * groups_per_block;
  const int64_t iters = (n_out - first + step - 1) / step;  // the same for the whole block
  for (int64_t it = 0; it < iters; ++it) {
    const int64_t i = first + threadIdx.x / group + it * step;
    const bool active = i < n_out;
    const A aux = active && fn.aux ? fn.aux[i] : A(0);
    A acc = fn.identity;
    if (active) {
      const int64_t base = unravel_offset(i, g.kept_rank, g.kept_dims, g.kept_strides);
      for (int64_t r = lane; r < n_red; r += group)
        acc = combine_acc<C>(
            acc, load_pre(x, base + unravel_offset(r, g.reduced_rank, g.reduced_dims, g.reduced_strides), fn, aux));
    }
    acc = group_reduce_acc<C>(acc, group, smem);
    if (active && lane == 0) y[i] = from_acc<O>(apply_post(acc, fn, aux));
  }
}

Expected<std::vector<bool>> reduced_mask(const std::vector<int64_t>& dims, const std::vector<int64_t>& axes,
                                         bool noop_with_empty_axes) {
  const int64_t rank = static_cast<int64_t>(dims.size());
  std::vector<bool> mask(dims.size(), axes.empty() && !noop_with_empty_axes);
  for (int64_t a : axes) {
    if (a < -rank || a >= rank) return invalid_argument("reduce: axis {} out of range for rank {}", a, rank);
    mask[static_cast<size_t>(a < 0 ? a + rank : a)] = true;
  }
  return mask;
}

ReduceView view_of(const std::vector<int64_t>& dims, const std::vector<bool>& mask) {
  // Runs of kept (K) and reduced (R) dims, size-1 dims skipped: K?R?K? is one view.
  ReduceView v;
  int phase = 0;  // 0: outer, 1: reduce, 2: inner
  for (size_t d = 0; d < dims.size(); ++d) {
    if (dims[d] == 1) continue;
    if (mask[d]) {
      if (phase == 2) v.contiguous = false;
      phase = 1;
      v.reduce *= dims[d];
    } else if (phase == 0) {
      v.outer *= dims[d];
    } else {
      phase = 2;
      v.inner *= dims[d];
    }
  }
  return v;
}

struct ReducePlan {
  int64_t n_out = 1, n_red = 1;
  ReduceView view;
  StridedGeometry strided;
  bool last_reduced = false;  // the innermost dim of size > 1 is reduced
};

Expected<ReducePlan> plan_reduce(const std::vector<int64_t>& dims, const std::vector<int64_t>& axes, bool noop) {
  if (dims.size() > static_cast<size_t>(kMaxRank))
    return unsupported("reduce: rank {} (the CUDA kernel takes up to {})", dims.size(), kMaxRank);
  KILN_ASSIGN_OR_RETURN(std::vector<bool> mask, reduced_mask(dims, axes, noop));
  ReducePlan pl;
  for (size_t d = 0; d < dims.size(); ++d) (mask[d] ? pl.n_red : pl.n_out) *= dims[d];
  pl.view = view_of(dims, mask);
  StridedGeometry& g = pl.strided;
  int64_t stride = 1;
  int last_kind = -1;  // merges a dim into the previous run of its kind when adjacent
  for (size_t d = dims.size(); d-- > 0;) {
    const int64_t size = dims[d];
    if (size != 1) {
      const int kind = mask[d] ? 1 : 0;
      if (last_kind == -1) pl.last_reduced = kind == 1;
      int& rank = kind ? g.reduced_rank : g.kept_rank;
      int64_t* rd = kind ? g.reduced_dims : g.kept_dims;
      int64_t* rs = kind ? g.reduced_strides : g.kept_strides;
      if (kind == last_kind) {
        rd[rank - 1] *= size;
      } else {
        rd[rank] = size;
        rs[rank] = stride;
        ++rank;
      }
      last_kind = kind;
    }
    stride *= size;
  }
  // Built innermost first; the kernels unravel outermost first.
  std::reverse(g.kept_dims, g.kept_dims + g.kept_rank);
  std::reverse(g.kept_strides, g.kept_strides + g.kept_rank);
  std::reverse(g.reduced_dims, g.reduced_dims + g.reduced_rank);
  std::reverse(g.reduced_strides, g.reduced_strides + g.reduced_rank);
  return pl;
}

// Blocks along the reduced run of a column reduction whose blocks cover
// `width` columns: enough for ~8 blocks an SM in all, each reading at least
// 64 rows. The widest tiles need the most (reduce_workspace_bytes' bound).
constexpr int64_t kMaxColWidth = kColTile * 8;
int64_t column_chunks(const ReduceView& v, int64_t width) {
  constexpr int64_t kTargetBlocks = 132 * 8, kMinRows = 64;
  const int64_t tiles = v.outer * ((v.inner + width - 1) / width);
  if (tiles >= kTargetBlocks / 2) return 1;
  int64_t chunks = (kTargetBlocks + tiles - 1) / tiles;
  chunks = std::min(chunks, (v.reduce + kMinRows - 1) / kMinRows);
  return std::clamp<int64_t>(chunks, 1, 65535);
}

bool uses_columns(const ReducePlan& pl) { return pl.n_red > 1 && pl.view.contiguous && pl.view.inner > 1; }

// Chunks per row when rows are too few to fill the GPU with a group each
// (a whole-tensor reduction is one row): ~4 blocks an SM, chunks of at least
// 4 Ki elements (a multiple of 16: 16-byte loads stay aligned).
struct RowChunks {
  int64_t chunks = 1, len = 0;
};
RowChunks row_chunks(const ReducePlan& pl) {
  constexpr int64_t kTargetBlocks = 132 * 4, kMinChunk = 4096;
  RowChunks c;
  const ReduceView& v = pl.view;
  if (pl.n_red <= 1 || !v.contiguous || v.inner != 1 || v.outer >= kTargetBlocks / 4 || v.reduce < 2 * kMinChunk)
    return c;
  const int64_t chunks = std::min((kTargetBlocks + v.outer - 1) / v.outer, v.reduce / kMinChunk);
  c.len = ((v.reduce + chunks - 1) / chunks + 15) / 16 * 16;
  c.chunks = (v.reduce + c.len - 1) / c.len;
  return c;
}

// Scratch: [aux: n_out accumulators][partials: chunks * n_out accumulators].
struct Scratch {
  void* aux = nullptr;
  void* partials = nullptr;
  size_t partial_bytes = 0;
};

Scratch carve(const ReducePlan& pl, void* ws, size_t bytes, bool want_aux) {
  Scratch s;
  auto* p = static_cast<char*>(ws);
  const size_t aux_bytes = want_aux ? align_up(size_t(pl.n_out) * sizeof(double)) : 0;
  if (!ws || bytes < aux_bytes) return s;
  if (want_aux) s.aux = p;
  s.partials = p + aux_bytes;
  s.partial_bytes = bytes - aux_bytes;
  return s;
}

template <typename T, typename A, typename O, Combine C>
Status run_plan(const ReducePlan& pl, const T* x, O* y, const ReduceFn<A>& fn, const Scratch& s, cudaStream_t st) {
  if (pl.n_out == 0) return Status::ok();
  constexpr int kBlock = 256;
  const ReduceView& v = pl.view;
  if (uses_columns(pl)) {
    constexpr int V = kColVec<T>;
    const bool packed = V > 1 && v.inner % V == 0 && (reinterpret_cast<uintptr_t>(x) % (V * sizeof(T))) == 0;
    const int64_t width = kColTile * (packed ? V : 1);
    int64_t chunks = column_chunks(v, width);
    if (size_t(chunks) * size_t(pl.n_out) * sizeof(A) > s.partial_bytes) chunks = 1;
    const int64_t chunk_len = (v.reduce + chunks - 1) / chunks;
    chunks = (v.reduce + chunk_len - 1) / chunk_len;  // no empty chunk
    const int64_t tiles = v.outer * ((v.inner + width - 1) / width);
    const dim3 grid(static_cast<unsigned>(std::min<int64_t>(tiles, 0x7fffffff)), static_cast<unsigned>(chunks));
    auto* partials = static_cast<A*>(s.partials);
    if (packed)
      reduce_columns_kernel<T, A, O, C, V>
          <<<grid, kColTile * kColRows, 0, st>>>(x, y, partials, v.outer, v.reduce, v.inner, chunk_len, fn);
    else
      reduce_columns_kernel<T, A, O, C, 1>
          <<<grid, kColTile * kColRows, 0, st>>>(x, y, partials, v.outer, v.reduce, v.inner, chunk_len, fn);
    if (chunks > 1) {
      KILN_RETURN_IF_ERROR(last_launch_status("reduce_columns_kernel"));
      finish_partials_kernel<A, O, C><<<grid_for(pl.n_out, kBlock), kBlock, 0, st>>>(partials, y, pl.n_out, chunks, fn);
    }
  } else if (const RowChunks rc = row_chunks(pl);
             rc.chunks > 1 && size_t(rc.chunks) * size_t(pl.n_out) * sizeof(A) <= s.partial_bytes) {
    auto* partials = static_cast<A*>(s.partials);
    const dim3 grid(static_cast<unsigned>(rc.chunks), static_cast<unsigned>(v.outer));
    reduce_row_chunks_kernel<T, A, C><<<grid, kRowChunkBlock, 0, st>>>(x, partials, v.outer, v.reduce, rc.len, fn);
    KILN_RETURN_IF_ERROR(last_launch_status("reduce_row_chunks_kernel"));
    finish_partials_kernel<A, O, C>
        <<<grid_for(pl.n_out, kBlock), kBlock, 0, st>>>(partials, y, pl.n_out, rc.chunks, fn);
  } else if (pl.n_red > 1 && v.contiguous && v.inner == 1) {
    const RowLaunch l = row_launch(v.outer, v.reduce);
    reduce_rows_kernel<T, A, O, C><<<l.grid, l.block, 0, st>>>(x, y, v.outer, v.reduce, l.group, fn);
  } else if (pl.n_red > 1 && pl.last_reduced) {
    const RowLaunch l = row_launch(pl.n_out, pl.n_red);
    reduce_strided_groups_kernel<T, A, O, C>
        <<<l.grid, l.block, 0, st>>>(x, y, pl.n_out, pl.n_red, l.group, pl.strided, fn);
  } else {
    reduce_strided_threads_kernel<T, A, O, C>
        <<<grid_for(pl.n_out, kBlock), kBlock, 0, st>>>(x, y, pl.n_out, pl.n_red, pl.strided, fn);
  }
  return last_launch_status("reduce kernel");
}

template <typename T>
Status reduce_floats(const ReduceParams& p, const ReducePlan& pl, cudaStream_t st) {
  using A = float_acc_t<T>;
  const auto* x = static_cast<const T*>(p.x);
  auto* y = static_cast<T*>(p.y);
  const bool lse = p.op == ReduceOp::kLogSumExp;
  const Scratch s = carve(pl, p.workspace, p.workspace_bytes, lse);
  ReduceFn<A> fn;
  fn.count = pl.n_red;
  constexpr A kInf = std::numeric_limits<A>::infinity();
  switch (p.op) {
    case ReduceOp::kSum: return run_plan<T, A, T, Combine::kSum>(pl, x, y, fn, s, st);
    case ReduceOp::kMean: fn.post = Post::kMean; return run_plan<T, A, T, Combine::kSum>(pl, x, y, fn, s, st);
    case ReduceOp::kSumSquare: fn.pre = Pre::kSquare; return run_plan<T, A, T, Combine::kSum>(pl, x, y, fn, s, st);
    case ReduceOp::kL1: fn.pre = Pre::kAbs; return run_plan<T, A, T, Combine::kSum>(pl, x, y, fn, s, st);
    case ReduceOp::kL2:
      fn.pre = Pre::kSquare, fn.post = Post::kSqrt;
      return run_plan<T, A, T, Combine::kSum>(pl, x, y, fn, s, st);
    case ReduceOp::kLogSum: fn.post = Post::kLog; return run_plan<T, A, T, Combine::kSum>(pl, x, y, fn, s, st);
    case ReduceOp::kMax: fn.identity = -kInf; return run_plan<T, A, T, Combine::kMax>(pl, x, y, fn, s, st);
    case ReduceOp::kMin: fn.identity = kInf; return run_plan<T, A, T, Combine::kMin>(pl, x, y, fn, s, st);
    case ReduceOp::kProd: fn.identity = A(1); return run_plan<T, A, T, Combine::kProd>(pl, x, y, fn, s, st);
    case ReduceOp::kLogSumExp: {
      // Max first (NaNs skipped, as std::max), then log(sum(exp(x - max))) + max.
      if (!s.aux) return invalid_argument("ReduceLogSumExp: the CUDA kernel needs its workspace");
      auto* max = static_cast<A*>(s.aux);
      fn.identity = -kInf;
      KILN_RETURN_IF_ERROR((run_plan<T, A, A, Combine::kMaxIgnoreNaN>(pl, x, max, fn, s, st)));
      fn.identity = A(0), fn.pre = Pre::kExpMinusAux, fn.post = Post::kAuxPlusLog, fn.aux = max;
      return run_plan<T, A, T, Combine::kSum>(pl, x, y, fn, s, st);
    }
  }
  return Status::ok();
}

template <typename T>
Status reduce_ints(const ReduceParams& p, const ReducePlan& pl, cudaStream_t st) {
  const auto* x = static_cast<const T*>(p.x);
  auto* y = static_cast<T*>(p.y);
  const Scratch s = carve(pl, p.workspace, p.workspace_bytes, false);
  using W = uint64_t;  // sums and products wrap like numpy's
  using M = std::conditional_t<std::is_signed_v<T>, int64_t, uint64_t>;
  ReduceFn<W> wrap;
  ReduceFn<M> ordered;
  ReduceFn<double> real;  // numpy computes these in float64 and truncates
  real.count = pl.n_red;
  switch (p.op) {
    case ReduceOp::kSum: return run_plan<T, W, T, Combine::kSum>(pl, x, y, wrap, s, st);
    case ReduceOp::kL1: wrap.pre = Pre::kAbs; return run_plan<T, W, T, Combine::kSum>(pl, x, y, wrap, s, st);
    case ReduceOp::kSumSquare: wrap.pre = Pre::kSquare; return run_plan<T, W, T, Combine::kSum>(pl, x, y, wrap, s, st);
    case ReduceOp::kProd: wrap.identity = 1; return run_plan<T, W, T, Combine::kProd>(pl, x, y, wrap, s, st);
    case ReduceOp::kMax:
      ordered.identity = static_cast<M>(std::numeric_limits<T>::lowest());
      return run_plan<T, M, T, Combine::kMax>(pl, x, y, ordered, s, st);
    case ReduceOp::kMin:
      ordered.identity = static_cast<M>(std::numeric_limits<T>::max());
      return run_plan<T, M, T, Combine::kMin>(pl, x, y, ordered, s, st);
    case ReduceOp::kMean: real.post = Post::kMean; break;
    case ReduceOp::kL2: real.pre = Pre::kSquare, real.post = Post::kSqrt; break;
    case ReduceOp::kLogSum: real.post = Post::kLog; break;
    case ReduceOp::kLogSumExp: real.pre = Pre::kExp, real.post = Post::kLog; break;
  }
  return run_plan<T, double, T, Combine::kSum>(pl, x, y, real, s, st);
}

Status reduce_bools(const ReduceParams& p, const ReducePlan& pl, cudaStream_t st) {
  if (p.op != ReduceOp::kMax && p.op != ReduceOp::kMin)
    return unsupported("reduce: dtype bool (only ReduceMax and ReduceMin take it)");
  const auto* x = static_cast<const bool*>(p.x);
  auto* y = static_cast<bool*>(p.y);
  ReduceFn<int64_t> fn;  // any (Max) / all (Min)
  fn.identity = p.op == ReduceOp::kMin ? 1 : 0;
  if (p.op == ReduceOp::kMax) return run_plan<bool, int64_t, bool, Combine::kMax>(pl, x, y, fn, {}, st);
  return run_plan<bool, int64_t, bool, Combine::kMin>(pl, x, y, fn, {}, st);
}

}  // namespace

Expected<ReduceView> reduce_view(const std::vector<int64_t>& dims, const std::vector<int64_t>& axes) {
  KILN_ASSIGN_OR_RETURN(std::vector<bool> mask, reduced_mask(dims, axes, false));
  return view_of(dims, mask);
}

size_t reduce_workspace_bytes(const ReduceParams& p) {
  auto pl = plan_reduce(p.dims, p.axes, p.noop_with_empty_axes);
  if (!pl.is_ok()) return 0;
  size_t bytes = 0;
  if (p.op == ReduceOp::kLogSumExp) bytes += align_up(size_t(pl->n_out) * sizeof(double));
  if (uses_columns(*pl)) {
    const int64_t chunks = column_chunks(pl->view, kMaxColWidth);
    if (chunks > 1) bytes += size_t(chunks) * size_t(pl->n_out) * sizeof(double);
  }
  const RowChunks rc = row_chunks(*pl);
  if (rc.chunks > 1) bytes += size_t(rc.chunks) * size_t(pl->n_out) * sizeof(double);
  return bytes;
}

Status launch_reduce(const ReduceParams& p, cudaStream_t stream) {
  KILN_ASSIGN_OR_RETURN(ReducePlan pl, plan_reduce(p.dims, p.axes, p.noop_with_empty_axes));
  if (pl.n_out == 0) return Status::ok();
  if (p.dtype == DType::kBool) return reduce_bools(p, pl, stream);
  if (is_float_dtype(p.dtype)) {
    KILN_CUDA_DISPATCH_FLOATS(p.dtype, "reduce", return reduce_floats<T>(p, pl, stream));
  }
  KILN_CUDA_DISPATCH_INTS(p.dtype, "reduce", return reduce_ints<T>(p, pl, stream));
  return Status::ok();
}

size_t mean_var_workspace_bytes(const MeanVarParams& p) {
  auto pl = plan_reduce(p.dims, p.axes, false);
  if (!pl.is_ok()) return 0;
  const int64_t chunks = uses_columns(*pl) ? column_chunks(pl->view, kMaxColWidth) : row_chunks(*pl).chunks;
  return chunks > 1 ? size_t(chunks) * size_t(pl->n_out) * sizeof(double) : 0;
}

Status launch_mean_var(const MeanVarParams& p, cudaStream_t stream) {
  KILN_ASSIGN_OR_RETURN(ReducePlan pl, plan_reduce(p.dims, p.axes, false));
  const Scratch s = carve(pl, p.workspace, p.workspace_bytes, false);
  KILN_CUDA_DISPATCH_FLOATS(p.dtype, "MeanVarianceNormalization", {
    using A = float_acc_t<T>;
    const auto* x = static_cast<const T*>(p.x);
    ReduceFn<A> fn;
    fn.count = pl.n_red;
    fn.post = Post::kMean;
    KILN_RETURN_IF_ERROR((run_plan<T, A, A, Combine::kSum>(pl, x, static_cast<A*>(p.mean), fn, s, stream)));
    fn.pre = Pre::kSquaredDeviation, fn.aux = static_cast<const A*>(p.mean);
    return run_plan<T, A, A, Combine::kSum>(pl, x, static_cast<A*>(p.var), fn, s, stream);
  });
  return Status::ok();
}

}  // namespace kiln::cuda
