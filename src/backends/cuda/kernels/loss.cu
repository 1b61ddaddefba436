// A thread per (n, d) position computes its weighted loss (with the
// log-softmax over the c classes, stride d, when asked); "sum" and "mean"
// then add the per-position losses and weights in one block, in a fixed
// order (deterministic).
#include "backends/cuda/kernels/loss.cuh"
#include "backends/cuda/kernels/reduce_common.cuh"

namespace kiln::cuda {
namespace {

template <typename T>
__global__ void loss_positions_kernel(LossParams p, float_acc_t<T>* __restrict__ losses,
                                      float_acc_t<T>* __restrict__ weights) {
  using A = float_acc_t<T>;
  const auto* x = static_cast<const T*>(p.x);
  const int64_t count = p.n * p.d, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t s = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; s < count; s += stride) {
    const int64_t cls =
        p.target_i64 ? static_cast<const int64_t*>(p.target)[s] : static_cast<const int32_t*>(p.target)[s];
    A loss = 0, w = 0;
    if (!(p.has_ignore_index && cls == p.ignore_index)) {
      if (cls < 0 || cls >= p.c) {
        loss = w = NAN;
      } else {
        const int64_t i = s / p.d, base = i * p.c * p.d + (s - i * p.d);
        A lp = to_acc<A>(x[base + cls * p.d]);
        if (p.softmax) {
          A m = -INFINITY, sum = 0;
          for (int64_t k = 0; k < p.c; ++k) m = fmax(m, to_acc<A>(x[base + k * p.d]));
          for (int64_t k = 0; k < p.c; ++k) sum += exp(to_acc<A>(x[base + k * p.d]) - m);
          lp -= m + log(sum);
        }
        w = p.weight ? to_acc<A>(static_cast<const T*>(p.weight)[cls]) : A(1);
        loss = -w * lp;
      }
    }
    if (p.reduction == LossReduction::kNone) {
      static_cast<T*>(p.loss)[s] = from_acc<T>(loss);
    } else {
      losses[s] = loss;
      weights[s] = w;
    }
  }
}

template <typename T>
__global__ void __launch_bounds__(1024)
    loss_total_kernel(const float_acc_t<T>* __restrict__ losses, const float_acc_t<T>* __restrict__ weights,
                      int64_t count, bool mean, T* __restrict__ out) {
  using A = float_acc_t<T>;
  __shared__ A smem[32];
  A l = 0, w = 0;
  for (int64_t s = threadIdx.x; s < count; s += blockDim.x) l += losses[s], w += weights[s];
  l = group_reduce_acc<Combine::kSum>(l, blockDim.x, smem);
  w = group_reduce_acc<Combine::kSum>(w, blockDim.x, smem);
  if (threadIdx.x == 0) out[0] = from_acc<T>(mean ? l / w : l);
}

}  // namespace

size_t loss_workspace_bytes(const LossParams& p) {
  if (p.reduction == LossReduction::kNone) return 0;
  return 2 * align_up(size_t(p.n * p.d) * (p.dtype == DType::kF64 ? 8 : 4));
}

Status launch_loss(const LossParams& p, cudaStream_t stream) {
  const int64_t count = p.n * p.d;
  if (p.reduction != LossReduction::kNone && p.workspace_bytes < loss_workspace_bytes(p))
    return invalid_argument("loss: workspace of {} bytes, {} needed", p.workspace_bytes, loss_workspace_bytes(p));
  KILN_CUDA_DISPATCH_FLOATS(p.dtype, "loss", {
    using A = float_acc_t<T>;
    auto* losses = static_cast<A*>(p.workspace);
    auto* weights =
        losses ? reinterpret_cast<A*>(static_cast<char*>(p.workspace) + align_up(size_t(count) * sizeof(A))) : nullptr;
    constexpr int kBlock = 256;
    if (count > 0) {
      loss_positions_kernel<T><<<grid_for(count, kBlock), kBlock, 0, stream>>>(p, losses, weights);
      KILN_RETURN_IF_ERROR(last_launch_status("loss_positions_kernel"));
    }
    if (p.reduction != LossReduction::kNone)
      loss_total_kernel<T><<<1, 1024, 0, stream>>>(losses, weights, count, p.reduction == LossReduction::kMean,
                                                   static_cast<T*>(p.loss));
  });
  return last_launch_status("loss_total_kernel");
}

}  // namespace kiln::cuda
