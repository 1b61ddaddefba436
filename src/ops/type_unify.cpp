#include "ops/type_unify.h"

namespace kiln {

static bool knows_nothing(const Type& t) {
  return t.is_tensor() && t.dtype == DType::kUndefined && !t.shape.has_rank();
}

Type unify_types(const Type& a, const Type& b) {
  if (knows_nothing(a)) return b;
  if (knows_nothing(b)) return a;
  if (a.kind != b.kind) return Type();
  if (!a.is_tensor()) {
    if (!a.elem || !b.elem)
      return a.kind == Type::Kind::kSequence ? Type::sequence_of(Type()) : Type::optional_of(Type());
    Type e = unify_types(*a.elem, *b.elem);
    return a.kind == Type::Kind::kSequence ? Type::sequence_of(std::move(e)) : Type::optional_of(std::move(e));
  }
  Type t;
  t.dtype = a.dtype == b.dtype ? a.dtype : DType::kUndefined;
  if (a.shape.has_rank() && b.shape.has_rank() && a.shape.rank() == b.shape.rank()) {
    Dims d;
    for (size_t i = 0; i < a.shape.dims->size(); ++i)
      d.push_back(a.shape[i] == b.shape[i] ? a.shape[i] : Dim::unknown());
    t.shape = Shape(std::move(d));
  }
  return t;
}

}  // namespace kiln
