#include "ops/elementwise_program.h"

#include <iterator>

namespace kiln {
namespace {

struct OpcodeRow {
  ElementwiseOpcode op;
  const char* name;
  int arity;
};

constexpr OpcodeRow kOpcodes[] = {
    {ElementwiseOpcode::kAdd, "Add", 2},
    {ElementwiseOpcode::kSub, "Sub", 2},
    {ElementwiseOpcode::kMul, "Mul", 2},
    {ElementwiseOpcode::kDiv, "Div", 2},
    {ElementwiseOpcode::kPow, "Pow", 2},
    {ElementwiseOpcode::kMax, "Max", 2},
    {ElementwiseOpcode::kMin, "Min", 2},
    {ElementwiseOpcode::kLeakyRelu, "LeakyRelu", 2},
    {ElementwiseOpcode::kNeg, "Neg", 1},
    {ElementwiseOpcode::kAbs, "Abs", 1},
    {ElementwiseOpcode::kExp, "Exp", 1},
    {ElementwiseOpcode::kLog, "Log", 1},
    {ElementwiseOpcode::kSqrt, "Sqrt", 1},
    {ElementwiseOpcode::kReciprocal, "Reciprocal", 1},
    {ElementwiseOpcode::kRelu, "Relu", 1},
    {ElementwiseOpcode::kSigmoid, "Sigmoid", 1},
    {ElementwiseOpcode::kTanh, "Tanh", 1},
    {ElementwiseOpcode::kErf, "Erf", 1},
    {ElementwiseOpcode::kSoftplus, "Softplus", 1},
    {ElementwiseOpcode::kHardSwish, "HardSwish", 1},
    {ElementwiseOpcode::kGelu, "Gelu", 1},
    {ElementwiseOpcode::kGeluTanh, "GeluTanh", 1},
    {ElementwiseOpcode::kCast, "Cast", 1},
    {ElementwiseOpcode::kClip, "Clip", 3},
    {ElementwiseOpcode::kHardSigmoid, "HardSigmoid", 3},
};

const OpcodeRow* row_of(ElementwiseOpcode op) {
  for (const OpcodeRow& r : kOpcodes)
    if (r.op == op) return &r;
  return nullptr;
}

}  // namespace

const char* elementwise_opcode_name(ElementwiseOpcode op) {
  const OpcodeRow* r = row_of(op);
  return r ? r->name : "?";
}

int elementwise_opcode_arity(ElementwiseOpcode op) {
  const OpcodeRow* r = row_of(op);
  return r ? r->arity : 0;
}

bool is_program_dtype(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16; }

void ElementwiseProgram::write_to(Node& node) const {
  std::vector<std::string> ops;
  std::vector<int64_t> args, dtypes;
  for (const ElementwiseInstruction& ins : code) {
    ops.emplace_back(elementwise_opcode_name(ins.op));
    args.insert(args.end(), std::begin(ins.args), std::end(ins.args));
    dtypes.push_back(static_cast<int64_t>(ins.dtype));
  }
  node.attrs["ops"] = Attribute::of_strings(std::move(ops));
  node.attrs["args"] = Attribute::of_ints(std::move(args));
  node.attrs["dtypes"] = Attribute::of_ints(std::move(dtypes));
  node.attrs["constants"] = Attribute::of_floats(constants);
}

Expected<ElementwiseProgram> read_elementwise_program(const Node& node) {
  const std::string who = node.label();
  const Attribute* ops = node.attr("ops");
  if (!ops || ops->kind != Attribute::Kind::kStrings || ops->strings.empty())
    return invalid_model("{}: attribute 'ops' must be a non-empty list of strings", who);
  const std::vector<int64_t> args = node.attr_ints("args");
  const std::vector<int64_t> dtypes = node.attr_ints("dtypes");
  const size_t n = ops->strings.size();
  if (args.size() != 3 * n)
    return invalid_model("{}: 'args' holds {} slots; {} instructions need 3 each ({})", who, args.size(), n, 3 * n);
  if (dtypes.size() != n)
    return invalid_model("{}: 'dtypes' holds {} entries for {} instructions", who, dtypes.size(), n);
  ElementwiseProgram p;
  p.num_inputs = static_cast<int>(node.inputs.size());
  p.constants = node.attr_floats("constants");
  for (size_t i = 0; i < n; ++i) {
    ElementwiseInstruction ins;
    const OpcodeRow* row = nullptr;
    for (const OpcodeRow& r : kOpcodes)
      if (ops->strings[i] == r.name) row = &r;
    if (!row) return unsupported("{}: instruction {} has unknown opcode '{}'", who, i, ops->strings[i]);
    ins.op = row->op;
    const int defined = p.first_result_slot() + static_cast<int>(i);  // slots readable here
    for (int k = 0; k < 3; ++k) {
      const int64_t slot = args[3 * i + k];
      if (k >= row->arity) {
        if (slot != -1)
          return invalid_model("{}: instruction {} ({}) takes {} operands but names slot {} as operand {}", who, i,
                               row->name, row->arity, slot, k);
        continue;
      }
      if (slot < 0 || slot >= defined)
        return invalid_model("{}: instruction {} ({}) reads slot {}, but only slots 0..{} are defined there", who, i,
                             row->name, slot, defined - 1);
      ins.args[k] = static_cast<int32_t>(slot);
    }
    ins.dtype = static_cast<DType>(dtypes[i]);
    if (!is_program_dtype(ins.dtype))
      return invalid_model("{}: instruction {} ({}) has dtype {}; a program computes in f32, f16 or bf16", who, i,
                           row->name, dtypes[i]);
    p.code.push_back(ins);
  }
  for (size_t i = 0; i < node.inputs.size(); ++i)
    if (!node.inputs[i]) return invalid_model("{}: input {} is omitted; every input is an operand", who, i);
  return p;
}

}  // namespace kiln
