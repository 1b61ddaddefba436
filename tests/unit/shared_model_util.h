// What the unit tests on ../shared/models (KILN_SHARED_MODELS) share: a model
// imported with the inputs of its first test case, and outputs compared byte
// for byte.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "onnx/importer.h"
#include "onnx/value_file.h"

namespace kiln {

struct SharedModel {
  ImportResult imported;
  std::vector<RunValue> inputs;  // test_data_set_0's, in the graph's order
  Graph& graph() { return *imported.model.graph; }
};

// ../shared/models/NAME imported with its test_data_set_0 inputs; no model
// (the caller skips) when this checkout lacks it; an error when it does not load.
inline Expected<std::optional<SharedModel>> load_shared_model(const std::string& name) {
  const std::string dir = std::string(KILN_SHARED_MODELS) + "/" + name + "/";
  if (!std::filesystem::exists(dir + "model.onnx")) return std::optional<SharedModel>();
  KILN_ASSIGN_OR_RETURN(ImportResult imported, import_onnx_file(dir + "model.onnx"));
  SharedModel m{std::move(imported), {}};
  for (size_t i = 0; i < m.graph().inputs.size(); ++i) {
    KILN_ASSIGN_OR_RETURN(RunValue v, read_value_file(dir + "test_data_set_0/input_" + std::to_string(i) + ".pb",
                                                      m.graph().inputs[i]->type));
    m.inputs.push_back(std::move(v));
  }
  return std::optional<SharedModel>(std::move(m));
}

inline void expect_same_bytes(const Tensor& a, const Tensor& b, const std::string& what) {
  ASSERT_EQ(a.nbytes(), b.nbytes()) << what;
  EXPECT_EQ(std::memcmp(a.raw(), b.raw(), a.nbytes()), 0) << what;
}

}  // namespace kiln
