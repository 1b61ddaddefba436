// fuse_conv_max_pool: on the CUDA backend, after the layout passes, a
// channels-last kiln::FusedConv whose only reader is a channels-last 2-D
// MaxPool becomes one FusedConv with pool attributes (ops/fused_pool.h), so
// the convolution's output is never written: ResNet's stem writes
// 112x112x64 and the pool reads it back to write 56x56x64.
//
//   %c: f16[N,112,112,64] = kiln.FusedConv(%x, %w, %b) {activation="Relu", channels_last=1}
//   %p: f16[N,56,56,64] = MaxPool(%c) {channels_last=1, kernel_shape=[3,3], pads=[1,1,1,1], strides=[2,2]}
// becomes
//   %p: f16[N,56,56,64] = kiln.FusedConv(%x, %w, %b) {activation="Relu", channels_last=1,
//                           pool_kernel=[3,3], pool_pads=[1,1,1,1], pool_strides=[2,2]}
//
// Only where kiln's fused kernel (kernels/stem_conv_pool.cu, tactic
// "kiln_igemm_pool") takes the layer: f16/bf16, no residual, the implicit-
// GEMM stem's geometry (stem_conv_fits: group 1, stride 1, dilation 1,
// Cin % 16 == 0 with Cin * KH * KW <= 1024, Cout 16, 32, 64 or 128), and a
// MaxPool with one output (no Indices), explicit pads below its kernel (up to
// 3), strides 1 or 2, dilation 1 and ceil_mode 0 (storage_order only numbers
// Indices). The CUDA kernel keeps an unfused route for the same node (the
// convolution into its workspace, then the pool kernel), which the tuner
// times against the fused one.
#include <map>
#include <memory>
#include <set>

#include "passes/pass.h"
#include "passes/pass_util.h"

namespace kiln {
namespace {

bool all_equal(const std::vector<int64_t>& v, int64_t x) {
  for (int64_t e : v)
    if (e != x) return false;
  return true;
}

// The convolution side: channels-last 2-D FusedConv, f16/bf16, no residual
// or pool yet, and the implicit-GEMM stem's geometry.
bool conv_fits(const Node& c) {
  if (c.domain != "kiln" || c.op_type != "FusedConv" || c.attr_int("channels_last", 0) == 0) return false;
  if (c.input(3) || c.has_attr("pool_kernel") || c.attr_int("group", 1) != 1) return false;
  const Value *x = c.input(0), *w = c.input(1);
  const Dims *xd = pass_util::dims_of(x), *wd = pass_util::dims_of(w);
  if (!xd || !wd || xd->size() != 4 || wd->size() != 4) return false;
  if (x->type.dtype != DType::kF16 && x->type.dtype != DType::kBF16) return false;
  for (const Dim& d : *wd)
    if (!d.is_fixed()) return false;
  const std::string auto_pad = c.attr_string("auto_pad", "NOTSET");
  if ((auto_pad != "NOTSET" && auto_pad != "VALID") || !all_equal(c.attr_ints("strides", {1, 1}), 1) ||
      !all_equal(c.attr_ints("dilations", {1, 1}), 1))
    return false;
  const int64_t cout = (*wd)[0].value, cin = (*wd)[3].value, taps = (*wd)[1].value * (*wd)[2].value;
  return cin % 16 == 0 && cin * taps <= 1024 && (cout == 16 || cout == 32 || cout == 64 || cout == 128);
}

// The pool side: channels-last 2-D MaxPool without Indices, explicit pads.
bool pool_fits(const Node& p) {
  if (!p.domain.empty() || p.op_type != "MaxPool" || p.attr_int("channels_last", 0) == 0) return false;
  if (p.output(1) || p.attr_int("ceil_mode", 0) != 0 || !all_equal(p.attr_ints("dilations", {1, 1}), 1)) return false;
  if (p.attr_string("auto_pad", "NOTSET") != "NOTSET") return false;
  const std::vector<int64_t> k = p.attr_ints("kernel_shape"), s = p.attr_ints("strides", {1, 1}),
                             pads = p.attr_ints("pads", {0, 0, 0, 0});
  if (k.size() != 2 || s.size() != 2 || pads.size() != 4) return false;
  for (size_t i = 0; i < 2; ++i)
    if (k[i] < 1 || k[i] > 3 || s[i] < 1 || s[i] > 2) return false;
  for (size_t i = 0; i < 4; ++i)
    if (pads[i] < 0 || pads[i] >= k[i % 2]) return false;
  return true;
}

}  // namespace

Status fuse_conv_max_pool(Graph& graph, PassContext&) {
  std::set<const Node*> fused;
  for (const std::unique_ptr<Node>& owned : graph.nodes()) {
    Node* pool = owned.get();
    if (!pool_fits(*pool)) continue;
    Value* c = pool->input(0);
    Node* conv = c ? c->producer : nullptr;
    if (!conv || !conv_fits(*conv) || !pass_util::only_reader_is(graph, c, pool)) continue;
    const std::vector<int64_t> kernel = pool->attr_ints("kernel_shape"), strides = pool->attr_ints("strides", {1, 1}),
                               pads = pool->attr_ints("pads", {0, 0, 0, 0});
    const std::string name = pool->name;
    std::map<std::string, std::string> metadata = conv->metadata;
    pool->op_type = "FusedConv";
    pool->domain = "kiln";
    pool->opset = 0;
    pool->inputs = conv->inputs;
    pool->attrs = conv->attrs;
    pool->attrs["pool_kernel"] = Attribute::of_ints(kernel);
    pool->attrs["pool_strides"] = Attribute::of_ints(strides);
    pool->attrs["pool_pads"] = Attribute::of_ints(pads);
    pool->name = conv->name.empty() ? name : conv->name;
    pool->metadata = metadata;
    pool->metadata["kiln.fused"] = (metadata.count("kiln.fused") ? metadata["kiln.fused"] : "Conv") + "+MaxPool";
    fused.insert(conv);
  }
  if (!fused.empty()) graph.erase_nodes_if([&](const Node& n) { return fused.count(&n) != 0; });
  return Status::ok();
}

}  // namespace kiln
