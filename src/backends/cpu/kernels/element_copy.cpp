#include "backends/cpu/kernels/element_copy.h"

#include <cstring>

namespace kiln {

ElementCopier::ElementCopier(const Tensor& src, Tensor& dst) {
  assert(src.dtype() == dst.dtype());
  if (src.dtype() == DType::kString) {
    src_strings_ = &src.strings();
    dst_strings_ = &dst.strings();
    return;
  }
  bits_ = dtype_bits(src.dtype());
  src_ = static_cast<const uint8_t*>(src.raw());
  dst_ = dst.nbytes() ? static_cast<uint8_t*>(dst.mutable_raw()) : nullptr;
}

void ElementCopier::copy(int64_t dst_index, int64_t src_index, int64_t count) const {
  if (count <= 0) return;
  if (dst_strings_) {
    for (int64_t k = 0; k < count; ++k) (*dst_strings_)[dst_index + k] = (*src_strings_)[src_index + k];
    return;
  }
  if (bits_ >= 8) {
    const size_t bytes = static_cast<size_t>(bits_ / 8);
    std::memcpy(dst_ + dst_index * bytes, src_ + src_index * bytes, bytes * count);
    return;
  }
  // Packed elements, LSB first within each byte.
  const uint32_t mask = (1u << bits_) - 1;
  for (int64_t k = 0; k < count; ++k) {
    int64_t sbit = (src_index + k) * bits_, dbit = (dst_index + k) * bits_;
    uint32_t v = (src_[sbit / 8] >> (sbit % 8)) & mask;
    uint8_t& d = dst_[dbit / 8];
    d = static_cast<uint8_t>((d & ~(mask << (dbit % 8))) | (v << (dbit % 8)));
  }
}

int64_t dims_numel(const std::vector<int64_t>& dims, size_t begin, size_t end) {
  int64_t n = 1;
  for (size_t i = begin; i < end && i < dims.size(); ++i) n *= dims[i];
  return n;
}

Expected<int64_t> checked_index(int64_t i, int64_t n, const char* op) {
  if (i < -n || i >= n)
    return make_error(ErrorCode::kOutOfRange, "{}: index {} is out of range for a dim of {}", op, i, n);
  return i < 0 ? i + n : i;
}

}  // namespace kiln
