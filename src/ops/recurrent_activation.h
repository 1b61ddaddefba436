// The activations of RNN, GRU and LSTM (attributes `activations`,
// `activation_alpha`, `activation_beta`), resolved per direction: one
// definition for the CPU and CUDA kernels. RnnActivation is plain data (no IR
// types), so device code can take it by value.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "support/status.h"

namespace kiln {

class Node;

struct RnnActivation {
  enum class Kind : uint8_t {
    kRelu,
    kTanh,
    kSigmoid,
    kAffine,
    kLeakyRelu,
    kThresholdedRelu,
    kScaledTanh,
    kHardSigmoid,
    kElu,
    kSoftsign,
    kSoftplus
  };
  Kind kind = Kind::kTanh;
  double alpha = 0, beta = 0;
};

// The node's activations, `per_dir` for each of `dirs` directions (`names`
// when the node has no `activations`; one list given for two directions
// serves both). alpha and beta values are consumed in order by the
// activations that take them; the rest get the ONNX operators' defaults.
Expected<std::vector<RnnActivation>> parse_rnn_activations(const Node& n, std::vector<std::string> names, int64_t dirs,
                                                           size_t per_dir);

}  // namespace kiln
