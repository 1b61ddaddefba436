// String kernels. Case changes are ASCII-only (the locale attribute is not
// used): bytes of multi-byte UTF-8 characters pass through unchanged.
#include <algorithm>
#include <cctype>
#include <regex>
#include <set>

#include "backends/cpu/cpu_kernel.h"
#include "backends/cpu/index_util.h"

namespace kiln {
namespace {

std::string ascii_lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string ascii_upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

Status run_string_normalizer(CpuKernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.dtype() != DType::kString) return invalid_argument("StringNormalizer: input must be string");
  const Node& n = ctx.node();
  bool sensitive = n.attr_int("is_case_sensitive", 0) != 0;
  std::string action = n.attr_string("case_change_action", "NONE");
  std::set<std::string> stop;
  if (const Attribute* a = n.attr("stopwords"))
    for (const auto& w : a->strings) stop.insert(sensitive ? w : ascii_lower(w));
  std::vector<std::string> kept;
  for (const std::string& s : x.strings()) {
    if (stop.count(sensitive ? s : ascii_lower(s))) continue;
    kept.push_back(action == "LOWER" ? ascii_lower(s) : action == "UPPER" ? ascii_upper(s) : s);
  }
  // Everything dropped: one empty string, keeping the rank.
  if (kept.empty()) kept.emplace_back();
  std::vector<int64_t> dims = x.dims();
  dims.back() = static_cast<int64_t>(kept.size());
  Tensor& y = ctx.allocate_output(0, dims);
  y.strings() = std::move(kept);
  return Status::ok();
}

Status run_string_concat(CpuKernelContext& ctx) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0));
  BroadcastWalker w(y->dims(), {broadcast_strides(a.dims(), y->dims()), broadcast_strides(b.dims(), y->dims())});
  for (int64_t i = 0; i < y->numel(); ++i, w.next())
    y->strings()[i] = a.strings()[w.offset(0)] + b.strings()[w.offset(1)];
  return Status::ok();
}

// Python's str.split(): by `delim`, or by runs of whitespace when it is empty.
std::vector<std::string> split_one(const std::string& s, const std::string& delim, int64_t maxsplit) {
  std::vector<std::string> out;
  int64_t splits = 0;
  if (delim.empty()) {
    size_t i = 0;
    while (true) {
      while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
      if (i >= s.size()) break;
      // Like Python, the unsplit rest keeps its trailing whitespace.
      if (maxsplit >= 0 && splits == maxsplit) {
        out.push_back(s.substr(i));
        break;
      }
      size_t j = i;
      while (j < s.size() && !std::isspace(static_cast<unsigned char>(s[j]))) ++j;
      out.push_back(s.substr(i, j - i));
      ++splits;
      i = j;
    }
    return out;
  }
  size_t start = 0;
  while (maxsplit < 0 || splits < maxsplit) {
    size_t at = s.find(delim, start);
    if (at == std::string::npos) break;
    out.push_back(s.substr(start, at - start));
    start = at + delim.size();
    ++splits;
  }
  out.push_back(s.substr(start));
  return out;
}

Status run_string_split(CpuKernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  std::string delim = ctx.node().attr_string("delimiter", "");
  int64_t maxsplit = ctx.node().attr_int("maxsplit", -1);
  std::vector<std::vector<std::string>> pieces;
  size_t widest = 0;
  for (const std::string& s : x.strings()) {
    pieces.push_back(split_one(s, delim, maxsplit));
    widest = std::max(widest, pieces.back().size());
  }
  std::vector<int64_t> dims = x.dims();
  dims.push_back(static_cast<int64_t>(widest));
  Tensor& y = ctx.allocate_output(0, dims);
  Tensor& z = ctx.allocate_output(1, x.dims());
  auto* counts = z.mutable_data<int64_t>();
  for (size_t i = 0; i < pieces.size(); ++i) {
    counts[i] = static_cast<int64_t>(pieces[i].size());
    for (size_t k = 0; k < pieces[i].size(); ++k) y.strings()[i * widest + k] = std::move(pieces[i][k]);
  }
  return Status::ok();
}

Status run_regex_full_match(CpuKernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  std::string pattern = ctx.node().attr_string("pattern", "");
  std::regex re;
  try {
    re = std::regex(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    return invalid_model("RegexFullMatch: pattern '{}' is not a valid regular expression: {}", pattern, e.what());
  }
  Tensor& y = ctx.allocate_output(0, x.dims());
  auto* out = y.mutable_data<uint8_t>();
  for (int64_t i = 0; i < x.numel(); ++i) out[i] = std::regex_match(x.strings()[i], re) ? 1 : 0;
  return Status::ok();
}

}  // namespace

KILN_CPU_KERNEL("", "StringNormalizer", run_string_normalizer);
KILN_CPU_KERNEL("", "StringConcat", run_string_concat);
KILN_CPU_KERNEL("", "StringSplit", run_string_split);
KILN_CPU_KERNEL("", "RegexFullMatch", run_regex_full_match);

}  // namespace kiln
