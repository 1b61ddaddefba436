// Host tables packed into one byte buffer for a single upload (each array at
// a 256-byte aligned offset), as kernels that keep attribute tables on the
// device for a plan (TreeEnsemble, TfIdfVectorizer) build them.
#pragma once

#include <cstddef>
#include <cstring>
#include <vector>

namespace kiln::cuda {

// Appends `v` to `bytes` at the next 256-byte boundary; returns its offset.
template <typename T>
size_t add_array(std::vector<char>& bytes, const std::vector<T>& v) {
  const size_t at = (bytes.size() + 255) / 256 * 256;
  bytes.resize(at + v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(bytes.data() + at, v.data(), v.size() * sizeof(T));
  return at;
}

}  // namespace kiln::cuda
