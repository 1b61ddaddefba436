// Division by a divisor fixed per launch, as a multiply-high, an add and a
// shift: kernels that split a flat index into coordinates with runtime
// extents (the implicit-GEMM conv's halo loader, two splits per 16-byte copy)
// otherwise run the ~20-instruction integer division sequence per split.
// Host and device compute the same quotient, so a host test checks it.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define KILN_HOST_DEVICE __host__ __device__
#else
#define KILN_HOST_DEVICE
#endif

namespace kiln::cuda {

// q = (mulhi(n, mul) + n) >> shift with shift = ceil(log2 d) and
// mul = floor(2^32 (2^shift - d) / d) + 1: exact for every n < 2^31 (the sum
// then fits 32 bits) and every d >= 1.
struct FastDiv {
  uint32_t d = 1, mul = 1, shift = 0;

  FastDiv() = default;
  explicit FastDiv(uint32_t divisor) : d(divisor) {
    while ((uint64_t{1} << shift) < d) ++shift;
    mul = static_cast<uint32_t>(((uint64_t{1} << 32) * ((uint64_t{1} << shift) - d)) / d + 1);
  }

  KILN_HOST_DEVICE uint32_t div(uint32_t n) const {
#if defined(__CUDA_ARCH__)
    const uint32_t hi = __umulhi(n, mul);
#else
    const uint32_t hi = static_cast<uint32_t>((static_cast<uint64_t>(n) * mul) >> 32);
#endif
    return (hi + n) >> shift;
  }
  // n / d as the quotient, n % d into `rem`.
  KILN_HOST_DEVICE uint32_t divmod(uint32_t n, uint32_t& rem) const {
    const uint32_t q = div(n);
    rem = n - q * d;
    return q;
  }
};

}  // namespace kiln::cuda

#undef KILN_HOST_DEVICE
