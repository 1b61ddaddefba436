// The walk runs a thread per (row, tree) pair, so a few rows over many trees
// still fill the GPU; the leaves it finds go to the workspace, and a thread
// per row then folds them in tree order (the CPU's order, in double). When
// the workspace has no room for the leaves, the fold walks the trees itself.
// Accumulators are column-major ([column, row]) so a warp's rows coalesce.
#include <cfloat>

#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/tree_ensemble.cuh"

namespace kiln::cuda {
namespace {

constexpr size_t kAlign = 256;

size_t align_bytes(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// Whether `v` takes the node's true branch. NaN compares false except for
// NEQ, and is never a set member; missing_true sends it to the true branch.
__device__ __forceinline__ bool goes_true(const TreeNode& n, double v, const double* members) {
  if (v != v && n.missing_true) return true;
  switch (n.mode) {
    case 0: return v <= n.split;
    case 1: return v < n.split;
    case 2: return v >= n.split;
    case 3: return v > n.split;
    case 4: return v == n.split;
    case 5: return v != n.split;
    default:
      for (int32_t k = 0; k < n.count; ++k)
        if (members[n.first + k] == v) return true;
      return false;
  }
}

// The leaf `tree` sends `row` to.
template <typename X>
__device__ int32_t find_leaf(const TreeEnsembleParams& p, int64_t row, int64_t tree) {
  const X* xr = static_cast<const X*>(p.x) + row * p.features;
  int32_t at = p.roots[tree];
  for (;;) {
    const TreeNode& n = p.nodes[at];
    if (n.mode == kTreeLeaf) return at;
    at = goes_true(n, to_double(xr[n.feature]), p.members) ? n.true_next : n.false_next;
  }
}

// The walk's result when it ran (leaves not null), else the walk itself.
template <typename X>
__device__ __forceinline__ const TreeNode& leaf_of(const TreeEnsembleParams& p, const int32_t* leaves, int64_t row,
                                                   int64_t tree) {
  return p.nodes[leaves ? leaves[row * p.trees + tree] : find_leaf<X>(p, row, tree)];
}

template <typename X>
__global__ void tree_walk_kernel(TreeEnsembleParams p, int32_t* __restrict__ leaves) {
  const int64_t count = p.rows * p.trees, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) {
    const int64_t row = i / p.trees;
    leaves[i] = find_leaf<X>(p, row, i - row * p.trees);
  }
}

template <typename Y>
__device__ __forceinline__ Y from_double(double v) {
  if constexpr (std::is_same_v<Y, double>)
    return v;
  else
    return from_float<Y>(static_cast<float>(v));
}

// TreeEnsemble-5: MIN and MAX start at the extremes (a target no tree votes
// for keeps it), AVERAGE adds each weight divided by the tree count.
template <typename Y>
__global__ void ensemble_fold_kernel(TreeEnsembleParams p, const int32_t* __restrict__ leaves,
                                     double* __restrict__ acc) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const double start = p.aggregate == TreeAggregate::kMin   ? DBL_MAX
                       : p.aggregate == TreeAggregate::kMax ? -DBL_MAX
                                                            : 0.0;
  for (int64_t r = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; r < p.rows; r += stride) {
    for (int64_t t = 0; t < p.targets; ++t) acc[t * p.rows + r] = start;
    for (int32_t k = 0; k < p.trees; ++k) {
      const TreeNode& leaf = leaf_of<Y>(p, leaves, r, k);
      for (int32_t v = leaf.first; v < leaf.first + leaf.count; ++v) {
        double& o = acc[p.vote_ids[v] * p.rows + r];
        const double w = p.vote_weights[v];
        if (p.aggregate == TreeAggregate::kSum)
          o += w;
        else if (p.aggregate == TreeAggregate::kAverage)
          o += w / static_cast<double>(p.trees);
        else if (p.aggregate == TreeAggregate::kMin)
          o = w < o ? w : o;
        else
          o = o < w ? w : o;
      }
    }
    auto* y = static_cast<Y*>(p.y);
    for (int64_t t = 0; t < p.targets; ++t) y[r * p.targets + t] = from_double<Y>(acc[t * p.rows + r]);
  }
}

// TreeEnsembleRegressor: MIN and MAX take only the trees that vote for a
// target (0 when none does), AVERAGE divides the sum by the tree count, and
// base_values are added last.
template <typename X>
__global__ void regressor_fold_kernel(TreeEnsembleParams p, const int32_t* leaves, double* __restrict__ acc,
                                      uint8_t* __restrict__ hit) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t r = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; r < p.rows; r += stride) {
    for (int64_t t = 0; t < p.targets; ++t) acc[t * p.rows + r] = 0, hit[t * p.rows + r] = 0;
    for (int32_t k = 0; k < p.trees; ++k) {
      const TreeNode& leaf = leaf_of<X>(p, leaves, r, k);
      for (int32_t v = leaf.first; v < leaf.first + leaf.count; ++v) {
        const int64_t at = p.vote_ids[v] * p.rows + r;
        double& a = acc[at];
        const double w = p.vote_weights[v];
        if (p.aggregate == TreeAggregate::kMin)
          a = hit[at] ? (w < a ? w : a) : w;
        else if (p.aggregate == TreeAggregate::kMax)
          a = hit[at] ? (a < w ? w : a) : w;
        else
          a += w;
        hit[at] = 1;
      }
    }
    auto* y = static_cast<float*>(p.y);
    for (int64_t t = 0; t < p.targets; ++t) {
      double v = acc[t * p.rows + r];
      if (p.aggregate == TreeAggregate::kAverage && p.trees > 0) v /= static_cast<double>(p.trees);
      if (t < p.base_count) v += p.base[t];
      y[r * p.targets + t] = static_cast<float>(v);
    }
  }
}

// TreeEnsembleClassifier: base values plus votes, the binary special case,
// the post transform, then the first best score's label.
template <typename X>
__global__ void classifier_fold_kernel(TreeEnsembleParams p, const int32_t* leaves, double* __restrict__ acc) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x, rows = p.rows, width = p.width;
  for (int64_t r = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; r < rows; r += stride) {
    double* s = acc + r;  // s[c * rows] is column c
    for (int64_t c = 0; c < width; ++c) s[c * rows] = c < p.targets && c < p.base_count ? p.base[c] : 0.0;
    for (int32_t k = 0; k < p.trees; ++k) {
      const TreeNode& leaf = leaf_of<X>(p, leaves, r, k);
      for (int32_t v = leaf.first; v < leaf.first + leaf.count; ++v) s[p.vote_ids[v] * rows] += p.vote_weights[v];
    }
    // Every vote is for one class: the scores become [1 - s, s], or [-s, s]
    // before a transform.
    if (p.binary) {
      s[rows] = s[0];
      s[0] = p.post == TreePostTransform::kNone ? 1 - s[rows] : -s[rows];
    }
    if (p.post == TreePostTransform::kLogistic) {
      for (int64_t c = 0; c < width; ++c) s[c * rows] = 1 / (1 + exp(-s[c * rows]));
    } else if (p.post == TreePostTransform::kSoftmax || p.post == TreePostTransform::kSoftmaxZero) {
      // SOFTMAX_ZERO leaves zero scores at zero.
      const bool keep_zero = p.post == TreePostTransform::kSoftmaxZero;
      double top = -INFINITY, sum = 0;
      for (int64_t c = 0; c < width; ++c)
        if (!keep_zero || s[c * rows] != 0) top = top < s[c * rows] ? s[c * rows] : top;
      for (int64_t c = 0; c < width; ++c) {
        s[c * rows] = keep_zero && s[c * rows] == 0 ? 0 : exp(s[c * rows] - top);
        sum += s[c * rows];
      }
      for (int64_t c = 0; c < width; ++c) s[c * rows] = sum > 0 ? s[c * rows] / sum : 0;
    }
    int64_t best = 0;
    for (int64_t c = 1; c < width; ++c)
      if (s[best * rows] < s[c * rows]) best = c;
    if (p.y) static_cast<int64_t*>(p.y)[r] = p.targets == 1 ? (best == 1 ? 1 : 0) : p.labels[best];
    if (p.z)
      for (int64_t c = 0; c < width; ++c) p.z[r * width + c] = static_cast<float>(s[c * rows]);
  }
}

template <typename X>
Status launch_for(const TreeEnsembleParams& p, int32_t* leaves, double* acc, uint8_t* hit, cudaStream_t stream) {
  constexpr int kBlock = 128;
  if (leaves) {
    tree_walk_kernel<X><<<grid_for(p.rows * p.trees, kBlock), kBlock, 0, stream>>>(p, leaves);
    KILN_RETURN_IF_ERROR(last_launch_status("tree_walk_kernel"));
  }
  const unsigned grid = grid_for(p.rows, kBlock);
  if (p.op == TreeOp::kRegressor) {
    regressor_fold_kernel<X><<<grid, kBlock, 0, stream>>>(p, leaves, acc, hit);
  } else if (p.op == TreeOp::kClassifier) {
    classifier_fold_kernel<X><<<grid, kBlock, 0, stream>>>(p, leaves, acc);
  } else if constexpr (std::is_floating_point_v<X> || kIs16BitFloat<X>) {
    ensemble_fold_kernel<X><<<grid, kBlock, 0, stream>>>(p, leaves, acc);
  } else {
    return unsupported("TreeEnsemble: dtype {} (the CUDA kernel takes f32, f64, f16 or bf16)", dtype_name(p.x_dtype));
  }
  return last_launch_status("tree ensemble fold kernel");
}

}  // namespace

size_t tree_ensemble_workspace_bytes(TreeOp op, int64_t rows, int64_t trees, int64_t width, bool store_leaves) {
  const auto r = static_cast<size_t>(rows), c = static_cast<size_t>(width);
  size_t bytes = align_bytes(r * c * sizeof(double));
  if (store_leaves) bytes += align_bytes(r * static_cast<size_t>(trees) * sizeof(int32_t));
  if (op == TreeOp::kRegressor) bytes += align_bytes(r * c);
  return bytes;
}

Status launch_tree_ensemble(const TreeEnsembleParams& p, cudaStream_t stream) {
  if (p.rows == 0) return Status::ok();
  const int64_t columns = p.op == TreeOp::kClassifier ? p.width : p.targets;
  const size_t need = tree_ensemble_workspace_bytes(p.op, p.rows, p.trees, columns, false);
  if (p.workspace_bytes < need)
    return invalid_argument("tree ensemble: workspace of {} bytes, {} needed", p.workspace_bytes, need);
  // Scores, vote flags, then the leaves when the workspace has room for them.
  char* at = static_cast<char*>(p.workspace);
  auto* acc = reinterpret_cast<double*>(at);
  at += align_bytes(size_t(p.rows) * size_t(columns) * sizeof(double));
  uint8_t* hit = nullptr;
  if (p.op == TreeOp::kRegressor) {
    hit = reinterpret_cast<uint8_t*>(at);
    at += align_bytes(size_t(p.rows) * size_t(columns));
  }
  const bool store =
      p.trees > 0 && p.workspace_bytes >= tree_ensemble_workspace_bytes(p.op, p.rows, p.trees, columns, true);
  int32_t* leaves = store ? reinterpret_cast<int32_t*>(at) : nullptr;
  switch (p.x_dtype) {
    case DType::kF32: return launch_for<float>(p, leaves, acc, hit, stream);
    case DType::kF64: return launch_for<double>(p, leaves, acc, hit, stream);
    case DType::kF16: return launch_for<__half>(p, leaves, acc, hit, stream);
    case DType::kBF16: return launch_for<__nv_bfloat16>(p, leaves, acc, hit, stream);
    case DType::kI32: return launch_for<int32_t>(p, leaves, acc, hit, stream);
    case DType::kI64: return launch_for<int64_t>(p, leaves, acc, hit, stream);
    default:
      return unsupported("tree ensemble: input dtype {} (the CUDA kernel takes f32, f64, f16, bf16, i32 or i64)",
                         dtype_name(p.x_dtype));
  }
}

}  // namespace kiln::cuda
