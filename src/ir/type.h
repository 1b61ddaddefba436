// The type of a value: a tensor (dtype + shape), or a sequence or optional of
// one (ONNX's sequence and optional types; maps are not supported).
#pragma once

#include <memory>
#include <string>

#include "ir/dtype.h"
#include "ir/shape.h"

namespace kiln {

struct Type {
  enum class Kind : uint8_t { kTensor, kSequence, kOptional };

  Kind kind = Kind::kTensor;
  DType dtype = DType::kUndefined;   // for tensors
  Shape shape;                       // for tensors
  std::shared_ptr<const Type> elem;  // for sequences and optionals

  static Type tensor(DType t, Shape s) {
    Type r;
    r.dtype = t;
    r.shape = std::move(s);
    return r;
  }
  static Type sequence_of(Type e) {
    Type r;
    r.kind = Kind::kSequence;
    r.elem = std::make_shared<const Type>(std::move(e));
    return r;
  }
  static Type optional_of(Type e) {
    Type r;
    r.kind = Kind::kOptional;
    r.elem = std::make_shared<const Type>(std::move(e));
    return r;
  }

  bool is_tensor() const { return kind == Kind::kTensor; }
  bool operator==(const Type& o) const;
  // "f32[batch,3]", "seq<f32[*]>", "opt<i64[2]>".
  std::string to_string() const;
};

}  // namespace kiln
