#!/usr/bin/env python3
"""Writes the ONNX backend node test cases of the installed onnx package.

The onnx wheel on PyPI ships the case generators (onnx.backend.test.case.node)
but not the generated node data; this writes them in the same layout as the
backend test data (NAME/model.onnx, NAME/test_data_set_0/input_K.pb ...), so
`kiln conformance OUT` can run them.

Usage: gen_onnx_node_tests.py OUT_DIR
"""
import os
import sys
import warnings

import numpy as np
import onnx
from onnx import numpy_helper
import onnx.backend.test.case.node as node_cases


def write_value(path, value, type_proto, name):
    if type_proto.HasField("sequence_type"):
        proto = numpy_helper.from_list(value, name)
    elif type_proto.HasField("optional_type"):
        proto = numpy_helper.from_optional(value, name)
    elif type_proto.HasField("map_type"):
        proto = numpy_helper.from_dict(value, name)
    elif isinstance(value, onnx.TensorProto):
        proto = value
    else:
        proto = numpy_helper.from_array(np.asarray(value), name)
    with open(path, "wb") as f:
        f.write(proto.SerializeToString())


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    stamp = os.path.join(out, ".onnx-version")
    if os.path.exists(stamp) and open(stamp).read() == onnx.__version__:
        return
    warnings.simplefilter("ignore")
    np.seterr(all="ignore")
    cases = node_cases.collect_testcases(None)
    written = 0
    for case in cases:
        d = os.path.join(out, case.name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "model.onnx"), "wb") as f:
            f.write(case.model.SerializeToString())
        # The case's own tolerances, which the onnx backend runner applies.
        with open(os.path.join(d, "tolerance.txt"), "w") as f:
            f.write(f"{case.rtol} {case.atol}\n")
        for i, (inputs, outputs) in enumerate(case.data_sets):
            ds = os.path.join(d, f"test_data_set_{i}")
            os.makedirs(ds, exist_ok=True)
            graph = case.model.graph
            for j, value in enumerate(inputs):
                write_value(os.path.join(ds, f"input_{j}.pb"), value, graph.input[j].type, graph.input[j].name)
            for j, value in enumerate(outputs):
                write_value(os.path.join(ds, f"output_{j}.pb"), value, graph.output[j].type, graph.output[j].name)
        written += 1
    with open(stamp, "w") as f:
        f.write(onnx.__version__)
    print(f"wrote {written} node test cases of onnx {onnx.__version__} to {out}")


if __name__ == "__main__":
    main()
