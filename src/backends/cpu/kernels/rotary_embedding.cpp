// RotaryEmbedding (opset 23): rotates pairs of each head's first
// rotary_embedding_dim channels by position-dependent angles (RoPE). Pairs are
// (k, k + half) or, interleaved, (2k, 2k + 1); the other channels pass through.
// Products and sums are rounded to the dtype as the reference computes them.
#include "backends/cpu/cpu_kernel.h"
#include "backends/cpu/kernels/float_io.h"
#include "support/parallel.h"

namespace kiln {
namespace {

struct RopeParams {
  int64_t batch = 0, heads = 0, len = 0, head = 0, rot = 0;
  bool packed = false, interleaved = false;
  // Offset of element (b, h, s, 0) of X: (B, H, S, D), or packed (B, S, H*D).
  int64_t at(int64_t b, int64_t h, int64_t s) const {
    return packed ? ((b * len + s) * heads + h) * head : ((b * heads + h) * len + s) * head;
  }
};

Expected<RopeParams> rope_params(const CpuKernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  RopeParams p;
  p.interleaved = ctx.node().attr_int("interleaved", 0) != 0;
  if (x.rank() == 4) {
    p.batch = x.dim(0), p.heads = x.dim(1), p.len = x.dim(2), p.head = x.dim(3);
  } else if (x.rank() == 3) {
    p.packed = true;
    p.heads = ctx.node().attr_int("num_heads", 0);
    if (p.heads <= 0 || x.dim(2) % p.heads != 0)
      return invalid_model("RotaryEmbedding: hidden size {} does not split into num_heads {}", x.dim(2), p.heads);
    p.batch = x.dim(0), p.len = x.dim(1), p.head = x.dim(2) / p.heads;
  } else {
    return invalid_model("RotaryEmbedding: X has rank {}; it must be 3 or 4", x.rank());
  }
  p.rot = ctx.node().attr_int("rotary_embedding_dim", 0);
  if (p.rot == 0) p.rot = p.head;
  if (p.rot < 0 || p.rot > p.head || p.rot % 2 != 0)
    return invalid_model("RotaryEmbedding: rotated size {} must be even and at most the head size {}", p.rot, p.head);
  return p;
}

// Row of the cos/sin caches for token (b, s): through position_ids, or the caches' own (B, S, half) rows.
Expected<std::vector<int64_t>> cache_rows(const CpuKernelContext& ctx, const RopeParams& p) {
  const Tensor& cos = ctx.input(1);
  int64_t half = p.rot / 2;
  std::vector<int64_t> rows(static_cast<size_t>(p.batch * p.len));
  if (ctx.has_input(3)) {
    const Tensor& ids = ctx.input(3);
    if (ids.dims() != std::vector<int64_t>{p.batch, p.len})
      return invalid_model("RotaryEmbedding: position_ids has shape {}, expected [{},{}]",
                           Shape::of(ids.dims()).to_string(), p.batch, p.len);
    if (cos.rank() != 2 || cos.dim(1) != half)
      return invalid_model("RotaryEmbedding: cos_cache has shape {}, expected [positions,{}]",
                           Shape::of(cos.dims()).to_string(), half);
    KILN_ASSIGN_OR_RETURN(rows, ids.to_i64_vector());
    for (int64_t r : rows)
      if (r < 0 || r >= cos.dim(0))
        return invalid_model("RotaryEmbedding: position id {} is outside the {} cached positions", r, cos.dim(0));
  } else {
    if (cos.dims() != std::vector<int64_t>{p.batch, p.len, half})
      return invalid_model("RotaryEmbedding: cos_cache has shape {}, expected [{},{},{}]",
                           Shape::of(cos.dims()).to_string(), p.batch, p.len, half);
    for (size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<int64_t>(i);
  }
  if (ctx.input(2).dims() != cos.dims())
    return invalid_model("RotaryEmbedding: sin_cache has shape {}, cos_cache {}",
                         Shape::of(ctx.input(2).dims()).to_string(), Shape::of(cos.dims()).to_string());
  return rows;
}

Status run_rotary_embedding(CpuKernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(RopeParams p, rope_params(ctx));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> rows, cache_rows(ctx, p));
  const Tensor& x = ctx.input(0);
  if (ctx.input(1).dtype() != x.dtype() || ctx.input(2).dtype() != x.dtype())
    return invalid_model("RotaryEmbedding: the caches must have X's dtype");
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.allocate_output(0));
  const int64_t half = p.rot / 2;
  return visit_dtype(x.dtype(), kFloatTypes, [&]<typename T>() -> Status {
    if constexpr (!kIsFloatElement<T>)
      return internal_error("not a float type");
    else {
      using C = compute_t<T>;
      auto r = [](C v) { return static_cast<C>(T(v)); };
      const T *src = x.data<T>(), *cos = ctx.input(1).data<T>(), *sin = ctx.input(2).data<T>();
      T* dst = out->mutable_data<T>();
      parallel_for(p.batch * p.len, p.heads * p.head, [&](int64_t begin, int64_t end) {
        for (int64_t bs = begin; bs < end; ++bs) {
          const int64_t b = bs / p.len, s = bs % p.len, row = rows[static_cast<size_t>(bs)] * half;
          for (int64_t h = 0; h < p.heads; ++h) {
            const T* xi = src + p.at(b, h, s);
            T* yo = dst + p.at(b, h, s);
            for (int64_t d = p.rot; d < p.head; ++d) yo[d] = xi[d];
            for (int64_t k = 0; k < half; ++k) {
              int64_t i1 = p.interleaved ? 2 * k : k, i2 = p.interleaved ? 2 * k + 1 : k + half;
              C c = cos[row + k], sn = sin[row + k], x1 = xi[i1], x2 = xi[i2];
              yo[i1] = T(r(r(c * x1) - r(sn * x2)));
              yo[i2] = T(r(r(sn * x1) + r(c * x2)));
            }
          }
        }
      });
      return Status::ok();
    }
  });
}

}  // namespace

KILN_CPU_KERNEL("", "RotaryEmbedding", run_rotary_embedding);

}  // namespace kiln
