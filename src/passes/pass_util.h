// Small helpers shared by the rewriting passes (not part of the pass API).
#pragma once

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ir/tensor.h"

namespace kiln::pass_util {

// The node producing `v` if it is `op` in the default domain, else null.
Node* producer_of(const Value* v, const char* op);

// Whether `v` is read by exactly one node (here or in a subgraph) and is no graph output.
bool only_reader_is(const Graph& g, const Value* v, const Node* reader);

// The dims of a tensor value whose rank is known, else null.
const Dims* dims_of(const Value* v);

// Whether `n` is a default-domain op with one input and one output whose
// output element j reads only element j of its input (Relu, Exp, Cast, ...).
bool is_unary_elementwise(const Node& n);

// A Clip bound: `absent` when the input is omitted, a constant of one float
// element's value, else nullopt.
std::optional<float> clip_bound(const Value* v, float absent);

// Whether every dim is fixed or symbolic (no unknown dims, rank known).
bool fully_named(const Shape& s);

// The shape tensor of a Reshape from `in` to `out` (allowzero 0): each dim of
// `out` fixed, or 0 where it is the same symbol as `in`'s dim at that index,
// or -1 for one other symbolic dim; nullopt where `out` cannot be written so.
std::optional<std::vector<int64_t>> reshape_target(const Shape& in, const Shape& out);

// A new constant value (no producer) holding `t`, named after `base`.
Value* add_constant(Graph& g, const std::string& base, Tensor t);

// Elements of a float tensor (f32, f64, f16, bf16) as doubles; nullopt for other dtypes.
std::optional<std::vector<double>> float_values(const Tensor& t);
// A tensor of a float dtype (f32, f64, f16, bf16) from doubles.
Tensor float_tensor(DType dtype, std::vector<int64_t> dims, const std::vector<double>& values);

// Whether two dims are known to be the same size: equal fixed sizes or the same symbol.
bool same_dim(const Dim& a, const Dim& b);

// The single element of a constant float or signed integer tensor `v` (a Pow
// exponent may be an integer) that broadcasts into a tensor of rank `rank`
// without growing it (one element, rank <= `rank`).
std::optional<double> scalar_constant(const Value* v, int64_t rank);

// Whether `x` is within a relative tolerance of `want` that fits `dtype`'s
// precision (constants written by exporters are rounded to their dtype).
bool near_value(double x, double want, DType dtype);

// A new node placed just before `before` in the graph's node order.
Node* insert_node_before(Graph& g, const Node* before, const std::string& op_type);

// Readers of `out` read `in` instead and the node goes; false (nothing done)
// when `out` is a graph output, whose name must keep being produced.
bool forward(Graph& g, Value* out, Value* in, std::set<const Node*>& removed, const Node* node);

// The permutation of a default-domain Transpose (its perm, or the reversal
// of its input's dims); nullopt for another node or an invalid perm.
std::optional<std::vector<int64_t>> transpose_perm(const Node& t);
std::vector<int64_t> inverse_perm(const std::vector<int64_t>& perm);
// The dims of Transpose(x, perm) for x of shape `s`: out[j] = s[perm[j]].
Shape permuted_shape(const Shape& s, const std::vector<int64_t>& perm);
// A new Transpose(v, perm), appended to the graph; its output is named v + suffix.
Value* add_transpose(Graph& g, Value* v, const std::vector<int64_t>& perm, const std::string& suffix);
// `node` writes a new value (its output 0 permuted by the inverse of `perm`,
// named after it + suffix) and a Transpose(perm) appended to the graph
// produces the old output, whose name and readers stay. Returns the new value.
Value* transpose_output(Graph& g, Node& node, const std::vector<int64_t>& perm, const std::string& suffix);

// A new node `op`(inputs) with one output, named after `name`, of
// [batch, dims...] in its first input's dtype.
Value* add_batched_op(Graph& g, const char* op, std::vector<Value*> inputs, const Dim& batch,
                      const std::vector<int64_t>& dims, const std::string& name);

// Reorders the nodes so each comes after the producers of its inputs,
// keeping the current order where it already is one (passes append new nodes
// at the end and call this once).
void sort_topologically(Graph& g);

}  // namespace kiln::pass_util
