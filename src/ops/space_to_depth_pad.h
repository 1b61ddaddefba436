// kiln.SpaceToDepthPad: the image stem's input, padded and cut into 2x2
// blocks in one pass (space_to_depth_stem emits it). X [N, C, H, W] of a
// float dtype gives Y [N, Hb, Wb, 4 * CC] of dtype `to` (X's by default):
//
//   Y[n, hb, wb, (ph * 2 + pw) * CC + c] = X[n, c, 2 * hb + ph - top, 2 * wb + pw - left]
//
// cast to `to`, and 0 where that is outside X or c >= C. Attributes:
//   pads      [top, left, bottom, right] (Conv's order: begins, then ends), each >= 0;
//             Hb = (H + top + bottom) / 2 and Wb = (W + left + right) / 2, both sums even
//   channels  CC >= C, the channel count padded with zeros
//   to        the output dtype (optional): f16, bf16, f32 or f64, as X
// The block size is fixed at 2 (the stride-2 stems; 4 * CC a multiple of 8
// for an even CC).
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "ir/graph.h"
#include "support/status.h"

namespace kiln {

struct SpaceToDepthPadAttrs {
  int64_t top = 0, left = 0, bottom = 0, right = 0;
  int64_t channels = 0;          // CC
  DType to = DType::kUndefined;  // the output dtype (X's when `to` is absent)
};

// The node's attributes, checked, for an input of dtype `x` (kUndefined: not known yet).
Expected<SpaceToDepthPadAttrs> space_to_depth_pad_attrs(const Node& node, DType x);

// Y's dims for X's fixed dims [N, C, H, W]; an error names the attribute or dim that does not fit.
Expected<std::array<int64_t, 4>> space_to_depth_pad_dims(const SpaceToDepthPadAttrs& a,
                                                         const std::vector<int64_t>& x_dims);

}  // namespace kiln
