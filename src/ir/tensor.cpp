#include "ir/tensor.h"

#include <bit>
#include <cmath>
#include <cstring>

#include "ir/shape.h"

namespace kiln {

namespace {
std::shared_ptr<void> alloc_bytes(size_t n) {
  // 64-byte alignment so vectorized kernels and mmapped sections agree.
  size_t rounded = (n + 63) / 64 * 64;
  void* p = ::operator new(rounded == 0 ? 64 : rounded, std::align_val_t(64));
  std::memset(p, 0, rounded == 0 ? 64 : rounded);
  return std::shared_ptr<void>(p, [](void* q) { ::operator delete(q, std::align_val_t(64)); });
}
}  // namespace

Tensor::Tensor(DType dtype, std::vector<int64_t> dims) : dtype_(dtype), dims_(std::move(dims)) {
  numel_ = checked_numel(dims_);
  assert(numel_ >= 0);
  if (dtype_ == DType::kString) {
    strings_ = std::make_shared<std::vector<std::string>>(static_cast<size_t>(numel_));
    return;
  }
  nbytes_ = dtype_storage_bytes(dtype_, numel_);
  auto buf = alloc_bytes(nbytes_);
  data_ = buf.get();
  owner_ = std::move(buf);
  writable_ = true;
}

Tensor Tensor::view(DType dtype, std::vector<int64_t> dims, const void* data, size_t size,
                    std::shared_ptr<const void> owner) {
  Tensor t;
  t.dtype_ = dtype;
  t.dims_ = std::move(dims);
  t.numel_ = checked_numel(t.dims_);
  t.nbytes_ = size;
  t.data_ = data;
  t.owner_ = std::move(owner);
  t.writable_ = false;
  return t;
}

Expected<Tensor> Tensor::allocate(DType dtype, std::vector<int64_t> dims, size_t max_bytes) {
  int64_t n = checked_numel(dims);
  if (n < 0) return invalid_argument("tensor dims {} overflow or are negative", Shape::of(dims).to_string());
  if (dtype != DType::kString && dtype_storage_bytes(dtype, n) > max_bytes)
    return make_error(ErrorCode::kOutOfRange, "tensor {}{} needs {} bytes, over the limit of {}", dtype_name(dtype),
                      Shape::of(dims).to_string(), dtype_storage_bytes(dtype, n), max_bytes);
  return Tensor(dtype, std::move(dims));
}

Tensor Tensor::scalar_i64(int64_t v) { return from_vector<int64_t>(DType::kI64, {}, {v}); }
Tensor Tensor::vector_i64(const std::vector<int64_t>& v) {
  return from_vector<int64_t>(DType::kI64, {static_cast<int64_t>(v.size())}, v);
}

void* Tensor::mutable_raw() {
  if (!writable_ || owner_.use_count() > 1) {
    auto buf = alloc_bytes(nbytes_);
    if (nbytes_) std::memcpy(buf.get(), data_, nbytes_);
    data_ = buf.get();
    owner_ = std::move(buf);
    writable_ = true;
  }
  return const_cast<void*>(data_);
}

Tensor Tensor::reshaped(std::vector<int64_t> dims) const {
  Tensor t = *this;
  t.dims_ = std::move(dims);
  assert(checked_numel(t.dims_) == numel_);
  return t;
}

Tensor Tensor::bitcast(DType same_width) const {
  assert(dtype_bits(same_width) == dtype_bits(dtype_) && dtype_ != DType::kString);
  Tensor t = *this;
  t.dtype_ = same_width;
  return t;
}

Tensor Tensor::transposed(const std::vector<int64_t>& perm) const {
  if (dtype_is_packed(dtype_) || dtype_ == DType::kString || perm.size() != dims_.size()) return Tensor();
  std::vector<bool> seen(perm.size(), false);
  for (int64_t a : perm) {
    if (a < 0 || a >= rank() || seen[static_cast<size_t>(a)]) return Tensor();
    seen[static_cast<size_t>(a)] = true;
  }
  const size_t width = static_cast<size_t>(dtype_bits(dtype_) / 8);
  std::vector<int64_t> out_dims(perm.size()), in_stride(perm.size(), 1);
  for (size_t j = 0; j < perm.size(); ++j) out_dims[j] = dims_[static_cast<size_t>(perm[j])];
  for (size_t i = perm.size(); i-- > 1;) in_stride[i - 1] = in_stride[i] * dims_[i];
  Tensor out(dtype_, out_dims);
  const auto* src = static_cast<const uint8_t*>(raw());
  auto* dst = static_cast<uint8_t*>(out.mutable_raw());
  std::vector<int64_t> idx(perm.size(), 0);
  for (int64_t k = 0; k < out.numel(); ++k) {
    int64_t off = 0;
    for (size_t j = 0; j < perm.size(); ++j) off += idx[j] * in_stride[static_cast<size_t>(perm[j])];
    std::memcpy(dst + static_cast<size_t>(k) * width, src + static_cast<size_t>(off) * width, width);
    for (size_t j = perm.size(); j-- > 0;) {
      if (++idx[j] < out_dims[j]) break;
      idx[j] = 0;
    }
  }
  return out;
}

Tensor Tensor::clone() const {
  Tensor t(dtype_, dims_);
  if (dtype_ == DType::kString) {
    *t.strings_ = *strings_;
  } else if (nbytes_) {
    std::memcpy(t.mutable_raw(), data_, nbytes_);
  }
  return t;
}

Expected<std::vector<int64_t>> Tensor::to_i64_vector() const {
  std::vector<int64_t> out(static_cast<size_t>(numel_));
  switch (dtype_) {
    case DType::kI64:
      if (nbytes_) std::memcpy(out.data(), data_, nbytes_);  // out.data() may be null when empty
      break;
    case DType::kI32:
      for (int64_t i = 0; i < numel_; ++i) out[i] = data<int32_t>()[i];
      break;
    case DType::kI16:
      for (int64_t i = 0; i < numel_; ++i) out[i] = data<int16_t>()[i];
      break;
    case DType::kI8:
      for (int64_t i = 0; i < numel_; ++i) out[i] = data<int8_t>()[i];
      break;
    case DType::kU8:
      for (int64_t i = 0; i < numel_; ++i) out[i] = data<uint8_t>()[i];
      break;
    case DType::kU16:
      for (int64_t i = 0; i < numel_; ++i) out[i] = data<uint16_t>()[i];
      break;
    case DType::kU32:
      for (int64_t i = 0; i < numel_; ++i) out[i] = data<uint32_t>()[i];
      break;
    case DType::kU64:
      for (int64_t i = 0; i < numel_; ++i) out[i] = static_cast<int64_t>(data<uint64_t>()[i]);
      break;
    default: return invalid_argument("expected an integer tensor, got {}", dtype_name(dtype_));
  }
  return out;
}

double Tensor::element_as_double(int64_t i) const {
  switch (dtype_) {
    case DType::kF32: return data<float>()[i];
    case DType::kF64: return data<double>()[i];
    case DType::kF16: return f16_to_f32(data<uint16_t>()[i]);
    case DType::kBF16: return bf16_to_f32(data<uint16_t>()[i]);
    case DType::kI64: return static_cast<double>(data<int64_t>()[i]);
    case DType::kI32: return data<int32_t>()[i];
    case DType::kI16: return data<int16_t>()[i];
    case DType::kI8: return data<int8_t>()[i];
    case DType::kU8: return data<uint8_t>()[i];
    case DType::kU16: return data<uint16_t>()[i];
    case DType::kU32: return data<uint32_t>()[i];
    case DType::kU64: return static_cast<double>(data<uint64_t>()[i]);
    case DType::kBool: return data<uint8_t>()[i] ? 1.0 : 0.0;
    default: return std::nan("");
  }
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalize
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      bits = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  return std::bit_cast<float>(bits);
}

uint16_t f32_to_f16(float f) {
  // Round to nearest even, with overflow to inf and gradual underflow.
  uint32_t x = std::bit_cast<uint32_t>(f);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t absx = x & 0x7fffffffu;
  if (absx > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);   // NaN
  if (absx >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow -> inf
  if (absx < 0x38800000u) {                                               // subnormal or zero in f16
    if (absx < 0x33000000u) return static_cast<uint16_t>(sign);
    uint32_t e = absx >> 23;
    uint32_t mant = (absx & 0x7fffffu) | 0x800000u;
    // value = mant * 2^(e-150); in units of the f16 subnormal step 2^-24: mant >> (126 - e)
    uint32_t s = 126 - e;
    uint32_t half_mant = mant >> s;
    uint32_t rem = mant & ((1u << s) - 1);
    uint32_t halfway = 1u << (s - 1);
    if (rem > halfway || (rem == halfway && (half_mant & 1u))) ++half_mant;
    return static_cast<uint16_t>(sign | half_mant);
  }
  uint32_t e = (absx >> 23) - 127 + 15;
  uint32_t mant = absx & 0x7fffffu;
  uint32_t h = (e << 10) | (mant >> 13);
  uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
  return static_cast<uint16_t>(sign | h);
}

float bf16_to_f32(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

uint16_t f32_to_bf16(float f) {
  uint32_t x = std::bit_cast<uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // quiet NaN
  uint32_t rounding = 0x7fffu + ((x >> 16) & 1u);
  return static_cast<uint16_t>((x + rounding) >> 16);
}

}  // namespace kiln
