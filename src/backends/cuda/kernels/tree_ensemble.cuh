// Tree ensembles of ai.onnx.ml (TreeEnsemble-5, TreeEnsembleRegressor and
// TreeEnsembleClassifier) on a forest flattened on the host into one node
// array. A first kernel walks every (row, tree) pair to its leaf; a second
// adds each row's leaves in tree order, in double, as the CPU kernels do, so
// the sums are the CPU's to the last bit before the final rounding. (Without
// scratch for every pair's leaf, the second kernel walks the trees itself.)
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kiln/dtype.h"
#include "support/status.h"

namespace kiln::cuda {

enum class TreeOp { kEnsemble, kRegressor, kClassifier };

// TreeEnsemble-5's numbering of aggregate_function.
enum class TreeAggregate { kAverage = 0, kSum = 1, kMin = 2, kMax = 3 };

enum class TreePostTransform { kNone, kSoftmax, kLogistic, kSoftmaxZero };

constexpr int32_t kTreeLeaf = -1;
// Modes 0..5 are BRANCH_LEQ, LT, GTE, GT, EQ, NEQ; 6 tests set membership.
constexpr int32_t kTreeMember = 6;

// One node. The host checks every node a root reaches (features in range,
// next indices in range, no cycle) before a kernel walks the forest.
struct TreeNode {
  double split = 0;
  int32_t mode = kTreeLeaf;
  int32_t feature = 0;
  int32_t true_next = 0, false_next = 0;  // node indices
  // LEAF: votes [first, first + count); MEMBER: members [first, first + count).
  int32_t first = 0, count = 0;
  int32_t missing_true = 0;  // a NaN feature goes to true_next
};

struct TreeEnsembleParams {
  TreeOp op = TreeOp::kEnsemble;
  TreeAggregate aggregate = TreeAggregate::kSum;
  TreePostTransform post = TreePostTransform::kNone;
  // X: [rows, features] of f32, f64, f16, bf16, i32 or i64.
  DType x_dtype = DType::kF32;
  const void* x = nullptr;
  int64_t rows = 0, features = 0;
  // The forest (device memory).
  const TreeNode* nodes = nullptr;
  const int32_t* roots = nullptr;
  int32_t trees = 0;
  const int64_t* vote_ids = nullptr;  // target or class of each vote
  const double* vote_weights = nullptr;
  const double* members = nullptr;
  const double* base = nullptr;  // base_values (regressor, classifier)
  int64_t base_count = 0;
  const int64_t* labels = nullptr;  // classlabels_int64s (classifier)
  // Targets (or class labels) a vote may name; the classifier's scores have
  // `width` columns (2 for a binary model with one label, else `targets`).
  int64_t targets = 1, width = 1;
  bool binary = false;
  // kEnsemble: y is [rows, targets] of x's dtype; kRegressor: f32 [rows,
  // targets]; kClassifier: y is i64 [rows] and z f32 [rows, width], either
  // may be null.
  void* y = nullptr;
  float* z = nullptr;
  void* workspace = nullptr;  // tree_ensemble_workspace_bytes()
  size_t workspace_bytes = 0;
};

// Scratch for the scores (and the regressor's vote flags), plus, when
// `store_leaves`, the leaf of every (row, tree) pair. Without room for the
// leaves a thread per row walks its trees itself (less parallel, no more
// scratch than the scores).
size_t tree_ensemble_workspace_bytes(TreeOp op, int64_t rows, int64_t trees, int64_t width, bool store_leaves);
Status launch_tree_ensemble(const TreeEnsembleParams& p, cudaStream_t stream);

}  // namespace kiln::cuda
