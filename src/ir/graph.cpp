#include "ir/graph.h"

#include <fmt/format.h>

#include <set>

namespace kiln {

const char* attribute_kind_name(Attribute::Kind k) {
  switch (k) {
    case Attribute::Kind::kFloat: return "float";
    case Attribute::Kind::kInt: return "int";
    case Attribute::Kind::kString: return "string";
    case Attribute::Kind::kTensor: return "tensor";
    case Attribute::Kind::kGraph: return "graph";
    case Attribute::Kind::kFloats: return "floats";
    case Attribute::Kind::kInts: return "ints";
    case Attribute::Kind::kStrings: return "strings";
    case Attribute::Kind::kTensors: return "tensors";
    case Attribute::Kind::kGraphs: return "graphs";
    case Attribute::Kind::kType: return "type";
  }
  return "?";
}

const Attribute* Node::attr(const std::string& key) const {
  auto it = attrs.find(key);
  return it == attrs.end() ? nullptr : &it->second;
}

int64_t Node::attr_int(const std::string& key, int64_t fallback) const {
  const Attribute* a = attr(key);
  return a && a->kind == Attribute::Kind::kInt ? a->i : fallback;
}

float Node::attr_float(const std::string& key, float fallback) const {
  const Attribute* a = attr(key);
  if (!a) return fallback;
  if (a->kind == Attribute::Kind::kFloat) return a->f;
  if (a->kind == Attribute::Kind::kInt) return static_cast<float>(a->i);
  return fallback;
}

std::string Node::attr_string(const std::string& key, const std::string& fallback) const {
  const Attribute* a = attr(key);
  return a && a->kind == Attribute::Kind::kString ? a->s : fallback;
}

std::vector<int64_t> Node::attr_ints(const std::string& key, std::vector<int64_t> fallback) const {
  const Attribute* a = attr(key);
  return a && a->kind == Attribute::Kind::kInts ? a->ints : fallback;
}

std::vector<float> Node::attr_floats(const std::string& key, std::vector<float> fallback) const {
  const Attribute* a = attr(key);
  return a && a->kind == Attribute::Kind::kFloats ? a->floats : fallback;
}

std::string Node::label() const {
  return fmt::format("'{}' ({}{}{})", name, domain.empty() ? "" : domain, domain.empty() ? "" : ":", op_type);
}

Value* Graph::add_value(std::string name, Type type) {
  auto v = std::make_unique<Value>();
  v->name = std::move(name);
  v->type = std::move(type);
  v->owner = this;
  Value* raw = v.get();
  if (!raw->name.empty()) by_name_[raw->name] = raw;
  values_.push_back(std::move(v));
  return raw;
}

Node* Graph::add_node(std::string op_type, std::string domain) {
  auto n = std::make_unique<Node>();
  n->op_type = std::move(op_type);
  n->domain = std::move(domain);
  nodes_.push_back(std::move(n));
  return nodes_.back().get();
}

Value* Graph::find_value(const std::string& name) const {
  for (const Graph* g = this; g; g = g->parent) {
    auto it = g->by_name_.find(name);
    if (it != g->by_name_.end()) return it->second;
  }
  return nullptr;
}

static void collect_users(const Graph& g, const Value* v, std::vector<Node*>& out) {
  for (const auto& n : g.nodes()) {
    bool uses = false;
    for (const Value* in : n->inputs) uses |= in == v;
    for (const auto& [key, a] : n->attrs) {
      if (a.g) {
        std::vector<Node*> inner;
        collect_users(*a.g, v, inner);
        uses |= !inner.empty();
      }
      for (const auto& sg : a.graphs) {
        std::vector<Node*> inner;
        collect_users(*sg, v, inner);
        uses |= !inner.empty();
      }
    }
    if (uses) out.push_back(n.get());
  }
}

std::vector<Node*> Graph::users(const Value* v) const {
  std::vector<Node*> out;
  collect_users(*this, v, out);
  return out;
}

void Graph::erase_nodes_if(const std::function<bool(const Node&)>& dead) {
  std::erase_if(nodes_, [&](const std::unique_ptr<Node>& n) { return dead(*n); });
  std::set<const Value*> live(inputs.begin(), inputs.end());
  live.insert(outputs.begin(), outputs.end());
  for (const auto& n : nodes_) {
    live.insert(n->inputs.begin(), n->inputs.end());
    live.insert(n->outputs.begin(), n->outputs.end());
  }
  // Values read by subgraphs from this scope stay too.
  std::function<void(const Graph&)> mark_subgraph_reads = [&](const Graph& g) {
    for (const auto& n : g.nodes()) {
      live.insert(n->inputs.begin(), n->inputs.end());
      for (const auto& [key, a] : n->attrs) {
        if (a.g) mark_subgraph_reads(*a.g);
        for (const auto& sg : a.graphs) mark_subgraph_reads(*sg);
      }
    }
  };
  for (const auto& n : nodes_)
    for (const auto& [key, a] : n->attrs) {
      if (a.g) mark_subgraph_reads(*a.g);
      for (const auto& sg : a.graphs) mark_subgraph_reads(*sg);
    }
  std::erase_if(initializers, [&](const Value* v) { return !live.count(v); });
  std::erase_if(values_, [&](const std::unique_ptr<Value>& v) {
    if (live.count(v.get())) return false;
    auto it = by_name_.find(v->name);
    if (it != by_name_.end() && it->second == v.get()) by_name_.erase(it);
    return true;
  });
}

std::string Graph::unique_name(const std::string& base) {
  if (!find_value(base)) return base;
  for (;;) {
    std::string candidate = fmt::format("{}_{}", base, ++name_counter_);
    if (!find_value(candidate)) return candidate;
  }
}

int64_t Model::opset_version(const std::string& d) const {
  std::string want = d == "ai.onnx" ? "" : d;
  for (const auto& o : opsets)
    if ((o.domain == "ai.onnx" ? "" : o.domain) == want) return o.version;
  return 0;
}

}  // namespace kiln
