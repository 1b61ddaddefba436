// trtexec-style shape lists: "input_ids:1x8,attention_mask:1x8". A name may
// hold ':' (TensorFlow's "x:0"); the dims follow the last one.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "support/status.h"

namespace kiln::cli {

using ShapeSpec = std::vector<std::pair<std::string, std::vector<int64_t>>>;

// `flag` names the option in messages ("--minShapes").
Expected<ShapeSpec> parse_shape_spec(const std::string& text, const std::string& flag);
const std::vector<int64_t>* find_shape(const ShapeSpec& spec, const std::string& name);

}  // namespace kiln::cli
