// What the server's metric families share of the Prometheus text format.
#pragma once

#include <string>

namespace kiln::server {

// A label value with backslash, double quote and newline escaped, as the
// text format requires.
inline std::string escape_label(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

}  // namespace kiln::server
