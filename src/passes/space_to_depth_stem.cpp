// space_to_depth_stem: on the CUDA backend, an image stem (a 16-bit 2-D
// convolution with stride 2 over fewer than 8 input channels, such as
// ResNet's 7x7 over RGB) becomes a stride-1 convolution over the input's 2x2
// blocks laid out as channels (space-to-depth). cuDNN runs a stride-2 layer
// over 3 (or 8 padded) channels on slow kernels; over 12 channels padded to
// 16 with stride 1 it runs an implicit GEMM with a 16-times deeper reduction
// per tap. The taps are the same products, so the result is the same up to
// the order of the sums.
//
// With the input padded by p' (p rounded up to even) before and enough after,
// output row o reads padded rows 2o + j, j = r + (p' - p) for the kernel's r,
// i.e. block row o + j / 2 at phase j % 2: a (k' / 2)-tap convolution with
// stride 1 over blocks, whose weight is the old one shifted by p' - p and
// zero-filled to k' (even) taps, each tap's (phase_h, phase_w, c) as channels.
// The channels are padded to an even count cc, so the 4 * cc block channels
// are a multiple of 8 (the weight is zero in the padding channels).
//
// One kiln.SpaceToDepthPad (ops/space_to_depth_pad.h) pads, cuts the blocks
// and lays them out channels-last in one pass over the input. When the input
// is a Cast (assign_precision's f32 -> f16 input_cast) read only by the stem,
// it reads the Cast's input and casts as it goes, and the Cast is left dead
// (rewrite_for_cuda's eliminate_dead_nodes drops it):
//
//   %x: f16[N,3,224,224] = Cast(%in: f32[N,3,224,224]) {to=10}
//   %y: f16[N,64,112,112] = kiln.FusedConv(%x, %w: [64,3,7,7], %b)
//                             {strides=[2,2], pads=[3,3,3,3], activation="Relu"}
// becomes
//   %x_s2d: f16[N,115,115,16] = kiln.SpaceToDepthPad(%in) {channels=4, pads=[4,4,2,2], to=10}
//   %yn: [N,112,112,64] = kiln.FusedConv(%x_s2d, %ws: [64,4,4,16], %b)
//                           {strides=[1,1], pads=[0,0,0,0], channels_last=1, activation="Relu"}
//   %y: [N,64,112,112] = Transpose(%yn) {perm=[0,3,1,2]}
// (pads: 4 = 3 rounded up to even before; 2 after, so 224 + 4 + 2 = 2 * 115.)
// Runs before assign_conv_layout, whose transpose clean-up then joins %y's
// Transpose with the next layer's.
#include <cstring>

#include "passes/pass.h"
#include "passes/pass_util.h"

namespace kiln {
namespace {

constexpr int64_t kMinChannels = 8;  // 16 bytes of f16/bf16, what cuDNN's tensor-core engines want

struct Stem {
  int64_t c = 0, h = 0, w = 0, k = 0, r = 0, s = 0;  // X [N, c, h, w], W [k, c, r, s]
  int64_t pad_h = 0, pad_w = 0;                      // symmetric pads
};

bool is_conv(const Node& n) {
  return (n.domain.empty() && n.op_type == "Conv") || (n.domain == "kiln" && n.op_type == "FusedConv");
}

bool all_equal(const std::vector<int64_t>& v, int64_t x) {
  for (int64_t e : v)
    if (e != x) return false;
  return true;
}

// The stem's sizes when `n` is a convolution this pass rewrites.
std::optional<Stem> stem_of(const Node& n) {
  if (!is_conv(n) || n.attr_int("channels_last", 0) != 0 || n.attr_int("group", 1) != 1) return std::nullopt;
  if (n.inputs.size() > 3 && n.input(3)) return std::nullopt;  // a residual: not a stem
  const Value *x = n.input(0), *w = n.input(1);
  const Dims *xd = pass_util::dims_of(x), *wd = pass_util::dims_of(w);
  if (!xd || !wd || xd->size() != 4 || !w->constant || wd->size() != 4) return std::nullopt;
  if (x->type.dtype != DType::kF16 && x->type.dtype != DType::kBF16) return std::nullopt;
  for (size_t i = 1; i < 4; ++i)
    if (!(*xd)[i].is_fixed()) return std::nullopt;
  const std::string auto_pad = n.attr_string("auto_pad", "NOTSET");
  if (auto_pad != "NOTSET" && auto_pad != "VALID") return std::nullopt;
  const std::vector<int64_t> pads = n.attr_ints("pads", {0, 0, 0, 0});
  if (!all_equal(n.attr_ints("strides", {1, 1}), 2) || !all_equal(n.attr_ints("dilations", {1, 1}), 1) ||
      pads.size() != 4 || pads[0] != pads[2] || pads[1] != pads[3])
    return std::nullopt;
  Stem s{(*xd)[1].value, (*xd)[2].value, (*xd)[3].value, (*wd)[0].value,
         (*wd)[2].value, (*wd)[3].value, pads[0],        pads[1]};
  if (s.c >= kMinChannels || s.k < 32 || (*wd)[1].value != s.c || s.r < 3 || s.s < 3) return std::nullopt;
  return s;
}

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// One spatial axis: input length, kernel taps, symmetric pad, stride 2.
struct Axis {
  int64_t shift = 0;      // p' - p: the kernel's first tap in the padded input
  int64_t before = 0;     // p', even
  int64_t after = 0;      // pad after, so the padded length is 2 * blocks
  int64_t taps = 0;       // k' / 2: taps over blocks
  int64_t blocks = 0;     // padded length / 2
  int64_t out = 0;        // the convolution's output length
  bool possible = false;  // no pad after would be negative
};

Axis axis_of(int64_t len, int64_t k, int64_t p) {
  Axis a;
  a.out = (len + 2 * p - k) / 2 + 1;
  a.before = round_up(p, 2);
  a.shift = a.before - p;
  a.taps = round_up(k + a.shift, 2) / 2;
  a.blocks = a.out - 1 + a.taps;
  a.after = 2 * a.blocks - len - a.before;
  a.possible = a.out > 0 && a.after >= 0;
  return a;
}

// W [k, c, r, s] as the blocks' weight [k, taps_h, taps_w, 4 * cc]: channel
// (phase_h * 2 + phase_w) * cc + ci, zero where the shifted tap is outside W
// and in the padding channels ci >= c.
Tensor block_weight(const Tensor& w, const Stem& s, const Axis& ah, const Axis& aw, int64_t cc) {
  Tensor out(w.dtype(), {s.k, ah.taps, aw.taps, 4 * cc});  // zero-filled
  const size_t elem = dtype_storage_bytes(w.dtype(), 1);
  const char* src = static_cast<const char*>(w.raw());
  char* dst = static_cast<char*>(out.mutable_raw());
  for (int64_t ko = 0; ko < s.k; ++ko)
    for (int64_t ci = 0; ci < s.c; ++ci)
      for (int64_t r = 0; r < s.r; ++r)
        for (int64_t q = 0; q < s.s; ++q) {
          const int64_t jh = r + ah.shift, jw = q + aw.shift;
          const int64_t channel = ((jh % 2) * 2 + jw % 2) * cc + ci;
          const int64_t to = ((ko * ah.taps + jh / 2) * aw.taps + jw / 2) * 4 * cc + channel;
          const int64_t from = ((ko * s.c + ci) * s.r + r) * s.s + q;
          std::memcpy(dst + static_cast<size_t>(to) * elem, src + static_cast<size_t>(from) * elem, elem);
        }
  return out;
}

// The Cast that x comes from when the stem is its only reader and the CUDA
// kernel reads its input (f32, or a 16-bit float of the other kind): then
// SpaceToDepthPad casts as it goes and the Cast is left dead. Null if none.
Node* foldable_cast(const Graph& g, const Node& conv) {
  Node* cast = pass_util::producer_of(conv.inputs[0], "Cast");
  if (!cast || !cast->input(0) || !pass_util::only_reader_is(g, conv.inputs[0], &conv)) return nullptr;
  const DType from = cast->input(0)->type.dtype;
  return from == DType::kF32 || from == DType::kF16 || from == DType::kBF16 ? cast : nullptr;
}

// Rewrites the stem.
void rewrite(Graph& g, Node& n, const Stem& s, const Axis& ah, const Axis& aw) {
  Value* x = n.inputs[0];
  const Dim batch = (*pass_util::dims_of(x))[0];
  // 4 * cc = round_up(4 * c, kMinChannels): the block channels need no pad of their own.
  static_assert(kMinChannels == 8, "cc = round_up(c, 2) makes 4 * cc a multiple of 8");
  const int64_t hb = ah.blocks, wb = aw.blocks, cc = round_up(s.c, 2), c4 = 4 * cc;
  Node* cast = foldable_cast(g, n);
  Node* blocks = g.add_node("SpaceToDepthPad");
  blocks->domain = "kiln";
  blocks->opset = 0;
  blocks->inputs = {cast ? cast->inputs[0] : x};
  blocks->attrs["pads"] = Attribute::of_ints({ah.before, aw.before, ah.after, aw.after});
  blocks->attrs["channels"] = Attribute::of_int(cc);
  if (cast) blocks->attrs["to"] = Attribute::of_int(static_cast<int64_t>(x->type.dtype));
  Value* v = g.add_value(g.unique_name(x->name + "_s2d"),
                         Type::tensor(x->type.dtype, Shape(Dims{batch, Dim(hb), Dim(wb), Dim(c4)})));
  blocks->outputs = {v};
  v->producer = blocks;
  v->producer_output = 0;
  n.inputs[0] = v;
  n.inputs[1] =
      pass_util::add_constant(g, n.inputs[1]->name + "_s2d", block_weight(*n.inputs[1]->constant, s, ah, aw, cc));
  if (n.domain.empty()) {
    n.op_type = "FusedConv";
    n.domain = "kiln";
    n.opset = 0;
    n.metadata["kiln.fused"] = "Conv";
  }
  n.attrs["kernel_shape"] = Attribute::of_ints({ah.taps, aw.taps});
  n.attrs["strides"] = Attribute::of_ints({1, 1});
  n.attrs["pads"] = Attribute::of_ints({0, 0, 0, 0});
  n.attrs["dilations"] = Attribute::of_ints({1, 1});
  n.attrs.erase("auto_pad");
  n.attrs["channels_last"] = Attribute::of_int(1);
  n.metadata["kiln.layout"] = "NHWC";
  n.metadata["kiln.space_to_depth"] = "2";
  pass_util::transpose_output(g, n, {0, 3, 1, 2}, "_nhwc");
}

}  // namespace

Status space_to_depth_stem(Graph& graph, PassContext& /*ctx*/) {
  std::vector<std::pair<Node*, Stem>> stems;
  for (const auto& n : graph.nodes())
    if (auto s = stem_of(*n)) stems.emplace_back(n.get(), *s);
  for (auto& [n, s] : stems) {
    const Axis ah = axis_of(s.h, s.r, s.pad_h), aw = axis_of(s.w, s.s, s.pad_w);
    if (ah.possible && aw.possible) rewrite(graph, *n, s, ah, aw);
  }
  if (!stems.empty()) pass_util::sort_topologically(graph);
  return Status::ok();
}

}  // namespace kiln
