#include "ir/printer.h"

#include <fmt/format.h>

namespace kiln {
namespace {

std::string value_ref(const Value* v) { return v ? "%" + v->name : "_"; }

std::string value_decl(const Value* v) { return v ? fmt::format("%{}: {}", v->name, v->type.to_string()) : "_"; }

std::string short_tensor(const Tensor& t) {
  std::string s = fmt::format("{}{}", dtype_name(t.dtype()), Shape::of(t.dims()).to_string());
  if (t.dtype() != DType::kString && t.numel() <= 8 && t.numel() > 0 && dtype_bits(t.dtype()) >= 8) {
    s += "{";
    for (int64_t i = 0; i < t.numel(); ++i) s += fmt::format("{}{}", i ? "," : "", t.element_as_double(i));
    s += "}";
  }
  return s;
}

template <typename T>
std::string join(const std::vector<T>& v) {
  return fmt::format("[{}]", fmt::join(v, ","));
}

}  // namespace

std::string print_attribute(const Attribute& a) {
  switch (a.kind) {
    case Attribute::Kind::kFloat: return fmt::format("{}", a.f);
    case Attribute::Kind::kInt: return fmt::format("{}", a.i);
    case Attribute::Kind::kString: return fmt::format("\"{}\"", a.s);
    case Attribute::Kind::kTensor: return short_tensor(a.t);
    case Attribute::Kind::kGraph: return "<graph>";
    case Attribute::Kind::kFloats: return join(a.floats);
    case Attribute::Kind::kInts: return join(a.ints);
    case Attribute::Kind::kStrings: {
      std::string s = "[";
      for (size_t i = 0; i < a.strings.size(); ++i) s += fmt::format("{}\"{}\"", i ? "," : "", a.strings[i]);
      return s + "]";
    }
    case Attribute::Kind::kTensors: return fmt::format("<{} tensors>", a.tensors.size());
    case Attribute::Kind::kGraphs: return fmt::format("<{} graphs>", a.graphs.size());
    case Attribute::Kind::kType: return a.type.to_string();
  }
  return "?";
}

std::string print_node(const Node& n) {
  std::string outs;
  for (size_t i = 0; i < n.outputs.size(); ++i) outs += (i ? ", " : "") + value_decl(n.outputs[i]);
  std::string ins;
  for (size_t i = 0; i < n.inputs.size(); ++i) ins += (i ? ", " : "") + value_ref(n.inputs[i]);
  std::string op = n.domain.empty() ? n.op_type : n.domain + "." + n.op_type;
  std::string attrs;
  for (const auto& [key, a] : n.attrs)
    if (!a.g && a.graphs.empty()) attrs += fmt::format("{}{}={}", attrs.empty() ? "" : ", ", key, print_attribute(a));
  std::string s = fmt::format("{} = {}({})", outs, op, ins);
  if (!attrs.empty()) s += " {" + attrs + "}";
  return s;
}

std::string print_graph(const Graph& g, int indent) {
  std::string pad(static_cast<size_t>(indent), ' ');
  std::string ins;
  for (size_t i = 0; i < g.inputs.size(); ++i) ins += (i ? ", " : "") + value_decl(g.inputs[i]);
  std::string s = fmt::format("{}graph {}({}) {{\n", pad, g.name.empty() ? "main" : g.name, ins);
  for (const auto& v : g.values())
    if (v->constant && !v->producer)
      s += fmt::format("{}  {} = const {}\n", pad, value_decl(v.get()), short_tensor(*v->constant));
  for (const auto& n : g.nodes()) {
    s += pad + "  " + print_node(*n) + "\n";
    for (const auto& [key, a] : n->attrs) {
      if (a.g) s += fmt::format("{}    {}:\n{}", pad, key, print_graph(*a.g, indent + 6));
      for (size_t k = 0; k < a.graphs.size(); ++k)
        s += fmt::format("{}    {}[{}]:\n{}", pad, key, k, print_graph(*a.graphs[k], indent + 6));
    }
  }
  std::string outs;
  for (size_t i = 0; i < g.outputs.size(); ++i) outs += (i ? ", " : "") + value_ref(g.outputs[i]);
  s += fmt::format("{}  return {}\n{}}}\n", pad, outs, pad);
  return s;
}

}  // namespace kiln
