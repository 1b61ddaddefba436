// Section "stempool" of kiln_cuda_bench: ResNet-50's stem (the 4x4 conv over
// 16 space-to-depth channels to 64, bias, Relu) and its MaxPool 3x3/2 pad 1
// at batch 128 in f16, channels-last: the fused kernel (tactic
// "kiln_igemm_pool", launch_stem_conv_pool) against the stem kernel
// (kiln_igemm) then the pool kernel. GB/s counts x, w and the pooled y once
// (the unfused route also writes and reads the 112x112x64 convolution).
#include <cstdio>

#include "backends/cuda/kernels/pool.cuh"
#include "backends/cuda/kernels/stem_conv.cuh"
#include "backends/cuda/kernels/stem_conv_pool.cuh"
#include "cuda_bench_util.h"

namespace kiln::cuda {
namespace {

void bench_stem_pool(cudaStream_t s) {
  const int64_t n = 128, in = 115, k = 4, cin = 16, cout = 64, conv = in - k + 1, pooled = 56;
  const int64_t xs = n * in * in * cin, ws = cout * k * k * cin, cs = n * conv * conv * cout,
                ys = n * pooled * pooled * cout;
  DeviceBuffer x = filled(xs * 2), w = filled(ws * 2), b = filled(cout * 2), c = filled(cs * 2), y = filled(ys * 2);
  fill_random(x, DType::kF16, xs);
  fill_random(w, DType::kF16, ws);
  fill_random(b, DType::kF16, cout);
  StemConvPoolParams p;
  p.dtype = DType::kF16;
  p.g.batch = n, p.g.in_channels = cin, p.g.out_channels = cout;
  p.g.in[1] = p.g.in[2] = in, p.g.out[1] = p.g.out[2] = conv, p.g.kernel[1] = p.g.kernel[2] = k;
  p.x = x.data(), p.w = w.data(), p.bias = b.data(), p.y = y.data();
  p.act = EpilogueActivation::kRelu;
  p.pool.batch = n, p.pool.in_channels = p.pool.out_channels = cout;
  for (int a = 1; a < 3; ++a) {
    p.pool.in[a] = conv, p.pool.out[a] = pooled, p.pool.kernel[a] = 3, p.pool.stride[a] = 2;
    p.pool.pad_begin[a] = p.pool.pad_end[a] = 1;
  }
  const double bytes = 2.0 * (xs + ws + ys);
  StemConvParams stem = p;  // the convolution alone, into c
  stem.y = c.data();
  PoolParams pool;
  pool.kind = PoolKind::kMax, pool.dtype = DType::kF16, pool.channels_last = true;
  pool.g = p.pool, pool.x = c.data(), pool.y = y.data();
  const double stem_ms = median_ms([&] { return launch_stem_conv(stem, s); }, s);
  const double pool_ms = median_ms([&] { return launch_pool(pool, s); }, s);
  const double both_ms = median_ms(
      [&]() -> Status {
        KILN_RETURN_IF_ERROR(launch_stem_conv(stem, s));
        return launch_pool(pool, s);
      },
      s);
  const double fused_ms = median_ms([&] { return launch_stem_conv_pool(p, s); }, s);
  report_bw("kiln_igemm stem alone [128,112,112,64]", stem_ms, 2.0 * (xs + ws + cs));
  report_bw("MaxPool 3x3/2 alone [128,56,56,64]", pool_ms, 2.0 * (cs + ys));
  report_bw("kiln_igemm then MaxPool (unfused)", both_ms, bytes);
  report_bw("kiln_igemm_pool (fused)", fused_ms, bytes);
  std::printf("ResNet-50 b128 stem + pool: unfused %.3f ms, fused %.3f ms (%.2fx)\n", both_ms, fused_ms,
              both_ms / fused_ms);
}

}  // namespace

KILN_BENCH_SECTION("stempool", bench_stem_pool);

}  // namespace kiln::cuda
