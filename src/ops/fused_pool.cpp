#include "ops/fused_pool.h"

#include <fmt/ranges.h>

namespace kiln {

Expected<std::optional<WindowAttrs>> read_fused_pool(const Node& node) {
  if (!node.has_attr("pool_kernel")) {
    if (node.has_attr("pool_strides") || node.has_attr("pool_pads"))
      return invalid_model("{}: pool_strides or pool_pads without pool_kernel", node.op_type);
    return std::optional<WindowAttrs>();
  }
  WindowAttrs a;
  a.kernel = node.attr_ints("pool_kernel", {});
  a.strides = node.attr_ints("pool_strides", {1, 1});
  a.pads = node.attr_ints("pool_pads", {0, 0, 0, 0});
  a.dilations = {1, 1};
  if (a.kernel.size() != 2 || a.strides.size() != 2 || a.pads.size() != 4)
    return invalid_model("{}: pool_kernel [{}], pool_strides [{}], pool_pads [{}]: expected 2, 2 and 4 values",
                         node.op_type, fmt::join(a.kernel, ","), fmt::join(a.strides, ","), fmt::join(a.pads, ","));
  for (size_t i = 0; i < 2; ++i) {
    if (a.kernel[i] < 1 || a.strides[i] < 1)
      return invalid_model("{}: pool_kernel [{}] and pool_strides [{}] must be >= 1", node.op_type,
                           fmt::join(a.kernel, ","), fmt::join(a.strides, ","));
  }
  for (size_t i = 0; i < 4; ++i) {
    if (a.pads[i] < 0 || a.pads[i] >= a.kernel[i % 2])
      return invalid_model("{}: pool_pads [{}] must be >= 0 and below the window [{}]", node.op_type,
                           fmt::join(a.pads, ","), fmt::join(a.kernel, ","));
  }
  return std::optional<WindowAttrs>(std::move(a));
}

void set_max_pool_attrs(const WindowAttrs& a, Node& pool) {
  pool.attrs["kernel_shape"] = Attribute::of_ints(a.kernel);
  pool.attrs["strides"] = Attribute::of_ints(a.strides);
  pool.attrs["pads"] = Attribute::of_ints(a.pads);
}

}  // namespace kiln
