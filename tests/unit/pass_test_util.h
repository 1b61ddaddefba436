// What the pass tests share: a pass run on a graph written as IR text.
#pragma once

#include <fmt/format.h>

#include <cstdint>
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

// The first diagnostic shape inference gives for the graph `text` writes,
// "none" when it has none, or the parse error.
inline std::string first_diagnostic(const std::string& text) {
  auto g = parse_graph(text);
  if (!g) return g.status().to_string();
  std::vector<Diagnostic> diags;
  infer_shapes(**g, diags);
  return diags.empty() ? "none" : diags[0].message;
}

// `n` multiples of 1/8 in [-2, 2], comma-separated, for a constant in IR
// text: products are multiples of 1/64, so small convolutions and GEMMs over
// them are exact in f32 in any order, and a rewrite must keep the bytes.
inline std::string eighths(int64_t n, int mul) {
  std::string s;
  for (int64_t i = 0; i < n; ++i) s += fmt::format("{}{}", i ? "," : "", ((i * mul) % 33 - 16) * 0.125);
  return s;
}

}  // namespace kiln
