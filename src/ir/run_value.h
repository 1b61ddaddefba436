// What flows between kernels at run time: a tensor, a sequence of tensors, or
// an optional that may be empty (ONNX's three value kinds kiln supports).
#pragma once

#include <vector>

#include "ir/tensor.h"
#include "ir/type.h"

namespace kiln {

struct RunValue {
  Type::Kind kind = Type::Kind::kTensor;
  Tensor tensor;                 // kTensor, or the content of a present optional tensor
  std::vector<Tensor> sequence;  // kSequence, or the content of a present optional sequence
  bool present = true;           // kOptional: whether it holds a value
  bool holds_sequence = false;   // kOptional: whether the content is a sequence

  static RunValue of(Tensor t) {
    RunValue v;
    v.tensor = std::move(t);
    return v;
  }
  static RunValue of_sequence(std::vector<Tensor> s) {
    RunValue v;
    v.kind = Type::Kind::kSequence;
    v.sequence = std::move(s);
    return v;
  }
  bool is_tensor() const { return kind == Type::Kind::kTensor; }
};

}  // namespace kiln
