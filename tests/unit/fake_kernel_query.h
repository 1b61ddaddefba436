// What the builder and the planner ask a CUDA kernel definition about one
// node, given directly: for host-only tests of tactic lists and workspace
// sizes (no GPU, no planned graph).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
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

inline bool offers(const std::vector<std::string>& tactics, const char* tactic) {
  return std::find(tactics.begin(), tactics.end(), tactic) != tactics.end();
}

}  // namespace kiln::cuda
