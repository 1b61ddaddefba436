// What the builder and the planner ask a CUDA kernel definition about one
// node, given directly: for host-only tests of tactic lists and workspace
// sizes (no GPU, no planned graph).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "backends/cuda/cuda_kernel.h"

namespace kiln::cuda {

class FakeQuery : public KernelQuery {
 public:
  using Dims = std::vector<int64_t>;
  FakeQuery(const Node& n, DType t, std::vector<Dims> dims, std::string tactic, size_t limit = SIZE_MAX)
      : node_(n), dtype_(t), dims_(std::move(dims)), tactic_(std::move(tactic)), limit_(limit) {}
  const Node& node() const override { return node_; }
  DType input_dtype(size_t) const override { return dtype_; }
  const Dims* input_dims(size_t i) const override { return i < dims_.size() ? &dims_[i] : nullptr; }
  const Tensor* host_input(size_t) const override { return nullptr; }
  const std::string& tactic() const override { return tactic_; }
  bool allow_tf32() const override { return false; }
  size_t workspace_limit() const override { return limit_; }
  bool exhaustive() const override { return exhaustive_search; }

  bool exhaustive_search = false;  // what exhaustive() answers (--builderOptimizationLevel 5)

 private:
  const Node& node_;
  DType dtype_;
  std::vector<Dims> dims_;
  std::string tactic_;
  size_t limit_;
};

// A kiln.FusedConv {channels_last=1, activation} node reading the named
// inputs (x, w, then the bias b and the residual z where given), for the
// FusedConv tactic tests; a test sets the rest of its attributes.
struct ChannelsLastConvNode {
  Graph g;
  Node* n = nullptr;
  ChannelsLastConvNode(std::initializer_list<const char*> inputs, const char* activation) {
    n = g.add_node("FusedConv", "kiln");
    for (const char* name : inputs) n->inputs.push_back(g.add_value(name));
    n->outputs.push_back(g.add_value("y"));
    n->attrs["channels_last"] = Attribute::of_int(1);
    n->attrs["activation"] = Attribute::of_string(activation);
  }
};

// kiln.FusedConv's CUDA kernel definition (which has tactics and a workspace).
inline const KernelDef& fused_conv_def() {
  const KernelDef* def = KernelRegistry::instance().find("kiln", "FusedConv");
  EXPECT_NE(def, nullptr);
  EXPECT_TRUE(def->tactics && def->workspace);
  return *def;
}

// The tactics domain::op's kernel definition lists, with `limit` candidates
// (and `exhaustive` as --builderOptimizationLevel 5 asks), for one node of
// these inputs (an invalid Tensor: an omitted input) and attributes.
inline std::vector<std::string> listed_tactics(const char* domain, const char* op, const std::vector<Tensor>& ins,
                                               const std::map<std::string, Attribute>& attrs, size_t limit,
                                               bool exhaustive = false) {
  Graph g;
  Node* n = g.add_node(op, domain);
  std::vector<std::vector<int64_t>> dims;
  for (const Tensor& t : ins) {
    n->inputs.push_back(t.is_valid() ? g.add_value("v" + std::to_string(dims.size())) : nullptr);
    dims.push_back(t.is_valid() ? t.dims() : std::vector<int64_t>{});
  }
  n->outputs.push_back(g.add_value("y"));
  n->attrs = attrs;
  const KernelDef* def = KernelRegistry::instance().find(domain, op);
  EXPECT_TRUE(def && def->tactics) << op;
  if (!def || !def->tactics) return {};
  FakeQuery q(*n, ins[0].dtype(), dims, "");
  q.exhaustive_search = exhaustive;
  return def->tactics(q, limit);
}

inline bool offers(const std::vector<std::string>& tactics, const char* tactic) {
  return std::find(tactics.begin(), tactics.end(), tactic) != tactics.end();
}

}  // namespace kiln::cuda
