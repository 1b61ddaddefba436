// KServe v2 JSON tensors: "data" arrays (nested or flat) to bytes and back,
// checked element by element (type and range) so hostile input gets a precise
// error instead of a crash.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kiln/dtype.h"

namespace kiln::server {

// Appends `count` elements of `dtype` read from `data` to `out`; an error
// message (empty on success) names the element that is wrong.
std::string json_to_tensor_bytes(const nlohmann::json& data, DType dtype, int64_t count, std::vector<uint8_t>& out);

// A short description of a JSON value for error messages; never recurses
// (a hostile value may be nested millions deep).
std::string json_brief(const nlohmann::json& v);

// A flat JSON array of the tensor's elements.
nlohmann::json tensor_bytes_to_json(const std::vector<uint8_t>& bytes, DType dtype);

}  // namespace kiln::server
