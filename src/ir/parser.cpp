#include "ir/parser.h"

#include <fmt/format.h>

#include <cctype>
#include <cstdlib>

namespace kiln {
namespace {

class Parser {
 public:
  explicit Parser(std::string_view text) : s_(text) {}

  Expected<std::shared_ptr<Graph>> parse() {
    auto g = std::make_shared<Graph>();
    KILN_RETURN_IF_ERROR(expect_word("graph"));
    g->name = identifier();
    KILN_RETURN_IF_ERROR(expect('('));
    while (!peek(')')) {
      KILN_ASSIGN_OR_RETURN(Value * v, value_decl(*g));
      g->inputs.push_back(v);
      if (!peek(')')) KILN_RETURN_IF_ERROR(expect(','));
    }
    KILN_RETURN_IF_ERROR(expect(')'));
    KILN_RETURN_IF_ERROR(expect('{'));
    for (;;) {
      skip_space();
      if (starts_with("return")) break;
      KILN_RETURN_IF_ERROR(statement(*g));
    }
    KILN_RETURN_IF_ERROR(expect_word("return"));
    while (!peek('}')) {
      KILN_ASSIGN_OR_RETURN(std::string name, value_name());
      Value* v = g->find_value(name);
      if (!v) return error(fmt::format("return of unknown value %{}", name));
      g->outputs.push_back(v);
      if (!peek('}')) KILN_RETURN_IF_ERROR(expect(','));
    }
    KILN_RETURN_IF_ERROR(expect('}'));
    return g;
  }

 private:
  Status statement(Graph& g) {
    std::vector<Value*> outs;
    for (;;) {
      skip_space();
      if (peek('_')) {
        ++pos_;
        outs.push_back(nullptr);
      } else {
        KILN_ASSIGN_OR_RETURN(Value * v, value_decl(g));
        outs.push_back(v);
      }
      if (!peek(',')) break;
      ++pos_;
    }
    KILN_RETURN_IF_ERROR(expect('='));
    skip_space();
    if (starts_with("const")) {
      pos_ += 5;
      if (outs.size() != 1 || !outs[0]) return error("const defines one value");
      KILN_ASSIGN_OR_RETURN(Tensor t, tensor_literal());
      outs[0]->constant = std::make_shared<const Tensor>(std::move(t));
      g.initializers.push_back(outs[0]);
      return Status::ok();
    }
    std::string op = identifier();
    Node* n = g.add_node(op);
    auto dot = op.rfind('.');
    if (dot != std::string::npos) {
      n->domain = op.substr(0, dot);
      n->op_type = op.substr(dot + 1);
    }
    n->name = fmt::format("n{}", g.nodes().size() - 1);
    KILN_RETURN_IF_ERROR(expect('('));
    while (!peek(')')) {
      skip_space();
      if (peek('_')) {
        ++pos_;
        n->inputs.push_back(nullptr);
      } else {
        KILN_ASSIGN_OR_RETURN(std::string name, value_name());
        Value* v = g.find_value(name);
        if (!v) return error(fmt::format("use of undefined value %{}", name));
        n->inputs.push_back(v);
      }
      if (!peek(')')) KILN_RETURN_IF_ERROR(expect(','));
    }
    KILN_RETURN_IF_ERROR(expect(')'));
    if (peek('{')) {
      ++pos_;
      while (!peek('}')) {
        std::string key = identifier();
        KILN_RETURN_IF_ERROR(expect('='));
        KILN_ASSIGN_OR_RETURN(Attribute a, attribute());
        n->attrs[key] = std::move(a);
        if (!peek('}')) KILN_RETURN_IF_ERROR(expect(','));
      }
      ++pos_;
    }
    for (size_t i = 0; i < outs.size(); ++i) {
      if (!outs[i]) {
        n->outputs.push_back(nullptr);
        continue;
      }
      outs[i]->producer = n;
      outs[i]->producer_output = static_cast<int>(i);
      n->outputs.push_back(outs[i]);
    }
    return Status::ok();
  }

  Expected<Value*> value_decl(Graph& g) {
    KILN_ASSIGN_OR_RETURN(std::string name, value_name());
    KILN_RETURN_IF_ERROR(expect(':'));
    KILN_ASSIGN_OR_RETURN(Type t, type());
    if (g.find_value(name)) return error(fmt::format("%{} is defined twice", name));
    return g.add_value(name, std::move(t));
  }

  Expected<Type> type() {
    skip_space();
    if (starts_with("seq<") || starts_with("opt<")) {
      bool seq = starts_with("seq<");
      pos_ += 4;
      KILN_ASSIGN_OR_RETURN(Type e, type());
      KILN_RETURN_IF_ERROR(expect('>'));
      return seq ? Type::sequence_of(std::move(e)) : Type::optional_of(std::move(e));
    }
    std::string name = identifier();
    auto dt = dtype_from_name(name);
    if (!dt && name != "undefined") return error(fmt::format("unknown dtype '{}'", name));
    KILN_ASSIGN_OR_RETURN(Shape shape, shape_literal());
    return Type::tensor(dt.value_or(DType::kUndefined), std::move(shape));
  }

  Expected<Shape> shape_literal() {
    KILN_RETURN_IF_ERROR(expect('['));
    if (peek('*') && s_.substr(pos_, 2) == "*]") {
      pos_ += 2;
      return Shape();
    }
    Dims dims;
    while (!peek(']')) {
      skip_space();
      if (peek('?')) {
        ++pos_;
        dims.push_back(Dim::unknown());
      } else if (std::isdigit(static_cast<unsigned char>(s_[pos_])) && !symbol_follows()) {
        dims.emplace_back(number_int());
      } else {
        dims.push_back(Dim::symbolic(symbol()));
      }
      if (!peek(']')) KILN_RETURN_IF_ERROR(expect(','));
    }
    ++pos_;
    return Shape(std::move(dims));
  }

  // "4*batch": a product that starts with a digit is a symbol too.
  bool symbol_follows() const {
    size_t p = pos_;
    while (p < s_.size() && std::isdigit(static_cast<unsigned char>(s_[p]))) ++p;
    return p < s_.size() && s_[p] == '*';
  }

  std::string symbol() {
    size_t b = pos_;
    while (pos_ < s_.size() &&
           (std::isalnum(static_cast<unsigned char>(s_[pos_])) ||
            std::string_view("_*.+-()").find(s_[pos_]) != std::string_view::npos) &&
           !(s_[pos_] == ')' && depth_of(b) == 0))
      ++pos_;
    return std::string(s_.substr(b, pos_ - b));
  }
  int depth_of(size_t b) const {
    int d = 0;
    for (size_t p = b; p < pos_; ++p) d += s_[p] == '(' ? 1 : s_[p] == ')' ? -1 : 0;
    return d;
  }

  Expected<Tensor> tensor_literal() {
    skip_space();
    std::string name = identifier();
    auto dt = dtype_from_name(name);
    if (!dt) return error(fmt::format("unknown dtype '{}'", name));
    KILN_ASSIGN_OR_RETURN(Shape shape, shape_literal());
    if (!shape.is_fixed()) return error("a constant needs fixed dims");
    Tensor t(*dt, shape.fixed_dims());
    if (!peek('{')) return t;
    ++pos_;
    for (int64_t i = 0; i < t.numel(); ++i) {
      skip_space();
      double v = number_double();
      KILN_RETURN_IF_ERROR(store(t, i, v));
      if (i + 1 < t.numel()) KILN_RETURN_IF_ERROR(expect(','));
    }
    KILN_RETURN_IF_ERROR(expect('}'));
    return t;
  }

  Status store(Tensor& t, int64_t i, double v) {
    switch (t.dtype()) {
      case DType::kF32: t.mutable_data<float>()[i] = static_cast<float>(v); break;
      case DType::kF64: t.mutable_data<double>()[i] = v; break;
      case DType::kF16: t.mutable_data<uint16_t>()[i] = f32_to_f16(static_cast<float>(v)); break;
      case DType::kBF16: t.mutable_data<uint16_t>()[i] = f32_to_bf16(static_cast<float>(v)); break;
      case DType::kI64: t.mutable_data<int64_t>()[i] = static_cast<int64_t>(v); break;
      case DType::kI32: t.mutable_data<int32_t>()[i] = static_cast<int32_t>(v); break;
      case DType::kI8: t.mutable_data<int8_t>()[i] = static_cast<int8_t>(v); break;
      case DType::kU8:
      case DType::kBool: t.mutable_data<uint8_t>()[i] = static_cast<uint8_t>(v); break;
      default: return error(fmt::format("constants of {} are not supported in text", dtype_name(t.dtype())));
    }
    return Status::ok();
  }

  Expected<Attribute> attribute() {
    skip_space();
    if (peek('"')) return Attribute::of_string(quoted());
    if (peek('[')) {
      ++pos_;
      skip_space();
      if (peek('"')) {
        std::vector<std::string> v;
        while (!peek(']')) {
          v.push_back(quoted());
          if (!peek(']')) KILN_RETURN_IF_ERROR(expect(','));
        }
        ++pos_;
        return Attribute::of_strings(std::move(v));
      }
      std::vector<std::string> items;
      while (!peek(']')) {
        skip_space();
        items.push_back(number_text());
        if (!peek(']')) KILN_RETURN_IF_ERROR(expect(','));
      }
      ++pos_;
      bool is_float = false;
      for (const auto& x : items) is_float |= x.find_first_of(".eEn") != std::string::npos;
      if (is_float) {
        std::vector<float> f;
        for (const auto& x : items) f.push_back(std::strtof(x.c_str(), nullptr));
        return Attribute::of_floats(std::move(f));
      }
      std::vector<int64_t> v;
      for (const auto& x : items) v.push_back(std::strtoll(x.c_str(), nullptr, 10));
      return Attribute::of_ints(std::move(v));
    }
    if (std::isalpha(static_cast<unsigned char>(s_[pos_]))) {
      KILN_ASSIGN_OR_RETURN(Tensor t, tensor_literal());
      return Attribute::of_tensor(std::move(t));
    }
    std::string x = number_text();
    if (x.find_first_of(".eEn") != std::string::npos) return Attribute::of_float(std::strtof(x.c_str(), nullptr));
    return Attribute::of_int(std::strtoll(x.c_str(), nullptr, 10));
  }

  std::string number_text() {
    skip_space();
    size_t b = pos_;
    while (pos_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '.' ||
                                s_[pos_] == '-' || s_[pos_] == '+'))
      ++pos_;
    return std::string(s_.substr(b, pos_ - b));
  }
  int64_t number_int() { return std::strtoll(number_text().c_str(), nullptr, 10); }
  double number_double() { return std::strtod(number_text().c_str(), nullptr); }

  std::string quoted() {
    skip_space();
    ++pos_;
    size_t b = pos_;
    while (pos_ < s_.size() && s_[pos_] != '"') ++pos_;
    std::string out(s_.substr(b, pos_ - b));
    if (pos_ < s_.size()) ++pos_;
    return out;
  }

  Expected<std::string> value_name() {
    skip_space();
    if (!peek('%')) return error("expected a value (%name)");
    ++pos_;
    size_t b = pos_;
    // Names may hold ':' ("input:0"); the declaration's ": " ends them.
    while (pos_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[pos_])) ||
                                std::string_view("_./:-").find(s_[pos_]) != std::string_view::npos)) {
      if (s_[pos_] == ':' && (pos_ + 1 >= s_.size() || s_[pos_ + 1] == ' ')) break;
      ++pos_;
    }
    return std::string(s_.substr(b, pos_ - b));
  }

  std::string identifier() {
    skip_space();
    size_t b = pos_;
    while (pos_ < s_.size() &&
           (std::isalnum(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '_' || s_[pos_] == '.'))
      ++pos_;
    return std::string(s_.substr(b, pos_ - b));
  }

  void skip_space() {
    while (pos_ < s_.size()) {
      if (std::isspace(static_cast<unsigned char>(s_[pos_]))) {
        ++pos_;
      } else if (s_[pos_] == '#') {  // comment to end of line
        while (pos_ < s_.size() && s_[pos_] != '\n') ++pos_;
      } else {
        break;
      }
    }
  }
  bool peek(char c) {
    skip_space();
    return pos_ < s_.size() && s_[pos_] == c;
  }
  bool starts_with(std::string_view w) const { return s_.substr(pos_, w.size()) == w; }
  Status expect(char c) {
    if (!peek(c)) return error(fmt::format("expected '{}'", c));
    ++pos_;
    return Status::ok();
  }
  Status expect_word(std::string_view w) {
    skip_space();
    if (!starts_with(w)) return error(fmt::format("expected '{}'", w));
    pos_ += w.size();
    return Status::ok();
  }
  Status error(const std::string& what) const {
    int line = 1;
    for (size_t p = 0; p < pos_ && p < s_.size(); ++p) line += s_[p] == '\n';
    return invalid_argument("IR text line {}: {}", line, what);
  }

  std::string_view s_;
  size_t pos_ = 0;
};

}  // namespace

Expected<std::shared_ptr<Graph>> parse_graph(std::string_view text) { return Parser(text).parse(); }

}  // namespace kiln
