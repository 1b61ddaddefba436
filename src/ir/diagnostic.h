// One problem found in a model, tied to the node that has it. Importing and
// building collect every problem before failing, so a user sees them all.
#pragma once

#include <string>
#include <vector>

#include "support/status.h"

namespace kiln {

struct Diagnostic {
  enum class Reason : uint8_t {
    kUnsupportedOp,         // no op of that domain/type/opset in kiln's op table
    kUnsupportedAttribute,  // an attribute value kiln does not implement
    kUnsupportedDType,      // a dtype the op does not allow (in kiln or in ONNX)
    kDynamicShape,          // a dynamic shape that cannot be handled here
    kInvalidModel,          // breaks the ONNX spec
  };
  Reason reason = Reason::kInvalidModel;
  std::string node_name;  // empty for graph-level problems
  int64_t node_index = -1;
  std::string op_type;
  std::string domain;
  int64_t opset = 0;
  std::string graph;  // "main" or the path of the subgraph ("main/If_3.then_branch")
  std::string message;
  std::string hint;
};

const char* diagnostic_reason_name(Diagnostic::Reason r);
Diagnostic::Reason diagnostic_reason_from(ErrorCode code);
// One line per problem, e.g.
//   node 12 'Conv_3' (Conv, opset 11): unsupported attribute: auto_pad=VALID ... (hint: ...)
std::string format_diagnostic(const Diagnostic& d);
std::string format_diagnostics(const std::vector<Diagnostic>& ds);

}  // namespace kiln
