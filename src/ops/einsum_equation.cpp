#include "ops/einsum_equation.h"

#include <algorithm>
#include <cctype>
#include <map>

namespace kiln {
namespace {

// A term with "..." replaced by '.'; error for anything but letters and one ellipsis.
Expected<std::string> parse_term(const std::string& term, const std::string& equation) {
  std::string out;
  for (size_t i = 0; i < term.size(); ++i) {
    if (term.compare(i, 3, "...") == 0) {
      if (out.find('.') != std::string::npos)
        return invalid_model("Einsum: equation \"{}\" has two ellipses in one term", equation);
      out += '.';
      i += 2;
    } else if (std::isalpha(static_cast<unsigned char>(term[i]))) {
      out += term[i];
    } else {
      return invalid_model("Einsum: equation \"{}\" has an invalid character '{}'", equation, term[i]);
    }
  }
  return out;
}

}  // namespace

Expected<EinsumEquation> parse_einsum(const std::string& equation, size_t num_inputs) {
  std::string eq;
  for (char c : equation)
    if (!std::isspace(static_cast<unsigned char>(c))) eq += c;
  EinsumEquation r;
  std::string lhs = eq;
  if (auto arrow = eq.find("->"); arrow != std::string::npos) {
    lhs = eq.substr(0, arrow);
    KILN_ASSIGN_OR_RETURN(r.output, parse_term(eq.substr(arrow + 2), equation));
    r.has_output = true;
  }
  size_t start = 0;
  while (true) {
    size_t comma = lhs.find(',', start);
    KILN_ASSIGN_OR_RETURN(std::string term, parse_term(lhs.substr(start, comma - start), equation));
    r.inputs.push_back(std::move(term));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (r.inputs.size() != num_inputs)
    return invalid_model("Einsum: equation \"{}\" has {} operands but the node has {} inputs", equation,
                         r.inputs.size(), num_inputs);
  return r;
}

Expected<EinsumLabels> resolve_einsum(const EinsumEquation& eq, const std::vector<int64_t>& ranks) {
  EinsumLabels r;
  int64_t ellipsis_rank = 0;
  std::map<int, int> count;
  for (size_t i = 0; i < eq.inputs.size(); ++i) {
    const std::string& term = eq.inputs[i];
    bool has_dots = term.find('.') != std::string::npos;
    int64_t letters = static_cast<int64_t>(term.size()) - (has_dots ? 1 : 0);
    int64_t dots = ranks[i] - letters;
    if (dots < 0 || (!has_dots && dots != 0))
      return invalid_model("Einsum: term \"{}\" does not match operand {} of rank {}", term, i, ranks[i]);
    ellipsis_rank = std::max(ellipsis_rank, dots);
    std::vector<int> labels;
    for (char c : term) {
      if (c != '.') {
        labels.push_back(c);
        ++count[c];
        continue;
      }
      // Ellipsis dims line up from the right, like numpy broadcasting.
      for (int64_t k = dots; k-- > 0;) labels.push_back(kEllipsisLabel + static_cast<int>(k));
    }
    r.inputs.push_back(std::move(labels));
  }
  auto ellipsis_labels = [&] {
    std::vector<int> l;
    for (int64_t k = ellipsis_rank; k-- > 0;) l.push_back(kEllipsisLabel + static_cast<int>(k));
    return l;
  };
  if (eq.has_output) {
    for (char c : eq.output) {
      if (c == '.') {
        auto l = ellipsis_labels();
        r.output.insert(r.output.end(), l.begin(), l.end());
      } else if (!count.count(c)) {
        return invalid_model("Einsum: output label '{}' is not in any input", c);
      } else if (std::count(r.output.begin(), r.output.end(), c)) {
        return invalid_model("Einsum: output label '{}' is repeated", c);
      } else {
        r.output.push_back(c);
      }
    }
  } else {
    // numpy's implicit output: the ellipsis dims, then the labels used once, in ASCII order.
    r.output = ellipsis_labels();
    for (const auto& [label, n] : count)
      if (n == 1) r.output.push_back(label);
  }
  return r;
}

Expected<Dims> einsum_output_dims(const EinsumEquation& eq, const std::vector<const Shape*>& shapes) {
  std::vector<int64_t> ranks;
  for (const Shape* s : shapes) ranks.push_back(s->rank());
  KILN_ASSIGN_OR_RETURN(EinsumLabels labels, resolve_einsum(eq, ranks));
  std::map<int, Dim> size;
  for (size_t i = 0; i < shapes.size(); ++i) {
    for (size_t k = 0; k < labels.inputs[i].size(); ++k) {
      int l = labels.inputs[i][k];
      const Dim& d = (*shapes[i])[k];
      auto it = size.find(l);
      if (it == size.end() || (it->second.is_fixed() && it->second.value == 1)) {
        size[l] = d;
      } else if (d.is_fixed() && it->second.is_fixed() && d.value != it->second.value && d.value != 1) {
        return invalid_model("Einsum: a label has size {} in one operand and {} in another", it->second.value, d.value);
      } else if (!it->second.is_fixed() && d.is_fixed() && d.value != 1) {
        it->second = d;
      }
    }
  }
  Dims out;
  for (int l : labels.output) out.push_back(size.count(l) ? size[l] : Dim(1));
  return out;
}

}  // namespace kiln
