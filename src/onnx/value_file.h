// Reading and writing run values as the ONNX test data stores them: a
// TensorProto per tensor, a SequenceProto per sequence, an OptionalProto per
// optional (onnx-data.proto).
#pragma once

#include <string>

#include "ir/run_value.h"
#include "support/status.h"

namespace kiln {

// Reads `path` as the message `expected` calls for (a tensor when unknown).
Expected<RunValue> read_value_file(const std::string& path, const Type& expected, std::string* name = nullptr);
Status write_value_file(const std::string& path, const RunValue& value, const std::string& name);

}  // namespace kiln
