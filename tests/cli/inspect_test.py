#!/usr/bin/env python3
"""`kiln inspect` from the outside: exit codes and the lines users read.

    inspect_test.py KILN_BINARY [SHARED_MODELS_DIR]

Builds its own small models with onnx.helper in a temporary folder; the
tiny_bert checks run when SHARED_MODELS_DIR (or $KILN_SHARED_MODELS) holds it.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import onnx
from onnx import TensorProto, helper

FAILURES = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        FAILURES.append(what)


def run(kiln, *args):
    p = subprocess.run([kiln, "inspect", *args], capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


def relu_model(path, op="Relu", domain=""):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    node = helper.make_node(op, ["x"], ["y"], name="the_node", domain=domain)
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    model = helper.make_model(helper.make_graph([node], "g", [x], [y]), opset_imports=opsets)
    model.ir_version = 8
    onnx.save(model, path)


def main():
    kiln = sys.argv[1]
    shared = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("KILN_SHARED_MODELS", "")
    tmp = tempfile.mkdtemp(prefix="kiln_inspect_")
    good, custom = os.path.join(tmp, "relu.onnx"), os.path.join(tmp, "custom.onnx")
    relu_model(good)
    relu_model(custom, op="Foo", domain="com.example")

    rc, out, err = run(kiln, good)
    check(rc == 0, f"supported model exits 0 (got {rc}: {err.strip()})")
    check("  x                                f32[batch,4]" in out.splitlines(), "input line shows x f32[batch,4]")
    check("unsupported nodes: none" in out, "says no node is unsupported")

    rc, out, err = run(kiln, custom)
    check(rc == 1, f"unsupported op exits 1 (got {rc})")
    check("1 problem:" in out and "'the_node' (com.example:Foo, opset 1)" in out, "names the unsupported node")

    data = open(good, "rb").read()
    for name, content in [("truncated", data[: len(data) // 2]), ("empty", b""), ("text", b"not a model\n")]:
        path = os.path.join(tmp, name + ".onnx")
        open(path, "wb").write(content)
        rc, out, err = run(kiln, path)
        lines = err.strip().splitlines()
        check(rc == 1, f"{name} file exits 1 (got {rc})")
        check(len(lines) == 1 and lines[0].startswith("kiln inspect: corrupt file: "),
              f"{name} file gives one error line (got {err!r})")
        check(out == "", f"{name} file prints nothing on stdout")

    rc, out, err = run(kiln, os.path.join(tmp, "missing.onnx"))
    check(rc == 2 and len(err.strip().splitlines()) == 1, f"missing file exits 2 with one line (got {rc})")
    rc, out, err = run(kiln)
    check(rc == 2, f"no model argument exits 2 (got {rc})")

    rc, out, err = run(kiln, "--json", good)
    j = json.loads(out) if rc == 0 else {}
    check(rc == 0, f"--json exits 0 (got {rc})")
    check(j.get("inputs", [{}])[0].get("shape") == ["batch", 4], "--json input shape is [batch, 4]")
    check(j.get("problems") == [] and j.get("ops") == {"Relu": 1}, "--json lists ops and no problems")
    rc, out, err = run(kiln, "--json", custom)
    j = json.loads(out) if out else {}
    check(rc == 1 and [p["node"] for p in j.get("problems", [])] == ["the_node"], "--json lists the problem node")

    rc, out, err = run(kiln, "--graph", good)
    check(rc == 0 and out.startswith("graph g(%x: f32[batch,4])") and "Relu(%x)" in out, "--graph prints the IR")

    bert = os.path.join(shared, "tiny_bert", "model.onnx") if shared else ""
    if bert and os.path.exists(bert):
        rc, out, err = run(kiln, "--json", bert)
        j = json.loads(out)
        ids = [i for i in j["inputs"] if i["name"] == "input_ids"]
        check(len(ids) == 1 and ids[0]["dtype"] == "i64" and len(ids[0]["shape"]) == 2
              and all(isinstance(d, str) for d in ids[0]["shape"]), "tiny_bert input_ids is i64 with two dynamic dims")
        check(len(j["outputs"]) == 2 and all(o["shape"] for o in j["outputs"]), "tiny_bert outputs have shapes")
        rc, out, err = run(kiln, bert)
        check(any(l.split()[:1] == ["input_ids"] and "i64[" in l for l in out.splitlines()), "tiny_bert text shows input_ids")
    else:
        print(f"SKIP tiny_bert checks: '{bert}' is absent")

    shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(FAILURES)} failure(s)")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
