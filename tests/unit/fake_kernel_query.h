// What the builder and the planner ask a CUDA kernel definition about one
// node, given directly: for host-only tests of tactic lists and workspace
// sizes (no GPU, no planned graph).
#pragma once

#include <cstddef>
#include <cstdint>
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

 private:
  const Node& node_;
  DType dtype_;
  std::vector<Dims> dims_;
  std::string tactic_;
  size_t limit_;
};

}  // namespace kiln::cuda
