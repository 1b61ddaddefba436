// Data-dependent selections: Compress, NonZero and ReverseSequence.
#include "backends/cpu/cpu_kernel.h"
#include "backends/cpu/kernels/element_copy.h"
#include "ir/element_cast.h"

namespace kiln {
namespace {

Status run_compress(CpuKernelContext& ctx) {
  const Tensor &in = ctx.input(0), &cond = ctx.input(1);
  const auto* c = cond.data<uint8_t>();
  if (!ctx.node().has_attr("axis")) {
    // Flattened input; the condition may be shorter (the rest is dropped).
    std::vector<int64_t> keep;
    for (int64_t i = 0; i < std::min(in.numel(), cond.numel()); ++i)
      if (c[i]) keep.push_back(i);
    Tensor& out = ctx.allocate_output(0, {static_cast<int64_t>(keep.size())});
    ElementCopier copy(in, out);
    for (size_t i = 0; i < keep.size(); ++i) copy.copy(static_cast<int64_t>(i), keep[i]);
    return Status::ok();
  }
  int64_t axis = ctx.node().attr_int("axis", 0);
  if (axis < 0) axis += in.rank();
  const auto a = static_cast<size_t>(axis);
  const int64_t n = in.dims()[a];
  if (cond.numel() > n)
    return invalid_argument("Compress: condition has {} entries for an axis of {}", cond.numel(), n);
  std::vector<int64_t> keep;
  for (int64_t i = 0; i < cond.numel(); ++i)
    if (c[i]) keep.push_back(i);
  auto out_dims = in.dims();
  out_dims[a] = static_cast<int64_t>(keep.size());
  Tensor& out = ctx.allocate_output(0, out_dims);
  const int64_t outer = dims_numel(in.dims(), 0, a), inner = dims_numel(in.dims(), a + 1, in.dims().size());
  ElementCopier copy(in, out);
  const auto kept = static_cast<int64_t>(keep.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < kept; ++j)
      copy.copy((o * kept + j) * inner, (o * n + keep[static_cast<size_t>(j)]) * inner, inner);
  return Status::ok();
}

Status run_nonzero(CpuKernelContext& ctx) {
  const Tensor& in = ctx.input(0);
  std::vector<int64_t> hits;  // flat positions
  for (int64_t i = 0; i < in.numel(); ++i)
    if (in.dtype() == DType::kString ? !in.strings()[static_cast<size_t>(i)].empty()
                                     : read_scalar(in.dtype(), in.raw(), i).as_double() != 0)
      hits.push_back(i);
  // A scalar reports as rank 1 (numpy's nonzero of a 0-D array, as the reference does).
  const int64_t rank = std::max<int64_t>(in.rank(), 1);
  const auto count = static_cast<int64_t>(hits.size());
  Tensor& out = ctx.allocate_output(0, {rank, count});
  auto* o = out.mutable_data<int64_t>();
  std::vector<int64_t> dims = in.rank() ? in.dims() : std::vector<int64_t>{1};
  for (int64_t j = 0; j < count; ++j) {
    int64_t rest = hits[static_cast<size_t>(j)];
    for (int64_t k = rank; k-- > 0;) {
      o[k * count + j] = rest % dims[static_cast<size_t>(k)];
      rest /= dims[static_cast<size_t>(k)];
    }
  }
  return Status::ok();
}

Status run_reverse_sequence(CpuKernelContext& ctx) {
  const Tensor& in = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(auto lens, ctx.input(1).to_i64_vector());
  const auto batch_axis = static_cast<size_t>(ctx.node().attr_int("batch_axis", 1));
  const auto time_axis = static_cast<size_t>(ctx.node().attr_int("time_axis", 0));
  if (in.rank() < 2) return invalid_argument("ReverseSequence: input must have rank >= 2");
  const int64_t batches = in.dims()[batch_axis], steps = in.dims()[time_axis];
  if (static_cast<int64_t>(lens.size()) != batches)
    return invalid_argument("ReverseSequence: sequence_lens has {} entries for a batch of {}", lens.size(), batches);
  const int64_t inner = dims_numel(in.dims(), 2, in.dims().size());
  Tensor& out = ctx.allocate_output(0, in.dims());
  ElementCopier copy(in, out);
  auto at = [&](int64_t b, int64_t t) {
    int64_t first = batch_axis == 0 ? b : t, second = batch_axis == 0 ? t : b;
    return (first * in.dims()[1] + second) * inner;
  };
  for (int64_t b = 0; b < batches; ++b) {
    int64_t len = lens[static_cast<size_t>(b)];
    if (len < 0 || len > steps) return invalid_argument("ReverseSequence: length {} is outside [0, {}]", len, steps);
    for (int64_t t = 0; t < steps; ++t) copy.copy(at(b, t), at(b, t < len ? len - 1 - t : t), inner);
  }
  return Status::ok();
}

}  // namespace

KILN_CPU_KERNEL("", "Compress", run_compress);
KILN_CPU_KERNEL("", "NonZero", run_nonzero);
KILN_CPU_KERNEL("", "ReverseSequence", run_reverse_sequence);

}  // namespace kiln
