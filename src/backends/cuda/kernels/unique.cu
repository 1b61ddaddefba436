#include <cub/device/device_merge_sort.cuh>
#include <cub/device/device_scan.cuh>

#include "backends/cuda/kernels/index_map.cuh"
#include "backends/cuda/kernels/reduce_common.cuh"
#include "backends/cuda/kernels/unique.cuh"

namespace kiln::cuda {
namespace {

// Slice a before slice b: lexicographic over [outer, inner], in double.
template <typename T>
struct SliceLess {
  const T* x;
  int64_t slices, outer, inner;
  __device__ double at(int64_t s, int64_t o, int64_t i) const {
    return static_cast<double>(load_c(x[(o * slices + s) * inner + i]));
  }
  __device__ bool operator()(const int64_t& a, const int64_t& b) const {
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < inner; ++i) {
        const double va = at(a, o, i), vb = at(b, o, i);
        if (va < vb) return true;
        if (vb < va) return false;
      }
    return false;
  }
};

struct UniqueScratch {
  int64_t *order, *marks, *sums, *first, *start, *position, *marks2, *sums2;
  void* temp;
  size_t temp_bytes, total;
};

template <typename T>
Expected<UniqueScratch> unique_scratch(const UniqueParams& p, void* base) {
  const int64_t n = p.slices;
  size_t sort_bytes = 0, scan_bytes = 0;
  SliceLess<T> less{static_cast<const T*>(p.x), p.slices, p.outer, p.inner};
  KILN_CUDA_RETURN_IF_ERROR(
      cub::DeviceMergeSort::StableSortKeys(nullptr, sort_bytes, static_cast<int64_t*>(nullptr), n, less));
  KILN_CUDA_RETURN_IF_ERROR(cub::DeviceScan::InclusiveSum(nullptr, scan_bytes, static_cast<const int64_t*>(nullptr),
                                                          static_cast<int64_t*>(nullptr), n));
  ScratchCarver carve(base);
  UniqueScratch s;
  for (int64_t** a : {&s.order, &s.marks, &s.sums, &s.first, &s.start, &s.position, &s.marks2, &s.sums2})
    *a = static_cast<int64_t*>(carve.take(size_t(n) * 8));
  s.temp_bytes = std::max(sort_bytes, scan_bytes);
  s.temp = carve.take(s.temp_bytes);
  s.total = carve.total();
  return s;
}

__global__ void iota_kernel(int64_t* __restrict__ v, int64_t n) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) v[i] = i;
}

// marks[r] = sorted slice r starts a group; marks2 cleared for the
// first-occurrence marks.
template <typename T>
__global__ void mark_groups_kernel(SliceLess<T> less, const int64_t* __restrict__ order, int64_t n,
                                   int64_t* __restrict__ marks, int64_t* __restrict__ marks2) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t r = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; r < n; r += stride) {
    marks[r] = r == 0 || less(order[r - 1], order[r]) ? 1 : 0;
    marks2[r] = 0;
  }
}

// Per group g: its first occurrence (the stable sort puts it first) and its
// start in the sorted order; marks2 flags first occurrences by slice index.
__global__ void group_starts_kernel(const int64_t* __restrict__ order, const int64_t* __restrict__ marks,
                                    const int64_t* __restrict__ sums, int64_t n, int64_t* __restrict__ first,
                                    int64_t* __restrict__ start, int64_t* __restrict__ marks2) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t r = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; r < n; r += stride) {
    if (!marks[r]) continue;
    const int64_t g = sums[r] - 1;
    first[g] = order[r];
    start[g] = r;
    marks2[order[r]] = 1;
  }
}

// Group g's output position: g when sorted, else the rank of its first
// occurrence among all first occurrences. Writes indices and counts there.
__global__ void place_groups_kernel(const int64_t* __restrict__ sums, const int64_t* __restrict__ sums2, int64_t n,
                                    bool sorted, const int64_t* __restrict__ first, const int64_t* __restrict__ start,
                                    int64_t* __restrict__ position, int64_t* __restrict__ indices,
                                    int64_t* __restrict__ counts) {
  const int64_t u = sums[n - 1], stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; g < u; g += stride) {
    const int64_t pos = sorted ? g : sums2[first[g]] - 1;
    position[g] = pos;
    if (indices) indices[pos] = first[g];
    if (counts) counts[pos] = (g + 1 < u ? start[g + 1] : n) - start[g];
  }
}

// inverse[slice] = its group's position; `by_position` (reusing marks)
// maps a position back to its group's first occurrence.
__global__ void inverse_kernel(const int64_t* __restrict__ order, const int64_t* __restrict__ sums,
                               const int64_t* __restrict__ position, const int64_t* __restrict__ first,
                               const int64_t* __restrict__ marks_in, int64_t n, int64_t* __restrict__ inverse,
                               int64_t* __restrict__ first_by_position) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t r = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; r < n; r += stride) {
    const int64_t g = sums[r] - 1;
    if (inverse) inverse[order[r]] = position[g];
    if (marks_in[r]) first_by_position[position[g]] = first[g];
  }
}

// Thread per (o, k, e) of the largest Y [outer, slices, inner]; k < u write.
template <typename E>
__global__ void gather_unique_kernel(const E* __restrict__ x, E* __restrict__ y, int64_t outer, int64_t slices,
                                     int64_t inner, const int64_t* __restrict__ sums,
                                     const int64_t* __restrict__ first_by_position) {
  const int64_t u = sums[slices - 1], total = outer * slices * inner, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < total; t += stride) {
    const int64_t e = t % inner, k = (t / inner) % slices, o = t / (inner * slices);
    if (k >= u) continue;
    y[(o * u + k) * inner + e] = x[(o * slices + first_by_position[k]) * inner + e];
  }
}

struct Dims8 {
  int64_t d[8];
};

__global__ void unique_dims_kernel(int64_t* __restrict__ out, Dims8 y_dims, int y_rank, int axis_dim, int outputs,
                                   const int64_t* __restrict__ sums, int64_t n) {
  const int64_t u = n > 0 ? sums[n - 1] : 0;
  for (int k = 0; k < y_rank; ++k) out[k] = k == axis_dim ? u : y_dims.d[k];
  if (outputs > 1) out[y_rank] = u;
  if (outputs > 2) out[y_rank + 1] = n;
  if (outputs > 3) out[y_rank + 2] = u;
}

template <typename T>
Status run_unique(const UniqueParams& p, cudaStream_t stream) {
  KILN_ASSIGN_OR_RETURN(UniqueScratch s, unique_scratch<T>(p, p.workspace));
  const int64_t n = p.slices;
  if (n > 0 && (!p.workspace || p.workspace_bytes < s.total))
    return invalid_argument("Unique: workspace of {} bytes, {} needed", p.workspace_bytes, s.total);
  constexpr int kBlock = 256;
  if (n > 0) {
    SliceLess<T> less{static_cast<const T*>(p.x), p.slices, p.outer, p.inner};
    const unsigned grid = grid_for(n, kBlock);
    iota_kernel<<<grid, kBlock, 0, stream>>>(s.order, n);
    size_t temp_bytes = s.temp_bytes;
    KILN_CUDA_RETURN_IF_ERROR(cub::DeviceMergeSort::StableSortKeys(s.temp, temp_bytes, s.order, n, less, stream));
    mark_groups_kernel<T><<<grid, kBlock, 0, stream>>>(less, s.order, n, s.marks, s.marks2);
    temp_bytes = s.temp_bytes;
    KILN_CUDA_RETURN_IF_ERROR(cub::DeviceScan::InclusiveSum(s.temp, temp_bytes, s.marks, s.sums, n, stream));
    group_starts_kernel<<<grid, kBlock, 0, stream>>>(s.order, s.marks, s.sums, n, s.first, s.start, s.marks2);
    if (!p.sorted) {
      temp_bytes = s.temp_bytes;
      KILN_CUDA_RETURN_IF_ERROR(cub::DeviceScan::InclusiveSum(s.temp, temp_bytes, s.marks2, s.sums2, n, stream));
    }
    place_groups_kernel<<<grid, kBlock, 0, stream>>>(s.sums, s.sums2, n, p.sorted, s.first, s.start, s.position,
                                                     p.indices, p.counts);
    // first_by_position reuses marks2 (its scan is done).
    inverse_kernel<<<grid, kBlock, 0, stream>>>(s.order, s.sums, s.position, s.first, s.marks, n, p.inverse, s.marks2);
    KILN_RETURN_IF_ERROR(last_launch_status("unique kernels"));
    const int64_t total = p.outer * n * p.inner;
    if (p.y && total > 0) {
      KILN_CUDA_DISPATCH_WIDTH(sizeof(T), "Unique", {
        gather_unique_kernel<E><<<grid_for(total, kBlock), kBlock, 0, stream>>>(
            static_cast<const E*>(p.x), static_cast<E*>(p.y), p.outer, n, p.inner, s.sums, s.marks2);
        KILN_RETURN_IF_ERROR(last_launch_status("gather_unique_kernel"));
      });
    }
  }
  Dims8 dims{};
  for (int k = 0; k < p.y_rank; ++k) dims.d[k] = p.y_dims[k];
  unique_dims_kernel<<<1, 1, 0, stream>>>(p.out_dims, dims, p.y_rank, p.axis_dim, p.outputs, s.sums, n);
  return last_launch_status("unique_dims_kernel");
}

}  // namespace

size_t unique_workspace_bytes(const UniqueParams& p) {
  size_t bytes = 0;
  auto measure = [&]() -> Status {
    KILN_CUDA_DISPATCH_NUMERIC_OR_BOOL(p.dtype, "Unique", {
      KILN_ASSIGN_OR_RETURN(UniqueScratch s, unique_scratch<T>(p, nullptr));
      bytes = s.total;
    });
    return Status::ok();
  };
  return measure().is_ok() ? bytes : 0;
}

Status launch_unique(const UniqueParams& p, cudaStream_t stream) {
  if (p.y_rank < 1 || p.y_rank > 8) return unsupported("Unique: rank {} (the CUDA kernel takes 1 to 8)", p.y_rank);
  KILN_CUDA_DISPATCH_NUMERIC_OR_BOOL(p.dtype, "Unique", { return run_unique<T>(p, stream); });
  return Status::ok();
}

}  // namespace kiln::cuda
