// patchify_conv_to_matmul: a 2-D convolution whose kernel equals its stride
// (no padding, no dilation, one group) reads each input element exactly once,
// in non-overlapping patches: it is one GEMM of the patches, each gathered
// into a row of C*kh*kw elements, by the weight as a [C*kh*kw, K] matrix.
// ViT's 16x16 patch embedding and the 4x4 stems of Swin and ConvNeXt are
// such layers. On the GPU they read 3 input channels, which cuDNN pads to 8
// and runs on slow kernels; as a GEMM the reduction is C*kh*kw deep (768 for
// ViT-B/16) and the gather is one copy of the input. The products and sums
// are the convolution's, so only their order can change the result.
//
//   %w: f32[768,3,16,16] = const ...
//   %y: f32[N,768,14,14] = Conv(%x: f32[N,3,224,224], %w, %b) {kernel_shape=[16,16], strides=[16,16]}
// becomes
//   %y_patch_6d: [N,3,14,16,14,16] = Reshape(%x, [0,3,14,16,14,16])
//   %y_patch_6d_t: [N,14,14,3,16,16] = Transpose(%y_patch_6d) {perm=[0,2,4,1,3,5]}
//   %y_patch_rows: [N,14,14,768] = Reshape(%y_patch_6d_t, [0,14,14,768])
//   %y_patch_mm: [N,14,14,768] = MatMul(%y_patch_rows, %w_rows: [768,768])   # w_rows[c*256+i*16+j, k] = w[k,c,i,j]
//   %y_patch_nhwc: [N,14,14,768] = Add(%y_patch_mm, %b)
//   %y: [N,768,14,14] = Transpose(%y_patch_nhwc) {perm=[0,3,1,2]}
//
// The batch may be dynamic (the Reshapes copy it with 0). The final
// Transpose is left for the transpose passes: ViT's Reshape [N,768,196] and
// Transpose(0,2,1) after it cancel it (eliminate_transposes), so the GEMM's
// output is the token sequence, and fuse_matmul_bias_activation makes the
// MatMul and Add one kiln.FusedMatMul. Runs in the default pipeline after
// fold_batch_norm_into_conv (a BatchNorm after the layer is in W and B by
// then) and before fuse_conv_activation and the CUDA layout passes, so those
// never see the layer; a Relu after it meets the MatMul once sink_transposes
// has moved the Transpose below the Relu.
//
// Left alone: inputs of 8 or more channels (cuDNN's channels-last
// convolution is then an implicit GEMM reading the input in place, where the
// gather would add a copy; ConvNeXt's 2x2 stride-2 downsampling layers over
// 96-384 channels, inside a channels-last region, would gain two Transposes
// each), 1x1 layers (kernel == stride == 1 is already a GEMM over NHWC
// pixels), GEMMs with fewer than 16 output channels or a reduction under 16
// deep (too small for the gather to pay for itself; tensor cores want both
// dims at 16 or more), a non-constant weight, an input whose C, H, W are not
// fixed, and any padding, dilation, group, or H, W not multiples of the
// kernel.
#include <cstdint>
#include <optional>

#include "passes/pass.h"
#include "passes/pass_util.h"

namespace kiln {
namespace {

constexpr int64_t kMinGemmDim = 16;
// The channels cuDNN's tensor-core convolutions want (16 bytes of f16): below
// it they pad the input and run slow kernels, which is what the GEMM avoids.
constexpr int64_t kFewChannels = 8;

struct Patches {
  int64_t c = 0, h = 0, w = 0;    // X [N, c, h, w]
  int64_t k = 0, kh = 0, kw = 0;  // W [k, c, kh, kw]
};

bool all_equal(const std::vector<int64_t>& v, int64_t x) {
  for (int64_t e : v)
    if (e != x) return false;
  return true;
}

// The layer's sizes when `n` is a convolution this pass rewrites.
std::optional<Patches> patches_of(const Node& n) {
  if (!n.domain.empty() || n.op_type != "Conv" || n.outputs.size() != 1 || !n.outputs[0]) return std::nullopt;
  const Value *x = n.input(0), *w = n.input(1), *b = n.input(2);
  const Dims *xd = pass_util::dims_of(x), *wd = pass_util::dims_of(w);
  if (!xd || !wd || xd->size() != 4 || wd->size() != 4 || !w->constant || x->type.dtype != w->type.dtype)
    return std::nullopt;
  for (size_t i = 1; i < 4; ++i)
    if (!(*xd)[i].is_fixed() || !(*wd)[i].is_fixed()) return std::nullopt;
  if (!(*wd)[0].is_fixed()) return std::nullopt;
  const Patches p{(*xd)[1].value, (*xd)[2].value, (*xd)[3].value, (*wd)[0].value, (*wd)[2].value, (*wd)[3].value};
  const std::string auto_pad = n.attr_string("auto_pad", "NOTSET");
  if (auto_pad != "NOTSET" && auto_pad != "VALID") return std::nullopt;
  const std::vector<int64_t> kernel = {p.kh, p.kw};
  if (n.attr_ints("kernel_shape", kernel) != kernel || n.attr_ints("strides", {1, 1}) != kernel ||
      !all_equal(n.attr_ints("dilations", {1, 1}), 1) || !all_equal(n.attr_ints("pads", {0, 0, 0, 0}), 0) ||
      n.attr_int("group", 1) != 1)
    return std::nullopt;
  if ((*wd)[1].value != p.c || p.kh < 1 || p.kw < 1 || p.kh * p.kw == 1 || p.h % p.kh != 0 || p.w % p.kw != 0 ||
      p.h == 0 || p.w == 0)
    return std::nullopt;
  if (p.c >= kFewChannels || p.k < kMinGemmDim || p.c * p.kh * p.kw < kMinGemmDim) return std::nullopt;
  if (w->constant->dims() != std::vector<int64_t>{p.k, p.c, p.kh, p.kw}) return std::nullopt;
  if (b) {  // added over the output's last axis after the MatMul: [K] only
    const Dims* bd = pass_util::dims_of(b);
    if (!bd || bd->size() != 1 || !(*bd)[0].is_fixed() || (*bd)[0].value != p.k || b->type.dtype != x->type.dtype)
      return std::nullopt;
  }
  return p;
}

// W [K, C, kh, kw] read as [K, C*kh*kw] (row k: one filter in the patch's
// (c, i, j) order), transposed so each column is a filter.
Tensor weight_rows(const Tensor& w, const Patches& p) {
  return w.reshaped({p.k, p.c * p.kh * p.kw}).transposed({1, 0});
}

void rewrite(Graph& g, Node& conv, const Patches& p, Tensor w_rows) {
  Value *x = conv.inputs[0], *w = conv.inputs[1], *b = conv.input(2), *y = conv.outputs[0];
  const Dim batch = (*pass_util::dims_of(x))[0];
  const int64_t hp = p.h / p.kh, wp = p.w / p.kw, depth = p.c * p.kh * p.kw;
  const std::string base = y->name + "_patch";
  auto shape = [&](const std::string& name, std::vector<int64_t> v) {
    return pass_util::add_constant(g, name, Tensor::vector_i64(v));
  };
  Value* v = pass_util::add_batched_op(g, "Reshape", {x, shape(base + "_shape6", {0, p.c, hp, p.kh, wp, p.kw})}, batch,
                                       {p.c, hp, p.kh, wp, p.kw}, base + "_6d");
  v = pass_util::add_transpose(g, v, {0, 2, 4, 1, 3, 5}, "_t");
  v->producer->name = conv.name.empty() ? "" : conv.name + "/patches";
  v = pass_util::add_batched_op(g, "Reshape", {v, shape(base + "_shape4", {0, hp, wp, depth})}, batch, {hp, wp, depth},
                                base + "_rows");
  Value* rows = pass_util::add_constant(g, w->name + "_rows", std::move(w_rows));
  v = pass_util::add_batched_op(g, "MatMul", {v, rows}, batch, {hp, wp, p.k}, base + (b ? "_mm" : "_nhwc"));
  v->producer->name = conv.name;
  if (b) v = pass_util::add_batched_op(g, "Add", {v, b}, batch, {hp, wp, p.k}, base + "_nhwc");
  conv.op_type = "Transpose";
  conv.opset = 0;
  conv.attrs.clear();
  conv.attrs["perm"] = Attribute::of_ints({0, 3, 1, 2});
  conv.inputs = {v};
  if (!conv.name.empty()) conv.name += "/nchw";
}

}  // namespace

Status patchify_conv_to_matmul(Graph& graph, PassContext& /*ctx*/) {
  std::vector<std::pair<Node*, Patches>> layers;
  for (const auto& n : graph.nodes())
    if (auto p = patches_of(*n)) layers.emplace_back(n.get(), *p);
  bool changed = false;
  for (auto& [n, p] : layers) {
    Tensor rows = weight_rows(*n->inputs[1]->constant, p);
    if (!rows.is_valid()) continue;
    rewrite(graph, *n, p, std::move(rows));
    changed = true;
  }
  if (changed) pass_util::sort_topologically(graph);
  return Status::ok();
}

}  // namespace kiln
