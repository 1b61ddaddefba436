#include "onnx/graph_importer.h"

#include <fmt/format.h>
#include <onnx/onnx-ml.pb.h>

#include <set>

#include "ops/op_schema.h"

namespace kiln {
namespace {

int max_upgrade_opset(const OpSchema& schema) {
  int m = 0;
  for (const OpUpgrade& up : schema.upgrades) m = std::max(m, up.below_opset);
  return m;
}

bool has_upgrade_slots(const Node& n, const OpSchema& schema) {
  if (static_cast<int>(n.outputs.size()) < schema.min_outputs) return false;
  for (int i = 0; i < schema.min_outputs; ++i)
    if (!n.outputs[static_cast<size_t>(i)]) return false;
  return true;
}

class GraphImporter {
 public:
  GraphImporter(const onnx::GraphProto& proto, Graph& graph, const ImportScope& scope, std::string path)
      : proto_(proto), graph_(graph), scope_(scope), path_(std::move(path)) {}

  void run() {
    graph_.name = proto_.name();
    graph_.doc_string = proto_.doc_string();
    read_value_infos();
    read_initializers();
    read_inputs();
    std::vector<int> order = topological_order();
    for (int i : order) read_node(proto_.node(i), i);
    read_outputs();
  }

 private:
  void report(Diagnostic::Reason reason, std::string message, const onnx::NodeProto* node = nullptr, int index = -1,
              std::string hint = {}) {
    Diagnostic d;
    d.reason = reason;
    d.graph = path_;
    d.message = std::move(message);
    d.hint = std::move(hint);
    if (node) {
      d.node_name = node->name();
      d.node_index = index;
      d.op_type = node->op_type();
      d.domain = node->domain();
      d.opset = opset_of(node->domain());
    }
    scope_.diagnostics->push_back(std::move(d));
  }

  int64_t opset_of(const std::string& domain) const {
    auto it = scope_.opsets->find(domain == "ai.onnx" ? "" : domain);
    return it == scope_.opsets->end() ? 0 : it->second;
  }

  void read_value_infos() {
    for (const auto& vi : proto_.value_info()) {
      auto t = type_from_proto(vi.type(), vi.name());
      if (t) declared_[vi.name()] = std::move(t).value();
    }
    for (const auto& vi : proto_.output()) {
      auto t = type_from_proto(vi.type(), vi.name());
      if (t)
        declared_[vi.name()] = std::move(t).value();
      else
        report(Diagnostic::Reason::kUnsupportedDType, t.status().message());
    }
  }

  bool defined_here(const std::string& name) const { return defined_.count(name) != 0; }

  void read_initializers() {
    auto add = [&](const std::string& name, Expected<Tensor> t) {
      if (name.empty()) {
        report(Diagnostic::Reason::kInvalidModel, "an initializer has no name");
        return;
      }
      if (defined_here(name)) {
        report(Diagnostic::Reason::kInvalidModel, fmt::format("initializer '{}' is defined twice", name));
        return;
      }
      defined_.insert(name);
      if (!t) {
        report(t.status().code() == ErrorCode::kUnsupported ? Diagnostic::Reason::kUnsupportedDType
                                                            : Diagnostic::Reason::kInvalidModel,
               fmt::format("initializer '{}': {}", name, t.status().message()));
        // A value without contents, so its readers are not reported again.
        graph_.add_value(name);
        return;
      }
      Value* v = graph_.add_value(name, Type::tensor(t->dtype(), Shape::of(t->dims())));
      v->constant = std::make_shared<const Tensor>(std::move(t).value());
      graph_.initializers.push_back(v);
    };
    for (const auto& init : proto_.initializer()) add(init.name(), tensor_from_proto(init, scope_.tensor_options));
    for (const auto& sp : proto_.sparse_initializer())
      add(sp.values().name(), tensor_from_sparse_proto(sp, scope_.tensor_options));
  }

  void read_inputs() {
    std::set<std::string> seen;
    for (const auto& in : proto_.input()) {
      if (in.name().empty()) {  // an empty name means "omitted" to the nodes: nothing could read it
        report(Diagnostic::Reason::kInvalidModel, "a graph input has no name");
        continue;
      }
      if (!seen.insert(in.name()).second) {
        report(Diagnostic::Reason::kInvalidModel, fmt::format("graph input '{}' is listed twice", in.name()));
        continue;
      }
      // Before IR 4 initializers were listed as inputs too: they stay constants.
      if (defined_here(in.name())) continue;
      auto t = type_from_proto(in.type(), in.name());
      if (!t)  // still an input, of unknown type, so its readers are not reported again
        report(t.status().code() == ErrorCode::kUnsupported ? Diagnostic::Reason::kUnsupportedDType
                                                            : Diagnostic::Reason::kInvalidModel,
               fmt::format("graph input: {}", t.status().message()));
      defined_.insert(in.name());
      Value* v = graph_.add_value(in.name(), t ? std::move(t).value() : Type());
      graph_.inputs.push_back(v);
    }
  }

  // Kahn's algorithm over the names nodes produce; exporters usually emit
  // topological order already, and this keeps it stable when they do. Nodes
  // on a cycle are reported once and left out; their outputs stay defined
  // (without a producer) so readers further on are not reported again.
  std::vector<int> topological_order() {
    int n = proto_.node_size();
    std::map<std::string, int> producer;
    for (int i = 0; i < n; ++i)
      for (const auto& out : proto_.node(i).output())
        if (!out.empty()) producer.emplace(out, i);
    std::vector<std::set<int>> deps(n);
    std::vector<std::vector<int>> users(n);
    for (int i = 0; i < n; ++i) {
      std::set<std::string> reads;
      collect_reads(proto_.node(i), reads);
      for (const auto& name : reads) {
        auto it = producer.find(name);
        // A node reading its own output is a cycle of one: it depends on itself.
        if (it != producer.end() && deps[i].insert(it->second).second) users[it->second].push_back(i);
      }
    }
    std::vector<int> order;
    std::vector<size_t> pending(n);
    std::set<int> ready;
    for (int i = 0; i < n; ++i) {
      pending[i] = deps[i].size();
      if (pending[i] == 0) ready.insert(i);
    }
    while (!ready.empty()) {
      int i = *ready.begin();
      ready.erase(ready.begin());
      order.push_back(i);
      for (int u : users[i])
        if (--pending[u] == 0) ready.insert(u);
    }
    if (static_cast<int>(order.size()) != n) {
      std::vector<int> after = split_cycle(deps, users, pending);
      order.insert(order.end(), after.begin(), after.end());
    }
    return order;
  }

  // The nodes Kahn's algorithm left (pending != 0) are on a cycle or depend on
  // one. Peeling those no other left node reads leaves the cycles (and nodes
  // between cycles), which are reported and not read; the peeled ones are
  // returned in an order to read them in, after the cycle's outputs.
  std::vector<int> split_cycle(const std::vector<std::set<int>>& deps, const std::vector<std::vector<int>>& users,
                               std::vector<size_t>& pending) {
    int n = static_cast<int>(pending.size());
    std::vector<size_t> readers(n, 0);
    for (int i = 0; i < n; ++i)
      if (pending[i] != 0)
        for (int u : users[i]) readers[i] += pending[u] != 0;
    std::vector<int> sinks, peeled;
    for (int i = 0; i < n; ++i)
      if (pending[i] != 0 && readers[i] == 0) sinks.push_back(i);
    while (!sinks.empty()) {
      int i = sinks.back();
      sinks.pop_back();
      peeled.push_back(i);
      pending[i] = 0;
      for (int d : deps[i])
        if (pending[d] != 0 && --readers[d] == 0) sinks.push_back(d);
    }
    report_cycle(pending);
    return {peeled.rbegin(), peeled.rend()};
  }

  void report_cycle(const std::vector<size_t>& on_cycle) {
    std::string names;
    int shown = 0, count = 0;
    for (int i = 0; i < static_cast<int>(on_cycle.size()); ++i) {
      if (on_cycle[i] == 0) continue;
      ++count;
      const onnx::NodeProto& node = proto_.node(i);
      if (shown++ < 10) names += fmt::format("{}'{}' ({})", names.empty() ? "" : ", ", node.name(), node.op_type());
      for (const auto& out : node.output())
        if (!out.empty() && !defined_here(out)) {
          defined_.insert(out);
          graph_.add_value(out);
        }
    }
    report(Diagnostic::Reason::kInvalidModel, fmt::format("the graph has a cycle through {} node{}: {}{}", count,
                                                          count == 1 ? "" : "s", names, count > 10 ? ", ..." : ""));
  }

  // Names a node reads, its subgraphs' reads of outer values included.
  static void collect_reads(const onnx::NodeProto& node, std::set<std::string>& out) {
    for (const auto& in : node.input())
      if (!in.empty()) out.insert(in);
    for (const auto& a : node.attribute()) {
      if (a.has_g()) collect_graph_reads(a.g(), out);
      for (const auto& g : a.graphs()) collect_graph_reads(g, out);
    }
  }
  // The names a subgraph reads that it does not define itself.
  static void collect_graph_reads(const onnx::GraphProto& g, std::set<std::string>& out) {
    std::set<std::string> inner, defined;
    for (const auto& n : g.node()) collect_reads(n, inner);
    for (const auto& o : g.output()) inner.insert(o.name());
    for (const auto& i : g.input()) defined.insert(i.name());
    for (const auto& i : g.initializer()) defined.insert(i.name());
    for (const auto& i : g.sparse_initializer()) defined.insert(i.values().name());
    for (const auto& n : g.node())
      for (const auto& o : n.output()) defined.insert(o);
    for (const auto& name : inner)
      if (!defined.count(name)) out.insert(name);
  }

  // The attribute's type; old producers omit it, and it is taken from the
  // field that is set (UNDEFINED when none is).
  static onnx::AttributeProto::AttributeType attribute_type(const onnx::AttributeProto& a) {
    using AP = onnx::AttributeProto;
    if (a.type() != AP::UNDEFINED) return a.type();
    if (a.has_f()) return AP::FLOAT;
    if (a.has_i()) return AP::INT;
    if (a.has_s()) return AP::STRING;
    if (a.has_t()) return AP::TENSOR;
    if (a.has_g()) return AP::GRAPH;
    if (a.has_sparse_tensor()) return AP::SPARSE_TENSOR;
    if (a.has_tp()) return AP::TYPE_PROTO;
    if (a.floats_size()) return AP::FLOATS;
    if (a.ints_size()) return AP::INTS;
    if (a.strings_size()) return AP::STRINGS;
    if (a.tensors_size()) return AP::TENSORS;
    if (a.graphs_size()) return AP::GRAPHS;
    return AP::UNDEFINED;
  }

  Expected<Attribute> read_attribute(const onnx::AttributeProto& a, const onnx::NodeProto& node, int index) {
    Attribute r;
    using AP = onnx::AttributeProto;
    if (!a.ref_attr_name().empty())
      return invalid_model("attribute '{}' refers to '{}' outside a function", a.name(), a.ref_attr_name());
    auto type = attribute_type(a);
    if (type == AP::UNDEFINED) return invalid_model("attribute '{}' has no type and no value", a.name());
    switch (type) {
      case AP::FLOAT:
        r.kind = Attribute::Kind::kFloat;
        r.f = a.f();
        break;
      case AP::INT:
        r.kind = Attribute::Kind::kInt;
        r.i = a.i();
        break;
      case AP::STRING:
        r.kind = Attribute::Kind::kString;
        r.s = a.s();
        break;
      case AP::FLOATS:
        r.kind = Attribute::Kind::kFloats;
        r.floats.assign(a.floats().begin(), a.floats().end());
        break;
      case AP::INTS:
        r.kind = Attribute::Kind::kInts;
        r.ints.assign(a.ints().begin(), a.ints().end());
        break;
      case AP::STRINGS:
        r.kind = Attribute::Kind::kStrings;
        r.strings.assign(a.strings().begin(), a.strings().end());
        break;
      case AP::TENSOR: {
        r.kind = Attribute::Kind::kTensor;
        KILN_ASSIGN_OR_RETURN(r.t, tensor_from_proto(a.t(), scope_.tensor_options));
        break;
      }
      case AP::SPARSE_TENSOR: {
        r.kind = Attribute::Kind::kTensor;
        KILN_ASSIGN_OR_RETURN(r.t, tensor_from_sparse_proto(a.sparse_tensor(), scope_.tensor_options));
        break;
      }
      case AP::TENSORS:
        r.kind = Attribute::Kind::kTensors;
        for (const auto& t : a.tensors()) {
          KILN_ASSIGN_OR_RETURN(Tensor x, tensor_from_proto(t, scope_.tensor_options));
          r.tensors.push_back(std::move(x));
        }
        break;
      case AP::GRAPH:
        r.kind = Attribute::Kind::kGraph;
        r.g = import_subgraph(a.g(), fmt::format("{}/{}.{}", path_, node_label(node), a.name()));
        break;
      case AP::GRAPHS:
        r.kind = Attribute::Kind::kGraphs;
        for (int k = 0; k < a.graphs_size(); ++k)
          r.graphs.push_back(
              import_subgraph(a.graphs(k), fmt::format("{}/{}.{}[{}]", path_, node_label(node), a.name(), k)));
        break;
      case AP::TYPE_PROTO: {
        r.kind = Attribute::Kind::kType;
        KILN_ASSIGN_OR_RETURN(r.type, type_from_proto(a.tp(), a.name()));
        break;
      }
      default:
        return unsupported("attribute '{}' has type {}, which kiln does not support", a.name(), static_cast<int>(type));
    }
    (void)index;
    return r;
  }

  // Names a node in subgraph paths; shape inference names them the same way.
  static std::string node_label(const onnx::NodeProto& node) {
    return node.name().empty() ? node.op_type() : node.name();
  }

  std::shared_ptr<Graph> import_subgraph(const onnx::GraphProto& g, const std::string& path) {
    auto sub = std::make_shared<Graph>();
    sub->parent = &graph_;
    import_graph(g, *sub, scope_, path);
    return sub;
  }

  // The tensor a Constant's value attribute `key` holds, or why it holds none.
  static Expected<Tensor> constant_value(const std::string& key, const Attribute& attr) {
    using K = Attribute::Kind;
    static const std::map<std::string, K> kinds = {{"value", K::kTensor},        {"sparse_value", K::kTensor},
                                                   {"value_float", K::kFloat},   {"value_floats", K::kFloats},
                                                   {"value_int", K::kInt},       {"value_ints", K::kInts},
                                                   {"value_string", K::kString}, {"value_strings", K::kStrings}};
    auto it = kinds.find(key);
    if (it == kinds.end()) return invalid_model("Constant has unknown attribute '{}'", key);
    if (attr.kind != it->second)
      return invalid_model("Constant attribute '{}' must be {}, not {}", key, attribute_kind_name(it->second),
                           attribute_kind_name(attr.kind));
    switch (attr.kind) {
      case K::kFloat: return Tensor::from_vector<float>(DType::kF32, {}, {attr.f});
      case K::kFloats:
        return Tensor::from_vector<float>(DType::kF32, {static_cast<int64_t>(attr.floats.size())}, attr.floats);
      case K::kInt: return Tensor::scalar_i64(attr.i);
      case K::kInts: return Tensor::vector_i64(attr.ints);
      case K::kString: {
        Tensor t(DType::kString, {});
        t.strings()[0] = attr.s;
        return t;
      }
      case K::kStrings: {
        Tensor t(DType::kString, {static_cast<int64_t>(attr.strings.size())});
        t.strings() = attr.strings;
        return t;
      }
      default: return attr.t;
    }
  }

  // A Constant node becomes a constant value; no node remains.
  void read_constant(const onnx::NodeProto& p, const Node& node, int index) {
    if (node.attrs.size() != 1) {
      report(Diagnostic::Reason::kInvalidModel,
             fmt::format("Constant must have exactly one value attribute, has {}", node.attrs.size()), &p, index);
      return;
    }
    auto t = constant_value(node.attrs.begin()->first, node.attrs.begin()->second);
    if (!t) {
      report(Diagnostic::Reason::kInvalidModel, t.status().message(), &p, index);
      return;
    }
    if (node.outputs.size() != 1 || !node.outputs[0]) {
      report(Diagnostic::Reason::kInvalidModel, "Constant must have one output", &p, index);
      return;
    }
    Value* v = node.outputs[0];
    v->producer = nullptr;
    v->type = Type::tensor(t->dtype(), Shape::of(t->dims()));
    v->constant = std::make_shared<const Tensor>(std::move(t).value());
  }

  // The node's attributes into `node`; false (after reporting) when one is bad.
  bool read_node_attributes(const onnx::NodeProto& p, Node& node, int index) {
    bool ok = true;
    for (const auto& a : p.attribute()) {
      if (node.attrs.count(a.name())) {
        report(Diagnostic::Reason::kInvalidModel, fmt::format("attribute '{}' is given twice", a.name()), &p, index);
        ok = false;
        continue;
      }
      auto attr = read_attribute(a, p, index);
      if (!attr) {
        report(attr.status().code() == ErrorCode::kUnsupported ? Diagnostic::Reason::kUnsupportedAttribute
                                                               : Diagnostic::Reason::kInvalidModel,
               attr.status().message(), &p, index);
        ok = false;
        continue;
      }
      node.attrs.emplace(a.name(), std::move(attr).value());
    }
    return ok;
  }

  void read_node(const onnx::NodeProto& p, int index) {
    Node* node = graph_.add_node(p.op_type(), p.domain() == "ai.onnx" ? "" : p.domain());
    node->name = p.name();
    node->opset = static_cast<int>(opset_of(p.domain()));
    node->doc_string = p.doc_string();
    for (const auto& kv : p.metadata_props()) node->metadata[kv.key()] = kv.value();
    bool ok = true;
    if (!scope_.opsets->count(node->domain)) {
      report(Diagnostic::Reason::kInvalidModel, fmt::format("the model imports no opset for domain '{}'", p.domain()),
             &p, index, "add an opset_import entry for the domain");
      ok = false;
    }
    ok = read_node_attributes(p, *node, index) && ok;
    for (const auto& name : p.input()) {
      if (name.empty()) {
        node->inputs.push_back(nullptr);
        continue;
      }
      Value* v = graph_.find_value(name);
      if (!v) {
        report(Diagnostic::Reason::kInvalidModel,
               fmt::format("input '{}' is not produced by any node, graph input or initializer", name), &p, index);
        ok = false;
        v = graph_.add_value(graph_.unique_name(name + ".dangling"));
      }
      node->inputs.push_back(v);
    }
    for (size_t k = 0; k < static_cast<size_t>(p.output_size()); ++k) {
      const std::string& name = p.output(static_cast<int>(k));
      if (name.empty()) {
        node->outputs.push_back(nullptr);
        continue;
      }
      bool again = defined_here(name);
      if (again) {
        report(Diagnostic::Reason::kInvalidModel, fmt::format("value '{}' is produced twice", name), &p, index);
        ok = false;
      }
      defined_.insert(name);
      auto it = declared_.find(name);
      // A second producer gets a value of its own: readers keep the first.
      Value* v = graph_.add_value(again ? graph_.unique_name(name + ".again") : name,
                                  it == declared_.end() || again ? Type() : it->second);
      v->producer = node;
      v->producer_output = static_cast<int>(k);
      node->outputs.push_back(v);
    }
    bool is_constant = node->domain.empty() && node->op_type == "Constant";
    if (is_constant && ok) read_constant(p, *node, index);
    if (is_constant || !ok) {
      // Constants live on as values; a broken node is reported already, and
      // dropping it keeps shape inference from reporting it twice.
      for (Value* v : node->outputs)
        if (v) v->producer = nullptr;
      graph_.mutable_nodes().pop_back();
      return;
    }
    const OpSchema* schema = OpRegistry::instance().find(node->domain, node->op_type);
    if (!schema) return;  // shape inference reports the unknown op with the others
    // Upgrades rewrite a node around its required outputs, so those must be
    // there before any upgrade runs.
    if (node->opset < max_upgrade_opset(*schema) && !has_upgrade_slots(*node, *schema)) {
      report(Diagnostic::Reason::kInvalidModel,
             fmt::format("{} needs its {} required output{}", node->op_type, schema->min_outputs,
                         schema->min_outputs == 1 ? "" : "s"),
             &p, index);
      for (Value* v : node->outputs)
        if (v) v->producer = nullptr;
      graph_.mutable_nodes().pop_back();
      return;
    }
    for (const OpUpgrade& up : schema->upgrades) {
      if (node->opset >= up.below_opset) continue;
      UpgradeContext ctx(graph_, *node);
      Status st = up.fn(ctx);
      if (!st.is_ok()) {
        report(st.code() == ErrorCode::kUnsupported ? Diagnostic::Reason::kUnsupportedAttribute
                                                    : Diagnostic::Reason::kInvalidModel,
               st.message(), &p, index);
        return;
      }
    }
  }

  void read_outputs() {
    for (const auto& out : proto_.output()) {
      Value* v = graph_.find_value(out.name());
      if (!v) {
        report(Diagnostic::Reason::kInvalidModel,
               fmt::format("graph output '{}' is not produced by any node, input or initializer", out.name()));
        continue;
      }
      graph_.outputs.push_back(v);
    }
  }

  const onnx::GraphProto& proto_;
  Graph& graph_;
  const ImportScope& scope_;
  std::string path_;
  std::map<std::string, Type> declared_;
  std::set<std::string> defined_;
};

}  // namespace

void import_graph(const onnx::GraphProto& proto, Graph& graph, const ImportScope& scope, const std::string& path) {
  GraphImporter(proto, graph, scope, path).run();
}

}  // namespace kiln
