// Compares run values the way the ONNX backend tests do (numpy's
// assert_allclose): |got - want| <= atol + rtol * |want| elementwise, NaN
// matching NaN, same dtype and dims; integers, bools and strings exactly.
#pragma once

#include <string>

#include "ir/run_value.h"

namespace kiln {

struct CompareResult {
  bool ok = true;
  double max_abs_error = 0;
  double max_rel_error = 0;
  int64_t mismatches = 0;
  std::string message;  // why it failed, naming the first bad element
};

CompareResult compare_values(const RunValue& got, const RunValue& want, double rtol, double atol);
CompareResult compare_tensors(const Tensor& got, const Tensor& want, double rtol, double atol);

}  // namespace kiln
