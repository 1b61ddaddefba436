// Cast, CastLike (the conversions of ir/element_cast.h) and BitCast (the same
// bytes read as another dtype of the same width).
#include "backends/cpu/cpu_kernel.h"
#include "ir/element_cast.h"

namespace kiln {
namespace {

CastOptions cast_options(const Node& node) {
  CastOptions o;
  o.saturate = node.attr_int("saturate", 1) != 0;
  std::string mode = node.attr_string("round_mode", "up");
  o.rounding = mode == "down" ? E8M0Rounding::kDown : mode == "nearest" ? E8M0Rounding::kNearest : E8M0Rounding::kUp;
  return o;
}

Status run_cast(CpuKernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(Tensor out, cast_tensor(ctx.input(0), ctx.output_dtype(0), cast_options(ctx.node())));
  ctx.set_output(0, std::move(out));
  return Status::ok();
}

Status run_bitcast(CpuKernelContext& ctx) {
  const Tensor& in = ctx.input(0);
  DType to = ctx.output_dtype(0);
  if (dtype_bits(to) != dtype_bits(in.dtype()))
    return invalid_argument("BitCast: {} and {} differ in width", dtype_name(in.dtype()), dtype_name(to));
  Tensor& out = ctx.allocate_output(0, in.dims());
  if (in.nbytes()) std::memcpy(out.mutable_raw(), in.raw(), in.nbytes());
  if (to == DType::kBool)  // a bool byte must be 0 or 1
    for (int64_t i = 0; i < out.numel(); ++i) out.mutable_data<uint8_t>()[i] = out.data<uint8_t>()[i] != 0;
  return Status::ok();
}

}  // namespace

KILN_CPU_KERNEL("", "Cast", run_cast);
KILN_CPU_KERNEL("", "CastLike", run_cast);
KILN_CPU_KERNEL("", "BitCast", run_bitcast);

}  // namespace kiln
