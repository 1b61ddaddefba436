// Reads the textual IR that print_graph writes, so pass tests can state their
// input and expected graphs as text (subgraph attributes are not supported).
#pragma once

#include <memory>
#include <string_view>

#include "ir/graph.h"
#include "support/status.h"

namespace kiln {

// Parses one graph; the error names the line and what was expected.
Expected<std::shared_ptr<Graph>> parse_graph(std::string_view text);

}  // namespace kiln
