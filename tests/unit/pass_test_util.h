// What the pass tests share: a pass run on a graph written as IR text.
#pragma once

#include <string>
#include <vector>

#include "ir/parser.h"
#include "ir/printer.h"
#include "ops/shape_inference.h"
#include "passes/pass.h"

namespace kiln {

// Runs `pass` on the graph `text` writes (its shapes inferred first when
// `infer`); the resulting graph's text, or the error.
inline std::string run_pass(PassFn pass, const std::string& text, bool infer = false) {
  auto g = parse_graph(text);
  if (!g) return g.status().to_string();
  if (infer) {
    std::vector<Diagnostic> diags;
    infer_shapes(**g, diags);
    if (!diags.empty()) return "diagnostics: " + diags[0].message;
  }
  PassContext ctx;
  Status st = pass(**g, ctx);
  if (!st.is_ok()) return st.to_string();
  return print_graph(**g);
}

}  // namespace kiln
