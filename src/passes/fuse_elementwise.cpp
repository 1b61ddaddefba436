// fuse_elementwise: each maximal connected group of two or more elementwise
// ops, linked through values that only one of them reads, becomes one
// kiln::FusedElementwise whose program (ops/elementwise_program.h) computes
// the group per output element; on cuda the builder compiles it with NVRTC,
// so the chain reads its inputs and writes its result once:
//
//   %m: f32[2,3] = Mul(%x, %two)                   %y: f32[2,3] = kiln.FusedElementwise(%x, %b)
//   %a: f32[2,3] = Add(%m, %b)               ->        {args=[0,2,-1,3,1,-1,4,-1,-1], constants=[2],
//   %y: f32[2,3] = Relu(%a)                             dtypes=[1,1,1], ops=["Mul","Add","Relu"]}
//   return %y                                      return %y
//
// (%two a scalar constant, %b: f32[3].) The ops: Add Sub Mul Div Pow, Max and
// Min of two inputs, Neg Abs Exp Log Sqrt Reciprocal Relu Sigmoid Tanh Erf
// Softplus HardSwish Gelu, LeakyRelu, HardSigmoid, Clip with constant bounds,
// and Cast between f32, f16 and bf16; every value f32, f16 or bf16. Scalar
// constants become immediates. A group keeps its last node's output value
// and place (its inputs are all ready there); its inputs must broadcast to
// exactly that output's shape, known at build time (fixed or symbolic dims),
// and at most kMaxProgramInputs of them. A value read by two nodes, or a graph
// output, ends a group: nothing is computed twice.
//
// It runs on the cuda backend after assign_precision (the Casts it adds fuse
// too); the CPU backend interprets the program, bit for bit as the unfused ops.
#include <algorithm>
#include <cstring>
#include <limits>
#include <map>
#include <numeric>
#include <set>
#include <variant>

#include "ops/elementwise_program.h"
#include "ops/infer_util.h"
#include "passes/pass.h"
#include "passes/pass_util.h"

namespace kiln {
namespace {

using Op = ElementwiseOpcode;
using Operand = std::variant<Value*, float>;

// One node as an instruction: its opcode and operands (values or immediates).
struct Step {
  Node* node = nullptr;
  Op op = Op::kAdd;
  std::vector<Operand> operands;
};

bool program_value(const Value* v) { return v && v->type.is_tensor() && is_program_dtype(v->type.dtype); }

// A scalar constant as an immediate, when it does not broadcast the node's
// output to a higher rank; otherwise the value itself (a program input).
Operand operand_of(Value* v, int64_t out_rank) {
  if (std::optional<double> c = pass_util::scalar_constant(v, out_rank)) return static_cast<float>(*c);
  return v;
}

std::optional<Step> step_of(Node& n) {
  static const std::map<std::string, Op> kBinary = {{"Add", Op::kAdd}, {"Sub", Op::kSub}, {"Mul", Op::kMul},
                                                    {"Div", Op::kDiv}, {"Pow", Op::kPow}, {"Max", Op::kMax},
                                                    {"Min", Op::kMin}};
  static const std::map<std::string, Op> kUnary = {
      {"Neg", Op::kNeg},   {"Abs", Op::kAbs},           {"Exp", Op::kExp},
      {"Log", Op::kLog},   {"Sqrt", Op::kSqrt},         {"Reciprocal", Op::kReciprocal},
      {"Relu", Op::kRelu}, {"Sigmoid", Op::kSigmoid},   {"Tanh", Op::kTanh},
      {"Erf", Op::kErf},   {"Softplus", Op::kSoftplus}, {"HardSwish", Op::kHardSwish},
      {"Cast", Op::kCast}};
  if (!n.domain.empty() || n.outputs.size() != 1 || !program_value(n.outputs[0])) return std::nullopt;
  const Shape& out = n.outputs[0]->type.shape;
  if (!out.has_rank()) return std::nullopt;
  Step s;
  s.node = &n;
  if (auto it = kBinary.find(n.op_type); it != kBinary.end()) {
    if (n.inputs.size() != 2 || !n.inputs[0] || !n.inputs[1]) return std::nullopt;
    s.op = it->second;
    s.operands = {operand_of(n.inputs[0], out.rank()), operand_of(n.inputs[1], out.rank())};
  } else if (auto it = kUnary.find(n.op_type); it != kUnary.end()) {
    if (n.inputs.size() != 1 || !n.inputs[0]) return std::nullopt;
    s.op = it->second;
    s.operands = {n.inputs[0]};
  } else if (n.op_type == "Gelu" && n.inputs.size() == 1) {
    const std::string approx = n.attr_string("approximate", "none");
    if (approx != "none" && approx != "tanh") return std::nullopt;
    s.op = approx == "tanh" ? Op::kGeluTanh : Op::kGelu;
    s.operands = {n.inputs[0]};
  } else if (n.op_type == "LeakyRelu" && n.inputs.size() == 1) {
    s.op = Op::kLeakyRelu;
    s.operands = {n.inputs[0], n.attr_float("alpha", 0.01f)};
  } else if (n.op_type == "HardSigmoid" && n.inputs.size() == 1) {
    s.op = Op::kHardSigmoid;
    s.operands = {n.inputs[0], n.attr_float("alpha", 0.2f), n.attr_float("beta", 0.5f)};
  } else if (n.op_type == "Clip" && !n.inputs.empty() && n.inputs.size() <= 3) {
    std::optional<float> lo = pass_util::clip_bound(n.input(1), std::numeric_limits<float>::lowest());
    std::optional<float> hi = pass_util::clip_bound(n.input(2), std::numeric_limits<float>::max());
    if (!lo || !hi) return std::nullopt;
    s.op = Op::kClip;
    s.operands = {n.inputs[0], *lo, *hi};
  } else {
    return std::nullopt;
  }
  // Every value operand must be a tensor the program reads (a Pow exponent of
  // an integer dtype is only taken as an immediate).
  for (const Operand& o : s.operands)
    if (const auto* v = std::get_if<Value*>(&o); v && !program_value(*v)) return std::nullopt;
  return s;
}

struct UnionFind {
  std::vector<size_t> parent;
  explicit UnionFind(size_t n) : parent(n) { std::iota(parent.begin(), parent.end(), 0); }
  size_t find(size_t i) { return parent[i] == i ? i : parent[i] = find(parent[i]); }
  void join(size_t a, size_t b) { parent[find(a)] = find(b); }
};

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

// Whether the inputs broadcast to exactly `out` (rank and every dim known to match).
bool broadcasts_to(const std::vector<Value*>& inputs, const Shape& out) {
  if (!pass_util::fully_named(out)) return false;
  std::vector<const Shape*> shapes;
  for (const Value* v : inputs) shapes.push_back(&v->type.shape);
  Expected<Shape> b = broadcast_shapes(shapes);
  if (!b || !b->has_rank() || b->rank() != out.rank()) return false;
  for (int64_t d = 0; d < out.rank(); ++d)
    if (!pass_util::same_dim((*b)[d], out[d])) return false;
  return true;
}

// The program of a group (its steps in graph order, the last one the root);
// nullopt when its inputs do not fit.
std::optional<ElementwiseProgram> program_of(const std::vector<Step*>& group, std::vector<Value*>& inputs) {
  std::map<const Value*, int> produced;  // a step's output -> its index in the group
  for (size_t i = 0; i < group.size(); ++i) produced[group[i]->node->outputs[0]] = static_cast<int>(i);
  std::map<uint32_t, int> constant_index;
  ElementwiseProgram p;
  for (const Step* s : group)
    for (const Operand& o : s->operands) {
      if (const auto* v = std::get_if<Value*>(&o)) {
        if (!produced.count(*v) && std::find(inputs.begin(), inputs.end(), *v) == inputs.end()) inputs.push_back(*v);
      } else if (constant_index.emplace(bits_of(std::get<float>(o)), static_cast<int>(p.constants.size())).second) {
        p.constants.push_back(std::get<float>(o));
      }
    }
  if (inputs.empty() || inputs.size() > kMaxProgramInputs) return std::nullopt;
  if (!broadcasts_to(inputs, group.back()->node->outputs[0]->type.shape)) return std::nullopt;
  p.num_inputs = static_cast<int>(inputs.size());
  for (const Step* s : group) {
    ElementwiseInstruction ins;
    ins.op = s->op;
    ins.dtype = s->node->outputs[0]->type.dtype;
    for (size_t k = 0; k < s->operands.size(); ++k) {
      const Operand& o = s->operands[k];
      if (const auto* v = std::get_if<Value*>(&o)) {
        auto it = produced.find(*v);
        ins.args[k] = it != produced.end()
                          ? p.first_result_slot() + it->second
                          : static_cast<int>(std::find(inputs.begin(), inputs.end(), *v) - inputs.begin());
      } else {
        ins.args[k] = p.num_inputs + constant_index.at(bits_of(std::get<float>(o)));
      }
    }
    p.code.push_back(ins);
  }
  return p;
}

}  // namespace

Status fuse_elementwise(Graph& graph, PassContext&) {
  std::vector<Step> steps;
  std::map<const Node*, size_t> index;
  for (const auto& np : graph.nodes())
    if (std::optional<Step> s = step_of(*np)) {
      index[np.get()] = steps.size();
      steps.push_back(std::move(*s));
    }
  // Link each step to the step producing an operand that only it reads.
  UnionFind groups(steps.size());
  for (size_t i = 0; i < steps.size(); ++i)
    for (const Operand& o : steps[i].operands) {
      const auto* v = std::get_if<Value*>(&o);
      if (!v || !(*v)->producer) continue;
      auto it = index.find((*v)->producer);
      if (it != index.end() && pass_util::only_reader_is(graph, *v, steps[i].node)) groups.join(it->second, i);
    }
  std::map<size_t, std::vector<Step*>> members;  // in graph order: the last is the group's root
  for (size_t i = 0; i < steps.size(); ++i) members[groups.find(i)].push_back(&steps[i]);
  std::set<const Node*> removed;
  for (auto& [root, group] : members) {
    if (group.size() < 2) continue;
    std::vector<Value*> inputs;
    std::optional<ElementwiseProgram> p = program_of(group, inputs);
    if (!p) continue;
    Node& f = *group.back()->node;
    std::string fused;
    for (const Step* s : group) fused += (fused.empty() ? "" : "+") + s->node->op_type;
    f.op_type = "FusedElementwise";
    f.domain = "kiln";
    f.opset = 0;
    f.inputs = inputs;
    f.attrs.clear();
    p->write_to(f);
    f.metadata["kiln.fused"] = fused;  // what `kiln inspect` shows as the layer's fused ops
    for (size_t i = 0; i + 1 < group.size(); ++i) removed.insert(group[i]->node);
  }
  if (!removed.empty()) graph.erase_nodes_if([&](const Node& n) { return removed.count(&n) != 0; });
  return Status::ok();
}

}  // namespace kiln
