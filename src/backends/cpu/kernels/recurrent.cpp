// RNN, GRU and LSTM: one engine, three cells. Each (direction, batch row) is
// an independent recurrence over its sequence_lens[b] steps (forward, or
// backward for the reverse direction); steps past that length leave Y zero and
// the state as it was. With W/R/B split per gate (gate order: LSTM i,o,f,c;
// GRU z,r,h), f/g/h the activations and clip applied to every pre-activation:
//
//   RNN:  H = f(x W^T + Wb + H R^T + Rb)
//   GRU:  z = f(..z), r = f(..r),
//         h~ = g(x Wh^T + Wbh + (r * H) Rh^T + Rbh)        (linear_before_reset = 0)
//         h~ = g(x Wh^T + Wbh + r * (H Rh^T + Rbh))        (linear_before_reset = 1)
//         H = (1 - z) * h~ + z * H
//   LSTM: i = f(..i + Pi * C), f = f(..f + Pf * C) (or 1 - i with input_forget),
//         C = f * C + i * g(..c), o = f(..o + Po * C), H = o * h(C)
#include <algorithm>
#include <cctype>
#include <cmath>

#include "backends/cpu/cpu_kernel.h"
#include "backends/cpu/kernels/float_io.h"
#include "ops/recurrent_attrs.h"
#include "support/parallel.h"

namespace kiln {
namespace {

// An activation applied in Acc (float or double).
struct Activation : RnnActivation {
  Activation(const RnnActivation& a) : RnnActivation(a) {}  // NOLINT(google-explicit-constructor)

  template <typename Acc>
  Acc operator()(Acc x) const {
    const Acc a = static_cast<Acc>(alpha), b = static_cast<Acc>(beta);
    switch (kind) {
      case Kind::kRelu: return std::max(x, Acc(0));
      case Kind::kTanh: return std::tanh(x);
      case Kind::kSigmoid: return Acc(1) / (Acc(1) + std::exp(-x));
      case Kind::kAffine: return a * x + b;
      case Kind::kLeakyRelu: return x >= 0 ? x : a * x;
      case Kind::kThresholdedRelu: return x > a ? x : Acc(0);
      case Kind::kScaledTanh: return a * std::tanh(b * x);
      case Kind::kHardSigmoid: return std::clamp(a * x + b, Acc(0), Acc(1));
      case Kind::kElu: return x >= 0 ? x : a * (std::exp(x) - Acc(1));
      case Kind::kSoftsign: return x / (Acc(1) + std::abs(x));
      case Kind::kSoftplus: return std::log1p(std::exp(-std::abs(x))) + std::max(x, Acc(0));
    }
    return x;
  }
};

struct RnnParams : RnnShape {
  std::vector<Activation> acts;  // per_dir per direction

  int64_t x_at(int64_t t, int64_t b) const { return (batch_first ? b * seq + t : t * batch + b) * input; }
  int64_t y_at(int64_t t, int64_t d, int64_t b) const {
    return (batch_first ? (b * seq + t) * dirs + d : (t * dirs + d) * batch + b) * hidden;
  }
  int64_t state_at(int64_t d, int64_t b) const { return (batch_first ? b * dirs + d : d * batch + b) * hidden; }
};

Expected<RnnParams> rnn_params(const CpuKernelContext& ctx, RnnCell cell) {
  const Node& n = ctx.node();
  RnnParams p;
  KILN_ASSIGN_OR_RETURN(static_cast<RnnShape&>(p), read_rnn_attrs(n, cell));
  std::vector<const std::vector<int64_t>*> dims;
  for (size_t i = 0; i < n.inputs.size(); ++i) dims.push_back(ctx.has_input(i) ? &ctx.input(i).dims() : nullptr);
  KILN_RETURN_IF_ERROR(check_rnn_inputs(n, p, dims));
  KILN_ASSIGN_OR_RETURN(auto acts, rnn_activations(n, p));
  p.acts.assign(acts.begin(), acts.end());
  return p;
}

template <typename Acc>
struct RnnData {
  std::vector<Acc> x, w, r, bias, peep, h0, c0;  // bias, peep, h0, c0 are zeros when omitted
  std::vector<int64_t> lens;
  std::vector<Acc> y, yh, yc;
};

// out = m . vec + bias for a (rows x cols) row-major matrix m.
template <typename Acc>
void matvec(const Acc* m, const Acc* vec, int64_t rows, int64_t cols, const Acc* bias, Acc* out) {
  for (int64_t i = 0; i < rows; ++i) {
    Acc acc = bias[i];
    for (int64_t k = 0; k < cols; ++k) acc += m[i * cols + k] * vec[k];
    out[i] = acc;
  }
}

template <typename Acc>
void run_sequence(const RnnParams& p, RnnData<Acc>& data, int64_t d, int64_t b) {
  const int64_t hsz = p.hidden, gh = p.gates * hsz;
  const Acc* w = data.w.data() + d * gh * p.input;
  const Acc* r = data.r.data() + d * gh * hsz;
  const Acc* wb = data.bias.data() + d * 2 * gh;
  const Acc* rb = wb + gh;
  const Activation* act = p.acts.data() + d * p.per_dir;
  auto clip = [&](Acc v) { return p.clip > 0 ? std::clamp(v, Acc(-p.clip), Acc(p.clip)) : v; };
  std::vector<Acc> h(data.h0.begin() + p.state_at(d, b), data.h0.begin() + p.state_at(d, b) + hsz);
  std::vector<Acc> c(data.c0.begin() + p.state_at(d, b), data.c0.begin() + p.state_at(d, b) + hsz);
  std::vector<Acc> xw(gh), hr(gh), rh(hsz), z(hsz), rg(hsz);
  const bool backward = p.reverse || d == 1;
  const int64_t steps = data.lens[b];
  for (int64_t n = 0; n < steps; ++n) {
    const int64_t t = backward ? steps - 1 - n : n;
    matvec(w, data.x.data() + p.x_at(t, b), gh, p.input, wb, xw.data());
    matvec(r, h.data(), gh, hsz, rb, hr.data());
    if (p.cell == RnnCell::kRnn) {
      for (int64_t k = 0; k < hsz; ++k) h[k] = act[0](clip(xw[k] + hr[k]));
    } else if (p.cell == RnnCell::kGru) {
      // hr's h block used R_h . H; the default form needs R_h . (r * H) instead.
      for (int64_t k = 0; k < hsz; ++k) {
        z[k] = act[0](clip(xw[k] + hr[k]));
        rg[k] = act[0](clip(xw[hsz + k] + hr[hsz + k]));
        rh[k] = rg[k] * h[k];
      }
      if (!p.linear_before_reset) matvec(r + 2 * hsz * hsz, rh.data(), hsz, hsz, rb + 2 * hsz, hr.data() + 2 * hsz);
      for (int64_t k = 0; k < hsz; ++k) {
        Acc pre = p.linear_before_reset ? xw[2 * hsz + k] + rg[k] * hr[2 * hsz + k] : xw[2 * hsz + k] + hr[2 * hsz + k];
        Acc cand = act[1](clip(pre));
        h[k] = (Acc(1) - z[k]) * cand + z[k] * h[k];
      }
    } else {
      const Acc* peep = data.peep.data() + d * 3 * hsz;  // i, o, f
      for (int64_t k = 0; k < hsz; ++k) {
        Acc i = act[0](clip(xw[k] + hr[k] + peep[k] * c[k]));
        Acc f =
            p.input_forget ? Acc(1) - i : act[0](clip(xw[2 * hsz + k] + hr[2 * hsz + k] + peep[2 * hsz + k] * c[k]));
        Acc cand = act[1](clip(xw[3 * hsz + k] + hr[3 * hsz + k]));
        c[k] = f * c[k] + i * cand;
        Acc o = act[0](clip(xw[hsz + k] + hr[hsz + k] + peep[hsz + k] * c[k]));
        h[k] = o * act[2](c[k]);
      }
    }
    std::copy(h.begin(), h.end(), data.y.begin() + p.y_at(t, d, b));
  }
  std::copy(h.begin(), h.end(), data.yh.begin() + p.state_at(d, b));
  std::copy(c.begin(), c.end(), data.yc.begin() + p.state_at(d, b));
}

template <typename Acc>
Expected<std::vector<Acc>> read_or_zeros(const CpuKernelContext& ctx, size_t i, int64_t n) {
  if (ctx.has_input(i)) return read_floats<Acc>(ctx.input(i));
  return std::vector<Acc>(static_cast<size_t>(n), Acc(0));
}

template <typename Acc>
Status run_recurrent_as(CpuKernelContext& ctx, const RnnParams& p) {
  RnnData<Acc> data;
  const int64_t state_n = p.dirs * p.batch * p.hidden;
  KILN_ASSIGN_OR_RETURN(data.x, read_floats<Acc>(ctx.input(0)));
  KILN_ASSIGN_OR_RETURN(data.w, read_floats<Acc>(ctx.input(1)));
  KILN_ASSIGN_OR_RETURN(data.r, read_floats<Acc>(ctx.input(2)));
  KILN_ASSIGN_OR_RETURN(data.bias, read_or_zeros<Acc>(ctx, 3, p.dirs * 2 * p.gates * p.hidden));
  KILN_ASSIGN_OR_RETURN(data.h0, read_or_zeros<Acc>(ctx, 5, state_n));
  // RNN and GRU have no inputs 6 and 7: zeros.
  KILN_ASSIGN_OR_RETURN(data.c0, read_or_zeros<Acc>(ctx, 6, state_n));
  KILN_ASSIGN_OR_RETURN(data.peep, read_or_zeros<Acc>(ctx, 7, p.dirs * 3 * p.hidden));
  data.lens.assign(static_cast<size_t>(p.batch), p.seq);
  if (ctx.has_input(4)) {
    KILN_ASSIGN_OR_RETURN(data.lens, ctx.input(4).to_i64_vector());
    for (int64_t len : data.lens)
      if (len < 0 || len > p.seq)
        return invalid_model("{}: sequence length {} is outside [0, {}]", ctx.node().op_type, len, p.seq);
  }
  data.y.assign(static_cast<size_t>(p.seq * state_n), Acc(0));
  data.yh.assign(static_cast<size_t>(state_n), Acc(0));
  data.yc.assign(static_cast<size_t>(state_n), Acc(0));
  parallel_for(p.dirs * p.batch, p.seq * p.gates * p.hidden * (p.input + p.hidden), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) run_sequence(p, data, i / p.batch, i % p.batch);
  });
  const std::vector<Acc>* outs[] = {&data.y, &data.yh, &data.yc};
  for (size_t o = 0; o < 3; ++o) {
    if (!ctx.has_output(o)) continue;
    KILN_ASSIGN_OR_RETURN(Tensor * t, ctx.allocate_output(o));
    KILN_RETURN_IF_ERROR(write_floats(*t, *outs[o]));
  }
  return Status::ok();
}

Status run_recurrent(CpuKernelContext& ctx, RnnCell cell) {
  KILN_ASSIGN_OR_RETURN(RnnParams p, rnn_params(ctx, cell));
  return ctx.input(0).dtype() == DType::kF64 ? run_recurrent_as<double>(ctx, p) : run_recurrent_as<float>(ctx, p);
}

}  // namespace

KILN_CPU_KERNEL("", "RNN", [](CpuKernelContext& ctx) { return run_recurrent(ctx, RnnCell::kRnn); });
KILN_CPU_KERNEL("", "GRU", [](CpuKernelContext& ctx) { return run_recurrent(ctx, RnnCell::kGru); });
KILN_CPU_KERNEL("", "LSTM", [](CpuKernelContext& ctx) { return run_recurrent(ctx, RnnCell::kLstm); });

}  // namespace kiln
