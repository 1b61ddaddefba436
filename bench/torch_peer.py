#!/usr/bin/env python3
"""kiln against PyTorch on real models, in one run on the GPU machine.

For each model (random weights, fixed seed): export ONNX, then in the same
process and on the same GPU time PyTorch eager and torch.compile in fp16, and
`kiln bench` on the exported model in fp16 (--useCudaGraph, GPU compute time
from CUDA events); check kiln's fp16 outputs against PyTorch fp32 on the same
inputs (relative error: max |kiln - torch| / max |torch|), beside PyTorch's own
fp16 error, which says whether the model's values fit fp16 at all; print a
ratio table last. The CNNs' convolutions are initialized with fan_in
(init_convs_fan_in), else MobileNetV2's logits underflow fp16. Every timing is the median of many runs with fresh random inputs.

  python3 bench/torch_peer.py --kiln build-gpu/kiln --out /tmp/peer \\
      --models resnet50:128,resnet50:1,bert:32,bert:1 [--max-autotune]

Models: resnet50, mobilenet_v2, efficientnet_b0, vit_b_16 (torchvision),
bert (BERT-base), gpt2 (GPT-2 small, no cache); images 224x224, tokens
seq 128. The best of eager, torch.compile reduce-overhead (CUDA graphs) and,
with --max-autotune, max-autotune with freezing (+ channels_last for CNNs)
is the peer; the table marks issue #5's targets met or missed.
"""
import argparse
import glob
import hashlib
import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import torch

SEQ = 128


def init_convs_fan_in(m):
    """Re-initializes every Conv2d weight with Kaiming's fan_in scaling.

    torchvision initializes convolutions with fan_out, which for a depthwise
    weight [C, 1, k, k] counts C * k * k inputs where each output sees k * k:
    every depthwise conv shrinks its activations by about sqrt(C / 2), and
    MobileNetV2's logits come out near 3e-9, below fp16's smallest subnormal
    (6e-8), so any fp16 run, PyTorch's too, returns zeros. fan_in keeps each
    layer's forward scale instead. (Taking BatchNorm statistics from random
    images instead, as session 7 did, leaves the random network chaotic:
    PyTorch's own fp16 ResNet-50 then differs from its fp32 by 4.4e-2.)"""
    for conv in m.modules():
        if isinstance(conv, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
    return m


def make_model(name):
    torch.manual_seed(0)
    if name in ("resnet50", "mobilenet_v2", "efficientnet_b0", "vit_b_16"):
        import torchvision
        m = getattr(torchvision.models, name)(weights=None)
        if name == "vit_b_16":
            # torchvision zero-initializes ViT's head, which would make every
            # logit 0 and the accuracy check vacuous.
            torch.nn.init.normal_(m.heads.head.weight, std=0.02)
            torch.nn.init.normal_(m.heads.head.bias, std=0.02)
        if name != "vit_b_16":  # ViT's one conv (the patch projection) has its own init
            init_convs_fan_in(m)
        return m.eval(), "image"
    if name == "bert":
        from transformers import BertConfig, BertModel
        return BertModel(BertConfig()).eval(), "tokens"
    if name == "gpt2":
        from transformers import GPT2Config, GPT2Model
        return GPT2Model(GPT2Config(use_cache=False)).eval(), "tokens"
    raise SystemExit(f"unknown model {name}")


def inputs_for(kind, batch, gen, device):
    if kind == "image":
        return {"input": torch.randn(batch, 3, 224, 224, generator=gen).to(device)}
    ids = torch.randint(0, 30000, (batch, SEQ), generator=gen).to(device)
    return {"input_ids": ids}


class Wrapped(torch.nn.Module):
    """Returns one tensor: the image logits or the last hidden state."""

    def __init__(self, m, kind):
        super().__init__()
        self.m, self.kind = m, kind

    def forward(self, x):
        out = self.m(x)
        return out if self.kind == "image" else out.last_hidden_state


def export(model, kind, path, example):
    name = "input" if kind == "image" else "input_ids"
    axes = {name: {0: "batch"} if kind == "image" else {0: "batch", 1: "seq"}, "output": {0: "batch"}}
    try:
        torch.onnx.export(model, (example,), path, input_names=[name], output_names=["output"],
                          dynamic_axes=axes, opset_version=17, dynamo=False)
    except Exception as e:  # the legacy exporter may be gone: use the dynamo one
        print(f"  legacy export failed ({type(e).__name__}: {e}); trying dynamo=True", flush=True)
        torch.onnx.export(model, (example,), path, input_names=[name], output_names=["output"],
                          dynamic_shapes={"x": {0: torch.export.Dim("batch")}}, dynamo=True)


def time_torch(fn, feeds, runs=50, warmup=10):
    """Median GPU ms per call over fresh inputs (CUDA events)."""
    with torch.inference_mode():
        for i in range(warmup):
            fn(feeds[i % len(feeds)])
        torch.cuda.synchronize()
        times = []
        for i in range(runs):
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            fn(feeds[i % len(feeds)])
            e.record()
            e.synchronize()
            times.append(s.elapsed_time(e))
    return float(np.median(times))


def time_max_autotune(half, kind, feeds16):
    """torch.compile max-autotune as its users tune it for inference: weights
    frozen into the graph, and channels_last for the CNNs."""
    import torch._inductor.config as inductor_config
    inductor_config.freezing = True
    try:
        if kind == "image":
            half = half.to(memory_format=torch.channels_last)
            feeds16 = [f.contiguous(memory_format=torch.channels_last) for f in feeds16]
        torch._dynamo.reset()  # as for reduce-overhead: a fresh compile per model
        tuned = torch.compile(half, mode="max-autotune")
        return time_torch(tuned, feeds16, warmup=20)
    finally:
        inductor_config.freezing = False


# Issue #5's targets on the H200 in fp16, as kiln's ratio to the best PyTorch
# configuration: throughput speedup at large batch, latency fraction at batch 1.
TARGETS = {("resnet50", 128): ("speedup", 1.7), ("resnet50", 1): ("latency", 0.6),
           ("mobilenet_v2", 128): ("speedup", 1.5), ("efficientnet_b0", 128): ("speedup", 1.5),
           ("vit_b_16", 64): ("speedup", 1.4), ("bert", 32): ("speedup", 1.3), ("bert", 1): ("latency", 0.6),
           ("gpt2", 16): ("speedup", 1.3)}


# Multiply-adds x 2 per image (224x224) or per sequence (128 tokens), the
# forward pass as exported: torchvision's published GMACs for the CNNs and
# ViT; BERT-base and GPT-2 small (no LM head) from their 12 layers of
# 4*768^2 + 2*768*3072 weights per token plus attention's 4*128*768 per token.
FLOPS_PER_ITEM = {"resnet50": 8.18e9, "mobilenet_v2": 0.60e9, "efficientnet_b0": 0.78e9, "vit_b_16": 35.1e9,
                  "bert": 22.3e9, "gpt2": 22.3e9}
CEILING_TFLOPS = 761.0  # fp16 dense, measured on the H200 (DESIGN.md)


def tflops_cell(model, batch, ms):
    f = FLOPS_PER_ITEM.get(model)
    if not f or not ms:
        return "-"
    t = f * batch / (ms * 1e-3) / 1e12
    return f"{t:.0f} ({100 * t / CEILING_TFLOPS:.0f}%)"


def target_cell(model, batch, best, kiln_ms):
    """'>=1.7x met' / '<=0.60 MISSED' for the rows the issue sets a target on."""
    t = TARGETS.get((model, batch))
    if not t or not best or not kiln_ms:
        return "-"
    kind, want = t
    if kind == "speedup":
        return f">={want}x {'met' if best / kiln_ms >= want else 'MISSED'}"
    return f"<={want:.2f} {'met' if kiln_ms / best <= want else 'MISSED'}"


def run(cmd, log):
    t0 = time.time()
    with open(log, "w") as f:
        try:
            p = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, text=True, timeout=240)
            rc = p.returncode
        except subprocess.TimeoutExpired:
            rc = 124
    print(f"  {os.path.basename(cmd[0])} {cmd[1]}: exit {rc} in {time.time() - t0:.0f} s", flush=True)
    return rc, open(log).read()


def bench_kiln(args, onnx_path, kind, batch, tag, extra=()):
    """Builds cold (empty timing cache), again warm (must be byte-identical),
    then benchmarks the engine; `extra`: more `kiln build` flags. Returns
    (GPU ms, cold s, warm s, identical, error)."""
    name = "input" if kind == "image" else "input_ids"
    shape = f"{name}:{batch}x3x224x224" if kind == "image" else f"{name}:{batch}x{SEQ}"
    cache = os.path.join(args.out, f"{tag}.timing")
    if os.path.exists(cache):
        os.remove(cache)
    engines, times = [], []
    for build in ("cold", "warm"):
        engine = os.path.join(args.out, f"{tag}.{build}.kiln")
        t0 = time.time()
        rc, out = run([args.kiln, "build", onnx_path, "--backend", "cuda", "--fp16", "--optShapes", shape,
                       "--timingCacheFile", cache, "-o", engine, *extra], os.path.join(args.out, f"{tag}.{build}.log"))
        if rc != 0:
            return None, None, None, None, out[-800:]
        times.append(time.time() - t0)
        engines.append(open(engine, "rb").read())
        print("  " + " | ".join(l for l in out.splitlines() if l.startswith(("tactics", "built"))), flush=True)
    cmd = [args.kiln, "bench", "--loadEngine", os.path.join(args.out, f"{tag}.cold.kiln"), "--shapes", shape,
           "--useCudaGraph", "--noDataTransfers", "--iterations", "200", "--duration", "2"]
    rc, out = run(cmd, os.path.join(args.out, f"{tag}.bench.log"))
    m = re.search(r"compute_ms: median=([0-9.e+-]+)", out)
    if rc != 0 or not m:
        return None, times[0], times[1], engines[0] == engines[1], out[-800:]
    return float(m.group(1)), times[0], times[1], engines[0] == engines[1], ""


def kiln_accuracy(args, onnx_path, kind, x32, ref, tag):
    name = "input" if kind == "image" else "input_ids"
    d = os.path.join(args.out, tag)
    os.makedirs(d, exist_ok=True)
    np.save(os.path.join(d, "x.npy"), x32)
    rc, out = run([args.kiln, "run", onnx_path, "--backend", "cuda", "--fp16", "--load-inputs",
                   f"{name}:{os.path.join(d, 'x.npy')}", "--save-outputs", d, "--npy"],
                  os.path.join(args.out, f"{tag}.run.log"))
    if rc != 0:
        return None, out[-800:]
    got = np.load(os.path.join(d, "output.npy")).astype(np.float64)
    err = float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-30))
    return err, ""


def kiln_build_digest(kiln):
    """A digest of the shared libraries beside the kiln executable
    (libkiln_core, libkiln_runtime, libkiln_builder: everything that builds an
    engine and runs it): which build measured a row. The executable itself is
    left out: gpu_check's serve stage relinks it against another gRPC, which
    changes no engine and must not void the rows an earlier call kept. A
    build without those libraries (static) is digested whole."""
    h = hashlib.sha256()
    folder = os.path.dirname(os.path.abspath(kiln))
    for path in sorted(glob.glob(os.path.join(folder, "libkiln*.so"))) or [kiln]:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--models", default="resnet50:128,resnet50:1,bert:32,bert:1")
    ap.add_argument("--max-autotune", action="store_true", help="also time torch.compile max-autotune (slow)")
    ap.add_argument("--no-compile", action="store_true",
                    help="time PyTorch eager only, not torch.compile (a quick A/B of kiln variants; the ratio is then "
                         "to eager, not to the issue's best peer)")
    ap.add_argument("--kiln-variant", action="append", default=[], metavar="NAME=FLAGS",
                    help="also build and bench kiln with these extra build flags, e.g. "
                         "'o5=--builderOptimizationLevel 5' (repeatable; the table keeps the default build)")
    ap.add_argument("--resume", action="store_true",
                    help="reuse the rows of OUT/peer.json that an earlier run with the same flags measured (each "
                         "row's kiln and PyTorch figures come from one run), run only the missing models, and print "
                         "the table of them all: the whole table over several calls of a warm machine")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    dev = torch.device("cuda")
    gpu = torch.cuda.get_device_name(0)
    print(f"GPU: {gpu}, torch {torch.__version__}", flush=True)
    # What a row was measured with: rows of another kiln build, other flags or
    # another GPU are not reused.
    flags = {"kiln": kiln_build_digest(args.kiln), "gpu": gpu, "torch": torch.__version__,
             "max_autotune": args.max_autotune, "no_compile": args.no_compile, "kiln_variants": sorted(args.kiln_variant)}
    path = os.path.join(args.out, "peer.json")
    known = {}  # (model, batch) -> row, written after every model
    if args.resume and os.path.exists(path):
        for r in json.load(open(path)):
            if r.get("flags") == flags:
                known[(r["model"], r["batch"])] = r
    rows = []
    exported = {}
    for spec in args.models.split(","):
        name, batch = spec.split(":")
        batch = int(batch)
        tag = f"{name}_b{batch}"
        if (name, batch) in known:
            print(f"== {tag}: measured by an earlier run (--resume)", flush=True)
            rows.append(known[(name, batch)])
            continue
        print(f"== {tag}", flush=True)
        model, kind = make_model(name)
        # eval(): the legacy exporter keeps the wrapper's mode, and a training-mode
        # export computes BatchNorm from batch statistics.
        wrapped = Wrapped(model, kind).to(dev).eval()
        gen = torch.Generator().manual_seed(1)
        onnx_path = os.path.join(args.out, f"{name}.onnx")
        if name not in exported:
            t0 = time.time()
            example = next(iter(inputs_for(kind, 2, gen, dev).values()))
            export(wrapped, kind, onnx_path, example)
            exported[name] = time.time() - t0
            print(f"  exported {onnx_path} in {exported[name]:.1f} s", flush=True)
        feeds = [next(iter(inputs_for(kind, batch, gen, dev).values())) for _ in range(4)]
        # Accuracy reference: PyTorch fp32 on the first input.
        with torch.inference_mode():
            ref = wrapped(feeds[0]).float().cpu().numpy().astype(np.float64)
        x32 = feeds[0].cpu().numpy()
        half = Wrapped(model, kind).to(dev).half().eval()
        feeds16 = [f.half() if f.is_floating_point() else f for f in feeds]
        row = {"model": name, "batch": batch, "flags": flags}
        # kiln first: its figures come back even if torch.compile runs long.
        kiln_ms, cold, warm, same, err = bench_kiln(args, onnx_path, kind, batch, tag)
        row["kiln_ms"], row["build_cold_s"], row["build_warm_s"], row["warm_identical"] = kiln_ms, cold, warm, same
        if err:
            print(f"  kiln bench failed:\n{err}", flush=True)
        for variant in args.kiln_variant:
            vname, _, flags = variant.partition("=")
            ms, vcold, _, _, verr = bench_kiln(args, onnx_path, kind, batch, f"{tag}_{vname}", flags.split())
            row[f"kiln_ms_{vname}"], row[f"build_cold_s_{vname}"] = ms, vcold
            print(f"  kiln variant {vname} ({flags}): {ms if ms is not None else verr} ms, cold build {vcold} s",
                  flush=True)
        rel, err = kiln_accuracy(args, onnx_path, kind, x32, ref, tag)
        row["kiln_rel_err"] = rel
        if err:
            print(f"  kiln run failed:\n{err}", flush=True)
        # PyTorch's own fp16 error on the same input: the yardstick for kiln's.
        # Near 1 it means the fp32 reference does not survive fp16 at all (it
        # underflows or overflows), and kiln's figure says nothing of kiln.
        with torch.inference_mode():
            got16 = half(feeds16[0]).float().cpu().numpy().astype(np.float64)
        row["torch_fp16_rel_err"] = float(np.abs(got16 - ref).max() / max(np.abs(ref).max(), 1e-30))
        print(f"  max |torch fp32| {np.abs(ref).max():.3g}, torch fp16 rel err {row['torch_fp16_rel_err']:.2e}"
              f", kiln fp16 rel err {rel if rel is not None else '-'}", flush=True)
        if row["torch_fp16_rel_err"] > 0.1:
            print("  WARNING: PyTorch's fp16 output misses its fp32 one as well: the model's values do not fit"
                  " fp16, so the accuracy check is vacuous", flush=True)
        row["eager_ms"] = time_torch(half, feeds16)
        print(f"  torch eager {row['eager_ms']:.3f} ms", flush=True)
        try:
            if args.no_compile:
                raise RuntimeError("not timed (--no-compile)")
            # Every model's Wrapped.forward is one code object: without a reset,
            # dynamo recompiles it per model and soon marks dims dynamic, which
            # made a later model's compiled time worse than its own.
            torch._dynamo.reset()
            compiled = torch.compile(half, mode="reduce-overhead")
            row["compile_ms"] = time_torch(compiled, feeds16, warmup=20)
        except Exception as e:
            print(f"  torch.compile failed: {e}", flush=True)
        if args.max_autotune:
            try:
                row["autotune_ms"] = time_max_autotune(half, kind, feeds16)
                print(f"  torch.compile max-autotune {row['autotune_ms']:.3f} ms", flush=True)
            except Exception as e:
                print(f"  max-autotune failed: {e}", flush=True)
        print("  " + json.dumps(row), flush=True)
        rows.append(row)
        # After every model: a run cut short (a device call's time limit)
        # keeps what it measured, for --resume.
        known[(name, batch)] = row
        with open(path, "w") as f:
            json.dump(list(known.values()), f, indent=1)
        del half, wrapped, model
        torch.cuda.empty_cache()
    print("\nmodel           batch  eager ms  compile ms  autotune ms  kiln ms  kiln/best-torch  kiln items/s"
          "  target        fp16 rel err (torch's)  build cold/warm s  kiln TFLOP/s (of 761)")
    for r in rows:
        torch_ms = [r[k] for k in ("eager_ms", "compile_ms", "autotune_ms") if r.get(k)]
        best = min(torch_ms) if torch_ms else None
        k = r.get("kiln_ms")
        speed = f"{best / k:.2f}x" if best and k else "-"
        fmt = lambda v, f="{:.3f}": f.format(v) if v is not None else "-"
        rate = f"{r['batch'] * 1000 / k:,.0f}" if k else "-"
        print(f"{r['model']:<15} {r['batch']:>5}  {fmt(r.get('eager_ms')):>8}  {fmt(r.get('compile_ms')):>10}  "
              f"{fmt(r.get('autotune_ms')):>11}  {fmt(k):>7}  {speed:>15}  {rate:>12}  "
              f"{target_cell(r['model'], r['batch'], best, k):<12}  {fmt(r.get('kiln_rel_err'), '{:.2e}'):>12} "
              f"({fmt(r.get('torch_fp16_rel_err'), '{:.2e}')})  "
              f"{fmt(r.get('build_cold_s'), '{:.1f}'):>7}/{fmt(r.get('build_warm_s'), '{:.1f}')}"
              f"{' identical' if r.get('warm_identical') else ''}  {tflops_cell(r['model'], r['batch'], k)}")


if __name__ == "__main__":
    sys.exit(main())
