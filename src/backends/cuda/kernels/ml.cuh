// ai.onnx.ml kernels: Binarizer, ArrayFeatureExtractor and LabelEncoder
// (numeric keys and values). Each gives the CPU kernel's results
// (src/backends/cpu/kernels/ml.cpp): comparisons are made in double, as
// there.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kiln/dtype.h"
#include "support/status.h"

namespace kiln::cuda {

// y = double(x) > threshold ? 1 : 0 in x's dtype (NaN gives 0).
struct BinarizerParams {
  DType dtype = DType::kF32;  // numeric
  const void* x = nullptr;
  void* y = nullptr;
  int64_t n = 0;
  double threshold = 0;
};
Status launch_binarizer(const BinarizerParams& p, cudaStream_t stream);

// y[r, k] = x[r, indices[k]] with x as [rows, features]. The caller has
// checked every index against `features`; one still out of range reads 0.
struct ArrayFeatureExtractorParams {
  int elem_size = 4;  // 1, 2, 4, 8 or 16 bytes
  const void* x = nullptr;
  void* y = nullptr;
  int64_t rows = 0, features = 0;
  const void* indices = nullptr;  // int32 or int64
  bool idx64 = true;
  int64_t num_indices = 0;
};
Status launch_array_feature_extractor(const ArrayFeatureExtractorParams& p, cudaStream_t stream);

// The keys a LabelEncoder launch searches, passed by value (no device table):
// at most kLabelChunk keys, sorted ascending, distinct and not NaN, with the
// bits of their values (an element of `value_size` bytes, zero-extended).
constexpr int kLabelChunk = 240;
struct LabelChunk {
  int32_t count = 0;
  // The first launch also writes the element of every input that matches no
  // key of any chunk: `nan_value` for a NaN when a key is NaN, else `fallback`.
  bool first = false;
  bool has_nan = false;
  uint64_t nan_value = 0, fallback = 0;
  double keys[kLabelChunk];
  uint64_t values[kLabelChunk];
};

// y[i] = the value of the key equal to double(x[i]), else the default. The
// keys (sorted, distinct) are split into chunks, one launch each; an input
// matches a key of at most one chunk.
struct LabelEncoderParams {
  DType x_dtype = DType::kF32;  // numeric
  const void* x = nullptr;
  void* y = nullptr;
  int value_size = 8;  // bytes of a value: 1, 2, 4 or 8
  int64_t n = 0;
};
Status launch_label_encoder(const LabelEncoderParams& p, const LabelChunk& chunk, cudaStream_t stream);

}  // namespace kiln::cuda
