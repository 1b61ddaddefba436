#include "ops/window_geometry.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "ops/infer_util.h"

namespace kiln {
namespace {

int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0)) ? 1 : 0); }
int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }

Status check_count(const Node& node, const char* key, const std::vector<int64_t>& v, size_t want) {
  if (v.size() != want)
    return invalid_model("{}: {} has {} values, expected {} for {} spatial dims", node.op_type, key, v.size(), want,
                         want == 0 ? 0 : want);
  return Status::ok();
}

}  // namespace

Expected<WindowAttrs> read_window_attrs(const Node& node, size_t spatial, std::vector<int64_t> kernel) {
  WindowAttrs a;
  if (!kernel.empty() && node.has_attr("kernel_shape") && node.attr_ints("kernel_shape") != kernel)
    return invalid_model("{}: kernel_shape {} differs from the weight's spatial dims {}", node.op_type,
                         fmt::join(node.attr_ints("kernel_shape"), ","), fmt::join(kernel, ","));
  a.kernel = node.attr_ints("kernel_shape", std::move(kernel));
  KILN_RETURN_IF_ERROR(check_count(node, "kernel_shape", a.kernel, spatial));
  a.strides = node.attr_ints("strides", std::vector<int64_t>(spatial, 1));
  KILN_RETURN_IF_ERROR(check_count(node, "strides", a.strides, spatial));
  a.dilations = node.attr_ints("dilations", std::vector<int64_t>(spatial, 1));
  KILN_RETURN_IF_ERROR(check_count(node, "dilations", a.dilations, spatial));
  a.pads = node.attr_ints("pads", std::vector<int64_t>(2 * spatial, 0));
  KILN_RETURN_IF_ERROR(check_count(node, "pads", a.pads, 2 * spatial));
  a.auto_pad = node.attr_string("auto_pad", "NOTSET");
  a.ceil_mode = node.attr_int("ceil_mode", 0) != 0;
  if (a.auto_pad != "NOTSET" && a.auto_pad != "SAME_UPPER" && a.auto_pad != "SAME_LOWER" && a.auto_pad != "VALID")
    return invalid_model("{}: auto_pad '{}' is not NOTSET, SAME_UPPER, SAME_LOWER or VALID", node.op_type, a.auto_pad);
  for (size_t i = 0; i < spatial; ++i) {
    if (a.kernel[i] < 1) return invalid_model("{}: kernel_shape[{}] is {}, must be >= 1", node.op_type, i, a.kernel[i]);
    if (a.strides[i] < 1) return invalid_model("{}: strides[{}] is {}, must be >= 1", node.op_type, i, a.strides[i]);
    if (a.dilations[i] < 1)
      return invalid_model("{}: dilations[{}] is {}, must be >= 1", node.op_type, i, a.dilations[i]);
    if (a.pads[i] < 0 || a.pads[i + spatial] < 0)
      return invalid_model("{}: pads {} has a negative value", node.op_type, fmt::join(a.pads, ","));
    // Past 2^20 no window is real, and products of such values could overflow.
    constexpr int64_t kMax = int64_t(1) << 20;
    if (a.kernel[i] > kMax || a.strides[i] > kMax || a.dilations[i] > kMax || a.pads[i] > kMax ||
        a.pads[i + spatial] > kMax)
      return invalid_model("{}: kernel_shape, strides, dilations or pads at spatial dim {} exceed 2^20", node.op_type,
                           i);
  }
  return a;
}

// Input sizes past 2^40 only come from corrupt models; arithmetic on them could overflow.
constexpr int64_t kMaxWindowInput = int64_t(1) << 40;

Expected<WindowDim> window_dim(const WindowAttrs& a, size_t i, int64_t in) {
  if (in > kMaxWindowInput) return invalid_model("spatial dim {} of size {} is too large", i, in);
  WindowDim d;
  int64_t s = a.strides[i], ext = a.extent(i);
  if (a.auto_pad == "SAME_UPPER" || a.auto_pad == "SAME_LOWER") {
    d.out = ceil_div(in, s);
    int64_t total = std::max<int64_t>(0, (d.out - 1) * s + ext - in);
    d.pad_begin = a.auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
    d.pad_end = total - d.pad_begin;
  } else if (a.auto_pad == "VALID") {
    int64_t span = in - ext;
    d.out = span < 0 ? 0 : (a.ceil_mode ? ceil_div(span, s) : span / s) + 1;
  } else {
    d.pad_begin = a.pads[i];
    d.pad_end = a.pads[i + a.rank()];
    int64_t span = in + d.pad_begin + d.pad_end - ext;
    if (span < 0) {
      d.out = 0;
    } else if (a.ceil_mode) {
      d.out = ceil_div(span, s) + 1;
      // The last window must start inside the input or its begin padding.
      if ((d.out - 1) * s >= in + d.pad_begin) --d.out;
    } else {
      d.out = span / s + 1;
    }
  }
  if (d.out < 1)
    return invalid_model("window of extent {} (kernel {}, dilation {}) does not fit spatial dim {} of size {}", ext,
                         a.kernel[i], a.dilations[i], i, in);
  return d;
}

Expected<Dim> window_dim_symbolic(const WindowAttrs& a, size_t i, const Dim& in) {
  if (in.is_fixed()) {
    KILN_ASSIGN_OR_RETURN(WindowDim d, window_dim(a, i, in.value));
    return Dim(d.out);
  }
  bool same = a.auto_pad == "SAME_UPPER" || a.auto_pad == "SAME_LOWER";
  if (a.strides[i] == 1 && same) return in;
  bool unpadded = a.auto_pad == "VALID" || (a.pads[i] == 0 && a.pads[i + a.rank()] == 0);
  if (a.extent(i) == 1 && unpadded && a.strides[i] == 1) return in;
  // With stride 1 the output is in + pads - extent + 1: a sum the dim algebra can keep.
  if (a.strides[i] == 1 && in.is_symbolic()) {
    int64_t delta = (a.auto_pad == "VALID" ? 0 : a.pads[i] + a.pads[i + a.rank()]) - a.extent(i) + 1;
    return delta >= 0 ? dim_add(in, Dim(delta)) : dim_sub(in, Dim(-delta));
  }
  return Dim::unknown();
}

Expected<WindowDim> transpose_window_dim(const WindowAttrs& a, size_t i, int64_t in,
                                         const std::vector<int64_t>& output_padding,
                                         const std::vector<int64_t>& output_shape) {
  WindowDim d;
  if (in > kMaxWindowInput) return invalid_model("spatial dim {} of size {} is too large", i, in);
  int64_t op = output_padding.empty() ? 0 : output_padding[i];
  if (op < 0 || op > (int64_t(1) << 20)) return invalid_model("output_padding[{}] = {} is out of range", i, op);
  int64_t full = a.strides[i] * (in - 1) + op + a.extent(i);
  bool same = a.auto_pad == "SAME_UPPER" || a.auto_pad == "SAME_LOWER";
  if (!output_shape.empty()) {
    d.out = output_shape[i];
    if (same) {
      int64_t total = full - d.out;
      d.pad_begin = a.auto_pad == "SAME_UPPER" ? floor_div(total, 2) : total - floor_div(total, 2);
    } else {
      d.pad_begin = a.pads[i];
    }
  } else if (same) {
    d.out = in * a.strides[i];
    int64_t total = full - d.out;
    d.pad_begin = a.auto_pad == "SAME_UPPER" ? floor_div(total, 2) : total - floor_div(total, 2);
  } else {
    d.pad_begin = a.pads[i];
    d.out = full - a.pads[i] - a.pads[i + a.rank()];
  }
  d.pad_end = full - d.out - d.pad_begin;
  if (d.out < 0) return invalid_model("ConvTranspose: spatial dim {} would have negative size {}", i, d.out);
  return d;
}

}  // namespace kiln
