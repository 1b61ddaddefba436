#include "ir/diagnostic.h"

#include <fmt/format.h>

namespace kiln {

const char* diagnostic_reason_name(Diagnostic::Reason r) {
  switch (r) {
    case Diagnostic::Reason::kUnsupportedOp: return "unsupported op";
    case Diagnostic::Reason::kUnsupportedAttribute: return "unsupported attribute";
    case Diagnostic::Reason::kUnsupportedDType: return "unsupported dtype";
    case Diagnostic::Reason::kDynamicShape: return "unsupported dynamic shape";
    case Diagnostic::Reason::kInvalidModel: return "invalid model";
  }
  return "?";
}

Diagnostic::Reason diagnostic_reason_from(ErrorCode code) {
  return code == ErrorCode::kUnsupported ? Diagnostic::Reason::kUnsupportedAttribute
                                         : Diagnostic::Reason::kInvalidModel;
}

std::string format_diagnostic(const Diagnostic& d) {
  std::string where;
  if (d.node_index >= 0 || !d.node_name.empty()) {
    std::string op = d.domain.empty() ? d.op_type : d.domain + ":" + d.op_type;
    // Nodes made by inlining a function have no index in the model's graph.
    std::string index = d.node_index >= 0 ? fmt::format("{} ", d.node_index) : "";
    where = fmt::format("node {}'{}' ({}, opset {})", index, d.node_name, op, d.opset);
    if (!d.graph.empty() && d.graph != "main") where += fmt::format(" in {}", d.graph);
  } else {
    where = d.graph.empty() || d.graph == "main" ? "model" : d.graph;
  }
  std::string s = fmt::format("{}: {}: {}", where, diagnostic_reason_name(d.reason), d.message);
  if (!d.hint.empty()) s += fmt::format(" (hint: {})", d.hint);
  return s;
}

std::string format_diagnostics(const std::vector<Diagnostic>& ds) {
  std::string s;
  for (const auto& d : ds) s += format_diagnostic(d) + "\n";
  return s;
}

}  // namespace kiln
