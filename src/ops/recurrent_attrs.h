// The attributes of RNN, GRU and LSTM and the input shapes they imply, read and
// checked once for the CPU and CUDA kernels: direction, layout, clip, the
// per-cell flags, and the activations (`activations`, `activation_alpha`,
// `activation_beta`) resolved per direction. RnnShape and RnnActivation are
// plain data (no IR types), so device code can take them by value.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "support/status.h"

namespace kiln {

class Node;

enum class RnnCell : uint8_t { kRnn, kGru, kLstm };

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

// A node's attributes and the sizes its inputs give (seq, batch, input,
// hidden: filled by check_rnn_inputs).
struct RnnShape {
  RnnCell cell = RnnCell::kRnn;
  int64_t seq = 0, batch = 0, input = 0, hidden = 0, dirs = 1;
  int64_t gates = 1;  // W/R rows per hidden unit: RNN 1, GRU 3, LSTM 4
  int per_dir = 1;    // activations per direction: RNN 1, GRU 2, LSTM 3
  bool batch_first = false, reverse = false, linear_before_reset = false, input_forget = false;
  double clip = 0;  // 0: no clipping
};

// The attributes of `n`, a `cell` node; an error for a negative clip.
Expected<RnnShape> read_rnn_attrs(const Node& n, RnnCell cell);

// Reads seq, batch, input and hidden from X [seq, batch, input] (batch first
// with layout 1) and R, and checks every input's dims against them: `dims[i]`
// are input i's dims, nullptr for an absent optional input (X, W, R, B,
// sequence_lens, initial_h, initial_c, P).
Status check_rnn_inputs(const Node& n, RnnShape& s, const std::vector<const std::vector<int64_t>*>& dims);

// The activations of `n`, per_dir per direction, with the cell's defaults
// (RNN Tanh; GRU Sigmoid, Tanh; LSTM Sigmoid, Tanh, Tanh).
Expected<std::vector<RnnActivation>> rnn_activations(const Node& n, const RnnShape& s);

}  // namespace kiln
