// Einsum, directly from its definition: every output element sums, over all
// values of the labels that are not in the output, the product of the
// operands' elements. Clear rather than fast (no contraction planning).
#include <algorithm>
#include <map>

#include "backends/cpu/kernels/elementwise_apply.h"
#include "ops/einsum_equation.h"

namespace kiln {
namespace {

Status run_einsum(CpuKernelContext& ctx) {
  const std::string& equation = ctx.node().attr_string("equation", "");
  KILN_ASSIGN_OR_RETURN(EinsumEquation eq, parse_einsum(equation, ctx.num_inputs()));
  std::vector<const Tensor*> ins;
  std::vector<int64_t> ranks;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    ins.push_back(&ctx.input(i));
    ranks.push_back(ctx.input(i).rank());
    if (ctx.input(i).dtype() != ctx.input(0).dtype()) return invalid_model("Einsum: inputs must share one dtype");
  }
  KILN_ASSIGN_OR_RETURN(EinsumLabels labels, resolve_einsum(eq, ranks));
  // Every label's size (a size-1 dim broadcasts), output labels first.
  std::map<int, int64_t> size;
  for (size_t i = 0; i < ins.size(); ++i)
    for (size_t k = 0; k < labels.inputs[i].size(); ++k) {
      int64_t d = ins[i]->dim(static_cast<int64_t>(k));
      auto [it, fresh] = size.emplace(labels.inputs[i][k], d);
      if (!fresh && it->second != d && d != 1 && it->second != 1)
        return invalid_model("Einsum \"{}\": a label has sizes {} and {}", equation, it->second, d);
      if (it->second == 1) it->second = d;
    }
  std::vector<int> order = labels.output;
  for (const auto& [l, s] : size)
    if (std::find(order.begin(), order.end(), l) == order.end()) order.push_back(l);
  std::vector<int64_t> loop_dims;
  for (int l : order) loop_dims.push_back(size.count(l) ? size[l] : 1);
  // Each operand's stride along each loop label (0 where it lacks the label or broadcasts).
  std::vector<std::vector<int64_t>> strides(ins.size(), std::vector<int64_t>(order.size(), 0));
  for (size_t i = 0; i < ins.size(); ++i) {
    std::vector<int64_t> s = strides_of(ins[i]->dims());
    for (size_t k = 0; k < labels.inputs[i].size(); ++k) {
      size_t pos = std::find(order.begin(), order.end(), labels.inputs[i][k]) - order.begin();
      if (ins[i]->dim(static_cast<int64_t>(k)) != 1) strides[i][pos] += s[k];  // repeated labels: a diagonal
    }
  }
  const size_t n_out = labels.output.size();
  std::vector<int64_t> out_dims(loop_dims.begin(), loop_dims.begin() + n_out);
  std::vector<int64_t> sum_dims(loop_dims.begin() + n_out, loop_dims.end());
  std::vector<std::vector<int64_t>> out_strides, sum_strides;
  for (auto& s : strides) {
    out_strides.emplace_back(s.begin(), s.begin() + n_out);
    sum_strides.emplace_back(s.begin() + n_out, s.end());
  }
  Tensor& y = ctx.allocate_output(0, out_dims);
  int64_t sum_count = 1;
  for (int64_t d : sum_dims) sum_count *= d;
  return visit_dtype_in<kNumericTypes>(ins[0]->dtype(), [&]<typename T>() {
    using C = std::conditional_t<std::is_floating_point_v<compute_t<T>>, double, compute_t<T>>;
    T* py = y.mutable_data<T>();
    BroadcastWalker ow(out_dims, out_strides);
    for (int64_t o = 0; o < y.numel(); ++o, ow.next()) {
      C acc = 0;
      BroadcastWalker sw(sum_dims, sum_strides);
      for (int64_t s = 0; s < sum_count; ++s, sw.next()) {
        C prod = 1;
        for (size_t i = 0; i < ins.size(); ++i)
          prod *= static_cast<C>(convert_to<compute_t<T>>(ins[i]->data<T>()[ow.offset(i) + sw.offset(i)]));
        acc += prod;
      }
      py[o] = convert_to<T>(acc);
    }
    return Status::ok();
  });
}

}  // namespace

KILN_CPU_KERNEL("", "Einsum", run_einsum);

}  // namespace kiln
