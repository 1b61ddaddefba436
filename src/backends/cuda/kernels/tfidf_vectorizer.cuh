// TfIdfVectorizer (ai.onnx 9) on integer tokens, with the CPU kernel's
// semantics (src/backends/cpu/kernels/tfidf_vectorizer.cpp). The n-gram pool
// lives in device memory, built once per plan on the host: for every gram
// length n, its distinct n-grams sorted lexicographically (n tokens each)
// with their output columns. A first kernel gives a thread to every (row,
// start, skip) triple; it extends its n-gram one token at a time, binary-
// searches each length's table and atomically counts a hit in an int32
// buffer. A second kernel weighs the counts (TF, IDF or TFIDF) into the f32
// output, multiplying in double as the CPU does.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kiln/dtype.h"
#include "support/status.h"

namespace kiln::cuda {

enum class TfIdfMode { kTf, kIdf, kTfIdf };

struct TfIdfParams {
  // Tokens: [rows, cols] of int32 or int64 (a 1-D input is one row).
  DType x_dtype = DType::kI64;
  const void* x = nullptr;
  int64_t rows = 0, cols = 0;
  // The pool (device memory). Grams of length n (min_n <= n <= max_n) are
  // entries [entry_begin[n], entry_begin[n + 1]) of `columns`, their tokens
  // at tokens[token_begin[n] + (e - entry_begin[n]) * n ...]; both offset
  // arrays have max_n + 2 elements. Entries are distinct, sorted, and their
  // columns lie in [0, width).
  const int64_t* tokens = nullptr;
  const int64_t* token_begin = nullptr;
  const int64_t* entry_begin = nullptr;
  const int32_t* columns = nullptr;
  int32_t min_n = 1, max_n = 1;
  // Skips 0 .. max_skip (already clamped to what a row can hold; < 0: none).
  int64_t max_skip = 0;
  // Weights (device, `weight_count` floats; none when 0) and the mode.
  const float* weights = nullptr;
  int64_t weight_count = 0;
  TfIdfMode mode = TfIdfMode::kTf;
  // Output: f32 [rows, width]; counts: int32 [rows, width] scratch.
  float* y = nullptr;
  int64_t width = 1;
  int32_t* counts = nullptr;
};

// Scratch bytes of the counts.
inline size_t tfidf_workspace_bytes(int64_t rows, int64_t width) {
  return rows > 0 && width > 0 ? static_cast<size_t>(rows) * static_cast<size_t>(width) * sizeof(int32_t) : 0;
}

Status launch_tfidf_vectorizer(const TfIdfParams& p, cudaStream_t stream);

}  // namespace kiln::cuda
