// assign_precision: with --fp16 (or --bf16), the ops that are safe and fast in
// 16 bits compute in it: their f32 float inputs and outputs become f16, f32
// weights they read are converted once at build time, and Casts join the
// 16-bit regions to the f32 rest (graph inputs and outputs keep their types).
// The kernels accumulate in f32 (matmuls, convolutions, normalization
// statistics, softmax), so a 16-bit op keeps f32 accuracy inside. Ops outside
// the list stay f32 (Exp, Pow, Sin/Cos of large angles, sums that can grow
// past 65504, losses, anything unusual): safe by default. Each node records
// its choice in metadata["kiln.precision"], which `kiln inspect` shows.
// Bodies of If, Loop and Scan keep their types: a value of the graph that a
// body reads comes back to f32 for it (a Cast before the node holding the
// body), as for any op off the list.
//
//   graph(%x: f32[8,4]) {                 graph(%x: f32[8,4]) {
//     %w: f32[4,4] = const ...              %w: f16[4,4] = const ...
//     %y: f32[8,4] = MatMul(%x, %w)   ->    %x16: f16[8,4] = Cast(%x) {to=f16}
//     %z: f32[8,4] = Exp(%y)                %y: f16[8,4] = MatMul(%x16, %w)
//     return %z                             %y32: f32[8,4] = Cast(%y) {to=f32}
//   }                                       %z: f32[8,4] = Exp(%y32)
//                                           return %z
#include <fmt/format.h>

#include <map>
#include <set>

#include "ir/element_cast.h"
#include "ir/rewrite.h"
#include "passes/pass.h"

namespace kiln {
namespace {

// Ops that compute well in 16 bits with f32 accumulation inside the kernel,
// and which of their inputs carry the data (others, like Resize's scales,
// keep their types); empty means every f32 input. Ops of another domain are
// spelled "domain.Op".
const std::map<std::string, std::set<size_t>, std::less<>>& reduced_ops() {
  static const std::map<std::string, std::set<size_t>, std::less<>> ops = {
      {"Conv", {}},
      {"ConvTranspose", {}},
      {"kiln.FusedConv", {}},  // its residual Z is lowered with X
      {"MatMul", {}},
      {"Gemm", {}},
      {"kiln.FusedMatMul", {}},
      {"Attention", {}},
      {"Add", {}},
      {"Sub", {}},
      {"Mul", {}},
      {"Div", {}},
      {"Relu", {}},
      {"LeakyRelu", {}},
      {"PRelu", {}},
      {"Sigmoid", {}},
      {"HardSigmoid", {}},
      {"HardSwish", {}},
      {"Tanh", {}},
      {"Gelu", {}},
      {"Erf", {}},
      {"Swish", {}},
      {"Mish", {}},
      {"Softplus", {}},
      {"Elu", {}},
      {"Neg", {}},
      {"Abs", {}},
      {"Sqrt", {}},
      {"Reciprocal", {}},
      {"Clip", {}},
      {"Max", {}},
      {"Min", {}},
      {"Where", {}},
      {"Equal", {}},
      {"Less", {}},
      {"Greater", {}},
      {"MaxPool", {}},
      {"AveragePool", {}},
      {"GlobalAveragePool", {}},
      {"GlobalMaxPool", {}},
      {"Softmax", {}},
      {"LogSoftmax", {}},
      {"LayerNormalization", {}},
      {"kiln.SkipLayerNormalization", {}},
      {"RMSNormalization", {}},
      {"GroupNormalization", {}},
      {"InstanceNormalization", {}},
      {"BatchNormalization", {}},
      {"ReduceMean", {}},
      {"ReduceMax", {}},
      {"ReduceMin", {}},
      {"Transpose", {}},
      {"Reshape", {}},
      {"Flatten", {}},
      {"Squeeze", {}},
      {"Unsqueeze", {}},
      {"Concat", {}},
      {"Split", {}},
      {"Slice", {}},
      {"Gather", {}},
      {"GatherElements", {}},
      {"Expand", {}},
      {"Tile", {}},
      {"Pad", {0, 2}},
      {"Identity", {}},
      {"Dropout", {0}},
      {"Resize", {0}},
      {"DepthToSpace", {}},
      {"SpaceToDepth", {}},
  };
  return ops;
}

bool is_f32_tensor(const Value* v) { return v && v->type.is_tensor() && v->type.dtype == DType::kF32; }

// Shape arithmetic (constants and shape values only) is evaluated on the host:
// it keeps its types.
bool is_shape_arithmetic(const Node& n) {
  if (n.inputs.empty()) return false;
  for (const Value* v : n.inputs)
    if (v && !v->constant && !v->shape_value) return false;
  return true;
}

class PrecisionAssigner {
 public:
  PrecisionAssigner(Graph& g, DType target) : g_(g), target_(target) {}
  Status run();

 private:
  // `v` in the other float type: a converted constant, or a Cast's output.
  Expected<Value*> converted(Value* v, DType to, const Node* before);
  // Points the reads of lowered values in `n`'s bodies (and theirs) at f32
  // copies made before `holder` (the node of this graph holding them).
  Status restore_body_reads(const Node& n, const Node* holder);

  Graph& g_;
  DType target_;
  std::map<std::pair<Value*, DType>, Value*> casts_;
  std::map<const Node*, std::vector<Node*>> inserted_before_;  // Casts to place before a node
  std::set<Value*> lowered_;                                   // f32 values now of the target type
};

Expected<Value*> PrecisionAssigner::converted(Value* v, DType to, const Node* before) {
  auto key = std::make_pair(v, to);
  if (auto it = casts_.find(key); it != casts_.end()) return it->second;
  Value* out = nullptr;
  if (v->constant) {
    KILN_ASSIGN_OR_RETURN(Tensor t, cast_tensor(*v->constant, to));
    out = g_.add_value(g_.unique_name(v->name + (to == DType::kF32 ? "_f32" : "_lp")), v->type);
    out->type.dtype = to;
    out->constant = std::make_shared<const Tensor>(std::move(t));
  } else {
    Node* cast = g_.add_node("Cast");
    cast->name = g_.unique_name(v->name + "_cast");
    cast->opset = 21;
    cast->attrs["to"] = Attribute::of_int(static_cast<int64_t>(to));
    cast->metadata["kiln.precision"] = "inserted: joins f32 and 16-bit layers";
    out = g_.add_value(g_.unique_name(v->name + (to == DType::kF32 ? "_f32" : "_lp")), v->type);
    out->type.dtype = to;
    out->producer = cast;
    out->producer_output = 0;
    cast->inputs = {v};
    cast->outputs = {out};
    inserted_before_[before].push_back(cast);
  }
  casts_[key] = out;
  return out;
}

Status PrecisionAssigner::restore_body_reads(const Node& n, const Node* holder) {
  for (const auto& [key, a] : n.attrs) {
    std::vector<Graph*> bodies;
    if (a.g) bodies.push_back(a.g.get());
    for (const auto& b : a.graphs) bodies.push_back(b.get());
    for (Graph* body : bodies) {
      for (const auto& inner : body->nodes()) {
        for (Value*& in : inner->inputs) {
          if (!in || !lowered_.count(in)) continue;
          KILN_ASSIGN_OR_RETURN(in, converted(in, DType::kF32, holder));
        }
        KILN_RETURN_IF_ERROR(restore_body_reads(*inner, holder));
      }
      for (Value*& out : body->outputs) {
        if (!lowered_.count(out)) continue;
        KILN_ASSIGN_OR_RETURN(out, converted(out, DType::kF32, holder));
      }
    }
  }
  return Status::ok();
}

Status PrecisionAssigner::run() {
  std::vector<Node*> order;
  for (const auto& n : g_.nodes()) order.push_back(n.get());
  const auto& ops = reduced_ops();
  for (Node* n : order) {
    KILN_RETURN_IF_ERROR(restore_body_reads(*n, n));
    auto entry = ops.find(n->domain.empty() ? n->op_type : n->domain + "." + n->op_type);
    bool has_f32 = false;
    for (const Value* v : n->inputs) has_f32 |= is_f32_tensor(v) || lowered_.count(const_cast<Value*>(v));
    for (const Value* v : n->outputs) has_f32 |= is_f32_tensor(v);
    if (!has_f32 || is_shape_arithmetic(*n)) continue;
    // Shape and Size read only the dims: a lowered input needs no Cast back.
    if (n->domain.empty() && (n->op_type == "Shape" || n->op_type == "Size")) continue;
    if (entry == ops.end()) {
      n->metadata["kiln.precision"] = "f32: not on the 16-bit list";
      // Values lowered by its producers come back to f32 for it.
      for (Value*& in : n->inputs) {
        if (!in || !lowered_.count(in)) continue;
        KILN_ASSIGN_OR_RETURN(in, converted(in, DType::kF32, n));
      }
      continue;
    }
    n->metadata["kiln.precision"] = dtype_name(target_);
    for (size_t i = 0; i < n->inputs.size(); ++i) {
      Value*& in = n->inputs[i];
      const bool data = entry->second.empty() || entry->second.count(i);
      if (!in || !data || !is_f32_tensor(in) || lowered_.count(in)) continue;
      KILN_ASSIGN_OR_RETURN(in, converted(in, target_, n));
    }
    for (Value* out : n->outputs)
      if (is_f32_tensor(out)) {
        out->type.dtype = target_;
        lowered_.insert(out);
      }
  }
  // Graph outputs keep their f32 type and name: the producer writes a new
  // 16-bit value and a Cast gives back the original.
  std::map<Node*, std::vector<Node*>> inserted_after;
  for (Value*& out : g_.outputs) {
    if (!lowered_.count(out)) continue;
    Node* producer = out->producer;
    Value* low = g_.add_value(g_.unique_name(out->name + "_lp"), out->type);
    low->producer = producer;
    low->producer_output = out->producer_output;
    if (producer) producer->outputs[static_cast<size_t>(out->producer_output)] = low;
    replace_uses(g_, out, low);
    out->type.dtype = DType::kF32;
    Node* cast = g_.add_node("Cast");
    cast->name = g_.unique_name(out->name + "_cast");
    cast->opset = 21;
    cast->attrs["to"] = Attribute::of_int(static_cast<int64_t>(DType::kF32));
    cast->metadata["kiln.precision"] = "inserted: graph outputs keep their type";
    cast->inputs = {low};
    cast->outputs = {out};
    out->producer = cast;
    out->producer_output = 0;
    lowered_.erase(out);
    inserted_after[producer].push_back(cast);
  }
  // Nodes in order: each node's inserted Casts just before (or after) it.
  std::map<const Node*, std::unique_ptr<Node>> owned;
  for (auto& n : g_.mutable_nodes()) owned[n.get()] = std::move(n);
  std::vector<std::unique_ptr<Node>> sorted;
  for (Node* n : order) {
    for (Node* c : inserted_before_[n]) sorted.push_back(std::move(owned[c]));
    sorted.push_back(std::move(owned[n]));
    for (Node* c : inserted_after[n]) sorted.push_back(std::move(owned[c]));
  }
  g_.mutable_nodes() = std::move(sorted);
  return Status::ok();
}

}  // namespace

Status assign_precision(Graph& graph, DType target) {
  if (target != DType::kF16 && target != DType::kBF16)
    return internal_error("assign_precision: target {} is not a 16-bit float type", dtype_name(target));
  return PrecisionAssigner(graph, target).run();
}

}  // namespace kiln
