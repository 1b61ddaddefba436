#include "ir/type.h"

namespace kiln {

bool Type::operator==(const Type& o) const {
  if (kind != o.kind) return false;
  if (kind == Kind::kTensor) return dtype == o.dtype && shape == o.shape;
  if (!elem || !o.elem) return elem == o.elem;
  return *elem == *o.elem;
}

std::string Type::to_string() const {
  switch (kind) {
    case Kind::kTensor: return std::string(dtype_name(dtype)) + shape.to_string();
    case Kind::kSequence: return "seq<" + (elem ? elem->to_string() : std::string("?")) + ">";
    case Kind::kOptional: return "opt<" + (elem ? elem->to_string() : std::string("?")) + ">";
  }
  return "?";
}

}  // namespace kiln
