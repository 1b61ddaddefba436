// fuse_expand_depthwise: an inverted-residual block (MobileNetV2,
// EfficientNet) expands C channels to E = 6C with a 1x1 convolution and runs
// a depthwise convolution over the result; the expanded tensor is the
// block's largest, written once and read back. kiln.ExpandDepthwiseConv
// (ops/expand_depthwise_conv.h) computes both, and its CUDA kernel keeps the
// expanded slice in shared memory, so only X is read and only Y written.
//
//   %e: f16[1,8,8,96] = kiln.FusedConv(%x, %w1, %b1) {activation="Clip", activation_params=[0,6], channels_last=1}
//   %y: f16[1,4,4,96] = kiln.FusedConv(%e, %w2, %b2) {activation="Clip", activation_params=[0,6],
//                           channels_last=1, group=96, pads=[1,1,1,1], strides=[2,2]}
// becomes
//   %y: f16[1,4,4,96] = kiln.ExpandDepthwiseConv(%x, %w1, %b1, %w2, %b2) {activation="Clip",
//                           activation_params=[0,6], expand_activation="Clip", expand_activation_params=[0,6],
//                           pads=[1,1,1,1], strides=[2,2]}
//
// The expansion: channels-last, 1x1 at stride 1, no pads, group 1, no
// residual, its output read by the depthwise alone (and no graph output).
// The depthwise: channels-last, group = its channels = E, no residual,
// dilation 1, explicit pads. And the geometry must be one the fused
// kernel's plan takes (expand_depthwise_plan.h: f16/bf16, a square 3/5/7
// kernel at stride 1 or 2, C a multiple of 8, E of 32, fixed H, W, C, E), so
// the node always has its fast route; the builder still times it against
// the two layers run apart ("unfused"), which stays the default.
// The builder runs it for cuda after assign_conv_layout and
// assign_pool_layout, which make the layers channels-last.
#include <set>
#include <vector>

#include "backends/cuda/kernels/expand_depthwise_plan.h"
#include "passes/pass.h"
#include "passes/pass_util.h"

namespace kiln {
namespace {

using pass_util::dims_of;

bool is_channels_last_conv(const Node* n) {
  return n && n->domain == "kiln" && n->op_type == "FusedConv" && n->attr_int("channels_last", 0) == 1 &&
         !n->input(3) && n->attr_string("auto_pad", "NOTSET") == "NOTSET";
}

bool all_equal(const std::vector<int64_t>& v, int64_t want) {
  for (int64_t x : v)
    if (x != want) return false;
  return true;
}

// The fixed dims of a rank-4 value, or empty.
std::vector<int64_t> fixed4(const Value* v) {
  const Dims* d = dims_of(v);
  if (!d || d->size() != 4) return {};
  std::vector<int64_t> out;
  for (const Dim& x : *d) {
    if (!x.is_fixed()) return {};
    out.push_back(x.value);
  }
  return out;
}

// The expansion feeding depthwise `d`, when the pair qualifies; else null.
Node* fusable_expansion(const Graph& g, const Node& d) {
  if (!is_channels_last_conv(&d) || !d.input(0)) return nullptr;
  Node* e = d.input(0)->producer;
  if (!is_channels_last_conv(e) || !pass_util::only_reader_is(g, d.input(0), &d)) return nullptr;
  if (e->attr_int("group", 1) != 1 || !all_equal(e->attr_ints("strides"), 1) || !all_equal(e->attr_ints("pads"), 0) ||
      !all_equal(e->attr_ints("dilations"), 1) || !all_equal(d.attr_ints("dilations"), 1))
    return nullptr;
  const std::vector<int64_t> x = fixed4(e->input(0)), w1 = fixed4(e->input(1)), w2 = fixed4(d.input(1));
  if (x.empty() || w1.empty() || w2.empty() || w1[1] != 1 || w1[2] != 1 || w1[3] != x[3]) return nullptr;
  const int64_t ec = w1[0];
  if (d.attr_int("group", 1) != ec || w2[0] != ec || w2[3] != 1 || w2[1] != w2[2]) return nullptr;
  const std::vector<int64_t> strides = d.attr_ints("strides", {1, 1});
  std::vector<int64_t> pads = d.attr_ints("pads", {0, 0, 0, 0});
  if (strides.size() != 2 || strides[0] != strides[1] || pads.size() != 4) return nullptr;
  const DType t = e->input(0)->type.dtype;
  for (const Value* v : {e->input(1), e->input(2), d.input(1), d.input(2)})
    if (v && v->type.dtype != t) return nullptr;
  cuda::ExpandDwLayer l;
  l.f16_or_bf16 = t == DType::kF16 || t == DType::kBF16;
  l.h = x[1], l.w = x[2], l.c = x[3], l.e = ec, l.k = w2[1], l.s = strides[0];
  l.pt = pads[0], l.pl = pads[1], l.pb = pads[2], l.pr = pads[3];
  return cuda::plan_expand_dw(l) ? e : nullptr;
}

void copy_attr(const Node& src, const char* from, Node& dst, const char* to) {
  if (const Attribute* a = src.attr(from)) dst.attrs[to] = *a;
}

}  // namespace

Status fuse_expand_depthwise(Graph& graph, PassContext&) {
  std::vector<std::pair<Node*, Node*>> found;  // (expansion, depthwise)
  for (const auto& np : graph.nodes())
    if (Node* e = fusable_expansion(graph, *np)) found.emplace_back(e, np.get());
  std::set<const Node*> removed;
  for (auto [e, d] : found) {
    Node* f = pass_util::insert_node_before(graph, d, "ExpandDepthwiseConv");
    f->domain = "kiln";
    f->opset = 1;
    f->name = d->name;
    f->inputs = {e->input(0), e->input(1), e->input(2), d->input(1)};
    if (d->input(2)) f->inputs.push_back(d->input(2));
    copy_attr(*e, "activation", *f, "expand_activation");
    copy_attr(*e, "activation_params", *f, "expand_activation_params");
    copy_attr(*d, "activation", *f, "activation");
    copy_attr(*d, "activation_params", *f, "activation_params");
    copy_attr(*d, "strides", *f, "strides");
    copy_attr(*d, "pads", *f, "pads");
    Value* y = d->output(0);
    y->producer = f;
    y->producer_output = 0;
    f->outputs = {y};
    d->outputs.clear();
    removed.insert(d);
    removed.insert(e);
  }
  if (!removed.empty()) graph.erase_nodes_if([&](const Node& n) { return removed.count(&n) != 0; });
  return Status::ok();
}

}  // namespace kiln
