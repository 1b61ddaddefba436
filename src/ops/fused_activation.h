// The activation a fused op (kiln::FusedConv) applies to its result, read from
// its `activation` and `activation_params` attributes (ONNX Runtime's
// com.microsoft::FusedConv spells them the same way):
//
//   ""         identity              (no params)
//   "Relu"     max(x, 0)             (no params)
//   "Clip"     min(max(x, lo), hi)   activation_params = [lo, hi] (+-inf: no bound)
//   "Sigmoid"  1 / (1 + exp(-x))     (no params)
//   "Silu"     x * sigmoid(x)        (no params; what PyTorch exports as Mul(x, Sigmoid(x)))
#pragma once

#include <cmath>
#include <string>

#include "ir/graph.h"
#include "support/status.h"

namespace kiln {

struct FusedActivation {
  enum class Kind { kNone, kRelu, kClip, kSigmoid, kSilu };
  Kind kind = Kind::kNone;
  float lo = -INFINITY, hi = INFINITY;  // kClip only

  // The attribute spelling of `kind` ("" for kNone).
  static const char* name(Kind kind);

  // y = act(x), in double (the CPU reference).
  double apply(double x) const {
    switch (kind) {
      case Kind::kRelu: return x > 0 ? x : 0;
      case Kind::kClip: return std::fmin(std::fmax(x, static_cast<double>(lo)), static_cast<double>(hi));
      case Kind::kSigmoid: return 1 / (1 + std::exp(-x));
      case Kind::kSilu: return x / (1 + std::exp(-x));
      default: return x;
    }
  }
};

// The node's activation; an unknown name or a wrong params count is an error
// that names the node's op and the value.
Expected<FusedActivation> read_fused_activation(const Node& node);

}  // namespace kiln
