// kiln's IR graph <-> engine metadata (engine.proto). Tensor bytes go to raw
// sections: encoding collects them in order, decoding views them in the file.
#pragma once

#include <engine.pb.h>

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "ir/graph.h"
#include "support/file.h"
#include "support/status.h"

namespace kiln {

// Collects the tensors whose bytes become sections, in encoding order.
struct SectionList {
  std::vector<const Tensor*> tensors;
};

Status encode_graph(const Graph& graph, SectionList& sections, engine::Graph* out);

// A section's place in the file, already checked to lie inside it.
struct SectionView {
  const std::byte* data = nullptr;
  uint64_t size = 0;
};

struct SectionSource {
  std::vector<SectionView> sections;
  std::shared_ptr<const void> owner;  // keeps the file's bytes alive
};

Expected<std::shared_ptr<Graph>> decode_graph(const engine::Graph& proto, const SectionSource& sections);

void encode_type(const Type& t, engine::Type* out);
Expected<Type> decode_type(const engine::Type& t, int depth = 0);

}  // namespace kiln
