// Input data for `kiln run`: files (.pb TensorProto or .npy) or seeded random
// tensors, checked against the engine's inputs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ir/tensor.h"
#include "kiln/runtime.h"
#include "shape_spec.h"
#include "support/status.h"

namespace kiln::cli {

struct NamedTensor {
  std::string name;
  Tensor tensor;
};

// --load-inputs: a folder of input_K.pb in graph-input order, or
// NAME:FILE,... (FILE .pb or .npy). Every engine input must be given.
Expected<std::vector<NamedTensor>> load_inputs(const Engine& engine, const std::string& spec);

// Random inputs: floats uniform in [-1, 1], integers in [0, 8), bools 0/1.
// Dynamic dims come from `shapes`, else the profile's opt shape, else 1.
Expected<std::vector<NamedTensor>> random_inputs(const Engine& engine, const ShapeSpec& shapes, int profile,
                                                 uint64_t seed);

}  // namespace kiln::cli
