#include "backends/cuda/ops/cudnn_engine_config.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>

namespace kiln::cuda {

using cudnn_backend::create;
using cudnn_backend::Descriptor;
using cudnn_backend::finalize;
using cudnn_backend::get;
using cudnn_backend::set;
using cudnn_backend::set_descriptor;

std::string CudnnEngineConfigId::to_string() const {
  std::string s = std::to_string(engine);
  for (const auto& [type, value] : knobs) s += fmt::format("_k{}={}", type, value);
  return s;
}

namespace {

// Reads a decimal integer at the front of `text` (a leading '-' where
// `negative` allows one) and drops it from `text`.
std::optional<int64_t> take_int(std::string_view& text, bool negative) {
  if (text.empty() || (text[0] == '-' && !negative)) return std::nullopt;
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end == text.data()) return std::nullopt;
  text.remove_prefix(static_cast<size_t>(end - text.data()));
  return v;
}

bool take(std::string_view& text, std::string_view prefix) {
  if (text.substr(0, prefix.size()) != prefix) return false;
  text.remove_prefix(prefix.size());
  return true;
}

}  // namespace

std::optional<CudnnEngineConfigId> parse_cudnn_engine_config(std::string_view text) {
  CudnnEngineConfigId id;
  const std::optional<int64_t> engine = take_int(text, false);
  if (!engine) return std::nullopt;
  id.engine = *engine;
  while (!text.empty()) {
    if (!take(text, "_k")) return std::nullopt;
    const std::optional<int64_t> type = take_int(text, false);
    if (!type || !take(text, "=")) return std::nullopt;
    const std::optional<int64_t> value = take_int(text, true);
    if (!value) return std::nullopt;
    id.knobs.emplace_back(*type, *value);
  }
  std::sort(id.knobs.begin(), id.knobs.end());
  for (size_t i = 1; i < id.knobs.size(); ++i)
    if (id.knobs[i].first == id.knobs[i - 1].first) return std::nullopt;
  return id;
}

const char* cudnn_engine_source_name(CudnnEngineSource source) {
  switch (source) {
    case CudnnEngineSource::kHeuristicA: return "heur_a";
    case CudnnEngineSource::kFallback: return "fallback";
    case CudnnEngineSource::kHeuristicB: return "heur_b";
    case CudnnEngineSource::kGlobalIndex: return "global";
  }
  return "?";
}

namespace {

// The config's engine index and knob choices; engine -1 where cuDNN would
// not say (the config then has no name, only its place in a list).
CudnnEngineConfigId config_id(const Descriptor& config, const Descriptor& engine) {
  CudnnEngineConfigId id;
  int64_t count = 0;
  if (!get(engine, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &count, &id.engine).is_ok() || count != 1) {
    return {-1, {}};
  }
  std::vector<Descriptor> choices;
  std::vector<cudnnBackendDescriptor_t> raw;
  for (int i = 0; i < CUDNN_KNOB_TYPE_COUNTS; ++i) {
    Expected<Descriptor> c = create(CUDNN_BACKEND_KNOB_CHOICE_DESCRIPTOR);
    if (!c.is_ok()) return {-1, {}};
    raw.push_back(c->get());
    choices.push_back(std::move(c).value());
  }
  if (!get(config, CUDNN_ATTR_ENGINECFG_KNOB_CHOICES, CUDNN_TYPE_BACKEND_DESCRIPTOR, CUDNN_KNOB_TYPE_COUNTS, &count,
           raw.data())
           .is_ok() ||
      count < 0 || count > CUDNN_KNOB_TYPE_COUNTS) {
    return {-1, {}};
  }
  for (int64_t i = 0; i < count; ++i) {
    cudnnBackendKnobType_t type = CUDNN_KNOB_TYPE_COUNTS;
    int64_t value = 0, n = 0;
    const Descriptor& c = choices[static_cast<size_t>(i)];
    if (!get(c, CUDNN_ATTR_KNOB_CHOICE_KNOB_TYPE, CUDNN_TYPE_KNOB_TYPE, 1, &n, &type).is_ok() ||
        !get(c, CUDNN_ATTR_KNOB_CHOICE_KNOB_VALUE, CUDNN_TYPE_INT64, 1, &n, &value).is_ok()) {
      return {-1, {}};
    }
    id.knobs.emplace_back(static_cast<int64_t>(type), value);
  }
  std::sort(id.knobs.begin(), id.knobs.end());
  return id;
}

}  // namespace

Expected<CudnnEngineTraits> cudnn_engine_traits(const Descriptor& config) {
  KILN_ASSIGN_OR_RETURN(Descriptor engine, create(CUDNN_BACKEND_ENGINE_DESCRIPTOR));
  cudnnBackendDescriptor_t e = engine.get();
  int64_t count = 0;
  KILN_RETURN_IF_ERROR(get(config, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &count, &e));
  CudnnEngineTraits traits;
  cudnnBackendNumericalNote_t notes[CUDNN_NUMERICAL_NOTE_TYPE_COUNT];
  KILN_RETURN_IF_ERROR(get(engine, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE, CUDNN_TYPE_NUMERICAL_NOTE,
                           CUDNN_NUMERICAL_NOTE_TYPE_COUNT, &count, notes));
  traits.numerical.assign(notes, notes + std::clamp<int64_t>(count, 0, CUDNN_NUMERICAL_NOTE_TYPE_COUNT));
  // Behaviour notes only ever rule an engine out, so an engine that gives
  // none (or a cuDNN that cannot say) keeps its place.
  cudnnBackendBehaviorNote_t behavior[CUDNN_BEHAVIOR_NOTE_TYPE_COUNT];
  if (get(engine, CUDNN_ATTR_ENGINE_BEHAVIOR_NOTE, CUDNN_TYPE_BEHAVIOR_NOTE, CUDNN_BEHAVIOR_NOTE_TYPE_COUNT, &count,
          behavior)
          .is_ok())
    traits.behavior.assign(behavior, behavior + std::clamp<int64_t>(count, 0, CUDNN_BEHAVIOR_NOTE_TYPE_COUNT));
  traits.id = config_id(config, engine);
  return traits;
}

bool cudnn_engine_runs_as_is(const CudnnEngineTraits& traits) {
  for (cudnnBackendBehaviorNote_t n : traits.behavior)
    if (n == CUDNN_BEHAVIOR_NOTE_REQUIRES_FILTER_INT8x32_REORDER ||
        n == CUDNN_BEHAVIOR_NOTE_REQUIRES_BIAS_INT8x32_REORDER)
      return false;
  return true;
}

Expected<std::vector<Descriptor>> cudnn_heuristic_configs(const Descriptor& graph, cudnnBackendHeurMode_t mode) {
  KILN_ASSIGN_OR_RETURN(Descriptor heur, create(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR));
  KILN_RETURN_IF_ERROR(set_descriptor(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, graph));
  KILN_RETURN_IF_ERROR(set(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode));
  KILN_RETURN_IF_ERROR(finalize(heur));
  int64_t count = 0;
  KILN_RETURN_IF_ERROR(get(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count, nullptr));
  std::vector<Descriptor> configs;
  std::vector<cudnnBackendDescriptor_t> raw;
  for (int64_t i = 0; i < count; ++i) {
    KILN_ASSIGN_OR_RETURN(Descriptor c, create(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR));
    raw.push_back(c.get());
    configs.push_back(std::move(c));
  }
  int64_t got = 0;
  if (count > 0)
    KILN_RETURN_IF_ERROR(
        get(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &got, raw.data()));
  configs.resize(static_cast<size_t>(std::min(got, count)));
  return configs;
}

Expected<int64_t> cudnn_engine_global_count(const Descriptor& graph) {
  int64_t count = 0, n = 0;
  KILN_RETURN_IF_ERROR(get(graph, CUDNN_ATTR_OPERATIONGRAPH_ENGINE_GLOBAL_COUNT, CUDNN_TYPE_INT64, 1, &n, &count));
  return count;
}

Expected<CudnnOwnedConfig> cudnn_engine_config(const Descriptor& graph, const CudnnEngineConfigId& id) {
  KILN_ASSIGN_OR_RETURN(const int64_t count, cudnn_engine_global_count(graph));
  if (id.engine < 0 || id.engine >= count)
    return invalid_argument("cuDNN engine {} is outside the graph's {} engines", id.engine, count);
  KILN_ASSIGN_OR_RETURN(Descriptor engine, create(CUDNN_BACKEND_ENGINE_DESCRIPTOR));
  KILN_RETURN_IF_ERROR(set_descriptor(engine, CUDNN_ATTR_ENGINE_OPERATION_GRAPH, graph));
  KILN_RETURN_IF_ERROR(set(engine, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &id.engine));
  KILN_RETURN_IF_ERROR(finalize(engine));
  CudnnOwnedConfig out;
  KILN_ASSIGN_OR_RETURN(out.config, create(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR));
  KILN_RETURN_IF_ERROR(set_descriptor(out.config, CUDNN_ATTR_ENGINECFG_ENGINE, engine));
  std::vector<cudnnBackendDescriptor_t> raw;
  for (const auto& [type, value] : id.knobs) {
    if (type < 0 || type >= CUDNN_KNOB_TYPE_COUNTS)
      return invalid_argument("cuDNN knob type {} is outside 0..{}", type, CUDNN_KNOB_TYPE_COUNTS - 1);
    const auto knob = static_cast<cudnnBackendKnobType_t>(type);
    KILN_ASSIGN_OR_RETURN(Descriptor choice, create(CUDNN_BACKEND_KNOB_CHOICE_DESCRIPTOR));
    KILN_RETURN_IF_ERROR(set(choice, CUDNN_ATTR_KNOB_CHOICE_KNOB_TYPE, CUDNN_TYPE_KNOB_TYPE, 1, &knob));
    KILN_RETURN_IF_ERROR(set(choice, CUDNN_ATTR_KNOB_CHOICE_KNOB_VALUE, CUDNN_TYPE_INT64, 1, &value));
    KILN_RETURN_IF_ERROR(finalize(choice));
    raw.push_back(choice.get());
    out.parts.push_back(std::move(choice));
  }
  // No choices set: each knob keeps the engine's default.
  if (!raw.empty()) {
    KILN_RETURN_IF_ERROR(set(out.config, CUDNN_ATTR_ENGINECFG_KNOB_CHOICES, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                             static_cast<int64_t>(raw.size()), raw.data()));
  }
  KILN_RETURN_IF_ERROR(finalize(out.config));
  out.parts.push_back(std::move(engine));
  return out;
}

}  // namespace kiln::cuda
