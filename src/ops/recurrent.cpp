// Recurrent and stateful sequence ops: RNN, GRU, LSTM and CausalConvWithState.
// Each row is the op's whole definition in kiln; the CPU kernels live in
// src/backends/cpu/kernels/recurrent.cpp and causal_conv_with_state.cpp.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "ops/infer_util.h"

namespace kiln {
namespace {

bool is_float_dtype(DType t) { return t == DType::kF32 || t == DType::kF64 || t == DType::kF16 || t == DType::kBF16; }

Dim input_dim(const InferContext& ctx, size_t i, size_t k) {
  if (!ctx.has_input(i)) return Dim::unknown();
  const Shape& s = ctx.input_shape(i);
  return s.has_rank() && k < s.dims->size() ? (*s.dims)[k] : Dim::unknown();
}

Status require_dim(const Dim& d, int64_t want, const char* op, const char* what) {
  if (d.is_fixed() && d.value != want) return invalid_model("{}: {} is {}, expected {}", op, what, d.value, want);
  return Status::ok();
}

// The activation names RNN, GRU and LSTM accept (case-insensitive).
bool is_rnn_activation(std::string name) {
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const char* known : {"relu", "tanh", "sigmoid", "affine", "leakyrelu", "thresholdedrelu", "scaledtanh",
                            "hardsigmoid", "elu", "softsign", "softplus"})
    if (name == known) return true;
  return false;
}

// The three recurrent ops share one shape rule; they differ in gate count,
// activations per direction and how many state outputs they have.
struct RecurrentKind {
  const char* op;
  int64_t gates;
  size_t activations_per_direction;
};

Status infer_recurrent(InferContext& ctx, const RecurrentKind& kind) {
  const char* op = kind.op;
  std::string direction = ctx.attr_string("direction", "forward");
  if (direction != "forward" && direction != "reverse" && direction != "bidirectional")
    return invalid_model("{}: direction '{}' is not forward, reverse or bidirectional", op, direction);
  const int64_t dirs = direction == "bidirectional" ? 2 : 1;
  const int64_t layout = ctx.attr_int("layout", 0);
  if (layout != 0 && layout != 1) return invalid_model("{}: layout {} is not 0 or 1", op, layout);
  const Attribute* acts_attr = ctx.node().attr("activations");
  std::vector<std::string> acts = acts_attr ? acts_attr->strings : std::vector<std::string>{};
  for (const std::string& a : acts)
    if (!is_rnn_activation(a)) return unsupported("{}: activation '{}' is not supported", op, a);
  if (!acts.empty() && acts.size() != kind.activations_per_direction &&
      acts.size() != kind.activations_per_direction * static_cast<size_t>(dirs))
    return invalid_model("{}: {} activations given; it takes {} per direction", op, acts.size(),
                         kind.activations_per_direction);
  for (size_t i : {0, 1, 2, 3, 5, 6, 7})
    if (ctx.has_input(i) && ctx.input_dtype(i) != DType::kUndefined && !is_float_dtype(ctx.input_dtype(i)))
      return invalid_model("{}: input {} must be a float tensor, got {}", op, i, dtype_name(ctx.input_dtype(i)));
  if (ctx.has_input(4) && ctx.input_dtype(4) != DType::kI32 && ctx.input_dtype(4) != DType::kUndefined)
    return invalid_model("{}: sequence_lens must be int32, got {}", op, dtype_name(ctx.input_dtype(4)));
  for (size_t i : {0, 1, 2})
    if (ctx.input_shape(i).has_rank() && ctx.input_shape(i).rank() != 3)
      return invalid_model("{}: input {} has rank {}; it must be 3", op, i, ctx.input_shape(i).rank());
  Dim hidden = input_dim(ctx, 2, 2);
  if (ctx.node().has_attr("hidden_size")) {
    int64_t h = ctx.attr_int("hidden_size", 0);
    if (h <= 0) return invalid_model("{}: hidden_size {} must be positive", op, h);
    KILN_RETURN_IF_ERROR(require_dim(hidden, h, op, "R's last dim (hidden_size)"));
    hidden = h;
  }
  KILN_RETURN_IF_ERROR(require_dim(input_dim(ctx, 1, 0), dirs, op, "W's direction dim"));
  KILN_RETURN_IF_ERROR(require_dim(input_dim(ctx, 2, 0), dirs, op, "R's direction dim"));
  if (hidden.is_fixed()) {
    KILN_RETURN_IF_ERROR(require_dim(input_dim(ctx, 1, 1), kind.gates * hidden.value, op, "W's gate dim"));
    KILN_RETURN_IF_ERROR(require_dim(input_dim(ctx, 2, 1), kind.gates * hidden.value, op, "R's gate dim"));
  }
  const Dim seq = input_dim(ctx, 0, layout == 0 ? 0 : 1), batch = input_dim(ctx, 0, layout == 0 ? 1 : 0);
  DType t = ctx.input_dtype(0);
  Dims y = layout == 0 ? Dims{seq, dirs, batch, hidden} : Dims{batch, seq, dirs, hidden};
  Dims state = layout == 0 ? Dims{dirs, batch, hidden} : Dims{batch, dirs, hidden};
  ctx.set_output(0, t, std::move(y));
  for (size_t o = 1; o < ctx.num_outputs(); ++o) ctx.set_output(o, t, state);
  return Status::ok();
}

// Opset 1 had an output_sequence flag that only said whether Y is produced;
// an omitted output says the same now.
Status drop_output_sequence(UpgradeContext& ctx) {
  ctx.node().attrs.erase("output_sequence");
  return Status::ok();
}

// ---- CausalConvWithState -------------------------------------------------------

Status infer_causal_conv(InferContext& ctx) {
  const char* op = "CausalConvWithState";
  std::string act = ctx.attr_string("activation", "none");
  if (act != "none" && act != "silu" && act != "swish")
    return unsupported("{}: activation '{}' is not none, silu or swish", op, act);
  DType t = ctx.input_dtype(0);
  if (t != DType::kUndefined && t != DType::kF32 && t != DType::kF16 && t != DType::kBF16)
    return invalid_model("{}: input must be float, float16 or bfloat16, got {}", op, dtype_name(t));
  for (size_t i = 1; i < 4; ++i)
    if (ctx.has_input(i) && ctx.input_dtype(i) != t && ctx.input_dtype(i) != DType::kUndefined)
      return invalid_model("{}: input {} must have the input's dtype", op, i);
  for (size_t i : {0, 1, 3})
    if (ctx.has_input(i) && ctx.input_shape(i).has_rank() && ctx.input_shape(i).rank() != 3)
      return invalid_model("{}: input {} has rank {}; it must be 3", op, i, ctx.input_shape(i).rank());
  const Dim channels = input_dim(ctx, 0, 1), k = input_dim(ctx, 1, 2);
  if (channels.is_fixed()) KILN_RETURN_IF_ERROR(require_dim(input_dim(ctx, 1, 0), channels.value, op, "weight dim 0"));
  KILN_RETURN_IF_ERROR(require_dim(input_dim(ctx, 1, 1), 1, op, "weight dim 1"));
  if (k.is_fixed() && k.value < 1) return invalid_model("{}: kernel size {} must be at least 1", op, k.value);
  ctx.set_output(0, ctx.input_type(0));
  ctx.set_output(1, t, Dims{input_dim(ctx, 0, 0), channels, dim_sub(k, Dim(1))});
  return Status::ok();
}

[[maybe_unused]] const bool registered = [] {
  static const RecurrentKind rnn{"RNN", 1, 1}, gru{"GRU", 3, 2}, lstm{"LSTM", 4, 3};
  OpRegistration(OpSchema{.name = "RNN",
                          .since_opset = 1,
                          .min_inputs = 3,
                          .max_inputs = 6,
                          .min_outputs = 0,
                          .max_outputs = 2,
                          .infer = [](InferContext& c) { return infer_recurrent(c, rnn); },
                          .upgrades = {{7, drop_output_sequence}},
                          .summary = "simple recurrent network"});
  OpRegistration(OpSchema{.name = "GRU",
                          .since_opset = 1,
                          .min_inputs = 3,
                          .max_inputs = 6,
                          .min_outputs = 0,
                          .max_outputs = 2,
                          .infer = [](InferContext& c) { return infer_recurrent(c, gru); },
                          .upgrades = {{7, drop_output_sequence}},
                          .summary = "gated recurrent unit"});
  OpRegistration(OpSchema{.name = "LSTM",
                          .since_opset = 1,
                          .min_inputs = 3,
                          .max_inputs = 8,
                          .min_outputs = 0,
                          .max_outputs = 3,
                          .infer = [](InferContext& c) { return infer_recurrent(c, lstm); },
                          .upgrades = {{7, drop_output_sequence}},
                          .summary = "long short-term memory"});
  OpRegistration(OpSchema{.name = "CausalConvWithState",
                          .since_opset = 27,
                          .min_inputs = 2,
                          .max_inputs = 4,
                          .min_outputs = 1,
                          .max_outputs = 2,
                          .infer = infer_causal_conv,
                          .summary = "depthwise causal 1-D convolution with a carried state"});
  return true;
}();

}  // namespace
}  // namespace kiln
