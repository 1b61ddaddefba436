// Row forms of the op table that several op-family files register, so that a
// form is written once: the default ONNX domain, with the counts and upgrades
// given here. A row of any other form is written out as its OpSchema.
#pragma once

#include <vector>

#include "ops/infer_util.h"

namespace kiln {

// One to `max_outputs` outputs: add_op("MaxPool", 1, 1, infer_pool, 2).
void add_op(const char* name, int min_inputs, int max_inputs, InferFn infer, int max_outputs = 1,
            std::vector<OpUpgrade> upgrades = {}, int since_opset = 1);

// One input and one output; forms before opset 6 had `consumed_inputs`, which
// the upgrade drops (Relu, LeakyRelu, Abs, ...).
void add_unary_op(const char* name, int since_opset = 1, InferFn infer = infer_same_as_input0);

}  // namespace kiln
