// kiln inspect ENGINE.kiln: what an engine file holds: backend, device, kiln
// version, I/O tensors, profiles, the memory the builder planned (weights,
// activation arena per profile, largest workspace), and every layer with its
// op, precision, tactic (and its timed ms) and output shapes; --json for machines.
#include "inspect_engine.h"

#include <fmt/format.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "kiln/runtime.h"

namespace kiln::cli {
namespace {

std::string shape_text(const LayerTensor& t) {
  if (!t.has_rank) return "[*]";
  return fmt::format("[{}]", fmt::join(t.dims, ","));
}

}  // namespace

int inspect_engine(const std::string& path, bool json) {
  auto engine = Runtime::deserialize_file(path);
  if (!engine) {
    fmt::print(stderr, "kiln inspect: {}\n", engine.status().to_string());
    return kExitModelError;
  }
  const Engine& e = **engine;
  nlohmann::json layers = nlohmann::json::array();
  std::vector<LayerInfo> infos;
  for (int k = 0; k < e.num_layers(); ++k) {
    auto info = e.layer_info(k);
    if (!info) continue;
    infos.push_back(*info);
  }
  const MemoryReport mem = e.memory_report();
  if (json) {
    nlohmann::json profiles = nlohmann::json::array();
    for (const ProfileMemory& p : mem.profiles)
      profiles.push_back({{"activationBytesOpt", p.activation_bytes_opt},
                          {"activationBytesMax", p.activation_bytes_max},
                          {"workspaceBytes", p.workspace_bytes},
                          {"exact", p.exact}});
    nlohmann::json memory = {{"weightBytes", mem.weight_bytes},
                             {"workspaceLimitBytes", mem.workspace_limit_bytes},
                             {"activationsPlanned", mem.activations_planned},
                             {"profiles", profiles}};
    for (const auto& l : infos) {
      nlohmann::json outs = nlohmann::json::array();
      for (const auto& t : l.outputs)
        outs.push_back({{"name", t.name}, {"dtype", dtype_name(t.dtype)}, {"shape", t.dims}});
      layers.push_back({{"name", l.name},
                        {"op", l.domain.empty() ? l.op_type : l.domain + ":" + l.op_type},
                        {"precision", l.precision},
                        {"tactic", l.tactic},
                        {"tacticMs", l.tactic_ms},
                        {"fused", l.fused},
                        {"layout", l.layout},
                        {"outputs", outs}});
    }
    std::cout << nlohmann::json{{"engine", path},
                                {"backend", e.backend()},
                                {"device", e.device()},
                                {"kilnVersion", e.kiln_version()},
                                {"profiles", e.num_optimization_profiles()},
                                {"memory", memory},
                                {"layers", layers}}
                     .dump(2)
              << "\n";
    return kExitOk;
  }
  fmt::print("engine     {}\nbackend    {}   device {}   kiln {}\n", path, e.backend(), e.device(), e.kiln_version());
  fmt::print("\nbindings\n");
  for (int i = 0; i < e.num_io_tensors(); ++i) {
    std::string name = e.io_tensor_name(i);
    auto dims = e.tensor_dim_names(name);
    fmt::print("  {:<6} {:<28} {}[{}]\n", e.tensor_io_mode(name) == TensorIOMode::kInput ? "input" : "output", name,
               dtype_name(e.tensor_dtype(name)), dims ? fmt::format("{}", fmt::join(*dims, ",")) : "*");
  }
  for (int p = 0; p < e.num_optimization_profiles(); ++p)
    for (int i = 0; i < e.num_io_tensors(); ++i) {
      std::string name = e.io_tensor_name(i);
      auto r = e.profile_shape(name, p);
      if (r && r->min != r->max)
        fmt::print("  profile {} {}: min [{}] opt [{}] max [{}]\n", p, name, fmt::join(r->min, ","),
                   fmt::join(r->opt, ","), fmt::join(r->max, ","));
    }
  fmt::print("\n{}\n", to_string(mem));
  if (mem.profiles.size() > 1)
    for (size_t p = 0; p < mem.profiles.size(); ++p)
      fmt::print("  profile {}: activations {} bytes at opt shapes, {} at max shapes; workspace {} bytes\n", p,
                 mem.profiles[p].activation_bytes_opt, mem.profiles[p].activation_bytes_max,
                 mem.profiles[p].workspace_bytes);
  fmt::print("\nlayers ({})\n", infos.size());
  fmt::print("  {:<32} {:<20} {:<10} {:<6} {:<16} {:<20} {}\n", "name", "op", "precision", "layout", "tactic (ms)",
             "fused", "output");
  for (const auto& l : infos) {
    std::string tactic = l.tactic.empty() ? "-" : fmt::format("{} ({:.3f})", l.tactic, l.tactic_ms);
    std::string precision = l.precision.substr(0, l.precision.find(':'));
    fmt::print("  {:<32} {:<20} {:<10} {:<6} {:<16} {:<20} {}\n", l.name, l.op_type, precision,
               l.layout.empty() ? "-" : l.layout, tactic, l.fused.empty() ? "-" : l.fused,
               l.outputs.empty() ? "" : shape_text(l.outputs[0]));
  }
  return kExitOk;
}

}  // namespace kiln::cli
