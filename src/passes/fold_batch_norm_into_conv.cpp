// fold_batch_norm_into_conv: an inference-mode BatchNormalization that is the
// only reader of a Conv, ConvTranspose, Gemm or 2-D MatMul(+Add) output, with
// constant weights and BN parameters, becomes part of that node: weights are
// scaled per output channel, and the bias becomes (b - mean) * s + beta, where
// s = scale / sqrt(var + epsilon). Computed in double, stored in the weight dtype.
//
//   %w: f32[2,1,1,1] = const ...                %w2: f32[2,1,1,1] = const ...
//   %c: f32[1,2,4,4] = Conv(%x, %w)      ->     %b2: f32[2] = const ...
//   %y: f32[1,2,4,4] = BatchNormalization(      %y: f32[1,2,4,4] = Conv(%x, %w2, %b2)
//        %c, %scale, %beta, %mean, %var)        return %y
//   return %y
//
// The BN's output value is kept (the fused node produces it), so graph output
// names stay. A BN in training mode, or one whose statistics outputs are read,
// is left alone; so is a Conv output anything else reads.
#include <cmath>
#include <set>

#include "ir/rewrite.h"
#include "passes/pass.h"
#include "passes/pass_util.h"

namespace kiln {
namespace {

using pass_util::float_tensor;
using pass_util::float_values;

struct BnParams {
  std::vector<double> s;      // scale / sqrt(var + eps), per channel
  std::vector<double> shift;  // beta - mean * s, per channel
};

const Tensor* const_of(const Value* v) { return v ? v->constant.get() : nullptr; }

// The per-channel affine form of an inference BN with constant parameters.
std::optional<BnParams> bn_params(const Graph& g, const Node& bn) {
  if (bn.attr_int("training_mode", 0) != 0 || bn.inputs.size() != 5) return std::nullopt;
  for (size_t i = 1; i < bn.outputs.size(); ++i)
    if (bn.outputs[i] && (is_graph_output(g, bn.outputs[i]) || !g.users(bn.outputs[i]).empty())) return std::nullopt;
  std::vector<double> p[4];
  for (int i = 0; i < 4; ++i) {
    const Tensor* t = const_of(bn.input(static_cast<size_t>(i) + 1));
    if (!t || t->rank() != 1) return std::nullopt;
    auto v = float_values(*t);
    if (!v) return std::nullopt;
    p[i] = std::move(*v);
  }
  size_t c = p[0].size();
  for (auto& v : p)
    if (v.size() != c) return std::nullopt;
  double eps = bn.attr_float("epsilon", 1e-5f);
  BnParams r;
  for (size_t k = 0; k < c; ++k) {
    double s = p[0][k] / std::sqrt(p[3][k] + eps);
    r.s.push_back(s);
    r.shift.push_back(p[1][k] - p[2][k] * s);
  }
  return r;
}

// A bias of `channels` elements read from an optional constant (absent: zeros).
std::optional<std::vector<double>> bias_of(const Value* b, size_t channels) {
  if (!b) return std::vector<double>(channels, 0.0);
  const Tensor* t = const_of(b);
  if (!t) return std::nullopt;
  auto v = float_values(*t);
  if (!v) return std::nullopt;
  if (v->size() == 1 && channels != 1) return std::vector<double>(channels, (*v)[0]);
  if (v->size() != channels) return std::nullopt;
  return v;
}

std::vector<double> fused_bias(const std::vector<double>& b, const BnParams& bn) {
  std::vector<double> out(b.size());
  for (size_t k = 0; k < b.size(); ++k) out[k] = b[k] * bn.s[k] + bn.shift[k];
  return out;
}

// New weights where element i is scaled by bn.s[channel(i)]; nullopt if not float.
template <typename ChannelOf>
std::optional<Tensor> scaled(const Tensor& w, const BnParams& bn, ChannelOf channel_of) {
  auto v = float_values(w);
  if (!v) return std::nullopt;
  for (size_t i = 0; i < v->size(); ++i) {
    size_t c = channel_of(static_cast<int64_t>(i));
    if (c >= bn.s.size()) return std::nullopt;
    (*v)[i] *= bn.s[c];
  }
  return float_tensor(w.dtype(), w.dims(), *v);
}

// Conv: W[M, C/g, k...]; output channel m is W's first index.
bool fold_conv(Graph& g, Node& conv, const BnParams& bn) {
  const Tensor* w = const_of(conv.input(1));
  if (!w || w->rank() < 3 || static_cast<size_t>(w->dim(0)) != bn.s.size()) return false;
  int64_t per_m = w->numel() / w->dim(0);
  auto b = bias_of(conv.input(2), bn.s.size());
  auto nw = scaled(*w, bn, [&](int64_t i) { return static_cast<size_t>(i / per_m); });
  if (!b || !nw) return false;
  conv.inputs.resize(3);
  conv.inputs[1] = pass_util::add_constant(g, conv.inputs[1]->name + "_bn", std::move(*nw));
  conv.inputs[2] = pass_util::add_constant(g, conv.inputs[1]->name + "_bias",
                                           float_tensor(w->dtype(), {w->dim(0)}, fused_bias(*b, bn)));
  return true;
}

// ConvTranspose: W[C, M/g, k...]; output channel = group * (M/g) + W's second index.
bool fold_conv_transpose(Graph& g, Node& ct, const BnParams& bn) {
  const Tensor* w = const_of(ct.input(1));
  int64_t groups = ct.attr_int("group", 1);
  if (!w || w->rank() < 3 || groups < 1 || w->dim(0) % groups != 0) return false;
  int64_t m_per_g = w->dim(1), c_per_g = w->dim(0) / groups;
  if (static_cast<size_t>(m_per_g * groups) != bn.s.size()) return false;
  int64_t kernel = w->numel() / (w->dim(0) * m_per_g);
  auto b = bias_of(ct.input(2), bn.s.size());
  auto nw = scaled(*w, bn, [&](int64_t i) {
    int64_t c = i / (m_per_g * kernel), j = (i / kernel) % m_per_g;
    return static_cast<size_t>((c / c_per_g) * m_per_g + j);
  });
  if (!b || !nw) return false;
  ct.inputs.resize(3);
  ct.inputs[1] = pass_util::add_constant(g, ct.inputs[1]->name + "_bn", std::move(*nw));
  ct.inputs[2] = pass_util::add_constant(g, ct.inputs[1]->name + "_bias",
                                         float_tensor(w->dtype(), {m_per_g * groups}, fused_bias(*b, bn)));
  return true;
}

// Gemm: Y[M, N] = alpha * A' B' + beta * C; channel n is B' 's column.
bool fold_gemm(Graph& g, Node& gemm, const BnParams& bn) {
  const Tensor* w = const_of(gemm.input(1));
  if (!w || w->rank() != 2) return false;
  bool trans_b = gemm.attr_int("transB", 0) != 0;
  int64_t n = trans_b ? w->dim(0) : w->dim(1);
  if (static_cast<size_t>(n) != bn.s.size()) return false;
  const Value* c = gemm.input(2);
  if (c && c->constant && c->constant->rank() == 2 && c->constant->dim(0) != 1) return false;  // per-row C
  auto b = bias_of(c, bn.s.size());
  double alpha = gemm.attr_float("alpha", 1.0f), beta = gemm.attr_float("beta", 1.0f);
  auto nw = scaled(*w, bn, [&](int64_t i) { return static_cast<size_t>(trans_b ? i / w->dim(1) : i % n); });
  if (!b || !nw || alpha == 0) return false;
  for (double& x : *b) x *= beta;
  gemm.inputs.resize(3);
  gemm.inputs[1] = pass_util::add_constant(g, gemm.inputs[1]->name + "_bn", std::move(*nw));
  gemm.inputs[2] =
      pass_util::add_constant(g, gemm.inputs[1]->name + "_bias", float_tensor(w->dtype(), {n}, fused_bias(*b, bn)));
  gemm.attrs["beta"] = Attribute::of_float(1.0f);
  return true;
}

// MatMul A[M,K] x W[K,N] (+ constant bias[N]): the BN channel is N, the last dim.
bool fold_matmul(Graph& g, Node& mm, Node* add, const BnParams& bn) {
  const Tensor* w = const_of(mm.input(1));
  const Value* a = mm.input(0);
  if (!w || w->rank() != 2 || !a || a->type.shape.rank() != 2) return false;
  int64_t n = w->dim(1);
  if (static_cast<size_t>(n) != bn.s.size()) return false;
  const Value* bias_value = add ? (add->input(0) == mm.outputs[0] ? add->input(1) : add->input(0)) : nullptr;
  if (bias_value && (!bias_value->constant || bias_value->constant->rank() > 1)) return false;
  auto b = bias_of(bias_value, bn.s.size());
  auto nw = scaled(*w, bn, [&](int64_t i) { return static_cast<size_t>(i % n); });
  if (!b || !nw) return false;
  // Becomes Gemm(A, W', b'): the same math with the bias built in.
  DType dt = w->dtype();
  mm.op_type = "Gemm";
  mm.opset = 0;
  mm.inputs = {mm.inputs[0], pass_util::add_constant(g, mm.inputs[1]->name + "_bn", std::move(*nw)), nullptr};
  mm.inputs[2] = pass_util::add_constant(g, mm.inputs[1]->name + "_bias", float_tensor(dt, {n}, fused_bias(*b, bn)));
  return true;
}

// Rewires the BN's output to come from `fused` and marks the nodes it replaces.
void take_output(Node& fused, Node& bn, std::set<const Node*>& removed, Node* also_removed) {
  Value* y = bn.outputs[0];
  fused.outputs[0] = y;
  y->producer = &fused;
  y->producer_output = 0;
  removed.insert(&bn);
  if (also_removed) removed.insert(also_removed);
}

}  // namespace

Status fold_batch_norm_into_conv(Graph& graph, PassContext&) {
  std::set<const Node*> removed;
  for (const auto& np : graph.nodes()) {
    Node& bn = *np;
    if (!bn.domain.empty() || bn.op_type != "BatchNormalization" || bn.outputs.empty() || !bn.outputs[0]) continue;
    Value* x = bn.input(0);
    Node* p = x ? x->producer : nullptr;
    if (!p || !p->domain.empty() || removed.count(p) || !pass_util::only_reader_is(graph, x, &bn)) continue;
    if (x->type.dtype != bn.outputs[0]->type.dtype) continue;
    auto params = bn_params(graph, bn);
    if (!params) continue;
    Node* add = nullptr;
    Node* fused = p;
    bool ok = false;
    if (p->op_type == "Conv") {
      ok = fold_conv(graph, *p, *params);
    } else if (p->op_type == "ConvTranspose") {
      ok = fold_conv_transpose(graph, *p, *params);
    } else if (p->op_type == "Gemm" && x->type.shape.rank() == 2) {
      ok = fold_gemm(graph, *p, *params);
    } else if (p->op_type == "MatMul") {
      ok = fold_matmul(graph, *p, nullptr, *params);
    } else if (p->op_type == "Add") {
      for (size_t side = 0; side < 2; ++side) {
        Node* mm = pass_util::producer_of(p->input(side), "MatMul");
        if (!mm || removed.count(mm) || !pass_util::only_reader_is(graph, mm->outputs[0], p)) continue;
        add = p;
        fused = mm;
        ok = fold_matmul(graph, *mm, add, *params);
        break;
      }
    }
    if (ok) take_output(*fused, bn, removed, add);
  }
  if (!removed.empty()) graph.erase_nodes_if([&](const Node& n) { return removed.count(&n) != 0; });
  return Status::ok();
}

}  // namespace kiln
