#include "ir/shape.h"

#include <limits>

namespace kiln {

std::string Dim::to_string() const {
  if (is_fixed()) return std::to_string(value);
  if (is_symbolic()) return symbol;
  return "?";
}

Shape Shape::of(const std::vector<int64_t>& fixed) {
  Dims d;
  d.reserve(fixed.size());
  for (int64_t v : fixed) d.emplace_back(v);
  return Shape(std::move(d));
}

bool Shape::is_fixed() const {
  if (!dims) return false;
  for (const Dim& d : *dims)
    if (!d.is_fixed()) return false;
  return true;
}

std::optional<int64_t> Shape::numel() const {
  if (!is_fixed()) return std::nullopt;
  int64_t n = checked_numel(fixed_dims());
  if (n < 0) return std::nullopt;
  return n;
}

std::vector<int64_t> Shape::fixed_dims() const {
  std::vector<int64_t> out;
  if (!dims) return out;
  out.reserve(dims->size());
  for (const Dim& d : *dims) out.push_back(d.value);
  return out;
}

std::string Shape::to_string() const {
  if (!dims) return "[*]";
  std::string s = "[";
  for (size_t i = 0; i < dims->size(); ++i) {
    if (i) s += ",";
    s += (*dims)[i].to_string();
  }
  return s + "]";
}

int64_t checked_numel(const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) {
    if (d < 0) return -1;
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d) return -1;
    n *= d;
  }
  return n;
}

}  // namespace kiln
