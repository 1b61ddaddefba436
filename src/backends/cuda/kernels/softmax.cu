// A group of threads (a warp or a block, see row_launch.cuh) owns a row and
// makes three passes over it: max, sum of exp(x - max), write. The second and
// third passes re-read the row, which is then in L1/L2. Grid-stride over rows
// so a huge row count needs no more than 2^31 blocks.
#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/row_launch.cuh"
#include "backends/cuda/kernels/softmax.cuh"

namespace kiln::cuda {
namespace {

template <typename T>
__global__ void __launch_bounds__(1024)
    softmax_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t rows, int64_t cols, int group, bool log) {
  __shared__ float smem[32];
  const int groups_per_block = blockDim.x / group;
  const int lane = threadIdx.x % group;
  const int64_t first = int64_t(blockIdx.x) * groups_per_block + threadIdx.x / group;
  const int64_t step = int64_t(gridDim.x) * groups_per_block;
  // Every thread of a block runs the same number of iterations, so the block
  // barriers inside group_reduce are reached by all.
  const int64_t iters = (rows + step - 1 - (int64_t(blockIdx.x) * groups_per_block)) / step;
  for (int64_t it = 0; it < iters; ++it) {
    const int64_t row = first + it * step;
    const bool active = row < rows;
    const T* xr = x + (active ? row : 0) * cols;
    float m = -INFINITY;
    if (active)
      for (int64_t c = lane; c < cols; c += group) m = nan_max(m, to_float(xr[c]));
    m = group_reduce<ReduceKind::kMax>(m, group, smem);
    float s = 0.f;
    if (active)
      for (int64_t c = lane; c < cols; c += group) s += expf(to_float(xr[c]) - m);
    s = group_reduce<ReduceKind::kSum>(s, group, smem);
    if (!active) continue;
    T* yr = y + row * cols;
    if (log) {
      const float log_s = logf(s);
      for (int64_t c = lane; c < cols; c += group) yr[c] = from_float<T>(to_float(xr[c]) - m - log_s);
    } else {
      const float inv = 1.f / s;
      for (int64_t c = lane; c < cols; c += group) yr[c] = from_float<T>(expf(to_float(xr[c]) - m) * inv);
    }
  }
}

}  // namespace

Status launch_softmax(const SoftmaxParams& p, cudaStream_t stream) {
  if (p.rows == 0 || p.cols == 0) return Status::ok();
  const RowLaunch l = row_launch(p.rows, p.cols);
  KILN_CUDA_DISPATCH_FLOAT(p.dtype, "softmax",
                           softmax_kernel<T><<<l.grid, l.block, 0, stream>>>(
                               static_cast<const T*>(p.x), static_cast<T*>(p.y), p.rows, p.cols, l.group, p.log));
  return last_launch_status("softmax_kernel");
}

}  // namespace kiln::cuda
