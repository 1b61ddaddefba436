// Geometry of sliding-window ops (Conv, ConvTranspose, the pools): reading
// kernel_shape / strides / dilations / pads / auto_pad, and the output size
// and begin/end padding of each spatial dim. Shared by the infer functions
// and the CPU kernels so both agree on every rounding rule.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ir/shape.h"
#include "support/status.h"

namespace kiln {

struct WindowAttrs {
  std::vector<int64_t> kernel;     // one per spatial dim
  std::vector<int64_t> strides;    // default 1
  std::vector<int64_t> dilations;  // default 1
  std::vector<int64_t> pads;       // begin..., end... (explicit pads; NOTSET)
  std::string auto_pad = "NOTSET";
  bool ceil_mode = false;

  size_t rank() const { return kernel.size(); }
  int64_t extent(size_t i) const { return (kernel[i] - 1) * dilations[i] + 1; }
};

// Reads the window attributes of `node` for `spatial` dims. `kernel` is the
// kernel size when it comes from weights (Conv); empty to read kernel_shape.
Expected<WindowAttrs> read_window_attrs(const Node& node, size_t spatial, std::vector<int64_t> kernel = {});

// Output size and the padding actually applied for one spatial dim.
struct WindowDim {
  int64_t out = 0;
  int64_t pad_begin = 0;
  int64_t pad_end = 0;
};

// Conv and pools: output size of spatial dim `i` for an input of size `in`.
Expected<WindowDim> window_dim(const WindowAttrs& a, size_t i, int64_t in);
// As window_dim for a dim that may be symbolic: fixed in gives the fixed
// result; a symbol survives where the op keeps the size (stride 1, SAME or a
// 1-wide unpadded window), else unknown.
Expected<Dim> window_dim_symbolic(const WindowAttrs& a, size_t i, const Dim& in);

// ConvTranspose: output size and the padding cropped from the full result.
// `output_padding` and `output_shape` may be empty.
Expected<WindowDim> transpose_window_dim(const WindowAttrs& a, size_t i, int64_t in,
                                         const std::vector<int64_t>& output_padding,
                                         const std::vector<int64_t>& output_shape);

}  // namespace kiln
