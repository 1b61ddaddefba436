// Dims and shapes: a dim is a fixed size, a named symbol ("batch", "seq"), or
// unknown. A symbol stays the same symbol wherever the same size flows, so a
// dynamic batch is one symbol from the graph input to the output.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kiln {

struct Dim {
  int64_t value = -1;  // >= 0 when fixed
  std::string symbol;  // non-empty when symbolic; both unset means unknown

  Dim() = default;
  Dim(int64_t v) : value(v) {}  // NOLINT(google-explicit-constructor): dims read as numbers
  static Dim symbolic(std::string name) {
    Dim d;
    d.symbol = std::move(name);
    return d;
  }
  static Dim unknown() { return Dim(); }

  bool is_fixed() const { return value >= 0; }
  bool is_symbolic() const { return value < 0 && !symbol.empty(); }
  bool is_unknown() const { return value < 0 && symbol.empty(); }
  bool operator==(const Dim& o) const { return value == o.value && symbol == o.symbol; }
  // "3", "batch" or "?".
  std::string to_string() const;
};

using Dims = std::vector<Dim>;

// A shape whose rank may be unknown.
struct Shape {
  std::optional<Dims> dims;  // nullopt: rank unknown

  Shape() = default;
  Shape(Dims d) : dims(std::move(d)) {}  // NOLINT(google-explicit-constructor)
  static Shape of(const std::vector<int64_t>& fixed);

  bool has_rank() const { return dims.has_value(); }
  int64_t rank() const { return dims ? static_cast<int64_t>(dims->size()) : -1; }
  bool is_fixed() const;  // rank known and every dim fixed
  // Product of the dims when all fixed, else nullopt.
  std::optional<int64_t> numel() const;
  std::vector<int64_t> fixed_dims() const;  // requires is_fixed()
  const Dim& operator[](size_t i) const { return (*dims)[i]; }
  bool operator==(const Shape& o) const { return dims == o.dims; }
  // "[batch,3,224,224]", "[]" for scalars, "[*]" for unknown rank.
  std::string to_string() const;
};

// Number of elements of fixed dims; -1 if the product overflows int64.
int64_t checked_numel(const std::vector<int64_t>& dims);

}  // namespace kiln
