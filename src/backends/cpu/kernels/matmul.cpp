// MatMul (numpy batching, 1-D promotion), Gemm, MatMulInteger and
// kiln.FusedMatMul (MatMul + bias + residual, then the activation, applied
// to the accumulator before the one rounding to the output dtype). One plain
// row-by-row product: for each row of A, acc[j] += A[i,k] * B[k,j] over k, so
// the inner loop runs along B's contiguous rows. Accumulates in float for
// 16-bit floats and f32, double for f64, 64-bit integers for integers.
#include <fmt/ranges.h>

#include <cmath>
#include <type_traits>

#include "backends/cpu/kernels/elementwise_apply.h"

namespace kiln {
namespace {

template <typename T>
using acc_t = std::conditional_t<std::is_floating_point_v<compute_t<T>>, compute_t<T>,
                                 std::conditional_t<std::is_signed_v<T>, int64_t, uint64_t>>;

// A strided view of one matrix: element (r, c) is at data[r * row + c * col].
template <typename T>
struct MatrixView {
  const T* data;
  int64_t row, col;
  acc_t<T> at(int64_t r, int64_t c) const {
    return static_cast<acc_t<T>>(convert_to<compute_t<T>>(data[r * row + c * col]));
  }
};

// out[i*n + j] = finish(i, j, sum_k a(i,k) * b(k,j)), rows in parallel.
template <typename T, typename Out, typename Finish>
void matrix_product(MatrixView<T> a, MatrixView<T> b, int64_t m, int64_t k, int64_t n, Out* out, Finish finish) {
  parallel_for(m, k * n, [&](int64_t rb, int64_t re) {
    std::vector<acc_t<T>> acc(static_cast<size_t>(n));
    for (int64_t i = rb; i < re; ++i) {
      std::fill(acc.begin(), acc.end(), acc_t<T>(0));
      for (int64_t p = 0; p < k; ++p) {
        const acc_t<T> aip = a.at(i, p);
        const T* brow = b.data + p * b.row;
        for (int64_t j = 0; j < n; ++j)
          acc[j] += aip * static_cast<acc_t<T>>(convert_to<compute_t<T>>(brow[j * b.col]));
      }
      for (int64_t j = 0; j < n; ++j) out[i * n + j] = finish(i, j, acc[j]);
    }
  });
}

// The batch loop shared by MatMul and MatMulInteger: calls fn(a_offset,
// b_offset, out_offset, m, k, n) for each matrix of the broadcast batch.
template <typename Fn>
Status for_each_batch(const CpuKernelContext& ctx, const Tensor& a, const Tensor& b, const Tensor& y, Fn fn) {
  std::vector<int64_t> da = a.dims(), db = b.dims();
  if (da.empty() || db.empty()) return invalid_model("{}: inputs must have rank 1 or more", ctx.node().op_type);
  if (da.size() == 1) da.insert(da.begin(), 1);
  if (db.size() == 1) db.push_back(1);
  const int64_t m = da[da.size() - 2], k = da.back(), n = db.back();
  if (db[db.size() - 2] != k)
    return invalid_model("{}: A has K={} but B has K={}", ctx.node().op_type, k, db[db.size() - 2]);
  std::vector<int64_t> ba(da.begin(), da.end() - 2), bb(db.begin(), db.end() - 2);
  std::vector<int64_t> batch(std::max(ba.size(), bb.size()), 1);
  for (size_t i = 0; i < batch.size(); ++i) {
    int64_t x = i < batch.size() - ba.size() ? 1 : ba[i - (batch.size() - ba.size())];
    int64_t z = i < batch.size() - bb.size() ? 1 : bb[i - (batch.size() - bb.size())];
    if (x != z && x != 1 && z != 1)
      return invalid_model("{}: batch dims {} and {} do not broadcast", ctx.node().op_type, x, z);
    batch[i] = x == 1 ? z : x;
  }
  int64_t count = 1;
  for (int64_t d : batch) count *= d;
  if (count * m * n != y.numel()) return internal_error("{}: output size mismatch", ctx.node().op_type);
  BroadcastWalker w(batch, {broadcast_strides(ba, batch), broadcast_strides(bb, batch)});
  for (int64_t i = 0; i < count; ++i, w.next()) fn(w.offset(0) * m * k, w.offset(1) * k * n, i * m * n, m, k, n);
  return Status::ok();
}

constexpr DTypeSet kMatMulTypes =
    kFloatTypes | dtype_bit(DType::kI32) | dtype_bit(DType::kI64) | dtype_bit(DType::kU32) | dtype_bit(DType::kU64);

Status run_matmul(CpuKernelContext& ctx) {
  const Tensor &a = ctx.input(0), &b = ctx.input(1);
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0));
  return visit_dtype_in<kMatMulTypes>(a.dtype(), [&]<typename T>() {
    const T *pa = a.data<T>(), *pb = b.data<T>();
    T* py = y->mutable_data<T>();
    return for_each_batch(ctx, a, b, *y, [&](int64_t oa, int64_t ob, int64_t oy, int64_t m, int64_t k, int64_t n) {
      matrix_product<T>({pa + oa, k, 1}, {pb + ob, n, 1}, m, k, n, py + oy,
                        [](int64_t, int64_t, acc_t<T> v) { return convert_to<T>(v); });
    });
  });
}

enum class Activation { kNone, kRelu, kGelu, kGeluTanh };

Expected<Activation> activation_of(const Node& node) {
  const std::string act = node.attr_string("activation", "");
  if (act.empty()) return Activation::kNone;
  if (act == "Relu") return Activation::kRelu;
  if (act == "Gelu") return Activation::kGelu;
  if (act == "GeluTanh") return Activation::kGeluTanh;
  return invalid_model("FusedMatMul: activation \"{}\" is not one of \"\", Relu, Gelu, GeluTanh", act);
}

// The formulas of the Relu and Gelu kernels (activation.cpp), in the accumulator type.
template <typename C>
C activate(Activation act, C x) {
  switch (act) {
    case Activation::kRelu: return x < C(0) ? C(0) : x;
    case Activation::kGelu: return C(0.5) * x * (C(1) + std::erf(x / std::sqrt(C(2))));
    case Activation::kGeluTanh: {
      const C k = std::sqrt(C(2) / C(M_PI));
      return C(0.5) * x * (C(1) + std::tanh(k * (x + C(0.044715) * x * x * x)));
    }
    case Activation::kNone: break;
  }
  return x;
}

Status run_fused_matmul(CpuKernelContext& ctx) {
  const Tensor &a = ctx.input(0), &b = ctx.input(1);
  KILN_ASSIGN_OR_RETURN(Activation act, activation_of(ctx.node()));
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0));
  const Tensor* bias = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  const Tensor* residual = ctx.has_input(3) ? &ctx.input(3) : nullptr;
  const int64_t n = b.rank() == 1 ? 1 : b.dims().back();
  if (bias && (bias->dtype() != a.dtype() || bias->rank() != 1 || bias->dim(0) != n))
    return invalid_model("FusedMatMul: bias must be {}[{}], got {}[{}]", dtype_name(a.dtype()), n,
                         dtype_name(bias->dtype()), fmt::join(bias->dims(), ","));
  if (residual && (residual->dtype() != a.dtype() || residual->dims() != y->dims()))
    return invalid_model("FusedMatMul: residual must be {}[{}] (the product's), got {}[{}]", dtype_name(a.dtype()),
                         fmt::join(y->dims(), ","), dtype_name(residual->dtype()), fmt::join(residual->dims(), ","));
  return visit_dtype_in<kFloatTypes>(a.dtype(), [&]<typename T>() {
    const T *pa = a.data<T>(), *pb = b.data<T>(), *pbias = bias ? bias->data<T>() : nullptr;
    const T* pres = residual ? residual->data<T>() : nullptr;
    T* py = y->mutable_data<T>();
    return for_each_batch(ctx, a, b, *y, [&](int64_t oa, int64_t ob, int64_t oy, int64_t m, int64_t k, int64_t nn) {
      matrix_product<T>({pa + oa, k, 1}, {pb + ob, nn, 1}, m, k, nn, py + oy, [&](int64_t i, int64_t j, acc_t<T> v) {
        if (pbias) v += static_cast<acc_t<T>>(convert_to<compute_t<T>>(pbias[j]));
        if (pres) v += static_cast<acc_t<T>>(convert_to<compute_t<T>>(pres[oy + i * nn + j]));
        return convert_to<T>(activate(act, v));
      });
    });
  });
}

// A zero point: a scalar, or one per row of A (per column of B).
template <typename T>
Expected<std::vector<int32_t>> zero_points(const CpuKernelContext& ctx, size_t i, int64_t count) {
  if (!ctx.has_input(i)) return std::vector<int32_t>(static_cast<size_t>(count), 0);
  const Tensor& z = ctx.input(i);
  if (z.dtype() != ctx.input(i - 2).dtype())
    return invalid_model("MatMulInteger: zero point {} must have its matrix's dtype", i);
  if (z.numel() != 1 && z.numel() != count)
    return unsupported("MatMulInteger: zero point {} has {} elements; only a scalar or {} (one per {}) is supported", i,
                       z.numel(), count, i == 2 ? "row" : "column");
  std::vector<int32_t> out(static_cast<size_t>(count));
  for (int64_t r = 0; r < count; ++r) out[r] = static_cast<int32_t>(z.data<T>()[z.numel() == 1 ? 0 : r]);
  return out;
}

Status run_matmul_integer(CpuKernelContext& ctx) {
  const Tensor &a = ctx.input(0), &b = ctx.input(1);
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0));
  constexpr DTypeSet k8Bit = dtype_bit(DType::kI8) | dtype_bit(DType::kU8);
  return visit_dtype_in<k8Bit>(a.dtype(), [&]<typename TA>() {
    return visit_dtype_in<k8Bit>(b.dtype(), [&]<typename TB>() -> Status {
      const int64_t m = a.rank() == 1 ? 1 : a.dim(a.rank() - 2), n = b.rank() == 1 ? 1 : b.dim(b.rank() - 1);
      KILN_ASSIGN_OR_RETURN(std::vector<int32_t> za, zero_points<TA>(ctx, 2, m));
      KILN_ASSIGN_OR_RETURN(std::vector<int32_t> zb, zero_points<TB>(ctx, 3, n));
      // Widen to i32 with the zero points taken off, then multiply exactly in i64.
      Tensor wa(DType::kI32, a.dims()), wb(DType::kI32, b.dims());
      int32_t *pa = wa.mutable_data<int32_t>(), *pb = wb.mutable_data<int32_t>();
      const int64_t ka = a.dim(a.rank() - 1);
      for (int64_t i = 0; i < a.numel(); ++i) pa[i] = a.data<TA>()[i] - za[(i / ka) % m];
      for (int64_t i = 0; i < b.numel(); ++i) pb[i] = b.data<TB>()[i] - zb[i % n];
      int32_t* py = y->mutable_data<int32_t>();
      return for_each_batch(ctx, a, b, *y, [&](int64_t oa, int64_t ob, int64_t oy, int64_t m2, int64_t k, int64_t n2) {
        matrix_product<int32_t>({pa + oa, k, 1}, {pb + ob, n2, 1}, m2, k, n2, py + oy,
                                [](int64_t, int64_t, int64_t v) { return static_cast<int32_t>(v); });
      });
    });
  });
}

Status run_gemm(CpuKernelContext& ctx) {
  const Tensor &a = ctx.input(0), &b = ctx.input(1);
  const Node& node = ctx.node();
  const bool ta = node.attr_int("transA", 0) != 0, tb = node.attr_int("transB", 0) != 0;
  const float alpha = node.attr_float("alpha", 1.0f), beta = node.attr_float("beta", 1.0f);
  if (a.rank() != 2 || b.rank() != 2) return invalid_model("Gemm: A and B must be 2-D");
  const int64_t m = a.dim(ta ? 1 : 0), k = a.dim(ta ? 0 : 1), n = b.dim(tb ? 0 : 1);
  if (b.dim(tb ? 1 : 0) != k) return invalid_model("Gemm: A has K={} but B has K={}", k, b.dim(tb ? 1 : 0));
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0));
  const Tensor* c = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  std::vector<int64_t> c_strides;
  if (c) {
    if (c->rank() > 2 || (c->rank() >= 1 && c->dims().back() != 1 && c->dims().back() != n) ||
        (c->rank() == 2 && c->dim(0) != 1 && c->dim(0) != m))
      return invalid_model("Gemm: C of shape [{}] does not broadcast to [{},{}]", fmt::join(c->dims(), ","), m, n);
    c_strides = broadcast_strides(c->dims(), {m, n});
  }
  return visit_dtype_in<kMatMulTypes>(a.dtype(), [&]<typename T>() {
    using Acc = acc_t<T>;
    const T* pc = c ? c->data<T>() : nullptr;
    const auto al = static_cast<Acc>(alpha), be = static_cast<Acc>(beta);
    MatrixView<T> va{a.data<T>(), ta ? 1 : k, ta ? m : 1};
    MatrixView<T> vb{b.data<T>(), tb ? 1 : n, tb ? k : 1};
    matrix_product<T>(va, vb, m, k, n, y->mutable_data<T>(), [&](int64_t i, int64_t j, Acc v) {
      Acc r = al * v;
      if (pc) r += be * static_cast<Acc>(convert_to<compute_t<T>>(pc[i * c_strides[0] + j * c_strides[1]]));
      return convert_to<T>(r);
    });
    return Status::ok();
  });
}

KILN_CPU_KERNEL("", "MatMul", run_matmul);
KILN_CPU_KERNEL("", "MatMulInteger", run_matmul_integer);
KILN_CPU_KERNEL("", "Gemm", run_gemm);
KILN_CPU_KERNEL("kiln", "FusedMatMul", run_fused_matmul);

}  // namespace
}  // namespace kiln
