// The program of a kiln::FusedElementwise node: a straight-line list of float
// instructions evaluated once per output element, read from (and written to)
// four attributes of the node:
//
//   ops       strings  the opcode of each instruction ("Mul", "Add", "Relu", ...)
//   args      ints     3 operand slots per instruction, -1 where the op takes fewer
//   dtypes    ints     per instruction, the float dtype (ONNX number) its result
//                      is rounded to, as the unfused op's output was
//   constants floats   the immediates
//
// Slots number the node's inputs first (0 .. inputs-1), then the constants,
// then the instructions' results in order. The node's output is the last
// instruction's result. Every instruction computes in float on values read as
// float, then rounds to its dtype (f16/bf16 round-trip; f32 unchanged), so a
// fused chain gives the unfused ops' results bit for bit on the CPU.
//
//   %y = kiln.FusedElementwise(%x, %b) {args=[0,2,-1, 3,1,-1, 4,-1,-1],
//        constants=[2], dtypes=[1,1,1], ops=["Mul","Add","Relu"]}
//   is   y = Relu(Add(Mul(x, 2), b))
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "support/status.h"

namespace kiln {

enum class ElementwiseOpcode : uint8_t {
  // Two operands.
  kAdd,
  kSub,
  kMul,
  kDiv,
  kPow,
  kMax,
  kMin,
  kLeakyRelu,  // (x, alpha)
  // One operand.
  kNeg,
  kAbs,
  kExp,
  kLog,
  kSqrt,
  kReciprocal,
  kRelu,
  kSigmoid,
  kTanh,
  kErf,
  kSoftplus,
  kHardSwish,
  kGelu,      // erf form
  kGeluTanh,  // tanh approximation
  kCast,      // only the rounding to the instruction's dtype
  // Three operands.
  kClip,         // (x, lo, hi)
  kHardSigmoid,  // (x, alpha, beta)
};

// The opcode's attribute spelling ("Add", "GeluTanh", ...).
const char* elementwise_opcode_name(ElementwiseOpcode op);
// How many operands the opcode reads (1, 2 or 3).
int elementwise_opcode_arity(ElementwiseOpcode op);

struct ElementwiseInstruction {
  ElementwiseOpcode op = ElementwiseOpcode::kAdd;
  int32_t args[3] = {-1, -1, -1};
  DType dtype = DType::kF32;
};

struct ElementwiseProgram {
  int num_inputs = 0;
  std::vector<float> constants;
  std::vector<ElementwiseInstruction> code;

  DType output_dtype() const { return code.empty() ? DType::kUndefined : code.back().dtype; }
  int first_result_slot() const { return num_inputs + static_cast<int>(constants.size()); }

  // Writes the four attributes onto `node` (replacing any).
  void write_to(Node& node) const;
};

// The most inputs a program reads (the CUDA kernel's parameter block holds this many).
constexpr size_t kMaxProgramInputs = 16;

// Whether `t` is a dtype a program computes in and stores (f32, f16, bf16).
bool is_program_dtype(DType t);

// The program of `node` (num_inputs: its input count), checked: known
// opcodes, operand counts, every slot defined before it is read, float
// dtypes. Errors name the node and what is wrong.
Expected<ElementwiseProgram> read_elementwise_program(const Node& node);

}  // namespace kiln
