#!/usr/bin/env python3
"""The README's serving walkthrough: make a Triton-style model repository from
the bundled model (examples/tiny_cnn.onnx) and the shared models
(../shared/models), then query a running `kiln serve` with tritonclient's HTTP
and gRPC clients and compare every output with the model's reference output.

    scripts/serve_example.py repository /tmp/kiln-models
    build/kiln serve --model-repository /tmp/kiln-models
    scripts/serve_example.py query /tmp/kiln-models      # HTTP on :8000, gRPC on :8001

repository: MODEL/1/model.onnx (a symbolic link) and MODEL/test_data_set_0/
(the reference inputs and outputs, which the server ignores: only numeric
folders are versions). The bundled model's reference is computed with ONNX's
reference evaluator on a seeded random image. Shared models come from
--shared-models, else $KILN_SHARED_MODELS, else ../shared/models next to this
repository; without them the repository holds the bundled model only.

query: every model of the repository, over HTTP and gRPC, with the reference
inputs; exit 1 if any output differs (rtol 1e-4, atol 1e-5 on the CPU; on a
GPU, where fp32 matmuls and convolutions may use TF32 as TensorRT's do, rtol
2e-2, atol 2e-3) or a request fails. Run it with the repository's
.venv/bin/python (tritonclient is there).
"""
import argparse
import glob
import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUNDLED = os.path.join(ROOT, "examples", "tiny_cnn.onnx")


def save_tensor(path, name, array):
    t = numpy_helper.from_array(array, name)
    with open(path, "wb") as f:
        f.write(t.SerializeToString())


def load_tensor(path):
    t = onnx.TensorProto()
    with open(path, "rb") as f:
        t.ParseFromString(f.read())
    return t.name, numpy_helper.to_array(t)


def add_model(repo, name, model_file, data_dir=None):
    os.makedirs(os.path.join(repo, name, "1"), exist_ok=True)
    link = os.path.join(repo, name, "1", "model.onnx")
    if os.path.lexists(link):
        os.remove(link)
    os.symlink(os.path.abspath(model_file), link)
    out = os.path.join(repo, name, "test_data_set_0")
    os.makedirs(out, exist_ok=True)
    if data_dir:
        for f in glob.glob(os.path.join(data_dir, "*.pb")):
            with open(f, "rb") as src, open(os.path.join(out, os.path.basename(f)), "wb") as dst:
                dst.write(src.read())
    return out


def make_repository(args):
    repo = args.dir
    os.makedirs(repo, exist_ok=True)
    # The bundled model: a seeded image and ONNX's reference evaluator's output.
    from onnx.reference import ReferenceEvaluator

    data = add_model(repo, "tiny_cnn", BUNDLED)
    image = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    (probs,) = ReferenceEvaluator(BUNDLED).run(None, {"image": image})
    save_tensor(os.path.join(data, "input_0.pb"), "image", image)
    save_tensor(os.path.join(data, "output_0.pb"), "probs", probs)
    names = ["tiny_cnn"]
    shared = args.shared_models or os.environ.get("KILN_SHARED_MODELS") or os.path.join(ROOT, "..", "shared", "models")
    if os.path.isdir(shared):
        for model in sorted(glob.glob(os.path.join(shared, "*", "model.onnx"))):
            folder = os.path.dirname(model)
            add_model(repo, os.path.basename(folder), model, os.path.join(folder, "test_data_set_0"))
            names.append(os.path.basename(folder))
    else:
        print(f"no shared models at {shared}: the repository holds the bundled model only")
    print(f"{repo}: {' '.join(names)}")


def reference(repo, name):
    data = os.path.join(repo, name, "test_data_set_0")
    inputs = [load_tensor(f) for f in sorted(glob.glob(os.path.join(data, "input_*.pb")))]
    outputs = [load_tensor(f) for f in sorted(glob.glob(os.path.join(data, "output_*.pb")))]
    return inputs, outputs


def infer(module, client, name, inputs, outputs):
    """One request with tritonclient (module: tritonclient.http or .grpc)."""
    request = []
    for input_name, array in inputs:
        t = module.InferInput(input_name, list(array.shape), "FP32" if array.dtype == np.float32 else "INT64")
        t.set_data_from_numpy(array)
        request.append(t)
    wanted = [module.InferRequestedOutput(n) for n, _ in outputs]
    result = client.infer(name, request, outputs=wanted)
    return {n: result.as_numpy(n) for n, _ in outputs}


def query(args):
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    clients = [("HTTP", httpclient, httpclient.InferenceServerClient(args.http_url)),
               ("gRPC", grpcclient, grpcclient.InferenceServerClient(args.grpc_url))]
    models = sorted(d for d in os.listdir(args.dir) if os.path.isdir(os.path.join(args.dir, d, "test_data_set_0")))
    failed = 0
    for name in models:
        inputs, outputs = reference(args.dir, name)
        # The instances' kind as the server completed the config.
        try:
            kinds = {g.get("kind") for g in clients[0][2].get_model_config(name).get("instance_group", [])}
        except Exception:  # not loaded: the requests below say why
            kinds = set()
        rtol, atol = (2e-2, 2e-3) if "KIND_GPU" in kinds else (1e-4, 1e-5)
        for protocol, module, client in clients:
            try:
                got = infer(module, client, name, inputs, outputs)
            except Exception as e:  # an error from the server: report it, go on
                print(f"{name:24} {protocol:4}  FAILED: {e}")
                failed += 1
                continue
            worst = 0.0
            ok = True
            for output_name, want in outputs:
                have = got[output_name]
                ok &= have is not None and have.shape == want.shape and np.allclose(have, want, rtol=rtol, atol=atol)
                if have is not None and have.shape == want.shape:
                    worst = max(worst, float(np.max(np.abs(have.astype(np.float64) - want))))
            print(f"{name:24} {protocol:4}  {'matches' if ok else 'DIFFERS from'} the reference "
                  f"({len(outputs)} output{'s' if len(outputs) > 1 else ''}, max abs diff {worst:.2e}"
                  f"{', on the GPU' if 'KIND_GPU' in kinds else ''})")
            failed += not ok
    print(f"{len(models)} models, {2 * len(models) - failed} of {2 * len(models)} requests match")
    return 1 if failed or not models else 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("repository", help="make a model repository in DIR")
    r.add_argument("dir")
    r.add_argument("--shared-models", help="folder of NAME/model.onnx + NAME/test_data_set_0 (default: "
                   "$KILN_SHARED_MODELS, else ../shared/models)")
    q = sub.add_parser("query", help="query the models of DIR on a running kiln serve")
    q.add_argument("dir")
    q.add_argument("--http-url", default="localhost:8000")
    q.add_argument("--grpc-url", default="localhost:8001")
    args = p.parse_args()
    if args.command == "repository":
        make_repository(args)
        return 0
    return query(args)


if __name__ == "__main__":
    sys.exit(main())
