// The loop bounds of a sliding-window kernel (conv, pool) with every input
// seen as 3-D spatial: 1-D and 2-D inputs get leading spatial dims of size 1,
// so one loop nest serves 1-D, 2-D and 3-D.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "ir/graph.h"
#include "ops/window_geometry.h"
#include "support/status.h"

namespace kiln {

struct WindowPlan {
  int64_t batch = 0, channels = 0;
  size_t spatial = 0;                   // the real spatial rank (1..3)
  std::array<int64_t, 3> in{1, 1, 1};   // input spatial dims
  std::array<int64_t, 3> out{1, 1, 1};  // output spatial dims
  std::array<int64_t, 3> kernel{1, 1, 1};
  std::array<int64_t, 3> stride{1, 1, 1};
  std::array<int64_t, 3> dilation{1, 1, 1};
  std::array<int64_t, 3> pad_begin{0, 0, 0};
  std::array<int64_t, 3> pad_end{0, 0, 0};

  int64_t in_size() const { return in[0] * in[1] * in[2]; }
  int64_t out_size() const { return out[0] * out[1] * out[2]; }
  int64_t kernel_size() const { return kernel[0] * kernel[1] * kernel[2]; }
  // Output spatial dims as the real rank, for allocating.
  std::vector<int64_t> out_dims() const;
};

// Plans a forward window op (Conv, pools) on input dims [N, C, spatial...].
// `kernel` overrides kernel_shape (Conv's weight dims); empty to read it.
Expected<WindowPlan> plan_window(const Node& node, const std::vector<int64_t>& x_dims,
                                 std::vector<int64_t> kernel = {});
// Plans ConvTranspose: `out`/`pad_begin` describe the cropped output.
Expected<WindowPlan> plan_transpose_window(const Node& node, const std::vector<int64_t>& x_dims,
                                           std::vector<int64_t> kernel);

}  // namespace kiln
