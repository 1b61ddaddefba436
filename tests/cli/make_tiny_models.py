"""Writes tiny ONNX models (ops the CPU backend runs today) and data files for
tests/cli/cli_test.sh: python3 make_tiny_models.py OUT_DIR."""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

out = sys.argv[1]
os.makedirs(os.path.join(out, "ref"), exist_ok=True)

x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
ids = helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "seq"])
ids_out = helper.make_tensor_value_info("ids_out", TensorProto.INT64, ["batch", "seq"])
graph = helper.make_graph(
    [helper.make_node("Identity", ["x"], ["y"], name="id_x"),
     helper.make_node("Identity", ["ids"], ["ids_out"], name="id_ids")],
    "tiny", [x, ids], [y, ids_out])
onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), os.path.join(out, "tiny.onnx"))

# affine.onnx: x[batch,4] @ W[4,256] + B[256], 5120 bytes of weights.
ax = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
ay = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 256])
rng = np.random.default_rng(0)
affine = helper.make_graph(
    [helper.make_node("MatMul", ["x", "W"], ["xw"], name="mm"),
     helper.make_node("Add", ["xw", "B"], ["y"], name="bias")],
    "affine", [ax], [ay],
    [numpy_helper.from_array(rng.standard_normal((4, 256)).astype(np.float32), "W"),
     numpy_helper.from_array(rng.standard_normal(256).astype(np.float32), "B")])
onnx.save(helper.make_model(affine, opset_imports=[helper.make_opsetid("", 17)]), os.path.join(out, "affine.onnx"))

xv = np.array([[1, np.nan, np.inf, -np.inf], [0.5, -2, 3, 4]], dtype=np.float32)
iv = np.arange(6, dtype=np.int64).reshape(2, 3)
for k, (name, v) in enumerate([("x", xv), ("ids", iv)]):
    with open(os.path.join(out, "ref", f"input_{k}.pb"), "wb") as f:
        f.write(numpy_helper.from_array(v, name).SerializeToString())
for k, (name, v) in enumerate([("y", xv), ("ids_out", iv)]):
    with open(os.path.join(out, "ref", f"output_{k}.pb"), "wb") as f:
        f.write(numpy_helper.from_array(v, name).SerializeToString())
wrong = xv.copy()
wrong[1, 0] = 0.75
os.makedirs(os.path.join(out, "wrong"), exist_ok=True)
for k, (name, v) in enumerate([("y", wrong), ("ids_out", iv)]):
    with open(os.path.join(out, "wrong", f"output_{k}.pb"), "wb") as f:
        f.write(numpy_helper.from_array(v, name).SerializeToString())
np.save(os.path.join(out, "x.npy"), xv)
np.save(os.path.join(out, "ids.npy"), iv)
np.save(os.path.join(out, "ids32.npy"), iv.astype(np.int32))
np.save(os.path.join(out, "x3d.npy"), np.zeros((1, 2, 4), np.float32))
np.save(os.path.join(out, "fortran.npy"), np.asfortranarray(np.ones((2, 4), np.float32)))
np.save(os.path.join(out, "objects.npy"), np.array([1, "a"], dtype=object), allow_pickle=True)
with open(os.path.join(out, "not_a_tensor.pb"), "wb") as f:
    f.write(b"\xff\xff\xff\xff this is not a TensorProto")
