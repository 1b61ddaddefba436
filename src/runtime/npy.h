// NumPy .npy files (format versions 1.0, 2.0 and 3.0): little-endian numeric
// dtypes and bool, C order. Fortran order, big-endian data, object and string
// arrays are rejected with a message saying which.
#pragma once

#include <cstddef>
#include <string>

#include "ir/tensor.h"
#include "support/status.h"

namespace kiln {

// `origin` names the data in messages (usually the path).
Expected<Tensor> parse_npy(const void* data, size_t size, const std::string& origin);
Expected<Tensor> read_npy_file(const std::string& path);

// The smallest version that fits the header (1.0 almost always).
std::string encode_npy(const Tensor& t);
Status write_npy_file(const std::string& path, const Tensor& t);

}  // namespace kiln
