#include "builder/workspace_filter.h"

#include <fmt/format.h>

#include "support/bytes.h"

namespace kiln {

WorkspaceFilter filter_by_workspace(const std::vector<std::string>& candidates,
                                    const std::function<size_t(const std::string&)>& workspace_of, size_t limit) {
  WorkspaceFilter f;
  for (const std::string& c : candidates) {
    const size_t bytes = workspace_of(c);
    if (bytes <= limit) {
      f.eligible.push_back(c);
    } else {
      f.rejected.push_back(
          fmt::format("{} needs {} of workspace, over the limit of {}", c, format_bytes(bytes), format_bytes(limit)));
    }
  }
  return f;
}

}  // namespace kiln
