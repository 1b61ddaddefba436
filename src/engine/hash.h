// A fast 64-bit non-cryptographic hash for engine checksums: four lanes of
// 8-byte multiply-rotate rounds (the shape of xxHash64), so checksumming
// runs near memory speed on large weight sections. Detects accidental
// damage, not tampering.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kiln {

uint64_t hash64(const void* data, size_t size, uint64_t seed = 0);

}  // namespace kiln
