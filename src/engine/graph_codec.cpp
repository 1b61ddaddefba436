#include "engine/graph_codec.h"

#include <fmt/format.h>

namespace kiln {
namespace {

constexpr int kMaxTypeDepth = 16;
constexpr int kMaxGraphDepth = 64;

void encode_dim(const Dim& d, engine::Dim* out) {
  out->set_value(d.value);
  out->set_symbol(d.symbol);
}

Dim decode_dim(const engine::Dim& d) {
  Dim r;
  r.value = d.value() < 0 ? -1 : d.value();
  r.symbol = d.symbol();
  return r;
}

class Encoder {
 public:
  explicit Encoder(SectionList& sections) : sections_(sections) {}

  Status graph(const Graph& g, engine::Graph* out) {
    out->set_name(g.name);
    out->set_first_value_id(next_id_);
    for (const auto& v : g.values()) {
      ids_[v.get()] = next_id_++;
      KILN_RETURN_IF_ERROR(value(*v, out->add_values()));
    }
    for (const Value* v : g.inputs) out->add_inputs(id(v));
    for (const Value* v : g.outputs) out->add_outputs(id(v));
    for (const Value* v : g.initializers) out->add_initializers(id(v));
    for (const auto& n : g.nodes()) KILN_RETURN_IF_ERROR(node(*n, out->add_nodes()));
    for (int64_t i : out->inputs())
      if (i < 0) return internal_error("graph '{}': an input is not a value of the graph", g.name);
    for (int64_t i : out->outputs())
      if (i < 0) return internal_error("graph '{}': an output is not a value of the graph", g.name);
    return Status::ok();
  }

 private:
  int64_t id(const Value* v) const {
    if (!v) return -1;
    auto it = ids_.find(v);
    return it == ids_.end() ? -2 : it->second;
  }

  void tensor(const Tensor& t, engine::TensorData* out) {
    out->set_dtype(static_cast<uint32_t>(t.dtype()));
    for (int64_t d : t.dims()) out->add_dims(d);
    if (t.dtype() == DType::kString) {
      for (const auto& s : t.strings()) out->add_strings(s);
      return;
    }
    out->set_section(sections_.tensors.size());
    sections_.tensors.push_back(&t);
  }

  Status value(const Value& v, engine::Value* out) {
    out->set_name(v.name);
    encode_type(v.type, out->mutable_type());
    if (v.constant) tensor(*v.constant, out->mutable_constant());
    if (v.shape_value) {
      out->set_has_shape_value(true);
      for (const Dim& d : *v.shape_value) encode_dim(d, out->add_shape_value());
    }
    return Status::ok();
  }

  Status attribute(const std::string& name, const Attribute& a, engine::Attribute* out) {
    out->set_name(name);
    out->set_kind(static_cast<uint32_t>(a.kind));
    using K = Attribute::Kind;
    switch (a.kind) {
      case K::kFloat: out->set_f(a.f); break;
      case K::kInt: out->set_i(a.i); break;
      case K::kString: out->set_s(a.s); break;
      case K::kTensor: tensor(a.t, out->mutable_t()); break;
      case K::kGraph:
        if (!a.g) return internal_error("attribute '{}' has no graph", name);
        KILN_RETURN_IF_ERROR(graph(*a.g, out->mutable_g()));
        break;
      case K::kFloats: *out->mutable_floats() = {a.floats.begin(), a.floats.end()}; break;
      case K::kInts: *out->mutable_ints() = {a.ints.begin(), a.ints.end()}; break;
      case K::kStrings:
        for (const auto& s : a.strings) out->add_strings(s);
        break;
      case K::kTensors:
        for (const auto& t : a.tensors) tensor(t, out->add_tensors());
        break;
      case K::kGraphs:
        for (const auto& g : a.graphs) {
          if (!g) return internal_error("attribute '{}' has a null graph", name);
          KILN_RETURN_IF_ERROR(graph(*g, out->add_graphs()));
        }
        break;
      case K::kType: encode_type(a.type, out->mutable_type()); break;
    }
    return Status::ok();
  }

  Status node(const Node& n, engine::Node* out) {
    out->set_op_type(n.op_type);
    out->set_domain(n.domain);
    out->set_name(n.name);
    out->set_opset(n.opset);
    // Subgraphs first: the decoder numbers their values in this same order.
    for (const auto& [key, a] : n.attrs) KILN_RETURN_IF_ERROR(attribute(key, a, out->add_attrs()));
    for (const Value* v : n.inputs) {
      int64_t i = id(v);
      if (i == -2)
        return internal_error("node {}: input '{}' is not a value of an enclosing graph", n.label(), v->name);
      out->add_inputs(i);
    }
    for (const Value* v : n.outputs) {
      int64_t i = id(v);
      if (i == -2) return internal_error("node {}: output '{}' is not a value of its graph", n.label(), v->name);
      out->add_outputs(i);
    }
    for (const auto& [k, v] : n.metadata) {
      auto* p = out->add_metadata();
      p->set_key(k);
      p->set_value(v);
    }
    return Status::ok();
  }

  SectionList& sections_;
  std::map<const Value*, int64_t> ids_;
  int64_t next_id_ = 0;
};

Status corrupt(const std::string& msg) { return Status(ErrorCode::kCorrupt, "engine metadata: " + msg); }

class Decoder {
 public:
  explicit Decoder(const SectionSource& sections) : sections_(sections) {}

  Expected<std::shared_ptr<Graph>> graph(const engine::Graph& p, Graph* parent, int depth) {
    if (depth > kMaxGraphDepth) return corrupt("subgraphs nest deeper than 64");
    auto g = std::make_shared<Graph>();
    g->name = p.name();
    g->parent = parent;
    if (p.first_value_id() != static_cast<int64_t>(values_.size()))
      return corrupt(fmt::format("graph '{}' numbers its values from {}, expected {}", p.name(), p.first_value_id(),
                                 values_.size()));
    for (const auto& pv : p.values()) {
      Value* v = g->add_value(pv.name());
      KILN_ASSIGN_OR_RETURN(v->type, decode_type(pv.type()));
      if (pv.has_constant()) {
        KILN_ASSIGN_OR_RETURN(Tensor t, tensor(pv.constant(), "value '" + pv.name() + "'"));
        v->constant = std::make_shared<const Tensor>(std::move(t));
      }
      if (pv.has_shape_value()) {
        Dims dims;
        for (const auto& d : pv.shape_value()) dims.push_back(decode_dim(d));
        v->shape_value = std::move(dims);
      }
      values_.push_back(v);
    }
    KILN_RETURN_IF_ERROR(own_values(p.inputs(), *g, g->inputs, "input"));
    KILN_RETURN_IF_ERROR(own_values(p.initializers(), *g, g->initializers, "initializer"));
    for (const auto& pn : p.nodes()) KILN_RETURN_IF_ERROR(node(pn, *g, depth));
    for (int64_t i : p.outputs()) {
      Value* v = visible(i, *g);
      if (!v) return corrupt(fmt::format("graph '{}': output id {} is not a visible value", g->name, i));
      g->outputs.push_back(v);
    }
    return g;
  }

 private:
  // A value of `g` or a graph around it; null otherwise.
  Value* visible(int64_t id, const Graph& g) const {
    if (id < 0 || id >= static_cast<int64_t>(values_.size())) return nullptr;
    Value* v = values_[static_cast<size_t>(id)];
    for (const Graph* s = &g; s; s = s->parent)
      if (v->owner == s) return v;
    return nullptr;
  }

  Status own_values(const google::protobuf::RepeatedField<int64_t>& ids, const Graph& g, std::vector<Value*>& out,
                    const char* what) {
    for (int64_t i : ids) {
      Value* v = visible(i, g);
      if (!v || v->owner != &g) return corrupt(fmt::format("graph '{}': {} id {} is not its value", g.name, what, i));
      out.push_back(v);
    }
    return Status::ok();
  }

  Expected<Tensor> tensor(const engine::TensorData& p, const std::string& where) {
    if (p.dtype() == 0 || !dtype_is_known(static_cast<int>(p.dtype())))
      return corrupt(fmt::format("{}: unknown dtype {}", where, p.dtype()));
    auto dtype = static_cast<DType>(p.dtype());
    std::vector<int64_t> dims(p.dims().begin(), p.dims().end());
    int64_t numel = checked_numel(dims);
    if (numel < 0)
      return corrupt(fmt::format("{}: dims {} are negative or overflow", where, Shape::of(dims).to_string()));
    if (dtype == DType::kString) {
      if (p.strings_size() != numel)
        return corrupt(fmt::format("{}: {} strings for {} elements", where, p.strings_size(), numel));
      Tensor t(DType::kString, dims);
      for (int64_t i = 0; i < numel; ++i) t.strings()[static_cast<size_t>(i)] = p.strings(static_cast<int>(i));
      return t;
    }
    if (p.section() >= sections_.sections.size())
      return corrupt(
          fmt::format("{}: section {} does not exist ({} sections)", where, p.section(), sections_.sections.size()));
    const SectionView& s = sections_.sections[p.section()];
    size_t want = dtype_storage_bytes(dtype, numel);
    if (s.size != want)
      return corrupt(fmt::format("{}: section {} holds {} bytes, {}{} needs {}", where, p.section(), s.size,
                                 dtype_name(dtype), Shape::of(dims).to_string(), want));
    return Tensor::view(dtype, std::move(dims), s.data, want, sections_.owner);
  }

  Expected<Attribute> attribute(const engine::Attribute& p, Graph& g, int depth) {
    Attribute a;
    using K = Attribute::Kind;
    if (p.kind() > static_cast<uint32_t>(K::kType))
      return corrupt(fmt::format("attribute '{}' has unknown kind {}", p.name(), p.kind()));
    a.kind = static_cast<K>(p.kind());
    std::string where = "attribute '" + p.name() + "'";
    switch (a.kind) {
      case K::kFloat: a.f = p.f(); break;
      case K::kInt: a.i = p.i(); break;
      case K::kString: a.s = p.s(); break;
      case K::kTensor: {
        KILN_ASSIGN_OR_RETURN(a.t, tensor(p.t(), where));
        break;
      }
      case K::kGraph: {
        KILN_ASSIGN_OR_RETURN(a.g, graph(p.g(), &g, depth + 1));
        break;
      }
      case K::kFloats: a.floats.assign(p.floats().begin(), p.floats().end()); break;
      case K::kInts: a.ints.assign(p.ints().begin(), p.ints().end()); break;
      case K::kStrings: a.strings.assign(p.strings().begin(), p.strings().end()); break;
      case K::kTensors:
        for (const auto& t : p.tensors()) {
          KILN_ASSIGN_OR_RETURN(Tensor x, tensor(t, where));
          a.tensors.push_back(std::move(x));
        }
        break;
      case K::kGraphs:
        for (const auto& sg : p.graphs()) {
          KILN_ASSIGN_OR_RETURN(auto x, graph(sg, &g, depth + 1));
          a.graphs.push_back(std::move(x));
        }
        break;
      case K::kType: {
        KILN_ASSIGN_OR_RETURN(a.type, decode_type(p.type()));
        break;
      }
    }
    return a;
  }

  Status node(const engine::Node& p, Graph& g, int depth) {
    Node* n = g.add_node(p.op_type(), p.domain());
    n->name = p.name();
    n->opset = p.opset();
    for (const auto& pa : p.attrs()) {
      KILN_ASSIGN_OR_RETURN(Attribute a, attribute(pa, g, depth));
      n->attrs[pa.name()] = std::move(a);
    }
    for (int64_t i : p.inputs()) {
      Value* v = i == -1 ? nullptr : visible(i, g);
      if (i != -1 && !v) return corrupt(fmt::format("node {}: input id {} is not a visible value", n->label(), i));
      n->inputs.push_back(v);
    }
    for (int64_t i : p.outputs()) {
      Value* v = i == -1 ? nullptr : visible(i, g);
      if (i != -1 && (!v || v->owner != &g || v->producer))
        return corrupt(fmt::format("node {}: output id {} is not a free value of its graph", n->label(), i));
      if (v) {
        v->producer = n;
        v->producer_output = static_cast<int>(n->outputs.size());
      }
      n->outputs.push_back(v);
    }
    for (const auto& kv : p.metadata()) n->metadata[kv.key()] = kv.value();
    return Status::ok();
  }

  const SectionSource& sections_;
  std::vector<Value*> values_;
};

}  // namespace

void encode_type(const Type& t, engine::Type* out) {
  out->set_kind(static_cast<uint32_t>(t.kind));
  out->set_dtype(static_cast<uint32_t>(t.dtype));
  if (t.is_tensor()) {
    auto* s = out->mutable_shape();
    s->set_has_rank(t.shape.has_rank());
    if (t.shape.has_rank())
      for (const Dim& d : *t.shape.dims) encode_dim(d, s->add_dims());
  }
  if (t.elem) encode_type(*t.elem, out->mutable_elem());
}

Expected<Type> decode_type(const engine::Type& p, int depth) {
  if (depth > kMaxTypeDepth) return corrupt("types nest deeper than 16");
  if (p.kind() > static_cast<uint32_t>(Type::Kind::kOptional))
    return corrupt(fmt::format("unknown type kind {}", p.kind()));
  if (p.dtype() != 0 && !dtype_is_known(static_cast<int>(p.dtype())))
    return corrupt(fmt::format("unknown dtype {}", p.dtype()));
  Type t;
  t.kind = static_cast<Type::Kind>(p.kind());
  t.dtype = static_cast<DType>(p.dtype());
  if (p.has_shape() && p.shape().has_rank()) {
    Dims dims;
    for (const auto& d : p.shape().dims()) dims.push_back(decode_dim(d));
    t.shape = Shape(std::move(dims));
  }
  if (p.has_elem()) {
    KILN_ASSIGN_OR_RETURN(Type e, decode_type(p.elem(), depth + 1));
    t.elem = std::make_shared<const Type>(std::move(e));
  }
  return t;
}

Status encode_graph(const Graph& graph, SectionList& sections, engine::Graph* out) {
  return Encoder(sections).graph(graph, out);
}

Expected<std::shared_ptr<Graph>> decode_graph(const engine::Graph& proto, const SectionSource& sections) {
  return Decoder(sections).graph(proto, nullptr, 0);
}

}  // namespace kiln
