// The host-side plan of kiln's fused expansion + depthwise kernel
// (expand_depthwise_conv.cuh, tactic "kiln_expand_dw"): which layers it
// takes, and per layer the output tile, the slice of expanded channels, how
// many slices a block's work unit covers, and the shared memory that needs.
// Plain C++ (no CUDA), so fuse_expand_depthwise asks the same question the
// kernel answers and never makes a node the kernel cannot run.
#pragma once

#include <algorithm>
#include <climits>
#include <cstdint>
#include <optional>

namespace kiln::cuda {

// The layer: X [n, h, w, c] -> E [.., e] (1x1) -> depthwise k x k at stride s,
// pads pt/pl/pb/pr, Y [n, oh, ow, e]. `f16_or_bf16`: X's dtype is one of them.
struct ExpandDwLayer {
  bool f16_or_bf16 = false;
  int64_t n = 1, h = 0, w = 0, c = 0, e = 0, k = 0, s = 1;
  int64_t pt = 0, pl = 0, pb = 0, pr = 0;
  int64_t oh() const { return (h + pt + pb - k) / s + 1; }
  int64_t ow() const { return (w + pl + pr - k) / s + 1; }
};

// Everything in elements of the 16-bit dtype unless named bytes. Shared
// memory, in this order, each part a multiple of 16 bytes:
//   halo  [rows][cks]          X's pixels of the tile's halo that lie inside the image
//   w1    [2][cb][cks]         W1's rows of the slice, double-buffered
//   e     [hr * hc][cbs]       the expanded slice over the whole halo (0 outside the image)
//   w2    [2][k * k][cb] float W2 of the slice transposed, double-buffered
//   bias  [2][2][cb] float     B1 and B2 of the slice, double-buffered
//   pix   [rows] int16         each halo row's pixel in `e`
struct ExpandDwPlan {
  int cb = 48;         // expanded channels per slice (48 or 32: E a multiple of it)
  int ck = 0;          // C rounded up to 16 (the GEMM's K; zeros past C)
  int cks = 0;         // ck + 8: a halo or W1 row's stride (ldmatrix without bank conflicts)
  int cbs = 0;         // cb + 8: a pixel's stride in `e` (the GEMM epilogue's stores without conflicts)
  int th = 0, tw = 0;  // output tile
  int hr = 0, hc = 0;  // its halo: (th - 1) * s + k rows, (tw - 1) * s + k columns
  int rows = 0;        // halo pixels inside the image at most, rounded up to 16 (GEMM M)
  int slices = 0;      // e / cb
  int spu = 0;         // slices per work unit
  int chunks = 0;      // ceil(slices / spu)
  int tiles_h = 0, tiles_w = 0;
  int64_t units = 0;  // n * tiles_h * tiles_w * chunks
  size_t off_w1 = 0, off_e = 0, off_w2 = 0, off_bias = 0, off_pix = 0, smem_bytes = 0;
};

constexpr size_t kExpandDwMaxSmem = 110 * 1024;  // two blocks per SM (228 KB on H100)
constexpr int kExpandDwMaxTile = 16;

inline size_t expand_dw_align16(size_t b) { return (b + 15) / 16 * 16; }

// The plan's tile-independent fields and the shared memory layout for a th x tw tile.
inline ExpandDwPlan expand_dw_layout(const ExpandDwLayer& l, int cb, int th, int tw) {
  ExpandDwPlan p;
  p.cb = cb;
  p.ck = static_cast<int>((l.c + 15) / 16 * 16);
  p.cks = p.ck + 8;
  p.cbs = cb + 8;
  p.th = th, p.tw = tw;
  p.hr = static_cast<int>((th - 1) * l.s + l.k), p.hc = static_cast<int>((tw - 1) * l.s + l.k);
  const int64_t inside = std::min<int64_t>(p.hr, l.h) * std::min<int64_t>(p.hc, l.w);
  p.rows = static_cast<int>((inside + 15) / 16 * 16);
  size_t at = expand_dw_align16(size_t(2) * p.rows * p.cks);
  p.off_w1 = at;
  at += expand_dw_align16(size_t(2) * 2 * cb * p.cks);
  p.off_e = at;
  at += expand_dw_align16(size_t(2) * p.hr * p.hc * p.cbs);
  p.off_w2 = at;
  at += expand_dw_align16(sizeof(float) * 2 * l.k * l.k * cb);
  p.off_bias = at;
  at += expand_dw_align16(sizeof(float) * 2 * 2 * cb);
  p.off_pix = at;
  at += expand_dw_align16(sizeof(int16_t) * p.rows);
  p.smem_bytes = at;
  p.slices = static_cast<int>(l.e / cb);
  p.tiles_h = static_cast<int>((l.oh() + th - 1) / th);
  p.tiles_w = static_cast<int>((l.ow() + tw - 1) / tw);
  return p;
}

// The expanded channels per slice for E: 48 where it divides E (every
// MobileNetV2 and EfficientNet-B0 block), else 32; 0 where neither does.
inline int expand_dw_slice(int64_t e) { return e % 48 == 0 ? 48 : e % 32 == 0 ? 32 : 0; }

// Whether the kernel takes the layer's kind, whatever its size: f16/bf16, a
// square 3, 5 or 7 kernel at stride 1 or 2 on both axes, pads in [0, k), C a
// multiple of 8 (16-byte copies) up to 512, E a multiple of 32.
inline bool expand_dw_takes(const ExpandDwLayer& l) {
  if (!l.f16_or_bf16 || (l.k != 3 && l.k != 5 && l.k != 7) || (l.s != 1 && l.s != 2)) return false;
  for (int64_t pad : {l.pt, l.pl, l.pb, l.pr})
    if (pad < 0 || pad >= l.k) return false;
  return l.c >= 8 && l.c % 8 == 0 && l.c <= 512 && l.e >= 32 && expand_dw_slice(l.e) != 0;
}

// The plan for the layer on `sms` SMs (two blocks each), or none where the
// kernel does not take it: expand_dw_takes, an output of at least 1 x 1, 32-bit
// indexes, and a 1 x 1 tile's shared memory within kExpandDwMaxSmem. The tile
// is the one of least estimated work: the GEMM over its halo (recomputed
// where tiles overlap) plus the depthwise taps (about 10 times a GEMM
// multiply-add's cost each: CUDA cores and shared-memory loads, against
// tensor cores) plus a fixed cost per tile. Units then take as many slices
// as leave at least two units per resident block, so 7 x 7 layers still fill
// the GPU by splitting E instead of the image.
inline std::optional<ExpandDwPlan> plan_expand_dw(const ExpandDwLayer& l, int sms = 132) {
  if (!expand_dw_takes(l) || l.n < 1 || l.h < 1 || l.w < 1) return std::nullopt;
  const int64_t oh = l.oh(), ow = l.ow();
  if (oh < 1 || ow < 1) return std::nullopt;
  if (l.n * std::max(l.h * l.w * l.c, oh * ow * l.e) >= INT_MAX) return std::nullopt;
  const int cb = expand_dw_slice(l.e);
  std::optional<ExpandDwPlan> best;
  double best_cost = 0;
  for (int th = 1; th <= std::min<int64_t>(oh, kExpandDwMaxTile); ++th) {
    for (int tw = 1; tw <= std::min<int64_t>(ow, kExpandDwMaxTile); ++tw) {
      ExpandDwPlan p = expand_dw_layout(l, cb, th, tw);
      if (p.smem_bytes > kExpandDwMaxSmem) continue;
      const double per_tile = double(p.rows) * p.ck + double(th) * tw * l.k * l.k * 10 + 2048;
      const double cost = per_tile * p.tiles_h * p.tiles_w;
      if (!best || cost < best_cost) best = p, best_cost = cost;
    }
  }
  if (!best) return std::nullopt;
  ExpandDwPlan& p = *best;
  const int64_t resident = int64_t(2) * std::max(sms, 1);
  const int64_t tiles = l.n * p.tiles_h * p.tiles_w;
  p.spu = 1;
  for (int spu = p.slices; spu >= 1; --spu) {
    if (tiles * ((p.slices + spu - 1) / spu) >= 2 * resident) {
      p.spu = spu;
      break;
    }
  }
  p.chunks = (p.slices + p.spu - 1) / p.spu;
  p.units = tiles * p.chunks;
  if (p.units >= INT_MAX) return std::nullopt;
  return best;
}

}  // namespace kiln::cuda
