#include "ops/tensor_infer.h"

namespace kiln {

const Dims* known_dims(const InferContext& ctx, size_t i) {
  if (!ctx.has_input(i) || !ctx.input_type(i).is_tensor() || !ctx.input_shape(i).has_rank()) return nullptr;
  return &*ctx.input_shape(i).dims;
}

// A rank read from a model's declared dims can be absurd; past any real rank
// it stays unknown rather than becoming a huge allocation.
Shape unknown_dims(int64_t rank) {
  constexpr int64_t kMaxRank = 1024;
  return rank < 0 || rank > kMaxRank ? Shape() : Shape(Dims(static_cast<size_t>(rank)));
}

int64_t static_length(const InferContext& ctx, size_t i) {
  const Dims* d = known_dims(ctx, i);
  return d && d->size() == 1 && (*d)[0].is_fixed() ? (*d)[0].value : -1;
}

std::optional<Dims> shape_entries(const InferContext& ctx, size_t i) {
  if (const Tensor* t = ctx.input_value(i); t && t->rank() <= 1) {
    if (auto ints = t->to_i64_vector()) {
      Dims out;
      for (int64_t v : *ints) out.push_back(v == -1 ? minus_one_marker() : Dim(v));
      return out;
    }
  }
  return ctx.input_dims_value(i);
}

}  // namespace kiln
