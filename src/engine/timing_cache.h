// The timing cache: for each (device, layer signature), the tactic the builder
// found fastest and its time. A file shared across models, builds and
// processes: saving merges with what other writers saved meanwhile (under an
// exclusive file lock), so concurrent builds lose nothing; entries already
// present keep their first value, so a warm cache gives byte-identical engines.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>

#include "support/status.h"

namespace kiln {

struct TimingEntry {
  std::string tactic;
  float ms = 0;
};

class TimingCache {
 public:
  // Reads `path`; a missing file is an empty cache, a damaged one an error.
  static Expected<TimingCache> load(const std::string& path);
  // Merges this cache into the file at `path` (creating it).
  Status save(const std::string& path) const;

  // The entry for exactly this device, or with `any_device_of_arch`, for a
  // device of the same compute capability (the device string's first field).
  std::optional<TimingEntry> find(const std::string& device, const std::string& signature,
                                  bool any_device_of_arch) const;
  void add(const std::string& device, const std::string& signature, TimingEntry entry);
  size_t size() const { return entries_.size(); }

 private:
  std::map<std::pair<std::string, std::string>, TimingEntry> entries_;
};

}  // namespace kiln
