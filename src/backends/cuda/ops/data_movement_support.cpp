#include "backends/cuda/ops/data_movement_support.h"

#include <cstring>

#include "ir/element_cast.h"

namespace kiln::cuda::dm {
namespace {

const Type* input_type(const Node& node, size_t i) {
  const Value* v = node.input(i);
  return v ? &v->type : nullptr;
}

}  // namespace

int element_size(DType t, int max_bytes) {
  if (t == DType::kUndefined || t == DType::kString || dtype_is_packed(t)) return 0;
  const int bits = dtype_bits(t);
  const int bytes = bits / 8;
  if (bits % 8 != 0 || bytes > max_bytes) return 0;
  return bytes == 1 || bytes == 2 || bytes == 4 || bytes == 8 || bytes == 16 ? bytes : 0;
}

Status supports_rank(const Node& node, size_t input) {
  const Type* t = input_type(node, input);
  if (t && t->shape.has_rank() && t->shape.rank() > kMaxRank)
    return unsupported("{}: input {} has rank {} (the CUDA kernel takes up to {})", node.op_type, input,
                       t->shape.rank(), kMaxRank);
  return Status::ok();
}

Status supports_movable(const Node& node, size_t input, int max_bytes) {
  const Type* t = input_type(node, input);
  if (!t || !t->is_tensor()) return unsupported("{}: input {} is not a tensor", node.op_type, input);
  if (element_size(t->dtype, max_bytes) == 0)
    return unsupported("{}: dtype {} (the CUDA kernel moves elements of 1 to {} bytes)", node.op_type,
                       dtype_name(t->dtype), max_bytes);
  return supports_rank(node, input);
}

Status supports_numeric(const Node& node, size_t input, bool with_bool) {
  const Type* t = input_type(node, input);
  if (!t || !t->is_tensor()) return unsupported("{}: input {} is not a tensor", node.op_type, input);
  const DType d = t->dtype;
  const bool numeric = d == DType::kF32 || d == DType::kF64 || d == DType::kF16 || d == DType::kBF16 ||
                       d == DType::kI8 || d == DType::kI16 || d == DType::kI32 || d == DType::kI64 || d == DType::kU8 ||
                       d == DType::kU16 || d == DType::kU32 || d == DType::kU64;
  if (!numeric && !(with_bool && d == DType::kBool))
    return unsupported("{}: dtype {} (the CUDA kernel takes numeric dtypes{})", node.op_type, dtype_name(d),
                       with_bool ? " and bool" : "");
  return supports_rank(node, input);
}

Status supports_index(const Node& node, size_t input) {
  const Type* t = input_type(node, input);
  if (t && t->dtype != DType::kI32 && t->dtype != DType::kI64)
    return unsupported("{}: indices of dtype {} (the CUDA kernel takes int32 or int64)", node.op_type,
                       dtype_name(t->dtype));
  return Status::ok();
}

Status supports_movable_indexed(const Node& node, std::vector<size_t> index_inputs, int max_bytes) {
  KILN_RETURN_IF_ERROR(supports_movable(node, 0, max_bytes));
  for (size_t i : index_inputs) KILN_RETURN_IF_ERROR(supports_index(node, i));
  return Status::ok();
}

Expected<std::vector<int64_t>> host_ints(const KernelContext& ctx, size_t i) {
  const Tensor* t = ctx.host_input(i);
  if (!t) return std::vector<int64_t>{};
  return t->to_i64_vector();
}

int64_t positive_axis(int64_t axis, int64_t rank) { return axis < 0 ? axis + rank : axis; }

ElemBits element_bits(const Tensor& t, int64_t i) {
  ElemBits b;
  const size_t bytes = static_cast<size_t>(dtype_bits(t.dtype()) / 8);
  if (bytes > 0 && bytes <= sizeof(b) && i < t.numel())
    std::memcpy(&b, static_cast<const uint8_t*>(t.raw()) + static_cast<size_t>(i) * bytes, bytes);
  return b;
}

ElemBits converted_bits(DType to, const Tensor& value) {
  Tensor out(to, {1});
  write_scalar(to, out.mutable_raw(), 0, read_scalar(value.dtype(), value.raw(), 0));
  return element_bits(out, 0);
}

ElemBits one_bits(DType to) {
  Tensor out(to, {1});
  write_scalar(to, out.mutable_raw(), 0, Scalar::of_signed(1));
  return element_bits(out, 0);
}

}  // namespace kiln::cuda::dm
