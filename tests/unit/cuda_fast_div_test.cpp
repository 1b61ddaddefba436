// FastDiv (the implicit-GEMM conv's index splits) against the / and %
// operators: every divisor up to 300 (powers of two, their neighbours and
// the halo widths and channel chunks the kernels see) over dense small
// numerators and sparse ones up to 2^31 - 1, where the add in div is
// closest to overflowing.
#include <gtest/gtest.h>

#include <cstdint>

#include "backends/cuda/kernels/fast_div.h"

namespace kiln::cuda {
namespace {

void expect_exact(uint32_t d, uint32_t n) {
  const FastDiv f(d);
  uint32_t rem = 0;
  const uint32_t q = f.divmod(n, rem);
  ASSERT_EQ(q, n / d) << n << " / " << d;
  ASSERT_EQ(rem, n % d) << n << " % " << d;
}

TEST(FastDiv, MatchesIntegerDivision) {
  const uint32_t top = 0x7fffffffu;
  for (uint32_t d = 1; d <= 300; ++d) {
    for (uint32_t n = 0; n < 5000; ++n) expect_exact(d, n);
    for (uint32_t n = top; n > top - 5000; --n) expect_exact(d, n);
    // Either side of a multiple of d, where the quotient steps (every 7919th).
    for (uint64_t m = d; m <= top; m += 7919ull * d) {
      expect_exact(d, static_cast<uint32_t>(m - 1));
      expect_exact(d, static_cast<uint32_t>(m));
    }
  }
  for (uint32_t d : {1u << 20, (1u << 20) + 1, 1000003u, top}) {
    for (uint32_t n : {0u, 1u, d - 1, d, d + 1, top - 1, top}) expect_exact(d, n);
  }
}

TEST(FastDiv, DefaultDividesByOne) {
  const FastDiv f;
  EXPECT_EQ(f.div(0), 0u);
  EXPECT_EQ(f.div(12345), 12345u);
}

}  // namespace
}  // namespace kiln::cuda
