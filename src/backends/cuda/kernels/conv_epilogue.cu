// kiln::FusedConv's epilogue for convolutions cuDNN runs without it: one pass
// over the convolution's result adding the bias and the residual and
// applying the activation, instead of one read and write per elementwise op.
#include <cmath>

#include "backends/cuda/kernels/conv.cuh"
#include "backends/cuda/kernels/conv_activation.cuh"
#include "backends/cuda/kernels/window_common.cuh"

namespace kiln::cuda {
namespace {

constexpr int kBlock = 256;

template <typename T>
__global__ void conv_epilogue_kernel(ConvEpilogueParams p, int64_t n) {
  using A = ComputeT<T>;
  T* y = static_cast<T*>(p.y);
  const T* bias = static_cast<const T*>(p.bias);
  const T* z = static_cast<const T*>(p.z);
  KILN_GRID_STRIDE_LOOP(i, n) {
    A v = load_as<A>(y[i]);
    if (bias) v += load_as<A>(bias[i / p.inner % p.channels]);
    if (z) v += load_as<A>(z[i]);
    y[i] = store_as<T>(conv_activate(v, p.act, p.lo, p.hi));
  }
}

}  // namespace

Status launch_conv_epilogue(const ConvEpilogueParams& p, cudaStream_t stream) {
  const int64_t n = p.batch * p.channels * p.inner;
  if (n == 0) return Status::ok();
  if (p.dtype == DType::kF64) {
    conv_epilogue_kernel<double><<<grid_for(n, kBlock), kBlock, 0, stream>>>(p, n);
  } else {
    KILN_CUDA_DISPATCH_FLOAT(p.dtype, "FusedConv epilogue",
                             conv_epilogue_kernel<T><<<grid_for(n, kBlock), kBlock, 0, stream>>>(p, n));
  }
  return last_launch_status("conv_epilogue_kernel");
}

}  // namespace kiln::cuda
