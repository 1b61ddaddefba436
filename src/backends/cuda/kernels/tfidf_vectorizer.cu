// TfIdfVectorizer's two kernels: counting the pool's n-grams (a thread per
// (row, start, skip), binary searches in the per-length tables) and weighing
// the counts into the output.
#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/tfidf_vectorizer.cuh"

namespace kiln::cuda {
namespace {

constexpr int kBlock = 256;

// Compares pool entry `e` (g tokens) with the row's g-gram starting at
// `start` with `step` between its tokens: < 0, 0 or > 0 as the entry is
// less, equal or greater (lexicographically, as signed int64).
template <typename T>
__device__ __forceinline__ int compare_gram(const int64_t* __restrict__ entry, const T* __restrict__ row, int64_t start,
                                            int64_t step, int g) {
  for (int j = 0; j < g; ++j) {
    const int64_t a = entry[j], b = static_cast<int64_t>(row[start + j * step]);
    if (a != b) return a < b ? -1 : 1;
  }
  return 0;
}

template <typename T>
__global__ void tfidf_count_kernel(const TfIdfParams p) {
  const T* x = static_cast<const T*>(p.x);
  const int64_t skips = p.max_skip + 1;
  const int64_t total = p.rows * p.cols * skips;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    const int64_t skip = i % skips, rest = i / skips;
    const int64_t start = rest % p.cols, r = rest / p.cols;
    const T* row = x + r * p.cols;
    const int64_t step = skip + 1;
    // Unigrams do not depend on the skip: only skip 0 counts them.
    const int lo = skip == 0 ? p.min_n : max(p.min_n, 2);
    for (int g = lo; g <= p.max_n; ++g) {
      if (start + (g - 1) * step >= p.cols) break;
      const int64_t first = p.entry_begin[g], count = p.entry_begin[g + 1] - first;
      const int64_t* table = p.tokens + p.token_begin[g];
      int64_t a = 0, b = count;
      while (a < b) {
        const int64_t mid = (a + b) / 2;
        const int c = compare_gram(table + mid * g, row, start, step, g);
        if (c == 0) {
          atomicAdd(p.counts + r * p.width + p.columns[first + mid], 1);
          break;
        }
        if (c < 0)
          a = mid + 1;
        else
          b = mid;
      }
    }
  }
}

__global__ void tfidf_weigh_kernel(const TfIdfParams p) {
  const int64_t total = p.rows * p.width;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    double c = static_cast<double>(p.counts[i]);
    const double w = p.weight_count == 0 ? 1.0 : static_cast<double>(p.weights[(i % p.width) % p.weight_count]);
    if (p.mode == TfIdfMode::kIdf)
      c = c > 0 ? w : 0;
    else if (p.mode == TfIdfMode::kTfIdf)
      c *= w;
    p.y[i] = static_cast<float>(c);
  }
}

}  // namespace

Status launch_tfidf_vectorizer(const TfIdfParams& p, cudaStream_t stream) {
  const int64_t cells = p.rows * p.width;
  if (cells <= 0) return Status::ok();
  if (p.x_dtype != DType::kI32 && p.x_dtype != DType::kI64)
    return unsupported("TfIdfVectorizer: tokens of dtype {} (the CUDA kernel takes i32 or i64)", dtype_name(p.x_dtype));
  KILN_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(p.counts, 0, tfidf_workspace_bytes(p.rows, p.width), stream));
  const int64_t work = p.max_skip < 0 ? 0 : p.rows * p.cols * (p.max_skip + 1);
  if (work > 0 && p.min_n <= p.max_n) {
    if (p.x_dtype == DType::kI32)
      tfidf_count_kernel<int32_t><<<grid_for(work, kBlock), kBlock, 0, stream>>>(p);
    else
      tfidf_count_kernel<int64_t><<<grid_for(work, kBlock), kBlock, 0, stream>>>(p);
    KILN_RETURN_IF_ERROR(last_launch_status("tfidf_count_kernel"));
  }
  tfidf_weigh_kernel<<<grid_for(cells, kBlock), kBlock, 0, stream>>>(p);
  return last_launch_status("tfidf_weigh_kernel");
}

}  // namespace kiln::cuda
