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

// A kernel position of one output's window that lies inside the input.
struct WindowTap {
  int64_t input;    // flat index into the input's spatial volume
  int64_t kernel;   // flat index into the kernel's spatial volume
  int64_t d, h, w;  // the input position
};

// Calls visit(WindowTap) for every kernel position of output (od, oh, ow) that
// lies inside the input, in kernel order; positions in the padding are skipped.
template <typename Visit>
void for_window(const WindowPlan& p, int64_t od, int64_t oh, int64_t ow, Visit visit) {
  for (int64_t kd = 0; kd < p.kernel[0]; ++kd) {
    int64_t id = od * p.stride[0] - p.pad_begin[0] + kd * p.dilation[0];
    if (id < 0 || id >= p.in[0]) continue;
    for (int64_t kh = 0; kh < p.kernel[1]; ++kh) {
      int64_t ih = oh * p.stride[1] - p.pad_begin[1] + kh * p.dilation[1];
      if (ih < 0 || ih >= p.in[1]) continue;
      for (int64_t kw = 0; kw < p.kernel[2]; ++kw) {
        int64_t iw = ow * p.stride[2] - p.pad_begin[2] + kw * p.dilation[2];
        if (iw < 0 || iw >= p.in[2]) continue;
        visit(WindowTap{(id * p.in[1] + ih) * p.in[2] + iw, (kd * p.kernel[1] + kh) * p.kernel[2] + kw, id, ih, iw});
      }
    }
  }
}

// Plans a forward window op (Conv, pools) on input dims [N, C, spatial...].
// `kernel` overrides kernel_shape (Conv's weight dims); empty to read it.
Expected<WindowPlan> plan_window(const Node& node, const std::vector<int64_t>& x_dims,
                                 std::vector<int64_t> kernel = {});
// Plans ConvTranspose: `out`/`pad_begin` describe the cropped output.
Expected<WindowPlan> plan_transpose_window(const Node& node, const std::vector<int64_t>& x_dims,
                                           std::vector<int64_t> kernel);

}  // namespace kiln
