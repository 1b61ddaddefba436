#include "shape_spec.h"

namespace kiln::cli {

Expected<ShapeSpec> parse_shape_spec(const std::string& text, const std::string& flag) {
  ShapeSpec out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    size_t colon = item.rfind(':');
    if (colon == std::string::npos || colon == 0)
      return invalid_argument("{} '{}': expected NAME:DIMS such as input:1x3x224x224", flag, item);
    std::string name = item.substr(0, colon), dims_text = item.substr(colon + 1);
    std::vector<int64_t> dims;
    size_t p = 0;
    while (!dims_text.empty() && p <= dims_text.size()) {
      size_t x = dims_text.find('x', p);
      std::string d = dims_text.substr(p, x == std::string::npos ? std::string::npos : x - p);
      if (d.empty() || d.size() > 15 || d.find_first_not_of("0123456789") != std::string::npos)
        return invalid_argument("{} '{}': dim '{}' is not a non-negative integer", flag, item, d);
      dims.push_back(std::stoll(d));
      if (x == std::string::npos) break;
      p = x + 1;
    }
    if (find_shape(out, name)) return invalid_argument("{}: '{}' is given twice", flag, name);
    out.emplace_back(name, std::move(dims));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

const std::vector<int64_t>* find_shape(const ShapeSpec& spec, const std::string& name) {
  for (const auto& [n, d] : spec)
    if (n == name) return &d;
  return nullptr;
}

}  // namespace kiln::cli
