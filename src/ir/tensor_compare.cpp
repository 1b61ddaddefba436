#include "ir/tensor_compare.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>

#include "ir/shape.h"

namespace kiln {

CompareResult compare_tensors(const Tensor& got, const Tensor& want, double rtol, double atol) {
  CompareResult r;
  if (got.dtype() != want.dtype()) {
    r.ok = false;
    r.message = fmt::format("dtype {} but expected {}", dtype_name(got.dtype()), dtype_name(want.dtype()));
    return r;
  }
  if (got.dims() != want.dims()) {
    r.ok = false;
    r.message =
        fmt::format("shape {} but expected {}", Shape::of(got.dims()).to_string(), Shape::of(want.dims()).to_string());
    return r;
  }
  int64_t n = want.numel();
  if (want.dtype() == DType::kString) {
    for (int64_t i = 0; i < n; ++i)
      if (got.strings()[i] != want.strings()[i]) {
        if (r.mismatches++ == 0)
          r.message = fmt::format("element {} is \"{}\" but expected \"{}\"", i, got.strings()[i], want.strings()[i]);
      }
    r.ok = r.mismatches == 0;
    return r;
  }
  bool exact = !dtype_is_float(want.dtype()) || dtype_bits(want.dtype()) < 16;
  if (exact || want.dtype() == DType::kC64 || want.dtype() == DType::kC128) {
    // Integers, bools, packed and 8-bit float types: compare the stored bytes
    // (complex and 8-bit floats too: both sides were produced the same way).
    if (want.dtype() == DType::kC64 || want.dtype() == DType::kC128) {
      bool c64 = want.dtype() == DType::kC64;
      for (int64_t i = 0; i < 2 * n; ++i) {
        double g = c64 ? got.data<float>()[i] : got.data<double>()[i];
        double w = c64 ? want.data<float>()[i] : want.data<double>()[i];
        double err = std::fabs(g - w);
        if (std::isnan(g) && std::isnan(w)) continue;
        r.max_abs_error = std::max(r.max_abs_error, err);
        if (!(err <= atol + rtol * std::fabs(w)) && r.mismatches++ == 0)
          r.message = fmt::format("component {} is {} but expected {}", i, g, w);
      }
      r.ok = r.mismatches == 0;
      return r;
    }
    if (want.nbytes() != got.nbytes() || std::memcmp(got.raw(), want.raw(), want.nbytes()) != 0) {
      if (dtype_bits(want.dtype()) >= 8) {
        for (int64_t i = 0; i < n; ++i) {
          double g = got.element_as_double(i), w = want.element_as_double(i);
          int bytes = dtype_bits(want.dtype()) / 8;
          if (std::memcmp(static_cast<const char*>(got.raw()) + i * bytes,
                          static_cast<const char*>(want.raw()) + i * bytes, bytes) != 0) {
            if (r.mismatches++ == 0) r.message = fmt::format("element {} is {} but expected {}", i, g, w);
            r.max_abs_error = std::max(r.max_abs_error, std::fabs(g - w));
          }
        }
      } else {
        r.mismatches = 1;
        r.message = "packed values differ";
      }
    }
    r.ok = r.mismatches == 0;
    return r;
  }
  for (int64_t i = 0; i < n; ++i) {
    double g = got.element_as_double(i), w = want.element_as_double(i);
    if (std::isnan(w) || std::isnan(g)) {
      if (std::isnan(w) && std::isnan(g)) continue;
      if (r.mismatches++ == 0) r.message = fmt::format("element {} is {} but expected {}", i, g, w);
      continue;
    }
    if (std::isinf(w) || std::isinf(g)) {
      if (g == w) continue;
      if (r.mismatches++ == 0) r.message = fmt::format("element {} is {} but expected {}", i, g, w);
      continue;
    }
    double err = std::fabs(g - w);
    r.max_abs_error = std::max(r.max_abs_error, err);
    if (w != 0) r.max_rel_error = std::max(r.max_rel_error, err / std::fabs(w));
    if (!(err <= atol + rtol * std::fabs(w)) && r.mismatches++ == 0)
      r.message = fmt::format("element {} is {} but expected {}", i, g, w);
  }
  r.ok = r.mismatches == 0;
  if (!r.ok)
    r.message = fmt::format("{} of {} elements differ (max abs error {:.3g}, max rel error {:.3g}); first: {}",
                            r.mismatches, n, r.max_abs_error, r.max_rel_error, r.message);
  return r;
}

CompareResult compare_values(const RunValue& got, const RunValue& want, double rtol, double atol) {
  CompareResult r;
  if (got.kind != want.kind) {
    r.ok = false;
    r.message = "value kinds differ (tensor, sequence or optional)";
    return r;
  }
  if (want.kind == Type::Kind::kOptional) {
    if (got.present != want.present) {
      r.ok = false;
      r.message = want.present ? "optional is empty but expected a value" : "optional has a value but expected none";
      return r;
    }
    if (!want.present) return r;
    if (!want.holds_sequence) return compare_tensors(got.tensor, want.tensor, rtol, atol);
  }
  if (want.kind == Type::Kind::kTensor) return compare_tensors(got.tensor, want.tensor, rtol, atol);
  if (got.sequence.size() != want.sequence.size()) {
    r.ok = false;
    r.message = fmt::format("sequence has {} tensors but expected {}", got.sequence.size(), want.sequence.size());
    return r;
  }
  for (size_t i = 0; i < want.sequence.size(); ++i) {
    CompareResult e = compare_tensors(got.sequence[i], want.sequence[i], rtol, atol);
    r.max_abs_error = std::max(r.max_abs_error, e.max_abs_error);
    r.max_rel_error = std::max(r.max_rel_error, e.max_rel_error);
    if (!e.ok && r.ok) {
      r.ok = false;
      r.message = fmt::format("sequence element {}: {}", i, e.message);
    }
  }
  return r;
}

}  // namespace kiln
