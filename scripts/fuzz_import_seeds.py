#!/usr/bin/env python3
"""Writes fuzz seeds for what the ONNX suites lack: model-local functions
(attribute references, defaults, nesting), sparse tensors, external data,
subgraphs reading outer values, packed and complex dtypes, sequence and
optional types.   fuzz_import_seeds.py CORPUS_DIR"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
F = TensorProto.FLOAT


def save(name, graph, functions=(), opsets=(("", 17),), ir=8):
    m = helper.make_model(graph, functions=list(functions),
                          opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])
    m.ir_version = ir
    with open(os.path.join(out, f"seed_{name}.onnx"), "wb") as f:
        f.write(m.SerializeToString())


def vi(name, dims, t=F):
    return helper.make_tensor_value_info(name, t, dims)


# Functions: Scale(X) = X * alpha (default 2), Twice calls Scale twice with k.
const = helper.make_node("Constant", [], ["a"])
const.attribute.append(helper.make_attribute_ref("value_float", onnx.AttributeProto.FLOAT, ref_attr_name="alpha"))
scale = helper.make_function("com.example", "Scale", ["X"], ["Y"],
                             [const, helper.make_node("Mul", ["X", "a"], ["Y"])],
                             [helper.make_opsetid("", 17)], attributes=[])
scale.attribute_proto.append(helper.make_attribute("alpha", 2.0))
s1 = helper.make_node("Scale", ["X"], ["T"], domain="com.example")
s1.attribute.append(helper.make_attribute_ref("alpha", onnx.AttributeProto.FLOAT, ref_attr_name="k"))
s2 = helper.make_node("Scale", ["T"], ["Y"], domain="com.example")
twice = helper.make_function("com.example", "Twice", ["X"], ["Y"], [s1, s2],
                             [helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)], ["k"])
g = helper.make_graph([helper.make_node("Twice", ["x"], ["y"], domain="com.example", k=3.0)], "f",
                      [vi("x", ["batch", 2])], [vi("y", ["batch", 2])])
save("functions", g, [scale, twice], (("", 17), ("com.example", 1)))

# Sparse: a sparse Constant and a sparse initializer.
sp = helper.make_sparse_tensor(numpy_helper.from_array(np.array([5.0, 6.0], np.float32), "v"),
                               numpy_helper.from_array(np.array([1, 5], np.int64), "i"), [2, 3])
g = helper.make_graph([helper.make_node("Constant", [], ["c"], sparse_value=sp),
                       helper.make_node("Add", ["c", "w"], ["y"])], "s", [], [vi("y", [2, 3])])
sp2 = helper.make_sparse_tensor(numpy_helper.from_array(np.array([1.0], np.float32), "w"),
                                numpy_helper.from_array(np.array([[0, 1]], np.int64), "wi"), [2, 3])
g.sparse_initializer.append(sp2)
save("sparse", g)

# External data (the file never exists for the fuzzer).
w = TensorProto(name="w", data_type=F, dims=[4])
w.data_location = TensorProto.EXTERNAL
for k, v in (("location", "weights.bin"), ("offset", "0"), ("length", "16")):
    e = w.external_data.add()
    e.key, e.value = k, v
g = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "e", [vi("x", [4])], [vi("y", [4])], [w])
save("external", g)

# If with branches reading outer values, a Loop, sequence and optional types.
then_g = helper.make_graph([helper.make_node("Neg", ["x"], ["t"])], "then", [], [vi("t", [2])])
else_g = helper.make_graph([helper.make_node("Identity", ["x"], ["e"])], "else", [], [vi("e", [2])])
body = helper.make_graph([helper.make_node("Add", ["v", "x"], ["v2"]),
                          helper.make_node("Identity", ["c"], ["c2"])], "body",
                         [vi("i", [], TensorProto.INT64), vi("c", [], TensorProto.BOOL), vi("v", [2])],
                         [vi("c2", [], TensorProto.BOOL), vi("v2", [2])])
g = helper.make_graph([helper.make_node("If", ["cond"], ["y"], then_branch=then_g, else_branch=else_g),
                       helper.make_node("Loop", ["n", "cond", "y"], ["z"], body=body),
                       helper.make_node("SequenceConstruct", ["z", "y"], ["s"]),
                       helper.make_node("Optional", ["z"], ["o"])], "ctl",
                      [vi("cond", [], TensorProto.BOOL), vi("n", [], TensorProto.INT64), vi("x", [2])],
                      [vi("z", [2]), helper.make_tensor_sequence_value_info("s", F, [2]),
                       helper.make_value_info("o", helper.make_optional_type_proto(
                           helper.make_tensor_type_proto(F, [2])))])
save("control", g)

# Typed data fields of many dtypes, strings, attributes without types (IR 3).
inits = [helper.make_tensor("h", TensorProto.FLOAT16, [2], [1.0, 2.0]),
         helper.make_tensor("q", TensorProto.INT4, [3], [1, -2, 3]),
         helper.make_tensor("u", TensorProto.UINT64, [2], [1, 2]),
         helper.make_tensor("c", TensorProto.COMPLEX64, [1], [1 + 2j]),
         helper.make_tensor("d", TensorProto.DOUBLE, [1], [3.0]),
         helper.make_tensor("s", TensorProto.STRING, [2], [b"a", b"b"]),
         helper.make_tensor("b", TensorProto.BOOL, [1], [True])]
n = helper.make_node("Foo", ["h"], ["y"], domain="com.example", i=1, f=0.5, s="x", ints=[1, 2])
for a in n.attribute:
    a.ClearField("type")
g = helper.make_graph([n], "dtypes", [vi("h", [2], TensorProto.FLOAT16)], [vi("y", [2], TensorProto.FLOAT16)], inits)
save("dtypes", g, opsets=(("", 7), ("com.example", 1)), ir=3)

# kiln's own ops (domain "kiln"), which a model may name: FusedConv in both
# layouts, with a residual, and FusedMatMul with a bias and an activation.
H = TensorProto.FLOAT16
n1 = helper.make_node("FusedConv", ["x", "w", "b", "z"], ["y"], domain="kiln", activation="Relu",
                      pads=[1, 1, 1, 1], group=1)
n2 = helper.make_node("FusedConv", ["xl", "wl"], ["yl"], domain="kiln", channels_last=1, group=2,
                      strides=[2, 2])
n3 = helper.make_node("FusedMatMul", ["a", "m", "mb"], ["p"], domain="kiln", activation="Gelu")
g = helper.make_graph([n1, n2, n3], "kiln_ops",
                      [vi("x", [1, 4, 5, 5]), vi("z", [1, 8, 5, 5]), vi("xl", [1, 6, 6, 4], H),
                       vi("wl", [8, 3, 3, 2], H), vi("a", ["n", 4])],
                      [vi("y", [1, 8, 5, 5]), vi("yl", [1, 2, 2, 8], H), vi("p", ["n", 3])],
                      [numpy_helper.from_array(np.ones((8, 4, 3, 3), np.float32), "w"),
                       numpy_helper.from_array(np.zeros(8, np.float32), "b"),
                       numpy_helper.from_array(np.ones((4, 3), np.float32), "m"),
                       numpy_helper.from_array(np.zeros(3, np.float32), "mb")])
save("kiln_ops", g, opsets=(("", 17), ("kiln", 1)))

# kiln.FusedElementwise: a program in attributes (ops, args, dtypes, constants).
n = helper.make_node("FusedElementwise", ["x", "b"], ["y"], domain="kiln", ops=["Mul", "Add", "Relu"],
                     args=[0, 2, -1, 3, 1, -1, 4, -1, -1], dtypes=[1, 1, 1], constants=[2.0])
g = helper.make_graph([n], "kiln_fused", [vi("x", [2, 3]), vi("b", [3])], [vi("y", [2, 3])])
save("kiln_fused_elementwise", g, opsets=(("", 17), ("kiln", 1)))
