// A benchmark, not a test: times kiln's CUDA kernels with CUDA events (warm-up,
// then the median of many runs) and prints achieved bandwidth or throughput
// against the H100 SXM's peaks (~3.35 TB/s HBM3, ~990 TFLOP/s dense fp16).
// Usage: kiln_cuda_bench [--runs N] [--only SECTION[,SECTION...]]: the
// sections are this file's KILN_BENCH_SECTIONs and those of
// bench/cuda_bench_*.cpp; a name none has is an error that lists them.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "backends/cuda/cublaslt_matmul.h"
#include "backends/cuda/cudnn_handle.h"
#include "backends/cuda/device.h"
#include "backends/cuda/kernels/attention.cuh"
#include "backends/cuda/kernels/data_movement.cuh"
#include "backends/cuda/kernels/elementwise.cuh"
#include "backends/cuda/kernels/layout.cuh"
#include "backends/cuda/kernels/normalization.cuh"
#include "backends/cuda/kernels/pool.cuh"
#include "backends/cuda/kernels/reduce.cuh"
#include "backends/cuda/kernels/softmax.cuh"
#include "backends/cuda/kernels/space_to_depth_pad.cuh"
#include "backends/cuda/kernels/stem_conv.cuh"
#include "backends/cuda/ops/cudnn_attention.h"
#include "backends/cuda/ops/cudnn_conv.h"
#include "cuda_bench_util.h"
#include "ir/tensor.h"

namespace kiln::cuda {
namespace {

void bench_memory_bound(cudaStream_t s) {
  const int64_t n = int64_t(1) << 28;  // 256 Mi elements
  for (DType t : {DType::kF32, DType::kF16}) {
    const double es = t == DType::kF32 ? 4 : 2;
    DeviceBuffer a = filled(n * es), b = filled(n * es), y = filled(n * es);
    const std::string tn(dtype_name(t));
    UnaryParams u{UnaryOp::kGelu, t, a.data(), y.data(), n};
    report_bw("Gelu " + tn + " 2^28", median_ms([&] { return launch_unary(u, s); }, s), 2 * n * es);
    BinaryParams add{BinaryOp::kAdd, t, a.data(), b.data(), y.data(), {n}, {n}};
    report_bw("Add same-shape " + tn + " 2^28", median_ms([&] { return launch_binary(add, s); }, s), 3 * n * es);
    BinaryParams row{BinaryOp::kAdd, t, a.data(), b.data(), y.data(), {n / 4096, 4096}, {4096}};
    report_bw("Add row-broadcast " + tn + " [65536,4096]", median_ms([&] { return launch_binary(row, s); }, s),
              2 * n * es);
    const int64_t rows = n / 4096;
    SoftmaxParams sm{t, a.data(), y.data(), rows, 4096, false};
    report_bw("Softmax " + tn + " [65536,4096]", median_ms([&] { return launch_softmax(sm, s); }, s), 2 * n * es);
    SoftmaxParams sm_short{t, a.data(), y.data(), n / 512, 512, false};
    report_bw("Softmax " + tn + " [524288,512]", median_ms([&] { return launch_softmax(sm_short, s); }, s), 2 * n * es);
    NormParams ln;
    ln.dtype = t, ln.x = a.data(), ln.scale = b.data(), ln.bias = b.data(), ln.y = y.data();
    ln.rows = rows, ln.cols = 4096;
    report_bw("LayerNorm " + tn + " [65536,4096]", median_ms([&] { return launch_normalization(ln, s); }, s),
              2 * n * es);
    ReduceParams rs{ReduceOp::kSum, t, a.data(), y.data(), {rows, 4096}, {1}};
    report_bw("ReduceSum last " + tn + " [65536,4096]", median_ms([&] { return launch_reduce(rs, s); }, s), n * es);
    ReduceParams rc{ReduceOp::kSum, t, a.data(), y.data(), {rows, 4096}, {0}};
    report_bw("ReduceSum first " + tn + " [65536,4096]", median_ms([&] { return launch_reduce(rc, s); }, s), n * es);
    TransposeParams tr{static_cast<int>(es), a.data(), y.data(), {16, 4096, 4096}, {0, 2, 1}};
    report_bw("Transpose last two " + tn + " [16,4096,4096]", median_ms([&] { return launch_transpose(tr, s); }, s),
              2 * n * es);
    TransposeParams tg{static_cast<int>(es), a.data(), y.data(), {32, 128, 512, 128}, {0, 2, 1, 3}};
    report_bw("Transpose 0213 " + tn + " [32,128,512,128]", median_ms([&] { return launch_transpose(tg, s); }, s),
              2 * n * es);
    CastParams c{t, t == DType::kF32 ? DType::kF16 : DType::kF32, a.data(), y.data(), n / 2};
    report_bw("Cast " + tn + " 2^27", median_ms([&] { return launch_cast(c, s); }, s), n / 2 * 6.0);
  }
}

void bench_gather(cudaStream_t s) {
  const int64_t vocab = 128000, hidden = 4096, tokens = 16384;
  DeviceBuffer table = filled(vocab * hidden * 2), y = filled(tokens * hidden * 2), idx = filled(tokens * 8);
  std::vector<int64_t> host_idx(tokens);
  for (int64_t i = 0; i < tokens; ++i) host_idx[i] = (i * 7919) % vocab;  // spread rows: no cache reuse
  (void)idx.copy_from_host(host_idx.data(), tokens * 8);
  GatherParams g;
  g.elem_size = 2, g.data = table.data(), g.dims = {vocab, hidden}, g.indices = idx.data();
  g.num_indices = tokens, g.y = y.data();
  report_bw("Gather embedding f16 16384 x 4096", median_ms([&] { return launch_gather(g, s); }, s),
            2.0 * tokens * hidden * 2);
}

// ResNet-50's space-to-depth stem at batch 128 (7x7, stride 2, pad 3) as
// earlier space_to_depth_stem made it, before kiln.SpaceToDepthPad (--only
// s2d) did it in one pass: the pads (NCHW spatial, then channels-last 12 ->
// 16, or one spatial and channel pad 3 -> 4) and the transpose; ViT's
// channel pad; f16. The spatial pad also in reflect mode, which takes
// the per-element index map.
void bench_pad(cudaStream_t s) {
  struct Case {
    const char* name;
    std::vector<int64_t> in, out, before;
    PadMode mode;
  };
  const Case cases[] = {
      {"Pad f16 [128,3,224,224] -> 230x230", {128, 3, 224, 224}, {128, 3, 230, 230}, {0, 0, 4, 4}, PadMode::kConstant},
      {"Pad f16 [128,115,115,12] -> 16 ch", {128, 115, 115, 12}, {128, 115, 115, 16}, {0, 0, 0, 0}, PadMode::kConstant},
      {"Pad f16 [128,3,224,224] -> [128,4,230,230]",
       {128, 3, 224, 224},
       {128, 4, 230, 230},
       {0, 0, 4, 4},
       PadMode::kConstant},
      {"Pad f16 [64,224,224,3] -> 8 ch", {64, 224, 224, 3}, {64, 224, 224, 8}, {0, 0, 0, 0}, PadMode::kConstant},
      {"Pad reflect f16 [128,3,224,224] -> 230x230",
       {128, 3, 224, 224},
       {128, 3, 230, 230},
       {0, 0, 4, 4},
       PadMode::kReflect},
  };
  for (int64_t c : {3, 4}) {  // the stem's space-to-depth: 3 channels, or 4 with the channel pad folded in front
    const int64_t n = int64_t(128) * c * 230 * 230;
    DeviceBuffer x = filled(n * 2), y = filled(n * 2);
    TransposeParams tr{2, x.data(), y.data(), {128, c, 115, 2, 115, 2}, {0, 2, 4, 3, 5, 1}};
    report_bw("Transpose stem f16 [128," + std::to_string(c) + ",115,2,115,2] 024351",
              median_ms([&] { return launch_transpose(tr, s); }, s), 2.0 * n * 2);
  }
  for (const Case& c : cases) {
    int64_t in_n = 1, out_n = 1;
    for (int64_t d : c.in) in_n *= d;
    for (int64_t d : c.out) out_n *= d;
    DeviceBuffer x = filled(in_n * 2), y = filled(out_n * 2);
    PadParams p{2, x.data(), y.data(), c.in, c.out, c.before, c.mode, {}};
    report_bw(c.name, median_ms([&] { return launch_pad(p, s); }, s), 2.0 * (in_n + out_n));
  }
}

// kiln.SpaceToDepthPad at batch 128 over [128,3,224,224]: the stems' input
// read once and written once as 2x2 blocks of 4 * 4 channels, with ResNet's
// pads (7x7 pad 3: [4,4,2,2] -> [128,115,115,16]) and MobileNetV2's (3x3 pad
// 1: [2,2,0,0] -> [128,113,113,16]); f32 -> f16 is what `kiln build --fp16`
// runs. Then, for ResNet's pads, the chain it replaces (Cast f32 -> f16, Pad
// to [128,4,230,230], the 6-D Transpose) and its sum. GB/s counts X and Y once.
void bench_space_to_depth_pad(cudaStream_t s) {
  struct Case {
    const char* name;
    int64_t top, left, hb;  // Hb = Wb
  };
  const Case cases[] = {{"ResNet-50 pads [4,4,2,2]", 4, 4, 115}, {"MobileNetV2 pads [2,2,0,0]", 2, 2, 113}};
  const int64_t n = 128, xs = n * 3 * 224 * 224;
  DeviceBuffer x = filled(xs * 4), y = filled(n * 115 * 115 * 16 * 4);
  fill_random(x, DType::kF32, xs);
  const std::pair<DType, DType> pairs[] = {
      {DType::kF32, DType::kF16}, {DType::kF32, DType::kBF16}, {DType::kF16, DType::kF16}, {DType::kF32, DType::kF32}};
  for (const Case& c : cases)
    for (const auto& [from, to] : pairs) {
      SpaceToDepthPadParams p;
      p.x_dtype = from, p.y_dtype = to, p.x = x.data(), p.y = y.data();
      p.n = n, p.c = 3, p.h = p.w = 224, p.channels = 4, p.top = c.top, p.left = c.left, p.hb = p.wb = c.hb;
      const int64_t ys = n * c.hb * c.hb * 16;
      const double bytes = static_cast<double>(xs) * (from == DType::kF32 ? 4 : 2) + ys * (to == DType::kF32 ? 4 : 2);
      report_bw("SpaceToDepthPad " + std::string(dtype_name(from)) + "->" + std::string(dtype_name(to)) + " " + c.name,
                median_ms([&] { return launch_space_to_depth_pad(p, s); }, s), bytes);
    }
  const int64_t padded = n * 4 * 230 * 230;
  DeviceBuffer h = filled(xs * 2), hp = filled(padded * 2), blocks = filled(padded * 2);
  CastParams cast{DType::kF32, DType::kF16, x.data(), h.data(), xs};
  PadParams pad{2, h.data(), hp.data(), {n, 3, 224, 224}, {n, 4, 230, 230}, {0, 0, 4, 4}, PadMode::kConstant, {}};
  TransposeParams tr{2, hp.data(), blocks.data(), {n, 4, 115, 2, 115, 2}, {0, 2, 4, 3, 5, 1}};
  const double cast_ms = median_ms([&] { return launch_cast(cast, s); }, s);
  const double pad_ms = median_ms([&] { return launch_pad(pad, s); }, s);
  const double tr_ms = median_ms([&] { return launch_transpose(tr, s); }, s);
  report_bw("  replaced: Cast f32->f16 [128,3,224,224]", cast_ms, xs * 6.0);
  report_bw("  replaced: Pad f16 -> [128,4,230,230]", pad_ms, 2.0 * (xs + padded));
  report_bw("  replaced: Transpose f16 [128,4,115,2,115,2]", tr_ms, 4.0 * padded);
  report_bw("  replaced: the three together", cast_ms + pad_ms + tr_ms, xs * 6.0 + 2.0 * (xs + padded) + 4.0 * padded);
}

// EfficientNet-B0's squeeze-excitation at batch 128 in f16, channels-last:
// each block's GlobalAveragePool of x [128,H,W,C] and its scale Mul
// s [128,1,1,C] * x (16 blocks; the head's pool over [128,7,7,1280] too),
// then the sums over the model, to set beside the per-op profile of kiln bench.
void bench_squeeze_excitation(cudaStream_t s) {
  struct Layer {
    int64_t hw, c;
    int count;
  };
  const Layer layers[] = {{112, 32, 1}, {56, 96, 1},  {56, 144, 1}, {28, 144, 1}, {28, 240, 1},
                          {14, 240, 1}, {14, 480, 3}, {14, 672, 2}, {7, 672, 1},  {7, 1152, 4}};
  const int64_t n = 128;
  double mul_total = 0, gap_total = 0, bytes_total = 0;
  for (const Layer& l : layers) {
    const int64_t elems = n * l.hw * l.hw * l.c;
    DeviceBuffer x = filled(elems * 2), y = filled(elems * 2), scale = filled(n * l.c * 2);
    fill_random(x, DType::kF16, elems);
    fill_random(scale, DType::kF16, n * l.c);
    const std::string shape =
        "[128," + std::to_string(l.hw) + "," + std::to_string(l.hw) + "," + std::to_string(l.c) + "]";
    BinaryParams mul{BinaryOp::kMul, DType::kF16,    scale.data(),        x.data(),
                     y.data(),       {n, 1, 1, l.c}, {n, l.hw, l.hw, l.c}};
    const double mul_ms = median_ms([&] { return launch_binary(mul, s); }, s);
    report_bw("SE Mul f16 [128,1,1,C] * " + shape, mul_ms, 2.0 * elems * 2);
    GlobalPoolParams gap;
    gap.kind = PoolKind::kAverage, gap.dtype = DType::kF16, gap.x = x.data(), gap.y = scale.data();
    gap.planes = n * l.c, gap.size = l.hw * l.hw, gap.channels_last = true, gap.channels = l.c;
    const double gap_ms = median_ms([&] { return launch_global_pool(gap, s); }, s);
    report_bw("NHWC GlobalAveragePool f16 " + shape, gap_ms, elems * 2.0);
    mul_total += l.count * mul_ms, gap_total += l.count * gap_ms, bytes_total += l.count * elems * 2.0;
  }
  const int64_t head = n * 7 * 7 * 1280;
  DeviceBuffer x = filled(head * 2), y = filled(n * 1280 * 2);
  fill_random(x, DType::kF16, head);
  GlobalPoolParams gap;
  gap.kind = PoolKind::kAverage, gap.dtype = DType::kF16, gap.x = x.data(), gap.y = y.data();
  gap.planes = n * 1280, gap.size = 49, gap.channels_last = true, gap.channels = 1280;
  const double head_ms = median_ms([&] { return launch_global_pool(gap, s); }, s);
  report_bw("NHWC GlobalAveragePool f16 [128,7,7,1280]", head_ms, head * 2.0);
  report_bw("EfficientNet-B0 b128: 16 SE Muls", mul_total, 2 * bytes_total);
  report_bw("EfficientNet-B0 b128: 17 GlobalAveragePools", gap_total + head_ms, bytes_total + head * 2.0);
}

// ResNet-50's MaxPool at batch 128 in f16, channels-last: 3x3, stride 2,
// pads 1, [128,112,112,64] -> [128,56,56,64] (pool2d_nhwc_rows_kernel). GB/s
// counts x and y once.
void bench_max_pool(cudaStream_t s) {
  const int64_t n = 128, c = 64, in = 112, out = 56;
  DeviceBuffer x = filled(n * in * in * c * 2), y = filled(n * out * out * c * 2);
  fill_random(x, DType::kF16, n * in * in * c);
  PoolParams p;
  p.kind = PoolKind::kMax, p.dtype = DType::kF16, p.channels_last = true, p.x = x.data(), p.y = y.data();
  p.g.batch = n, p.g.in_channels = p.g.out_channels = c;
  for (int a = 1; a < 3; ++a) {
    p.g.in[a] = in, p.g.out[a] = out, p.g.kernel[a] = 3, p.g.stride[a] = 2;
    p.g.pad_begin[a] = p.g.pad_end[a] = 1;
  }
  report_bw("MaxPool f16 NHWC 3x3/2 [128,112,112,64]", median_ms([&] { return launch_pool(p, s); }, s),
            2.0 * n * c * (in * in + out * out));
}

// The three stems space_to_depth_stem leaves at batch 128 f16 (channels
// last, pads 0), through kiln_igemm (launch_stem_conv): its persistent kernel
// and, for comparison, the simple one it replaced (StemConvTestHooks). GB/s
// counts x, w and y once; TFLOP/s the 2 * M * K * Cout of the convolution.
void bench_stem(cudaStream_t s) {
  struct Stem {
    const char* name;
    int64_t in, k, cout;
    EpilogueActivation act;
  };
  const Stem stems[] = {{"MobileNetV2 2x2x16->32 Clip", 113, 2, 32, EpilogueActivation::kClip},
                        {"EfficientNet-B0 2x2x16->32 Silu", 113, 2, 32, EpilogueActivation::kSilu},
                        {"ResNet-50 4x4x16->64 Relu", 115, 4, 64, EpilogueActivation::kRelu}};
  const int64_t n = 128, cin = 16;
  for (const Stem& st : stems) {
    const int64_t out = st.in - st.k + 1;
    const int64_t xs = n * st.in * st.in * cin, ws = st.cout * st.k * st.k * cin, ys = n * out * out * st.cout;
    DeviceBuffer x = filled(xs * 2), w = filled(ws * 2), b = filled(st.cout * 2), y = filled(ys * 2);
    fill_random(x, DType::kF16, xs);
    fill_random(w, DType::kF16, ws);
    fill_random(b, DType::kF16, st.cout);
    StemConvParams p;
    p.dtype = DType::kF16;
    p.g.batch = n, p.g.in_channels = cin, p.g.out_channels = st.cout;
    p.g.in[1] = p.g.in[2] = st.in, p.g.out[1] = p.g.out[2] = out, p.g.kernel[1] = p.g.kernel[2] = st.k;
    p.x = x.data(), p.w = w.data(), p.bias = b.data(), p.y = y.data();
    p.act = st.act, p.lo = 0.f, p.hi = 6.f;
    const double bytes = 2.0 * (xs + ws + ys), flops = 2.0 * n * out * out * st.cout * st.k * st.k * cin;
    for (bool simple : {true, false}) {
      StemConvTestHooks hooks;
      hooks.simple_only = simple;
      set_stem_conv_test_hooks(hooks);
      const double ms = median_ms([&] { return launch_stem_conv(p, s); }, s);
      const std::string name = std::string(simple ? "simple " : "kiln_igemm ") + st.name;
      report_bw(name, ms, bytes);
      report_flops(name, ms, flops);
    }
    set_stem_conv_test_hooks({});
  }
}

// 1x1 channels-last kiln.FusedConv layers at batch 128 f16 on the tactics the
// tuner picks from: cuDNN's fused graph ("cudnn_fused:<i>", the best of its
// first 4 engines) and cuBLASLt's GEMM with the epilogue ("cublaslt:<i>": the
// heuristic's first, and the best of its first 4). GB/s counts x, w, bias, z
// and y once.
void bench_conv1x1(cudaStream_t s) {
  struct Layer {
    const char* name;
    int64_t hw, cin, cout;
    bool residual, relu;
  };
  const Layer layers[] = {{"ResNet-50 layer1 conv3 56x56 64->256 +z Relu", 56, 64, 256, true, true},
                          {"ResNet-50 layer1 downsample 56x56 64->256", 56, 64, 256, false, false},
                          {"ResNet-50 layer2 conv3 28x28 128->512 +z Relu", 28, 128, 512, true, true},
                          {"MobileNetV2 project 28x28 192->32 +z", 28, 192, 32, true, false}};
  const int64_t n = 128;
  const DType t = DType::kF16;
  auto lt = CublasLt::create();
  auto cudnn = Cudnn::create();
  if (!lt.is_ok() || !cudnn.is_ok()) {
    std::printf("conv1x1: no cuBLASLt or cuDNN handle\n");
    return;
  }
  const size_t ws_bytes = size_t(256) << 20;
  DeviceBuffer ws = filled(ws_bytes);
  for (const Layer& l : layers) {
    const int64_t m = n * l.hw * l.hw, xs = m * l.cin, wsz = l.cout * l.cin, ys = m * l.cout;
    DeviceBuffer x = filled(xs * 2), w = filled(wsz * 2), b = filled(l.cout * 2), y = filled(ys * 2);
    DeviceBuffer z = filled(l.residual ? ys * 2 : 2);
    fill_random(x, t, xs);
    fill_random(w, t, wsz);
    fill_random(b, t, l.cout);
    if (l.residual) fill_random(z, t, ys);
    const void* zp = l.residual ? z.data() : nullptr;
    const double bytes = 2.0 * (xs + wsz + l.cout + ys * (l.residual ? 2 : 1));
    CudnnConvSpec spec;
    spec.dtype = t, spec.spatial = 2, spec.channels_last = true, spec.workspace_limit = ws_bytes;
    spec.g.batch = n, spec.g.in_channels = l.cin, spec.g.out_channels = l.cout, spec.g.group = 1;
    spec.g.in[1] = spec.g.in[2] = spec.g.out[1] = spec.g.out[2] = l.hw;
    spec.fused = true, spec.fused_bias = true, spec.fused_residual = l.residual;
    spec.activation = l.relu ? EpilogueActivation::kRelu : EpilogueActivation::kNone;
    double cudnn_best = 1e30;
    int cudnn_i = -1;
    for (int i = 0; i < 4; ++i) {
      spec.engine_index = i;
      const std::shared_ptr<const CudnnConvPlan> plan = cudnn_conv_plan(spec);
      if (!plan) break;
      const double ms = median_ms(
          [&] {
            return execute_cudnn_conv(cudnn->get(), s, *plan, x.data(), w.data(), y.data(), ws.data(), b.data(), zp);
          },
          s);
      if (ms < cudnn_best) cudnn_best = ms, cudnn_i = i;
    }
    if (cudnn_i >= 0) report_bw("cudnn_fused:" + std::to_string(cudnn_i) + " (best) " + l.name, cudnn_best, bytes);
    MatmulShape shape;
    shape.dtype = t, shape.m = m, shape.n = l.cout, shape.k = l.cin, shape.trans_b = true;
    shape.has_c = l.residual, shape.has_bias = true;
    shape.activation = l.relu ? MatmulActivation::kRelu : MatmulActivation::kNone;
    const size_t lt_ws = size_t(32) << 20;
    auto algos = matmul_algos(*lt, shape, 4, lt_ws);
    if (!algos.is_ok()) {
      std::printf("cublaslt %s: %s\n", l.name, algos.status().to_string().c_str());
      continue;
    }
    MatmulArgs args{x.data(), w.data(), zp, b.data(), y.data(), 1.f, l.residual ? 1.f : 0.f, ws.data(), lt_ws};
    const Fastest best = fastest_of(algos->size(), [&](size_t i) {
      const double ms = median_ms([&] { return launch_matmul(*lt, shape, args, &(*algos)[i], s); }, s);
      if (i == 0) report_bw(std::string("cublaslt:0 ") + l.name, ms, bytes);
      return ms;
    });
    report_bw("cublaslt:" + std::to_string(best.index) + " (best of " + std::to_string(algos->size()) + ") " + l.name,
              best.ms, bytes);
  }
}

void bench_matmul(cudaStream_t s) {
  auto lt = CublasLt::create();
  const size_t ws = 32 << 20;
  DeviceBuffer workspace = filled(ws);
  for (DType t : {DType::kF16, DType::kBF16, DType::kF32}) {
    for (int64_t size : {4096, 8192}) {
      const double es = t == DType::kF32 ? 4 : 2;
      DeviceBuffer a = filled(size * size * es), b = filled(size * size * es), d = filled(size * size * es);
      fill_random(a, t, size * size);
      fill_random(b, t, size * size);
      MatmulShape shape;
      shape.dtype = t, shape.m = shape.n = shape.k = size, shape.allow_tf32 = t == DType::kF32;
      auto algos = matmul_algos(*lt, shape, 8, ws);
      if (!algos.is_ok()) {
        std::printf("MatMul %s %lld: %s\n", std::string(dtype_name(t)).c_str(), (long long)size,
                    algos.status().to_string().c_str());
        continue;
      }
      MatmulArgs args{a.data(), b.data(), nullptr, nullptr, d.data(), 1.f, 0.f, workspace.data(), ws};
      const Fastest best = fastest_of(algos->size(), [&](size_t i) {
        return median_ms([&] { return launch_matmul(*lt, shape, args, &(*algos)[i], s); }, s);
      });
      const std::string name = "MatMul " + std::string(dtype_name(t)) + (t == DType::kF32 ? " (tf32) " : " ") +
                               std::to_string(size) + "^3 best of " + std::to_string(algos->size()) + " (#" +
                               std::to_string(best.index) + ")";
      report_flops(name, best.ms, 2.0 * size * size * size);
    }
  }
}

// ViT-B/16's attention at batch 64 (kiln.PackedAttention: 12 heads of 64,
// 197 tokens, Q, K and V read in place from one packed [64, 197, 3 * 768]
// QKV, no mask, f16) on the tactics the tuner picks from: "cudnn" (cuDNN's
// fused attention) and "mma" (kiln's mma.sync kernel). A layer is
// 4 B H S^2 D flops (Q . K^T and P . V).
// ViT-B/16's attention at batch 64 (197 tokens) and BERT-base's at batch 32
// (128 tokens): 12 heads of 64 read in place from one packed QKV tensor.
void bench_attention(cudaStream_t s) {
  for (const auto [batch, len] : {std::pair<int64_t, int64_t>{64, 197}, {32, 128}}) {
    const int64_t heads = 12, head = 64, row = 3 * heads * head;
    const DType t = DType::kF16;
    DeviceBuffer qkv = filled(batch * len * row * 2), y = filled(batch * len * heads * head * 2);
    fill_random(qkv, t, batch * len * row);
    const auto* base = static_cast<const uint16_t*>(qkv.data());
    AttentionParams p;
    p.dtype = t, p.q = base, p.k = base + heads * head, p.v = base + 2 * heads * head, p.y = y.data();
    p.batch = batch, p.q_heads = p.kv_heads = heads, p.q_len = p.kv_len = len, p.head = p.v_head = head;
    p.packed = true, p.q_row = p.k_row = p.v_row = row, p.scale = 1.0 / 8;
    const double flops = 4.0 * batch * heads * len * len * head;
    const std::string shape = "[" + std::to_string(batch) + " x 12 x " + std::to_string(len) + " x 64] f16 packed";

    CudnnSdpaSpec spec;
    spec.dtype = t, spec.batch = batch, spec.q_heads = spec.kv_heads = heads, spec.q_len = spec.kv_len = len;
    spec.head = head, spec.scale = 1.f / 8, spec.workspace_limit = size_t(256) << 20;
    spec.o_strides = {len * heads * head, head, heads * head, 1};
    use_packed_qkv_rows(spec, row);
    const std::shared_ptr<const CudnnSdpaPlan> plan = cudnn_sdpa_plan(spec);
    auto handle = Cudnn::create();
    if (!plan || !handle.is_ok()) {
      std::printf("Attention cudnn %s: no cuDNN plan (frontend not compiled in, or cuDNN declined)\n", shape.c_str());
    } else {
      DeviceBuffer ws = filled(std::max<size_t>(workspace_size(*plan), 16));
      report_flops(
          "Attention cudnn " + shape,
          median_ms(
              [&] { return execute_cudnn_sdpa(handle->get(), s, *plan, p.q, p.k, p.v, nullptr, y.data(), ws.data()); },
              s),
          flops);
    }
    report_flops("Attention mma " + shape, median_ms([&] { return launch_attention_mma(p, s); }, s), flops);
    report_flops("Attention flash " + shape, median_ms([&] { return launch_attention_flash(p, s); }, s), flops);
    const double bytes = double(batch) * len * (row + heads * head) * 2;  // QKV read once, Y written
    std::printf("%-44s %9.3f ms at 3.35 TB/s\n", ("  (memory floor " + shape + ")").c_str(), bytes / 3.35e12 * 1e3);
  }
}

KILN_BENCH_SECTION("memory", bench_memory_bound);
KILN_BENCH_SECTION("gather", bench_gather);
KILN_BENCH_SECTION("pad", bench_pad);
KILN_BENCH_SECTION("s2d", bench_space_to_depth_pad);
KILN_BENCH_SECTION("se", bench_squeeze_excitation);
KILN_BENCH_SECTION("pool", bench_max_pool);
KILN_BENCH_SECTION("stem", bench_stem);
KILN_BENCH_SECTION("conv1x1", bench_conv1x1);
KILN_BENCH_SECTION("matmul", bench_matmul);
KILN_BENCH_SECTION("attention", bench_attention);

}  // namespace
}  // namespace kiln::cuda

int main(int argc, char** argv) {
  using namespace kiln::cuda;
  std::string only;  // --only: section names separated by commas or spaces ("dw,stem")
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--runs") == 0) g_runs = std::max(1, std::atoi(argv[i + 1]));
    if (std::strcmp(argv[i], "--only") == 0) only = argv[i + 1];
  }
  // The sections asked for, in the order asked; every one without --only. A
  // name no section has is an error (it used to run nothing, silently).
  std::vector<const BenchSection*> run;
  std::string unknown, known;
  for (const BenchSection& section : bench_sections()) known += std::string(known.empty() ? "" : ", ") + section.name;
  for (char& c : only) c = c == ' ' ? ',' : c;
  for (size_t at = 0; at < only.size();) {
    const size_t end = std::min(only.find(',', at), only.size());
    const std::string name = only.substr(at, end - at);
    at = end + 1;
    if (name.empty()) continue;
    auto it = std::find_if(bench_sections().begin(), bench_sections().end(),
                           [&](const BenchSection& section) { return name == section.name; });
    if (it == bench_sections().end())
      unknown += std::string(unknown.empty() ? "" : ", ") + name;
    else
      run.push_back(&*it);
  }
  if (!unknown.empty()) {
    std::fprintf(stderr, "kiln_cuda_bench: --only: no section %s (the sections: %s)\n", unknown.c_str(), known.c_str());
    return 2;
  }
  if (only.empty())
    for (const BenchSection& section : bench_sections()) run.push_back(&section);
  if (device_count() == 0) {
    std::printf("no CUDA device; nothing to benchmark\n");
    return 0;
  }
  auto info = device_info(0);
  std::printf("kiln CUDA kernel benchmark (not a test) on %s; median of %d runs\n", info->to_string().c_str(), g_runs);
  auto stream = Stream::create();
  for (const BenchSection* section : run) section->run(stream->get());
  return 0;
}
