#include "builder/tuning_level.h"

#include <algorithm>

namespace kiln {

TuningLevel tuning_level(int optimization_level) {
  static const size_t kCandidates[] = {1, 2, 4, 8, 16, 64};
  const int level = std::clamp(optimization_level, 0, 5);
  TuningLevel t;
  t.candidates = kCandidates[level];
  t.runs = 3 + 2 * std::max(level, 1);
  t.exhaustive = level == 5;
  return t;
}

std::string tuning_signature_suffix(const TuningLevel& level) { return level.exhaustive ? " exhaustive" : ""; }

}  // namespace kiln
