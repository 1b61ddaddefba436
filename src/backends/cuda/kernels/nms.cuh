// NonMaxSuppression on the GPU: per (batch, class) pair, the boxes above the
// score threshold in descending score order (a stable segmented sort, CUB;
// ties keep the lower index first), then a greedy pass by one block per pair
// that keeps a box unless a kept box overlaps it by more than the IoU
// threshold, up to max_output_boxes_per_class. The pairs' selections are
// concatenated in (batch, class) order, as the CPU kernel writes them. Box
// arithmetic is in double, as on the CPU.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kiln/dtype.h"
#include "support/status.h"

namespace kiln::cuda {

struct NmsParams {
  DType boxes_dtype = DType::kF32, scores_dtype = DType::kF32;  // float types
  const void* boxes = nullptr;                                  // [batches, spatial, 4]
  const void* scores = nullptr;                                 // [batches, classes, spatial]
  int64_t batches = 0, classes = 0, spatial = 0;
  int64_t max_per_class = 0;  // max_output_boxes_per_class (0: none)
  double iou_threshold = 0;
  bool has_score_threshold = false;
  double score_threshold = 0;
  bool center_point_box = false;
  int64_t* y = nullptr;         // [selected, 3], room for [batches * classes * min(spatial, max_per_class), 3]
  int64_t* out_dims = nullptr;  // receives {selected, 3}
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
};
// The most boxes one (batch, class) pair can select.
inline int64_t nms_per_pair(const NmsParams& p) {
  return p.max_per_class < p.spatial ? (p.max_per_class > 0 ? p.max_per_class : 0) : p.spatial;
}
size_t nms_workspace_bytes(const NmsParams& p);
Status launch_nms(const NmsParams& p, cudaStream_t stream);

}  // namespace kiln::cuda
