// The build's workspace limit (BuildConfig::workspace_limit_bytes,
// --memPoolSize=workspace:SIZE) applied to a layer's tactics: a tactic whose
// workspace exceeds it is ineligible, and the build says which and why.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace kiln {

struct WorkspaceFilter {
  std::vector<std::string> eligible;  // in the order given
  // One line per ineligible tactic: "cublaslt:3 needs 64.0 MiB of workspace, over the limit of 16.0 MiB".
  std::vector<std::string> rejected;
};

// Splits `candidates` by `workspace_of(tactic)` <= `limit` (SIZE_MAX: no limit).
WorkspaceFilter filter_by_workspace(const std::vector<std::string>& candidates,
                                    const std::function<size_t(const std::string&)>& workspace_of, size_t limit);

}  // namespace kiln
