// A group of threads (a warp or a block, see row_launch.cuh) owns a row:
// pass 1 sums x (LayerNorm only), pass 2 sums (x - mean)^2 (or x^2 for RMS),
// pass 3 writes. Two passes over the data in float avoid the cancellation of
// E[x^2] - E[x]^2; the re-reads hit L1/L2.
#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/normalization.cuh"
#include "backends/cuda/kernels/row_launch.cuh"

namespace kiln::cuda {
namespace {

template <typename T>
__global__ void __launch_bounds__(1024) norm_kernel(NormParams p, int group) {
  __shared__ float smem[32];
  const T* __restrict__ x = static_cast<const T*>(p.x);
  const T* __restrict__ scale = static_cast<const T*>(p.scale);
  const T* __restrict__ bias = static_cast<const T*>(p.bias);
  T* __restrict__ y = static_cast<T*>(p.y);
  const int64_t cols = p.cols;
  const int groups_per_block = blockDim.x / group;
  const int lane = threadIdx.x % group;
  const int64_t base = int64_t(blockIdx.x) * groups_per_block;
  const int64_t step = int64_t(gridDim.x) * groups_per_block;
  const int64_t iters = (p.rows - base + step - 1) / step;  // the same for the whole block
  for (int64_t it = 0; it < iters; ++it) {
    const int64_t row = base + threadIdx.x / group + it * step;
    const bool active = row < p.rows;
    const T* xr = x + (active ? row : 0) * cols;
    float mean = 0.f;
    if (!p.rms) {
      float s = 0.f;
      if (active)
        for (int64_t c = lane; c < cols; c += group) s += to_float(xr[c]);
      mean = group_reduce<ReduceKind::kSum>(s, group, smem) / static_cast<float>(cols);
    }
    float sq = 0.f;
    if (active)
      for (int64_t c = lane; c < cols; c += group) {
        const float d = to_float(xr[c]) - mean;
        sq += d * d;
      }
    sq = group_reduce<ReduceKind::kSum>(sq, group, smem);
    if (!active) continue;
    const float inv = rsqrtf(sq / static_cast<float>(cols) + p.epsilon);
    T* yr = y + row * cols;
    for (int64_t c = lane; c < cols; c += group) {
      float v = (to_float(xr[c]) - mean) * inv * to_float(scale[c]);
      if (bias) v += to_float(bias[c]);
      yr[c] = from_float<T>(v);
    }
    if (lane == 0) {
      if (p.mean) p.mean[row] = mean;
      if (p.inv_std_dev) p.inv_std_dev[row] = inv;
    }
  }
}

}  // namespace

Status launch_normalization(const NormParams& p, cudaStream_t stream) {
  if (p.rows == 0) return Status::ok();
  if (p.cols == 0) return invalid_argument("normalization: rows of 0 elements have no mean");
  if (!p.scale) return invalid_argument("normalization: scale is required");
  const RowLaunch l = row_launch(p.rows, p.cols);
  KILN_CUDA_DISPATCH_FLOAT(p.dtype, "normalization", norm_kernel<T><<<l.grid, l.block, 0, stream>>>(p, l.group));
  return last_launch_status("norm_kernel");
}

}  // namespace kiln::cuda
