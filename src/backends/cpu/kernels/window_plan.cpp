#include "backends/cpu/kernels/window_plan.h"

namespace kiln {

std::vector<int64_t> WindowPlan::out_dims() const {
  return std::vector<int64_t>(out.begin() + static_cast<long>(3 - spatial), out.end());
}

namespace {

Expected<WindowPlan> plan_base(const Node& node, const std::vector<int64_t>& x_dims) {
  if (x_dims.size() < 3 || x_dims.size() > 5)
    return unsupported("{}: input of rank {}; kiln supports 1-D to 3-D spatial inputs", node.op_type, x_dims.size());
  WindowPlan p;
  p.batch = x_dims[0];
  p.channels = x_dims[1];
  p.spatial = x_dims.size() - 2;
  return p;
}

// Fills spatial dim i of the input (of size `in`), placed after the leading
// size-1 dims that pad the plan to 3-D.
void set_spatial_dim(WindowPlan& p, size_t i, int64_t in, const WindowAttrs& a, const WindowDim& d) {
  size_t at = 3 - p.spatial + i;
  p.in[at] = in;
  p.out[at] = d.out;
  p.kernel[at] = a.kernel[i];
  p.stride[at] = a.strides[i];
  p.dilation[at] = a.dilations[i];
  p.pad_begin[at] = d.pad_begin;
  p.pad_end[at] = d.pad_end;
}

}  // namespace

Expected<WindowPlan> plan_window(const Node& node, const std::vector<int64_t>& x_dims, std::vector<int64_t> kernel) {
  KILN_ASSIGN_OR_RETURN(WindowPlan p, plan_base(node, x_dims));
  KILN_ASSIGN_OR_RETURN(WindowAttrs a, read_window_attrs(node, p.spatial, std::move(kernel)));
  for (size_t i = 0; i < p.spatial; ++i) {
    KILN_ASSIGN_OR_RETURN(WindowDim d, window_dim(a, i, x_dims[i + 2]));
    set_spatial_dim(p, i, x_dims[i + 2], a, d);
  }
  return p;
}

Expected<WindowPlan> plan_transpose_window(const Node& node, const std::vector<int64_t>& x_dims,
                                           std::vector<int64_t> kernel) {
  KILN_ASSIGN_OR_RETURN(WindowPlan p, plan_base(node, x_dims));
  KILN_ASSIGN_OR_RETURN(WindowAttrs a, read_window_attrs(node, p.spatial, std::move(kernel)));
  std::vector<int64_t> output_shape = node.attr_ints("output_shape");
  if (output_shape.size() == p.spatial + 2) output_shape.erase(output_shape.begin(), output_shape.begin() + 2);
  std::vector<int64_t> output_padding = node.attr_ints("output_padding");
  if ((!output_shape.empty() && output_shape.size() != p.spatial) ||
      (!output_padding.empty() && output_padding.size() != p.spatial))
    return invalid_model("ConvTranspose: output_shape/output_padding do not match {} spatial dims", p.spatial);
  for (size_t i = 0; i < p.spatial; ++i) {
    KILN_ASSIGN_OR_RETURN(WindowDim d, transpose_window_dim(a, i, x_dims[i + 2], output_padding, output_shape));
    set_spatial_dim(p, i, x_dims[i + 2], a, d);
  }
  return p;
}

}  // namespace kiln
