// Pad (constant, reflect, edge, wrap; negative pads crop) and CenterCropPad
// (a centered crop or zero pad per axis). Each output index maps to an input
// index per axis, or to the constant.
#include "backends/cpu/cpu_kernel.h"
#include "backends/cpu/index_util.h"
#include "backends/cpu/kernels/element_copy.h"
#include "ir/element_cast.h"

namespace kiln {
namespace {

enum class PadMode { kConstant, kReflect, kEdge, kWrap };

// The input coordinate read for coordinate c (already shifted by the pad
// before it) on an axis of size n; -1 for the constant.
int64_t source_coord(int64_t c, int64_t n, PadMode mode) {
  if (c >= 0 && c < n) return c;
  switch (mode) {
    case PadMode::kConstant: return -1;
    case PadMode::kEdge: return c < 0 ? 0 : n - 1;
    case PadMode::kWrap: return ((c % n) + n) % n;
    case PadMode::kReflect: {
      if (n == 1) return 0;
      int64_t period = 2 * (n - 1);
      int64_t m = ((c % period) + period) % period;
      return m < n ? m : period - m;
    }
  }
  return -1;
}

// Fills `out` from `in` given each axis's leading pad (negative: crop).
Status fill_padded(const Tensor& in, Tensor& out, const std::vector<int64_t>& before, PadMode mode,
                   const Tensor* value) {
  if (out.numel() == 0) return Status::ok();
  const auto& in_dims = in.dims();
  for (size_t k = 0; k < in_dims.size(); ++k)
    if (in_dims[k] == 0 && out.dims()[k] > 0 && mode != PadMode::kConstant)
      return invalid_argument("Pad: cannot pad an empty axis {} in this mode", k);
  const std::vector<int64_t> strides = strides_of(in_dims);
  ElementCopier copy(in, out);
  const bool has_value = value && value->numel() > 0;
  void* dst = out.dtype() == DType::kString ? nullptr : out.mutable_raw();
  std::vector<int64_t> index(out.dims().size(), 0);
  int64_t i = 0;
  do {
    int64_t src = 0;
    for (size_t k = 0; k < index.size() && src >= 0; ++k) {
      int64_t c = source_coord(index[k] - before[k], in_dims[k], mode);
      src = c < 0 ? -1 : src + c * strides[k];
    }
    if (src >= 0) {
      copy.copy(i, src);
    } else if (has_value && dst) {
      write_scalar(out.dtype(), dst, i, read_scalar(value->dtype(), value->raw(), 0));
    } else if (has_value && value->dtype() == DType::kString) {
      out.strings()[static_cast<size_t>(i)] = value->strings()[0];
    }
    ++i;
  } while (next_index(index, out.dims()));
  return Status::ok();
}

Status run_pad(CpuKernelContext& ctx) {
  const Tensor& in = ctx.input(0);
  const auto rank = static_cast<int64_t>(in.rank());
  KILN_ASSIGN_OR_RETURN(auto pads, ctx.input(1).to_i64_vector());
  std::vector<int64_t> axes;
  if (ctx.has_input(3)) {
    KILN_ASSIGN_OR_RETURN(axes, ctx.input(3).to_i64_vector());
  } else {
    for (int64_t k = 0; k < rank; ++k) axes.push_back(k);
  }
  if (pads.size() != 2 * axes.size())
    return invalid_argument("Pad: pads has {} entries for {} axes", pads.size(), axes.size());
  std::vector<int64_t> before(static_cast<size_t>(rank), 0), out_dims = in.dims();
  for (size_t i = 0; i < axes.size(); ++i) {
    auto a = static_cast<size_t>(axes[i] < 0 ? axes[i] + rank : axes[i]);
    before[a] = pads[i];
    out_dims[a] += pads[i] + pads[i + axes.size()];
  }
  std::string m = ctx.node().attr_string("mode", "constant");
  PadMode mode = m == "reflect" ? PadMode::kReflect
                 : m == "edge"  ? PadMode::kEdge
                 : m == "wrap"  ? PadMode::kWrap
                                : PadMode::kConstant;
  Tensor& out = ctx.allocate_output(0, out_dims);
  return fill_padded(in, out, before, mode, ctx.has_input(2) ? &ctx.input(2) : nullptr);
}

Status run_center_crop_pad(CpuKernelContext& ctx) {
  const Tensor& in = ctx.input(0);
  const auto rank = static_cast<int64_t>(in.rank());
  KILN_ASSIGN_OR_RETURN(auto shape, ctx.input(1).to_i64_vector());
  std::vector<int64_t> axes = ctx.node().attr_ints("axes");
  if (axes.empty())
    for (int64_t k = 0; k < rank; ++k) axes.push_back(k);
  if (shape.size() != axes.size())
    return invalid_argument("CenterCropPad: shape has {} entries for {} axes", shape.size(), axes.size());
  std::vector<int64_t> before(static_cast<size_t>(rank), 0), out_dims = in.dims();
  for (size_t i = 0; i < axes.size(); ++i) {
    auto a = static_cast<size_t>(axes[i] < 0 ? axes[i] + rank : axes[i]);
    int64_t diff = shape[i] - in.dims()[a];
    // Centered, the odd element going to the end: pad floor(diff/2) before, or crop floor(-diff/2).
    before[a] = diff >= 0 ? diff / 2 : -((-diff) / 2);
    out_dims[a] = shape[i];
  }
  Tensor& out = ctx.allocate_output(0, out_dims);
  return fill_padded(in, out, before, PadMode::kConstant, nullptr);
}

}  // namespace

KILN_CPU_KERNEL("", "Pad", run_pad);
KILN_CPU_KERNEL("", "CenterCropPad", run_center_crop_pad);

}  // namespace kiln
