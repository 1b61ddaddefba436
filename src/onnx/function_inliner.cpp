#include "onnx/function_inliner.h"

#include <fmt/format.h>
#include <onnx/onnx-ml.pb.h>

#include <algorithm>
#include <map>
#include <set>

namespace kiln {
namespace {

struct FunctionKey {
  std::string domain, name, overload;
  auto operator<=>(const FunctionKey&) const = default;
};

class Inliner {
 public:
  Inliner(const onnx::ModelProto& model, const std::map<std::string, int64_t>& opsets,
          std::vector<Diagnostic>& diagnostics)
      : opsets_(opsets), diagnostics_(diagnostics) {
    for (const auto& f : model.functions()) functions_[{f.domain(), f.name(), f.overload()}] = &f;
  }

  bool empty() const { return functions_.empty(); }

  // Nodes `g` has once every call in it is expanded, past kMaxInlinedNodes
  // saturating at kMaxInlinedNodes + 1. Counted per function, so nesting
  // that would expand exponentially is found before any of it is expanded.
  int64_t expanded_size(const onnx::GraphProto& g) {
    int64_t n = 0;
    for (const auto& node : g.node()) n = std::min(n + expanded_size(node), kMaxInlinedNodes + 1);
    return n;
  }

  void rewrite_graph(onnx::GraphProto& g) {
    google::protobuf::RepeatedPtrField<onnx::NodeProto> out;
    for (auto& node : *g.mutable_node()) expand_into(node, out);
    g.mutable_node()->Swap(&out);
  }

 private:
  const onnx::FunctionProto* find(const onnx::NodeProto& n) const {
    auto it = functions_.find({n.domain(), n.op_type(), n.overload()});
    return it == functions_.end() ? nullptr : it->second;
  }

  void report(const onnx::NodeProto& n, std::string message) {
    Diagnostic d;
    d.reason = Diagnostic::Reason::kInvalidModel;
    d.node_name = n.name();
    d.op_type = n.op_type();
    d.domain = n.domain();
    auto it = opsets_.find(n.domain() == "ai.onnx" ? "" : n.domain());
    d.opset = it == opsets_.end() ? 0 : it->second;
    d.graph = "main";
    d.message = std::move(message);
    diagnostics_.push_back(std::move(d));
  }

  int64_t expanded_size(const onnx::NodeProto& node) {
    const onnx::FunctionProto* f = find(node);
    int64_t n = 0;
    if (!f) {
      n = 1;
      for (const auto& a : node.attribute()) {
        if (a.has_g()) n += expanded_size(a.g());
        for (const auto& g : a.graphs()) n = std::min(n + expanded_size(g), kMaxInlinedNodes + 1);
        n = std::min(n, kMaxInlinedNodes + 1);
      }
      return n;
    }
    FunctionKey key{f->domain(), f->name(), f->overload()};
    auto it = sizes_.find(key);
    if (it != sizes_.end()) return it->second;
    if (!sizing_.insert(key).second) return 1;  // recursion: expand_into reports it
    for (const auto& inner : f->node()) n = std::min(n + expanded_size(inner), kMaxInlinedNodes + 1);
    sizing_.erase(key);
    sizes_[key] = n;
    return n;
  }

  void rewrite_subgraphs(onnx::NodeProto& node) {
    for (auto& a : *node.mutable_attribute()) {
      if (a.has_g()) rewrite_graph(*a.mutable_g());
      for (auto& g : *a.mutable_graphs()) rewrite_graph(g);
    }
  }

  static std::string key_name(const FunctionKey& k) { return k.domain.empty() ? k.name : k.domain + ":" + k.name; }

  void expand_into(onnx::NodeProto& node, google::protobuf::RepeatedPtrField<onnx::NodeProto>& out) {
    const onnx::FunctionProto* f = find(node);
    if (!f) {
      rewrite_subgraphs(node);
      *out.Add() = std::move(node);
      return;
    }
    FunctionKey key{f->domain(), f->name(), f->overload()};
    for (const FunctionKey& active : stack_) {
      if (active != key) continue;
      if (reported_recursion_.insert(key).second)
        report(node, fmt::format("function '{}' calls itself (through '{}')", key_name(key), key_name(stack_.back())));
      return;
    }
    if (node.input_size() > f->input_size() || node.output_size() > f->output_size()) {
      report(node,
             fmt::format("call of function '{}' has {} inputs and {} outputs; the function takes {} and {}",
                         node.op_type(), node.input_size(), node.output_size(), f->input_size(), f->output_size()));
      return;
    }
    std::string prefix =
        fmt::format("{}/", node.name().empty() ? node.op_type() + std::to_string(counter_++) : node.name());
    std::map<std::string, std::string> rename;
    for (int i = 0; i < f->input_size(); ++i) rename[f->input(i)] = i < node.input_size() ? node.input(i) : "";
    for (int i = 0; i < f->output_size(); ++i)
      rename[f->output(i)] = i < node.output_size() ? node.output(i) : prefix + f->output(i);
    std::map<std::string, const onnx::AttributeProto*> attrs;
    for (const auto& a : f->attribute_proto()) attrs[a.name()] = &a;  // defaults
    for (const auto& a : node.attribute()) attrs[a.name()] = &a;
    google::protobuf::RepeatedPtrField<onnx::NodeProto> body;
    for (const auto& inner : f->node()) {
      onnx::NodeProto copy = inner;
      if (!copy.name().empty())
        copy.set_name(prefix + copy.name());
      else
        copy.set_name(prefix + copy.op_type() + std::to_string(counter_++));
      rename_node(copy, rename, prefix, attrs);
      *body.Add() = std::move(copy);
    }
    stack_.push_back(key);
    for (auto& inner : body) expand_into(inner, out);
    stack_.pop_back();
  }

  static std::string renamed(const std::string& name, const std::map<std::string, std::string>& rename,
                             const std::string& prefix) {
    if (name.empty()) return name;
    auto it = rename.find(name);
    return it != rename.end() ? it->second : prefix + name;
  }

  void rename_node(onnx::NodeProto& n, const std::map<std::string, std::string>& rename, const std::string& prefix,
                   const std::map<std::string, const onnx::AttributeProto*>& attrs) {
    for (auto& in : *n.mutable_input()) in = renamed(in, rename, prefix);
    for (auto& o : *n.mutable_output()) o = renamed(o, rename, prefix);
    google::protobuf::RepeatedPtrField<onnx::AttributeProto> kept;
    for (auto& a : *n.mutable_attribute()) {
      if (!a.ref_attr_name().empty()) {
        auto it = attrs.find(a.ref_attr_name());
        if (it == attrs.end()) continue;  // not given and no default: the attribute is absent
        onnx::AttributeProto v = *it->second;
        v.set_name(a.name());
        *kept.Add() = std::move(v);
        continue;
      }
      if (a.has_g()) rename_graph(*a.mutable_g(), rename, prefix, attrs);
      for (auto& g : *a.mutable_graphs()) rename_graph(g, rename, prefix, attrs);
      *kept.Add() = std::move(a);
    }
    n.mutable_attribute()->Swap(&kept);
  }

  // Inside a body's subgraph, names of the subgraph's own values stay; reads of
  // the function's values are renamed.
  void rename_graph(onnx::GraphProto& g, const std::map<std::string, std::string>& rename, const std::string& prefix,
                    const std::map<std::string, const onnx::AttributeProto*>& attrs) {
    std::map<std::string, std::string> inner = rename;
    auto keep = [&](const std::string& name) { inner[name] = name; };
    for (const auto& i : g.input()) keep(i.name());
    for (const auto& i : g.initializer()) keep(i.name());
    for (const auto& n : g.node())
      for (const auto& o : n.output()) keep(o);
    for (auto& n : *g.mutable_node()) rename_node(n, inner, prefix, attrs);
    for (auto& o : *g.mutable_output()) o.set_name(renamed(o.name(), inner, prefix));
  }

  std::map<FunctionKey, const onnx::FunctionProto*> functions_;
  const std::map<std::string, int64_t>& opsets_;
  std::vector<Diagnostic>& diagnostics_;
  std::vector<FunctionKey> stack_;  // the calls being expanded, outermost first
  std::set<FunctionKey> reported_recursion_;
  std::map<FunctionKey, int64_t> sizes_;  // expanded_size of each function's body
  std::set<FunctionKey> sizing_;          // functions whose size is being counted
  int counter_ = 0;
};

}  // namespace

void inline_model_functions(onnx::ModelProto& model, const std::map<std::string, int64_t>& opsets,
                            std::vector<Diagnostic>& diagnostics) {
  Inliner inliner(model, opsets, diagnostics);
  if (inliner.empty()) return;
  if (inliner.expanded_size(model.graph()) > kMaxInlinedNodes) {
    // Nothing is expanded, and the graph is emptied: its outputs would only be
    // reported as missing.
    Diagnostic d;
    d.graph = "main";
    d.message = fmt::format("inlining the model's functions would make more than {} nodes", kMaxInlinedNodes);
    diagnostics.push_back(std::move(d));
    model.mutable_graph()->clear_node();
    model.mutable_graph()->clear_output();
    return;
  }
  inliner.rewrite_graph(*model.mutable_graph());
}

}  // namespace kiln
