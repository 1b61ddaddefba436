// A host tensor: dtype, fixed dims and bytes. Storage is shared and may be a
// slice of a memory-mapped file (weights are never copied to be read). String
// tensors keep their elements in `strings` instead of bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "ir/dtype.h"
#include "support/status.h"

namespace kiln {

class Tensor {
 public:
  Tensor() = default;
  // Allocates zero-filled storage for dtype and dims.
  Tensor(DType dtype, std::vector<int64_t> dims);
  // Views `size` bytes at `data`, kept alive by `owner` (not copied).
  static Tensor view(DType dtype, std::vector<int64_t> dims, const void* data, size_t size,
                     std::shared_ptr<const void> owner);
  // Allocates, checking that the element count and byte size are sane first
  // (an absurd dim in a file must not turn into a huge allocation).
  static Expected<Tensor> allocate(DType dtype, std::vector<int64_t> dims, size_t max_bytes = size_t(1) << 40);
  template <typename T>
  static Tensor from_vector(DType dtype, std::vector<int64_t> dims, const std::vector<T>& values);
  static Tensor scalar_i64(int64_t v);
  static Tensor vector_i64(const std::vector<int64_t>& v);

  DType dtype() const { return dtype_; }
  const std::vector<int64_t>& dims() const { return dims_; }
  int64_t rank() const { return static_cast<int64_t>(dims_.size()); }
  int64_t dim(int64_t i) const { return dims_[static_cast<size_t>(i)]; }
  int64_t numel() const { return numel_; }
  size_t nbytes() const { return nbytes_; }
  bool is_valid() const { return dtype_ != DType::kUndefined; }

  const void* raw() const { return data_; }
  // Writable bytes; copies first if the storage is shared with another tensor or read-only.
  void* mutable_raw();
  template <typename T>
  const T* data() const {
    return static_cast<const T*>(data_);
  }
  template <typename T>
  T* mutable_data() {
    return static_cast<T*>(mutable_raw());
  }
  template <typename T>
  std::span<const T> span() const {
    return {data<T>(), static_cast<size_t>(numel_)};
  }

  std::vector<std::string>& strings() { return *strings_; }
  const std::vector<std::string>& strings() const { return *strings_; }

  // Same bytes, new dims (numel must match).
  Tensor reshaped(std::vector<int64_t> dims) const;
  // Same bytes read as another dtype of the same width (u16 -> bf16, ...).
  Tensor bitcast(DType same_width) const;
  // A deep copy that owns its storage.
  Tensor clone() const;
  // A copy with dims out[j] = dims[perm[j]] (ONNX Transpose); whole-byte
  // dtypes only (an invalid Tensor for strings, packed dtypes or a bad perm).
  Tensor transposed(const std::vector<int64_t>& perm) const;
  // Integer contents widened to int64 (for shape-like inputs); error for non-integer types.
  Expected<std::vector<int64_t>> to_i64_vector() const;
  // Element i as double (numeric dtypes, used for printing and comparison).
  double element_as_double(int64_t i) const;

 private:
  DType dtype_ = DType::kUndefined;
  std::vector<int64_t> dims_;
  int64_t numel_ = 0;
  size_t nbytes_ = 0;
  const void* data_ = nullptr;
  bool writable_ = false;
  std::shared_ptr<const void> owner_;
  std::shared_ptr<std::vector<std::string>> strings_;
};

// Host-side conversions between f32 and the 16- and 8-bit float formats.
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);

template <typename T>
Tensor Tensor::from_vector(DType dtype, std::vector<int64_t> dims, const std::vector<T>& values) {
  Tensor t(dtype, std::move(dims));
  assert(static_cast<size_t>(t.numel()) == values.size() && sizeof(T) * values.size() == t.nbytes());
  if (!values.empty()) std::memcpy(t.mutable_raw(), values.data(), t.nbytes());
  return t;
}

}  // namespace kiln
