#include "ops/infer_util.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <map>

namespace kiln {
namespace {

// A monomial: coefficient times a multiset of symbols.
struct Monomial {
  int64_t coef = 1;
  std::vector<std::string> symbols;  // sorted
};

std::optional<Monomial> to_monomial(const Dim& d) {
  Monomial m;
  if (d.is_fixed()) {
    m.coef = d.value;
    return m;
  }
  if (!d.is_symbolic()) return std::nullopt;
  // Symbols are products written "a*b*3"; anything else ("a+b") is one atom.
  size_t start = 0;
  const std::string& s = d.symbol;
  bool is_product = s.find_first_of("+-/()") == std::string::npos;
  if (!is_product) {
    m.symbols.push_back(s);
    return m;
  }
  while (start <= s.size()) {
    size_t end = s.find('*', start);
    std::string part = s.substr(start, end == std::string::npos ? std::string::npos : end - start);
    int64_t factor = 0;
    auto [end_ptr, ec] = std::from_chars(part.data(), part.data() + part.size(), factor);
    if (!part.empty() && ec == std::errc() && end_ptr == part.data() + part.size() && factor >= 0) {
      if (__builtin_mul_overflow(m.coef, factor, &m.coef)) return std::nullopt;
    } else if (!part.empty()) {
      m.symbols.push_back(part);
    }
    if (end == std::string::npos) break;
    start = end + 1;
  }
  std::sort(m.symbols.begin(), m.symbols.end());
  return m;
}

Dim from_monomial(const Monomial& m) {
  if (m.symbols.empty()) return Dim(m.coef);
  if (m.coef == 0) return Dim(0);
  std::string s;
  if (m.coef != 1) s = std::to_string(m.coef);
  for (const auto& sym : m.symbols) s += (s.empty() ? "" : "*") + sym;
  return Dim::symbolic(s);
}

}  // namespace

Dim minus_one_marker() { return Dim::symbolic("-1"); }
bool is_minus_one(const Dim& d) { return d.is_symbolic() && d.symbol == "-1"; }

Dim dim_mul(const Dim& a, const Dim& b) {
  if (is_minus_one(a) || is_minus_one(b)) return Dim::unknown();
  // Sizes past int64 (only a hostile model has them) become unknown, never overflow.
  int64_t product = 0;
  if (a.is_fixed() && b.is_fixed())
    return __builtin_mul_overflow(a.value, b.value, &product) ? Dim::unknown() : Dim(product);
  if ((a.is_fixed() && a.value == 0) || (b.is_fixed() && b.value == 0)) return Dim(0);
  auto ma = to_monomial(a), mb = to_monomial(b);
  if (!ma || !mb || __builtin_mul_overflow(ma->coef, mb->coef, &product)) return Dim::unknown();
  Monomial m{product, ma->symbols};
  m.symbols.insert(m.symbols.end(), mb->symbols.begin(), mb->symbols.end());
  std::sort(m.symbols.begin(), m.symbols.end());
  return from_monomial(m);
}

Dim dim_div(const Dim& a, const Dim& b) {
  if (is_minus_one(a) || is_minus_one(b)) return Dim::unknown();
  if (a.is_fixed() && b.is_fixed()) return b.value != 0 ? Dim(a.value / b.value) : Dim::unknown();
  auto ma = to_monomial(a), mb = to_monomial(b);
  if (!ma || !mb || mb->coef == 0 || ma->coef % mb->coef != 0) return Dim::unknown();
  Monomial m{ma->coef / mb->coef, ma->symbols};
  for (const auto& sym : mb->symbols) {
    auto it = std::find(m.symbols.begin(), m.symbols.end(), sym);
    if (it == m.symbols.end()) return Dim::unknown();
    m.symbols.erase(it);
  }
  return from_monomial(m);
}

Dim dim_add(const Dim& a, const Dim& b) {
  if (is_minus_one(a) || is_minus_one(b)) return Dim::unknown();
  int64_t sum = 0;
  if (a.is_fixed() && b.is_fixed()) return __builtin_add_overflow(a.value, b.value, &sum) ? Dim::unknown() : Dim(sum);
  if (a.is_fixed() && a.value == 0) return b;
  if (b.is_fixed() && b.value == 0) return a;
  if (a.is_unknown() || b.is_unknown()) return Dim::unknown();
  return Dim::symbolic(fmt::format("({}+{})", a.to_string(), b.to_string()));
}

Dim dim_sub(const Dim& a, const Dim& b) {
  if (is_minus_one(a) || is_minus_one(b)) return Dim::unknown();
  int64_t diff = 0;
  if (a.is_fixed() && b.is_fixed()) return __builtin_sub_overflow(a.value, b.value, &diff) ? Dim::unknown() : Dim(diff);
  if (b.is_fixed() && b.value == 0) return a;
  if (a == b && !a.is_unknown()) return Dim(0);
  if (a.is_unknown() || b.is_unknown()) return Dim::unknown();
  return Dim::symbolic(fmt::format("({}-{})", a.to_string(), b.to_string()));
}

Dim dims_product(const Dims& dims, size_t begin, size_t end) {
  Dim p(1);
  for (size_t i = begin; i < end && i < dims.size(); ++i) p = dim_mul(p, dims[i]);
  return p;
}

Expected<Shape> broadcast_shapes(const std::vector<const Shape*>& shapes) {
  size_t rank = 0;
  for (const Shape* s : shapes) {
    if (!s->has_rank()) return Shape();
    rank = std::max(rank, s->dims->size());
  }
  Dims out(rank, Dim(1));
  for (size_t k = 0; k < rank; ++k) {
    // Walk from the right.
    Dim result(1);
    bool first = true;
    for (const Shape* s : shapes) {
      const Dims& d = *s->dims;
      if (k >= d.size()) continue;
      const Dim& x = d[d.size() - 1 - k];
      if (first) {
        result = x;
        first = false;
        continue;
      }
      if (x.is_fixed() && x.value == 1) continue;
      if (result.is_fixed() && result.value == 1) {
        result = x;
      } else if (result.is_fixed() && x.is_fixed()) {
        if (result.value != x.value)
          return invalid_model("shapes cannot broadcast: dim {} from the right is {} in one input and {} in another", k,
                               result.value, x.value);
      } else if (result == x) {
        // same symbol
      } else if (x.is_fixed()) {
        result = x;  // symbol must equal the fixed size (or be 1)
      } else if (!result.is_fixed()) {
        result = Dim::unknown();
      }
    }
    out[rank - 1 - k] = result;
  }
  return Shape(std::move(out));
}

Expected<int64_t> normalize_axis(int64_t axis, int64_t rank, const char* what) {
  // A scalar has no axis to index: callers that accept scalars handle them first.
  if (axis < -rank || axis >= rank) return invalid_model("{} {} is out of range for rank {}", what, axis, rank);
  return axis < 0 ? axis + rank : axis;
}

Status require_rank(const InferContext& ctx, size_t i, const char* op) {
  if (!ctx.has_input(i)) return invalid_model("{}: input {} is missing", op, i);
  if (!ctx.input_type(i).is_tensor()) return invalid_model("{}: input {} must be a tensor", op, i);
  return Status::ok();
}

Status drop_consumed_inputs(UpgradeContext& ctx) {
  ctx.node().attrs.erase("consumed_inputs");
  return Status::ok();
}

Status infer_same_as_input0(InferContext& ctx) {
  ctx.set_output(0, ctx.input_type(0));
  return Status::ok();
}

static Status infer_broadcast_as(InferContext& ctx, std::optional<DType> out_dtype) {
  std::vector<const Shape*> shapes;
  for (size_t i = 0; i < ctx.num_inputs(); ++i)
    if (ctx.has_input(i)) shapes.push_back(&ctx.input_shape(i));
  KILN_ASSIGN_OR_RETURN(Shape s, broadcast_shapes(shapes));
  ctx.set_output(0, out_dtype.value_or(ctx.input_dtype(0)), std::move(s));
  return Status::ok();
}

Status infer_broadcast(InferContext& ctx) { return infer_broadcast_as(ctx, std::nullopt); }
Status infer_broadcast_bool(InferContext& ctx) { return infer_broadcast_as(ctx, DType::kBool); }

}  // namespace kiln
