#include "backends/cpu/kernels/axis_blocks.h"

#include <cstring>

#include "ir/shape.h"

namespace kiln {
namespace {

// A tensor viewed as [outer, dim(axis), inner] elements.
struct Blocks {
  int64_t outer = 1, len = 1, inner = 1;
};

Blocks blocks_of(const std::vector<int64_t>& dims, int64_t axis) {
  Blocks b;
  for (int64_t i = 0; i < axis; ++i) b.outer *= dims[i];
  b.len = dims[axis];
  for (size_t i = static_cast<size_t>(axis) + 1; i < dims.size(); ++i) b.inner *= dims[i];
  return b;
}

Status check_copyable(DType t) {
  if (t != DType::kString && (dtype_is_packed(t) || dtype_bits(t) == 0))
    return unsupported("dtype {} cannot be sliced or joined along an axis", dtype_name(t));
  return Status::ok();
}

// Copies `rows` rows of `n` elements from src (row stride src_stride) to dst.
void copy_rows(const Tensor& src, int64_t src_off, int64_t src_stride, Tensor& dst, int64_t dst_off, int64_t dst_stride,
               int64_t rows, int64_t n) {
  if (n == 0 || rows == 0) return;
  if (src.dtype() == DType::kString) {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < n; ++i)
        dst.strings()[dst_off + r * dst_stride + i] = src.strings()[src_off + r * src_stride + i];
    return;
  }
  size_t es = static_cast<size_t>(dtype_bits(src.dtype()) / 8);
  auto* d = static_cast<char*>(dst.mutable_raw());
  const auto* s = static_cast<const char*>(src.raw());
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(d + (dst_off + r * dst_stride) * es, s + (src_off + r * src_stride) * es, static_cast<size_t>(n) * es);
}

}  // namespace

Expected<Tensor> slice_along(const Tensor& t, int64_t axis, int64_t start, int64_t count) {
  KILN_RETURN_IF_ERROR(check_copyable(t.dtype()));
  if (axis < 0 || axis >= t.rank() || start < 0 || count < 0 || start + count > t.dim(axis))
    return invalid_argument("slice [{}, {}) along axis {} is out of range for shape {}", start, start + count, axis,
                            Shape::of(t.dims()).to_string());
  std::vector<int64_t> dims = t.dims();
  dims[axis] = count;
  KILN_ASSIGN_OR_RETURN(Tensor out, Tensor::allocate(t.dtype(), dims));
  Blocks b = blocks_of(t.dims(), axis);
  copy_rows(t, start * b.inner, b.len * b.inner, out, 0, count * b.inner, b.outer, count * b.inner);
  return out;
}

Expected<Tensor> take_along(const Tensor& t, int64_t axis, int64_t index) {
  KILN_ASSIGN_OR_RETURN(Tensor s, slice_along(t, axis, index, 1));
  std::vector<int64_t> dims = t.dims();
  dims.erase(dims.begin() + axis);
  return s.reshaped(std::move(dims));
}

Expected<Tensor> concat_along(const std::vector<Tensor>& parts, int64_t axis) {
  if (parts.empty()) return invalid_argument("nothing to concatenate");
  const Tensor& first = parts[0];
  KILN_RETURN_IF_ERROR(check_copyable(first.dtype()));
  if (axis < 0 || axis >= first.rank())
    return invalid_argument("axis {} is out of range for rank {}", axis, first.rank());
  std::vector<int64_t> dims = first.dims();
  dims[axis] = 0;
  for (const Tensor& p : parts) {
    bool same = p.dtype() == first.dtype() && p.rank() == first.rank();
    for (int64_t i = 0; same && i < p.rank(); ++i) same = i == axis || p.dim(i) == first.dim(i);
    if (!same)
      return invalid_argument("cannot join {}{} and {}{} along axis {}", dtype_name(first.dtype()),
                              Shape::of(first.dims()).to_string(), dtype_name(p.dtype()),
                              Shape::of(p.dims()).to_string(), axis);
    dims[axis] += p.dim(axis);
  }
  KILN_ASSIGN_OR_RETURN(Tensor out, Tensor::allocate(first.dtype(), dims));
  Blocks ob = blocks_of(dims, axis);
  int64_t at = 0;
  for (const Tensor& p : parts) {
    Blocks pb = blocks_of(p.dims(), axis);
    copy_rows(p, 0, pb.len * pb.inner, out, at * ob.inner, ob.len * ob.inner, pb.outer, pb.len * pb.inner);
    at += pb.len;
  }
  return out;
}

Expected<Tensor> stack_along(const std::vector<Tensor>& parts, int64_t axis) {
  if (parts.empty()) return invalid_argument("nothing to stack");
  std::vector<int64_t> one = parts[0].dims();
  if (axis < 0 || axis > static_cast<int64_t>(one.size()))
    return invalid_argument("axis {} is out of range for stacking rank {}", axis, one.size());
  one.insert(one.begin() + axis, 1);
  std::vector<Tensor> expanded;
  expanded.reserve(parts.size());
  for (const Tensor& p : parts) {
    if (p.dims() != parts[0].dims())
      return invalid_argument("cannot stack shapes {} and {}", Shape::of(parts[0].dims()).to_string(),
                              Shape::of(p.dims()).to_string());
    expanded.push_back(p.reshaped(one));
  }
  return concat_along(expanded, axis);
}

Expected<Tensor> reverse_along(const Tensor& t, int64_t axis) {
  KILN_RETURN_IF_ERROR(check_copyable(t.dtype()));
  KILN_ASSIGN_OR_RETURN(Tensor out, Tensor::allocate(t.dtype(), t.dims()));
  Blocks b = blocks_of(t.dims(), axis);
  for (int64_t i = 0; i < b.len; ++i)
    copy_rows(t, i * b.inner, b.len * b.inner, out, (b.len - 1 - i) * b.inner, b.len * b.inner, b.outer, b.inner);
  return out;
}

}  // namespace kiln
