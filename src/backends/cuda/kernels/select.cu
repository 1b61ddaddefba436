// Mark, scan, scatter. The workspace holds the marks and their inclusive
// prefix sums (int64 each) and CUB's scan storage; the last prefix sum is the
// kept count, which the scatter and the dims kernels read on the device (no
// host round trip inside the layer).
#include <cub/device/device_scan.cuh>

#include "backends/cuda/kernels/index_map.cuh"
#include "backends/cuda/kernels/reduce_common.cuh"
#include "backends/cuda/kernels/select.cuh"

namespace kiln::cuda {
namespace {

struct ScanScratch {
  int64_t* marks = nullptr;
  int64_t* sums = nullptr;
  void* temp = nullptr;
  size_t temp_bytes = 0, total = 0;
};

Expected<ScanScratch> scan_scratch(int64_t n, void* base) {
  size_t temp_bytes = 0;
  KILN_CUDA_RETURN_IF_ERROR(cub::DeviceScan::InclusiveSum(nullptr, temp_bytes, static_cast<const int64_t*>(nullptr),
                                                          static_cast<int64_t*>(nullptr), n));
  ScratchCarver carve(base);
  ScanScratch s;
  s.marks = static_cast<int64_t*>(carve.take(size_t(n) * 8));
  s.sums = static_cast<int64_t*>(carve.take(size_t(n) * 8));
  s.temp = carve.take(temp_bytes);
  s.temp_bytes = temp_bytes;
  s.total = carve.total();
  return s;
}

// The scratch carved from a layer's workspace of `bytes`, which must hold it.
Expected<ScanScratch> workspace_scratch(const char* op, int64_t n, void* workspace, size_t bytes) {
  KILN_ASSIGN_OR_RETURN(ScanScratch s, scan_scratch(n, workspace));
  if (n > 0 && (!workspace || bytes < s.total))
    return invalid_argument("{}: workspace of {} bytes, {} needed", op, bytes, s.total);
  return s;
}

// The inclusive prefix sums of the marks (n > 0).
Status scan_marks(ScanScratch& s, int64_t n, cudaStream_t stream) {
  size_t temp_bytes = s.temp_bytes;
  KILN_CUDA_RETURN_IF_ERROR(cub::DeviceScan::InclusiveSum(s.temp, temp_bytes, s.marks, s.sums, n, stream));
  return Status::ok();
}

template <typename T>
__global__ void mark_nonzero_kernel(const T* __restrict__ x, int64_t n, int64_t* __restrict__ marks) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    if constexpr (std::is_same_v<T, bool>)
      marks[i] = x[i] ? 1 : 0;
    else
      marks[i] = load_c(x[i]) != compute_of<T>(0) ? 1 : 0;  // NaN counts as non-zero, -0 as zero
  }
}

// Column sums[i] - 1 of row k holds coordinate k of kept element i.
__global__ void scatter_nonzero_kernel(NonZeroParams p, const int64_t* __restrict__ marks,
                                       const int64_t* __restrict__ sums) {
  const int64_t count = sums[p.n - 1], stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < p.n; i += stride) {
    if (!marks[i]) continue;
    const int64_t j = sums[i] - 1;
    int64_t rest = i;
    for (int k = p.rank - 1; k >= 0; --k) {
      p.y[k * count + j] = rest % p.dims[k];
      rest /= p.dims[k];
    }
  }
}

struct FixedDims {
  int64_t d[8];
};

// out[at] = the kept count (0 when nothing was scanned), the others `fixed`.
__global__ void write_dims_value_kernel(int64_t* __restrict__ out, FixedDims fixed, int rank, int at,
                                        const int64_t* __restrict__ sums, int64_t n) {
  for (int k = 0; k < rank; ++k) out[k] = k == at ? (n > 0 ? sums[n - 1] : 0) : fixed.d[k];
}

__global__ void mark_condition_kernel(const uint8_t* __restrict__ c, int64_t n, int64_t* __restrict__ marks) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) marks[i] = c[i] ? 1 : 0;
}

// Thread per (o, j, e) of the largest output [outer, conditions, inner]:
// kept position j of condition entry j writes its slice element.
template <typename E>
__global__ void scatter_compress_kernel(CompressParams p, const int64_t* __restrict__ marks,
                                        const int64_t* __restrict__ sums) {
  const E* x = static_cast<const E*>(p.x);
  E* y = static_cast<E*>(p.y);
  const int64_t kept = sums[p.conditions - 1], total = p.outer * p.conditions * p.inner;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < total; t += stride) {
    const int64_t e = t % p.inner, j = (t / p.inner) % p.conditions, o = t / (p.inner * p.conditions);
    if (!marks[j]) continue;
    y[(o * kept + sums[j] - 1) * p.inner + e] = x[(o * p.axis + j) * p.inner + e];
  }
}

}  // namespace

size_t nonzero_workspace_bytes(int64_t n) {
  auto s = scan_scratch(n, nullptr);
  return s ? s->total : 0;
}

Status launch_nonzero(const NonZeroParams& p, cudaStream_t stream) {
  KILN_ASSIGN_OR_RETURN(ScanScratch s, workspace_scratch("NonZero", p.n, p.workspace, p.workspace_bytes));
  if (p.rank < 1 || p.rank > 8) return unsupported("NonZero: rank {} (the CUDA kernel takes 1 to 8)", p.rank);
  constexpr int kBlock = 256;
  if (p.n > 0) {
    KILN_CUDA_DISPATCH_NUMERIC_OR_BOOL(p.dtype, "NonZero", {
      mark_nonzero_kernel<T><<<grid_for(p.n, kBlock), kBlock, 0, stream>>>(static_cast<const T*>(p.x), p.n, s.marks);
      KILN_RETURN_IF_ERROR(last_launch_status("mark_nonzero_kernel"));
    });
    KILN_RETURN_IF_ERROR(scan_marks(s, p.n, stream));
    scatter_nonzero_kernel<<<grid_for(p.n, kBlock), kBlock, 0, stream>>>(p, s.marks, s.sums);
    KILN_RETURN_IF_ERROR(last_launch_status("scatter_nonzero_kernel"));
  }
  FixedDims fixed{{p.rank}};
  write_dims_value_kernel<<<1, 1, 0, stream>>>(p.out_dims, fixed, 2, 1, s.sums, p.n);
  return last_launch_status("write_dims_value_kernel");
}

size_t compress_workspace_bytes(int64_t conditions) { return nonzero_workspace_bytes(conditions); }

Status launch_compress(const CompressParams& p, cudaStream_t stream) {
  KILN_ASSIGN_OR_RETURN(ScanScratch s, workspace_scratch("Compress", p.conditions, p.workspace, p.workspace_bytes));
  if (p.rank < 1 || p.rank > 8) return unsupported("Compress: rank {} (the CUDA kernel takes 1 to 8)", p.rank);
  constexpr int kBlock = 256;
  if (p.conditions > 0) {
    mark_condition_kernel<<<grid_for(p.conditions, kBlock), kBlock, 0, stream>>>(p.condition, p.conditions, s.marks);
    KILN_RETURN_IF_ERROR(last_launch_status("mark_condition_kernel"));
    KILN_RETURN_IF_ERROR(scan_marks(s, p.conditions, stream));
    const int64_t total = p.outer * p.conditions * p.inner;
    if (total > 0) {
      KILN_CUDA_DISPATCH_WIDTH(p.elem_size, "Compress", {
        scatter_compress_kernel<E><<<grid_for(total, kBlock), kBlock, 0, stream>>>(p, s.marks, s.sums);
        KILN_RETURN_IF_ERROR(last_launch_status("scatter_compress_kernel"));
      });
    }
  }
  FixedDims fixed{};
  for (int k = 0; k < p.rank; ++k) fixed.d[k] = p.y_dims[k];
  write_dims_value_kernel<<<1, 1, 0, stream>>>(p.out_dims, fixed, p.rank, p.axis_dim, s.sums, p.conditions);
  return last_launch_status("write_dims_value_kernel");
}

}  // namespace kiln::cuda
