// kiln inspect MODEL.onnx: inputs, outputs, opsets, op histogram, parameters,
// and every unsupported node; --json for machines, --graph for the IR. On an
// engine file, its layers with their precisions and tactics (inspect_engine.cpp).
#include <fmt/format.h>

#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "builder/builder.h"
#include "commands.h"
#include "inspect_engine.h"
#include "ir/printer.h"
#include "onnx/importer.h"
#include "passes/pass.h"

namespace kiln::cli {
namespace {

struct InspectOptions {
  std::string model;
  bool json = false;
  bool graph = false;
  bool optimized = false;
  std::string backend = "cpu";  // with --optimized: cuda adds the cuda build's rewrites
  bool fp16 = false, bf16 = false;
};

struct Summary {
  std::map<std::string, int64_t> ops;
  int64_t node_count = 0;
  int64_t parameters = 0;
  int64_t parameter_bytes = 0;
};

void count_graph(const Graph& g, Summary& s) {
  for (const Value* init : g.initializers) {
    s.parameters += init->constant->numel();
    s.parameter_bytes += static_cast<int64_t>(init->constant->nbytes());
  }
  for (const auto& v : g.values())
    if (v->constant && !v->producer &&
        std::find(g.initializers.begin(), g.initializers.end(), v.get()) == g.initializers.end()) {
      s.parameters += v->constant->numel();
      s.parameter_bytes += static_cast<int64_t>(v->constant->nbytes());
    }
  for (const auto& n : g.nodes()) {
    ++s.node_count;
    s.ops[n->domain.empty() ? n->op_type : n->domain + ":" + n->op_type]++;
    for (const auto& [k, a] : n->attrs) {
      if (a.g) count_graph(*a.g, s);
      for (const auto& sg : a.graphs) count_graph(*sg, s);
    }
  }
}

nlohmann::json value_json(const Value* v) {
  nlohmann::json dims = nlohmann::json::array();
  if (v->type.is_tensor() && v->type.shape.has_rank())
    for (const Dim& d : *v->type.shape.dims) {
      if (d.is_fixed())
        dims.push_back(d.value);
      else
        dims.push_back(d.is_symbolic() ? d.symbol : "?");
    }
  nlohmann::json j = {{"name", v->name}, {"type", v->type.to_string()}};
  if (v->type.is_tensor()) {
    j["dtype"] = std::string(dtype_name(v->type.dtype));
    j["shape"] = v->type.shape.has_rank() ? dims : nlohmann::json(nullptr);
  }
  return j;
}

nlohmann::json diagnostic_json(const Diagnostic& d) {
  return {{"node", d.node_name},
          {"index", d.node_index},
          {"op_type", d.op_type},
          {"domain", d.domain},
          {"opset", d.opset},
          {"graph", d.graph},
          {"reason", diagnostic_reason_name(d.reason)},
          {"message", d.message},
          {"hint", d.hint}};
}

std::string human_bytes(int64_t b) {
  if (b >= (1 << 20)) return fmt::format("{:.1f} MiB", static_cast<double>(b) / (1 << 20));
  if (b >= 1024) return fmt::format("{:.1f} KiB", static_cast<double>(b) / 1024);
  return fmt::format("{} B", b);
}

// An engine file starts with "KILN"; anything else is read as ONNX.
bool is_engine_file(const std::string& path) {
  char magic[4] = {};
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  const bool engine = std::fread(magic, 1, 4, f) == 4 && std::memcmp(magic, "KILN", 4) == 0;
  std::fclose(f);
  return engine;
}

int run_inspect(const InspectOptions& o) {
  if (!o.optimized && (o.backend != "cpu" || o.fp16 || o.bf16)) {
    fmt::print(stderr, "kiln inspect: --backend, --fp16 and --bf16 choose the rewrites of --optimized; add it\n");
    return kExitUsageError;
  }
  if (o.fp16 && o.bf16) {
    fmt::print(stderr, "kiln inspect: give one of --fp16 and --bf16\n");
    return kExitUsageError;
  }
  if (is_engine_file(o.model)) return inspect_engine(o.model, o.json);
  auto imported = import_onnx_file(o.model);
  if (!imported) {
    fmt::print(stderr, "kiln inspect: {}\n", imported.status().to_string());
    return imported.status().code() == ErrorCode::kNotFound || imported.status().code() == ErrorCode::kIoError
               ? kExitUsageError
               : kExitModelError;
  }
  const ImportResult& r = *imported;
  const Model& m = r.model;
  const Graph& g = *m.graph;
  if (o.optimized && r.ok()) {
    // What `kiln build` stores: the graph after the optimization pipeline.
    // The node count after each pass goes to stderr, to see what each one removed.
    PassContext passes;
    fmt::print(stderr, "optimizing: {} nodes\n", m.graph->nodes().size());
    for (const PassInfo& p : default_pipeline()) {
      if (Status st = run_passes(*m.graph, passes, {p}); !st.is_ok()) {
        fmt::print(stderr, "kiln inspect: {}\n", st.to_string());
        return kExitModelError;
      }
      fmt::print(stderr, "  after {:<34} {} nodes\n", p.name, m.graph->nodes().size());
    }
    if (o.backend == "cuda") {
      BuildConfig config;
      config.backend = o.backend;
      config.fp16 = o.fp16;
      config.bf16 = o.bf16;
      if (Status st = rewrite_for_cuda(*m.graph, config); !st.is_ok()) {
        fmt::print(stderr, "kiln inspect: {}\n", st.to_string());
        return kExitModelError;
      }
      fmt::print(stderr, "  after the cuda rewrites{}              {} nodes\n",
                 o.fp16   ? " (fp16)"
                 : o.bf16 ? " (bf16)"
                          : "",
                 m.graph->nodes().size());
    }
  }
  if (o.graph) {
    std::cout << print_graph(g);
    if (!r.ok()) std::cerr << format_diagnostics(r.diagnostics);
    return r.ok() ? kExitOk : kExitModelError;
  }
  Summary s;
  count_graph(g, s);
  if (o.json) {
    nlohmann::json j;
    j["model"] = o.model;
    j["ir_version"] = m.ir_version;
    j["producer"] = {{"name", m.producer_name}, {"version", m.producer_version}};
    j["opsets"] = nlohmann::json::object();
    for (const auto& op : m.opsets) j["opsets"][op.domain.empty() ? "ai.onnx" : op.domain] = op.version;
    j["inputs"] = nlohmann::json::array();
    for (const Value* v : g.inputs) j["inputs"].push_back(value_json(v));
    j["outputs"] = nlohmann::json::array();
    for (const Value* v : g.outputs) j["outputs"].push_back(value_json(v));
    j["nodes"] = s.node_count;
    j["ops"] = s.ops;
    j["parameters"] = s.parameters;
    j["parameter_bytes"] = s.parameter_bytes;
    j["problems"] = nlohmann::json::array();
    for (const auto& d : r.diagnostics) j["problems"].push_back(diagnostic_json(d));
    std::cout << j.dump(2) << "\n";
    return r.ok() ? kExitOk : kExitModelError;
  }
  fmt::print("model      {}\n", o.model);
  std::string opsets;
  for (const auto& op : m.opsets)
    opsets += fmt::format("{}{} {}", opsets.empty() ? "" : ", ", op.domain.empty() ? "ai.onnx" : op.domain, op.version);
  fmt::print("ir version {}   producer {} {}   opsets {}\n", m.ir_version, m.producer_name, m.producer_version, opsets);
  fmt::print("\ninputs\n");
  for (const Value* v : g.inputs) fmt::print("  {:<32} {}\n", v->name, v->type.to_string());
  fmt::print("outputs\n");
  for (const Value* v : g.outputs) fmt::print("  {:<32} {}\n", v->name, v->type.to_string());
  fmt::print("\nops ({} nodes)\n", s.node_count);
  std::vector<std::pair<std::string, int64_t>> hist(s.ops.begin(), s.ops.end());
  std::stable_sort(hist.begin(), hist.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  for (const auto& [op, n] : hist) fmt::print("  {:<24} {}\n", op, n);
  fmt::print("\nparameters {} ({})\n", s.parameters, human_bytes(s.parameter_bytes));
  if (r.ok()) {
    fmt::print("\nunsupported nodes: none\n");
    return kExitOk;
  }
  fmt::print("\n{} problem{}:\n", r.diagnostics.size(), r.diagnostics.size() == 1 ? "" : "s");
  for (const auto& d : r.diagnostics) fmt::print("  {}\n", format_diagnostic(d));
  return kExitModelError;
}

}  // namespace

void add_inspect_command(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<InspectOptions>();
  CLI::App* cmd = app.add_subcommand("inspect", "Show a model's inputs, outputs, ops and unsupported nodes");
  cmd->add_option("model", o->model, "ONNX model or kiln engine file")->required();
  cmd->add_flag("--json", o->json, "Print JSON");
  cmd->add_flag("--graph", o->graph, "Print the textual IR");
  cmd->add_flag("--optimized", o->optimized, "Run the optimization passes of `kiln build` first");
  cmd->add_option("--backend", o->backend,
                  "With --optimized: cpu, or cuda for the cuda build's rewrites too "
                  "(precision, layouts, fused chains; no GPU needed)")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_flag("--fp16", o->fp16, "With --optimized --backend cuda: assign fp16 as `kiln build --fp16` does");
  cmd->add_flag("--bf16", o->bf16, "With --optimized --backend cuda: assign bf16 as `kiln build --bf16` does");
  cmd->callback([o, &exit_code] { exit_code = run_inspect(*o); });
}

}  // namespace kiln::cli
