#!/usr/bin/env python3
"""kiln's outputs against onnxruntime (CPU, fp32) on one ONNX model, for a
few batch sizes and kiln configurations: prints max |kiln - ort| / max |ort|.

  python3 bench/check_accuracy.py --kiln build-gpu/kiln MODEL.onnx --batches 1,8 \\
      --configs "--backend cuda --noTF32" "--backend cuda --fp16"
"""
import argparse
import os
import subprocess
import tempfile

import numpy as np
import onnx
import onnxruntime as ort


def random_feed(model, batch, seq, rng):
    feed = {}
    for inp in model.graph.input:
        t = inp.type.tensor_type
        dims = [d.dim_value if d.dim_value > 0 else None for d in t.shape.dim]
        dims = [batch if i == 0 and d is None else (seq if d is None else d) for i, d in enumerate(dims)]
        if t.elem_type == onnx.TensorProto.INT64:
            feed[inp.name] = rng.integers(0, 1000, size=dims).astype(np.int64)
        else:
            feed[inp.name] = rng.standard_normal(dims).astype(np.float32)
    return feed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--configs", nargs="+", default=["--backend cuda --noTF32", "--backend cuda --fp16"])
    args = ap.parse_args()
    model = onnx.load(args.model, load_external_data=False)
    sess = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        for batch in [int(b) for b in args.batches.split(",")]:
            feed = random_feed(model, batch, args.seq, rng)
            ref = sess.run(None, feed)
            spec = []
            for name, x in feed.items():
                path = os.path.join(tmp, f"{name}.npy")
                np.save(path, x)
                spec.append(f"{name}:{path}")
            for config in args.configs:
                out = os.path.join(tmp, "out")
                p = subprocess.run([args.kiln, "run", args.model, *config.split(), "--load-inputs", ",".join(spec),
                                    "--save-outputs", out, "--npy"], capture_output=True, text=True)
                if p.returncode != 0:
                    print(f"batch {batch:>4} [{config}]: kiln run failed: {p.stderr.strip()[-400:]}", flush=True)
                    continue
                errs = []
                for o, want in zip(model.graph.output, ref):
                    got = np.load(os.path.join(out, o.name.replace("/", "_").replace(":", "_") + ".npy"))
                    want = want.astype(np.float64)
                    errs.append(float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30)))
                print(f"batch {batch:>4} [{config}]: rel err " + " ".join(f"{e:.2e}" for e in errs), flush=True)


if __name__ == "__main__":
    main()
