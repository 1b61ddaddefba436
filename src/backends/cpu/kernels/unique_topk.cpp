// Unique (distinct elements or slices, sorted or in order of appearance) and
// TopK (the k largest or smallest along an axis, ties to the lower index).
#include <algorithm>
#include <map>
#include <numeric>

#include "backends/cpu/cpu_kernel.h"
#include "backends/cpu/dtype_dispatch.h"
#include "backends/cpu/kernels/element_copy.h"

namespace kiln {
namespace {

// One slice's elements, comparable: numbers in their compute type, or strings.
template <typename K>
std::vector<std::vector<K>> slice_keys(const Tensor& in, int64_t slices, int64_t outer, int64_t inner,
                                       K (*read)(const Tensor&, int64_t)) {
  std::vector<std::vector<K>> keys(static_cast<size_t>(slices));
  for (int64_t s = 0; s < slices; ++s)
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < inner; ++i)
        keys[static_cast<size_t>(s)].push_back(read(in, (o * slices + s) * inner + i));
  return keys;
}

// Groups equal slices. Returns, per unique slice in output order, its first
// occurrence; and per input slice, its unique slice's position.
template <typename K>
void group_unique(const std::vector<std::vector<K>>& keys, bool sorted, std::vector<int64_t>& first,
                  std::vector<int64_t>& inverse, std::vector<int64_t>& counts) {
  std::vector<int64_t> order(keys.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return keys[a] < keys[b]; });
  std::vector<int64_t> group_of(keys.size());
  std::vector<int64_t> group_first, group_count;
  for (size_t r = 0; r < order.size(); ++r) {
    if (r == 0 || keys[order[r]] != keys[order[r - 1]]) {
      group_first.push_back(order[r]);
      group_count.push_back(0);
    }
    group_of[order[r]] = static_cast<int64_t>(group_first.size()) - 1;
    ++group_count.back();
  }
  std::vector<int64_t> groups(group_first.size());
  std::iota(groups.begin(), groups.end(), 0);
  if (!sorted)
    std::sort(groups.begin(), groups.end(), [&](int64_t a, int64_t b) { return group_first[a] < group_first[b]; });
  std::vector<int64_t> position(groups.size());
  for (size_t p = 0; p < groups.size(); ++p) position[groups[p]] = static_cast<int64_t>(p);
  first.clear();
  counts.clear();
  for (int64_t g : groups) {
    first.push_back(group_first[g]);
    counts.push_back(group_count[g]);
  }
  inverse.resize(keys.size());
  for (size_t s = 0; s < keys.size(); ++s) inverse[s] = position[group_of[s]];
}

Status run_unique(CpuKernelContext& ctx) {
  const Tensor& in = ctx.input(0);
  const bool has_axis = ctx.node().has_attr("axis");
  int64_t axis = has_axis ? ctx.node().attr_int("axis", 0) : 0;
  if (axis < 0) axis += in.rank();
  const auto a = static_cast<size_t>(axis);
  const int64_t slices = has_axis ? in.dims()[a] : in.numel();
  const int64_t outer = has_axis ? dims_numel(in.dims(), 0, a) : 1;
  const int64_t inner = has_axis ? dims_numel(in.dims(), a + 1, in.dims().size()) : 1;
  const bool sorted = ctx.node().attr_int("sorted", 1) != 0;
  std::vector<int64_t> first, inverse, counts;
  if (in.dtype() == DType::kString) {
    auto keys = slice_keys<std::string>(in, slices, outer, inner,
                                        [](const Tensor& t, int64_t i) { return t.strings()[static_cast<size_t>(i)]; });
    group_unique(keys, sorted, first, inverse, counts);
  } else {
    KILN_RETURN_IF_ERROR(visit_dtype(in.dtype(), kAllPlainTypes, [&]<typename T>() -> Status {
      auto keys = slice_keys<double>(in, slices, outer, inner, [](const Tensor& t, int64_t i) {
        return static_cast<double>(compute_t<T>(t.data<T>()[i]));
      });
      group_unique(keys, sorted, first, inverse, counts);
      return Status::ok();
    }));
  }
  const auto u = static_cast<int64_t>(first.size());
  std::vector<int64_t> y_dims = has_axis ? in.dims() : std::vector<int64_t>{u};
  if (has_axis) y_dims[a] = u;
  Tensor& y = ctx.allocate_output(0, y_dims);
  ElementCopier copy(in, y);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t k = 0; k < u; ++k)
      copy.copy((o * u + k) * inner, (o * slices + first[static_cast<size_t>(k)]) * inner, inner);
  auto put = [&](size_t i, const std::vector<int64_t>& v) {
    if (ctx.has_output(i)) ctx.set_output(i, Tensor::vector_i64(v));
  };
  put(1, first);
  put(2, inverse);
  put(3, counts);
  return Status::ok();
}

Status run_topk(CpuKernelContext& ctx) {
  const Tensor& in = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(auto kv, ctx.input(1).to_i64_vector());
  if (kv.size() != 1) return invalid_argument("TopK: K must have one element");
  int64_t axis = ctx.node().attr_int("axis", -1);
  if (axis < 0) axis += in.rank();
  const auto a = static_cast<size_t>(axis);
  const int64_t n = in.dims()[a], k = kv[0];
  if (k < 0 || k > n) return invalid_argument("TopK: K = {} is outside [0, {}]", k, n);
  const bool largest = ctx.node().attr_int("largest", 1) != 0;
  auto out_dims = in.dims();
  out_dims[a] = k;
  Tensor& values = ctx.allocate_output(0, out_dims);
  Tensor& indices = ctx.allocate_output(1, out_dims);
  const int64_t outer = dims_numel(in.dims(), 0, a), inner = dims_numel(in.dims(), a + 1, in.dims().size());
  return visit_dtype(in.dtype(), kNumericTypes, [&]<typename T>() -> Status {
    using C = compute_t<T>;
    const T* src = in.data<T>();
    T* vo = values.mutable_data<T>();
    auto* io = indices.mutable_data<int64_t>();
    std::vector<int64_t> order(static_cast<size_t>(n));
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < inner; ++i) {
        auto at = [&](int64_t j) { return static_cast<C>(src[(o * n + j) * inner + i]); };
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(),
                         [&](int64_t x, int64_t y) { return largest ? at(x) > at(y) : at(x) < at(y); });
        for (int64_t j = 0; j < k; ++j) {
          vo[(o * k + j) * inner + i] = src[(o * n + order[j]) * inner + i];
          io[(o * k + j) * inner + i] = order[j];
        }
      }
    return Status::ok();
  });
}

}  // namespace

KILN_CPU_KERNEL("", "Unique", run_unique);
KILN_CPU_KERNEL("", "TopK", run_topk);

}  // namespace kiln
