#include "passes/pass_util.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "ir/half.h"
#include "ir/rewrite.h"

namespace kiln::pass_util {

Node* producer_of(const Value* v, const char* op) {
  if (!v || !v->producer || !v->producer->domain.empty() || v->producer->op_type != op) return nullptr;
  return v->producer;
}

const Dims* dims_of(const Value* v) {
  return v && v->type.is_tensor() && v->type.shape.has_rank() ? &*v->type.shape.dims : nullptr;
}

bool is_unary_elementwise(const Node& n) {
  static const std::set<std::string, std::less<>> ops = {
      "Abs",  "Acos",        "Acosh",      "Asin",     "Asinh", "Atan",      "Atanh",   "Cast",
      "Ceil", "Celu",        "Cos",        "Cosh",     "Elu",   "Erf",       "Exp",     "Floor",
      "Gelu", "HardSigmoid", "HardSwish",  "IsInf",    "IsNaN", "LeakyRelu", "Log",     "Mish",
      "Neg",  "Not",         "Reciprocal", "Relu",     "Round", "Selu",      "Sigmoid", "Sign",
      "Sin",  "Sinh",        "Softplus",   "Softsign", "Sqrt",  "Tan",       "Tanh",    "ThresholdedRelu"};
  return n.domain.empty() && n.inputs.size() == 1 && n.outputs.size() == 1 && ops.count(n.op_type) != 0;
}

std::optional<float> clip_bound(const Value* v, float absent) {
  if (!v) return absent;
  if (!v->constant || v->constant->numel() != 1) return std::nullopt;
  auto values = float_values(*v->constant);
  if (!values) return std::nullopt;
  return static_cast<float>((*values)[0]);
}

bool only_reader_is(const Graph& g, const Value* v, const Node* reader) {
  if (is_graph_output(g, v)) return false;
  auto users = g.users(v);
  if (users.size() != 1 || users[0] != reader) return false;
  int reads = 0;
  for (const Value* in : reader->inputs) reads += in == v;
  return reads == 1;
}

bool fully_named(const Shape& s) {
  if (!s.has_rank()) return false;
  for (const Dim& d : *s.dims)
    if (d.is_unknown()) return false;
  return true;
}

std::optional<std::vector<int64_t>> reshape_target(const Shape& in, const Shape& out) {
  if (!fully_named(out) || !in.has_rank()) return std::nullopt;
  std::vector<int64_t> s;
  bool inferred = false;
  for (size_t i = 0; i < out.dims->size(); ++i) {
    const Dim& d = (*out.dims)[i];
    if (d.is_fixed() && d.value > 0) {
      s.push_back(d.value);
    } else if (d.is_symbolic() && i < in.dims->size() && (*in.dims)[i] == d) {
      s.push_back(0);  // copy the input's dim: the same symbol
    } else if (!inferred && !d.is_fixed()) {
      s.push_back(-1);  // left for the runtime to infer from the element count
      inferred = true;
    } else {
      return std::nullopt;  // a zero dim, or a second dim to infer
    }
  }
  return s;
}

Value* add_constant(Graph& g, const std::string& base, Tensor t) {
  Value* v = g.add_value(g.unique_name(base), Type::tensor(t.dtype(), Shape::of(t.dims())));
  v->constant = std::make_shared<const Tensor>(std::move(t));
  return v;
}

std::optional<std::vector<double>> float_values(const Tensor& t) {
  DType d = t.dtype();
  if (d != DType::kF32 && d != DType::kF64 && d != DType::kF16 && d != DType::kBF16) return std::nullopt;
  std::vector<double> out(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) out[static_cast<size_t>(i)] = t.element_as_double(i);
  return out;
}

Tensor float_tensor(DType dtype, std::vector<int64_t> dims, const std::vector<double>& values) {
  Tensor t(dtype, std::move(dims));
  for (size_t i = 0; i < values.size(); ++i) {
    auto f = static_cast<float>(values[i]);
    switch (dtype) {
      case DType::kF64: t.mutable_data<double>()[i] = values[i]; break;
      case DType::kF32: t.mutable_data<float>()[i] = f; break;
      case DType::kF16: t.mutable_data<uint16_t>()[i] = f32_to_f16(f); break;
      case DType::kBF16: t.mutable_data<uint16_t>()[i] = f32_to_bf16(f); break;
      default: break;
    }
  }
  return t;
}

bool same_dim(const Dim& a, const Dim& b) { return !a.is_unknown() && a == b; }

std::optional<double> scalar_constant(const Value* v, int64_t rank) {
  if (!v || !v->constant || v->constant->numel() != 1 || v->constant->rank() > rank) return std::nullopt;
  switch (v->constant->dtype()) {
    case DType::kF32:
    case DType::kF64:
    case DType::kF16:
    case DType::kBF16:
    case DType::kI64:
    case DType::kI32:
    case DType::kI16:
    case DType::kI8: return v->constant->element_as_double(0);
    default: return std::nullopt;
  }
}

bool near_value(double x, double want, DType dtype) {
  double tol = 1e-6;  // f32 keeps 24 bits; exporters print constants with 7-8 digits
  if (dtype == DType::kF64) tol = 1e-12;
  if (dtype == DType::kF16) tol = 1e-3;
  if (dtype == DType::kBF16) tol = 8e-3;
  return std::abs(x - want) <= tol * std::abs(want);
}

Node* insert_node_before(Graph& g, const Node* before, const std::string& op_type) {
  Node* n = g.add_node(op_type);
  auto& nodes = g.mutable_nodes();
  auto at = std::find_if(nodes.begin(), nodes.end(), [&](const auto& p) { return p.get() == before; });
  if (at != nodes.end()) std::rotate(at, nodes.end() - 1, nodes.end());
  return n;
}

bool forward(Graph& g, Value* out, Value* in, std::set<const Node*>& removed, const Node* node) {
  if (!out || !in || is_graph_output(g, out)) return false;
  replace_uses(g, out, in);
  removed.insert(node);
  return true;
}

void sort_topologically(Graph& g) {
  auto& nodes = g.mutable_nodes();
  std::map<const Value*, const Node*> producer;
  for (auto& n : nodes)
    for (Value* v : n->outputs)
      if (v) producer[v] = n.get();
  std::set<const Node*> placed;
  std::vector<std::unique_ptr<Node>> sorted;
  std::vector<std::unique_ptr<Node>> pending = std::move(nodes);
  while (!pending.empty()) {
    bool progress = false;
    for (auto& n : pending) {
      bool ready = true;
      for (Value* v : n->inputs) {
        auto it = v ? producer.find(v) : producer.end();
        if (it != producer.end() && it->second != n.get() && !placed.count(it->second)) ready = false;
      }
      if (!ready) continue;
      placed.insert(n.get());
      sorted.push_back(std::move(n));
      progress = true;
    }
    std::erase_if(pending, [](const auto& n) { return !n; });
    if (!progress) {  // a cycle: leave the rest as it was
      for (auto& n : pending) sorted.push_back(std::move(n));
      break;
    }
  }
  nodes = std::move(sorted);
}

std::optional<std::vector<int64_t>> transpose_perm(const Node& t) {
  if (!t.domain.empty() || t.op_type != "Transpose" || t.inputs.size() != 1) return std::nullopt;
  std::vector<int64_t> p;
  if (t.has_attr("perm")) {
    p = t.attr_ints("perm");
  } else {
    const Value* in = t.input(0);
    if (!in || !in->type.is_tensor() || !in->type.shape.has_rank()) return std::nullopt;
    p.resize(static_cast<size_t>(in->type.shape.rank()));
    for (size_t i = 0; i < p.size(); ++i) p[i] = static_cast<int64_t>(p.size() - 1 - i);
  }
  std::vector<bool> seen(p.size(), false);
  for (int64_t a : p) {
    if (a < 0 || a >= static_cast<int64_t>(p.size()) || seen[static_cast<size_t>(a)]) return std::nullopt;
    seen[static_cast<size_t>(a)] = true;
  }
  return p;
}

std::vector<int64_t> inverse_perm(const std::vector<int64_t>& perm) {
  std::vector<int64_t> inv(perm.size());
  for (size_t j = 0; j < perm.size(); ++j) inv[static_cast<size_t>(perm[j])] = static_cast<int64_t>(j);
  return inv;
}

Shape permuted_shape(const Shape& s, const std::vector<int64_t>& perm) {
  std::vector<Dim> d(perm.size());
  for (size_t j = 0; j < perm.size(); ++j) d[j] = s[static_cast<size_t>(perm[j])];
  return Shape(d);
}

Value* add_transpose(Graph& g, Value* v, const std::vector<int64_t>& perm, const std::string& suffix) {
  Node* t = g.add_node("Transpose");
  t->attrs["perm"] = Attribute::of_ints(perm);
  t->inputs = {v};
  Value* out =
      g.add_value(g.unique_name(v->name + suffix), Type::tensor(v->type.dtype, permuted_shape(v->type.shape, perm)));
  t->outputs = {out};
  out->producer = t;
  out->producer_output = 0;
  return out;
}

Value* transpose_output(Graph& g, Node& node, const std::vector<int64_t>& perm, const std::string& suffix) {
  Value* out = node.outputs[0];
  Value* inner = g.add_value(g.unique_name(out->name + suffix),
                             Type::tensor(out->type.dtype, permuted_shape(out->type.shape, inverse_perm(perm))));
  node.outputs[0] = inner;
  inner->producer = &node;
  inner->producer_output = 0;
  Node* t = g.add_node("Transpose");
  t->attrs["perm"] = Attribute::of_ints(perm);
  t->inputs = {inner};
  t->outputs = {out};
  out->producer = t;
  out->producer_output = 0;
  return inner;
}

Value* add_batched_op(Graph& g, const char* op, std::vector<Value*> inputs, const Dim& batch,
                      const std::vector<int64_t>& dims, const std::string& name) {
  Node* n = g.add_node(op);
  n->inputs = std::move(inputs);
  Dims d{batch};
  for (int64_t x : dims) d.push_back(Dim(x));
  Value* out = g.add_value(g.unique_name(name), Type::tensor(n->inputs[0]->type.dtype, Shape(d)));
  n->outputs = {out};
  out->producer = n;
  out->producer_output = 0;
  return out;
}

}  // namespace kiln::pass_util
