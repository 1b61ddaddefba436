// assign_conv_layout: on the CUDA backend, 2-D 16-bit convolutions compute
// channels-last (NHWC), the layout the tensor cores and cuDNN's fused
// engines want; in NCHW, cuDNN transposes inside every convolution. Each
// kiln::FusedConv gets channels_last=1 with its weight permuted to
// [K, R, S, C] here, once, and Transposes around it; sink_transposes and
// eliminate_transposes then cancel the pairs between consecutive layers, so
// a ResNet runs NHWC from its stem to its pooling head.
//
//   %y: f16[1,8,4,4] = kiln.FusedConv(%x, %w, %b)   ->   %x_nhwc: f16[1,4,4,3] = Transpose(%x) {perm=[0,2,3,1]}
//                                                         %w_nhwc: f16[8,3,3,3] = const ...
//                                                         %y_nhwc: f16[1,4,4,8] = kiln.FusedConv(%x_nhwc,
//                                                              %w_nhwc, %b) {channels_last=1}
//                                                         %y: f16[1,8,4,4] = Transpose(%y_nhwc) {perm=[0,3,1,2]}
//
// Grouped and depthwise layers too: their weight [K, C/group, R, S] becomes
// [K, R, S, C/group], and kiln's direct kernel backs up cuDNN in NHWC as in
// NCHW. A convolution stays NCHW when its weight is not a constant, its
// pads are asymmetric (the NCHW route pads a staged copy) or its dtype is
// f32/f64 (no tensor-core gain without --fp16/--bf16). assign_pool_layout
// then takes the pools between such layers channels-last as well.
//
// A plain Conv that fuse_conv_activation left alone (nothing after it to
// fuse, as ResNet's downsample branch) becomes a FusedConv without an
// activation here, so it runs channels-last too instead of NCHW between a
// Transpose pair.
//
// A layer with fewer than 8 input channels and at least 32 output channels
// (an image's 3 into a stem of 32 or 64) gets
// them padded with zeros to 8, in its weight and with a Pad after the input's
// Transpose: cuDNN's tensor-core engines want channels in 16-byte groups,
// and without them the stem runs on slow kernels. The zeros add nothing to
// the sums, so the result is the same.
#include <algorithm>
#include <cstring>
#include <map>

#include "ir/rewrite.h"
#include "passes/pass.h"
#include "passes/pass_util.h"

namespace kiln {
namespace {

const std::vector<int64_t> kToNhwc = {0, 2, 3, 1}, kToNchw = {0, 3, 1, 2};
constexpr int64_t kMinChannels = 8;  // 16 bytes of f16/bf16

// `t` [.., C] with its last dim zero-padded to `to`.
Tensor pad_last_dim(const Tensor& t, int64_t to) {
  std::vector<int64_t> dims = t.dims();
  const int64_t c = dims.back(), rows = t.numel() / std::max<int64_t>(c, 1);
  dims.back() = to;
  Tensor out(t.dtype(), dims);  // zero-filled
  const size_t elem = t.nbytes() / static_cast<size_t>(std::max<int64_t>(t.numel(), 1));
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(static_cast<char*>(out.mutable_raw()) + static_cast<size_t>(r * to) * elem,
                static_cast<const char*>(t.raw()) + static_cast<size_t>(r * c) * elem, static_cast<size_t>(c) * elem);
  return out;
}

// Pad(v) with zeros on the last axis, from its C to `to`.
Value* add_channel_pad(Graph& g, Value* v, int64_t to) {
  Dims dims = *pass_util::dims_of(v);
  std::vector<int64_t> pads(2 * dims.size(), 0);
  pads.back() = to - dims.back().value;
  Node* pad = g.add_node("Pad");
  pad->inputs = {v, pass_util::add_constant(g, v->name + "_pads", Tensor::vector_i64(pads))};
  dims.back() = Dim(to);
  Value* out =
      g.add_value(g.unique_name(v->name + "_c" + std::to_string(to)), Type::tensor(v->type.dtype, Shape(dims)));
  pad->outputs = {out};
  out->producer = pad;
  out->producer_output = 0;
  return out;
}

// A group-1 layer whose input has a fixed C under kMinChannels, and whose
// output is wide enough for tensor cores to matter.
bool pads_channels(const Node& n) {
  const Dims *x = pass_util::dims_of(n.input(0)), *w = pass_util::dims_of(n.input(1));
  if (n.attr_int("group", 1) != 1 || !x || x->size() != 4 || !w || w->size() != 4) return false;
  return (*x)[1].is_fixed() && (*x)[1].value < kMinChannels && (*w)[0].is_fixed() && (*w)[0].value >= 32;
}

bool rank4(const Value* v) { return v && v->type.is_tensor() && v->type.shape.rank() == 4; }

bool is_plain_conv(const Node& n) { return n.domain.empty() && n.op_type == "Conv" && n.inputs.size() >= 2; }

bool wants_channels_last(const Node& n) {
  const bool fused = n.domain == "kiln" && n.op_type == "FusedConv";
  if (!(fused || is_plain_conv(n)) || n.attr_int("channels_last", 0) != 0) return false;
  const Value *x = n.input(0), *w = n.input(1), *y = n.output(0);
  if (!rank4(x) || !rank4(w) || !rank4(y) || !w->constant) return false;
  if (n.input(3) && !rank4(n.input(3))) return false;
  if (x->type.dtype != DType::kF16 && x->type.dtype != DType::kBF16) return false;
  const std::string pad = n.attr_string("auto_pad", "NOTSET");
  if (pad != "NOTSET" && pad != "VALID") return false;
  const std::vector<int64_t> pads = n.attr_ints("pads", {0, 0, 0, 0});
  return pads.size() == 4 && pads[0] == pads[2] && pads[1] == pads[3];
}

}  // namespace

Status assign_conv_layout(Graph& graph, PassContext& ctx) {
  std::vector<Node*> convs;
  for (const auto& n : graph.nodes())
    if (wants_channels_last(*n)) convs.push_back(n.get());
  if (convs.empty()) return Status::ok();
  // Each NCHW weight permuted (and padded) once, however many layers share it.
  std::map<std::pair<const Value*, bool>, Value*> weights;
  for (Node* n : convs) {
    Value* w = n->inputs[1];
    const bool pad = pads_channels(*n);
    Value*& w_nhwc = weights[{w, pad}];
    if (!w_nhwc) {
      Tensor t = w->constant->transposed(kToNhwc);
      if (!t.is_valid()) continue;
      if (pad) t = pad_last_dim(t, kMinChannels);
      w_nhwc = pass_util::add_constant(graph, w->name + (pad ? "_nhwc_c8" : "_nhwc"), std::move(t));
    }
    if (is_plain_conv(*n)) {
      n->op_type = "FusedConv";
      n->domain = "kiln";
      n->opset = 0;
      n->metadata["kiln.fused"] = "Conv";
    }
    n->inputs[0] = pass_util::add_transpose(graph, n->inputs[0], kToNhwc, "_nhwc");
    if (pad) n->inputs[0] = add_channel_pad(graph, n->inputs[0], kMinChannels);
    n->inputs[1] = w_nhwc;
    if (n->input(3)) n->inputs[3] = pass_util::add_transpose(graph, n->inputs[3], kToNhwc, "_nhwc");
    pass_util::transpose_output(graph, *n, kToNchw, "_nhwc");
    n->attrs["channels_last"] = Attribute::of_int(1);
    n->metadata["kiln.layout"] = "NHWC";
  }
  pass_util::sort_topologically(graph);
  // The pairs between consecutive convolutions cancel at once; those split by
  // a Relu or a residual Add cancel once sunk below it.
  KILN_RETURN_IF_ERROR(eliminate_transposes(graph, ctx));
  KILN_RETURN_IF_ERROR(eliminate_dead_nodes(graph, ctx));
  return sink_transposes(graph, ctx);
}

}  // namespace kiln
