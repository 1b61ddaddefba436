#!/usr/bin/env bash
# `kiln bench` end to end on a tiny model: a short timed run from ONNX and
# from a saved engine, the summary lines, and the three JSON exports with
# their fields. Usage: bench_test.sh KILN PYTHON
set -u
KILN=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
PYTHON=${2:-python3}
HERE=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PYTHON" "$HERE/make_tiny_models.py" "$work" >/dev/null || { echo "SKIP: python with onnx and numpy is needed"; exit 77; }
cd "$work"
source "$HERE/expect.sh"

short=(--warmUp 20 --duration 0.2 --iterations 5)
expect 0 "=== Performance summary ===" -- "$KILN" bench tiny.onnx "${short[@]}" --shapes x:3x4,ids:3x2 \
  --saveEngine tiny.kiln --dumpProfile --exportTimes times.json --exportProfile profile.json \
  --exportLayerInfo layers.json
expect 0 "^kiln-bench: model=tiny.kiln backend=cpu iterations=[0-9]+ qps=[0-9.e+]+ batch=3 items_per_s=" -- \
  "$KILN" bench tiny.kiln "${short[@]}"
expect 0 "Device: CPU backend" -- "$KILN" bench --loadEngine tiny.kiln "${short[@]}"
expect 0 "no copies to leave out" -- "$KILN" bench tiny.kiln "${short[@]}" --noDataTransfers
expect 0 "id_x +Identity" -- "$KILN" bench tiny.kiln "${short[@]}" --dumpProfile --separateProfileRun
expect 0 "^Identity +[1-9][0-9]* +[0-9.]+ +[0-9.]+%" -- "$KILN" bench tiny.kiln "${short[@]}" --dumpProfile
expect 0 "percentile\(50%\)" -- "$KILN" bench tiny.kiln "${short[@]}" --percentile 50
expect 0 "iterations=25 " -- "$KILN" bench tiny.kiln --warmUp 0 --duration 0 --iterations 25
expect 2 "--percentile '200'" -- "$KILN" bench tiny.kiln --percentile 200
expect 2 "exactly one of" -- "$KILN" bench tiny.kiln --loadEngine tiny.kiln
expect 1 "outside optimization profile 0's range \[3, 3\]" -- "$KILN" bench tiny.kiln --shapes x:5x4,ids:5x2
# The data against the engine: 1, as kiln run; a file that cannot be read: 2.
expect 1 "input 'ids': the data is i32, the engine expects i64" -- \
  "$KILN" bench tiny.onnx "${short[@]}" --shapes x:2x4,ids:2x3 --load-inputs x:x.npy,ids:ids32.npy
expect 2 "cannot open 'missing.npy'" -- "$KILN" bench tiny.kiln "${short[@]}" --load-inputs x:missing.npy,ids:ids.npy

expect 0 "" -- "$PYTHON" - <<'PY'
import json
times = json.load(open("times.json"))
assert times["backend"] == "cpu" and times["batch"] == 3 and times["qps"] > 0, times
its = times["iterations"]
assert len(its) >= 5, len(its)
for i, it in enumerate(its):
    assert it["iteration"] == i
    for k in ("startMs", "endMs", "latencyMs", "enqueueMs", "computeMs", "h2dMs", "d2hMs"):
        assert isinstance(it[k], (int, float)), (k, it)
    assert it["endMs"] >= it["startMs"] and abs(it["latencyMs"] - (it["endMs"] - it["startMs"])) < 1e-9
assert all(a["startMs"] <= b["startMs"] for a, b in zip(its, its[1:]))
prof = json.load(open("profile.json"))
names = [l["name"] for l in prof["layers"]]
assert names == ["id_x", "id_ids"], names
assert prof["runs"] == len(its), (prof["runs"], len(its))
for l in prof["layers"]:
    assert l["op"] == "Identity" and l["count"] == prof["runs"]
    for k in ("timeMs", "averageMs", "medianMs", "percentage"):
        assert l[k] >= 0, (k, l)
assert abs(sum(l["percentage"] for l in prof["layers"]) - 100) < 1e-6
info = json.load(open("layers.json"))
assert info["backend"] == "cpu"
assert [b["name"] for b in info["bindings"]] == ["x", "ids", "y", "ids_out"]
assert info["bindings"][0] == {"name": "x", "mode": "input", "dtype": "f32", "shape": ["batch", "4"]}, info["bindings"][0]
l0 = info["layers"][0]
assert l0["name"] == "id_x" and l0["op"] == "Identity" and l0["domain"] == ""
assert l0["inputs"] == [{"name": "x", "dtype": "f32", "shape": ["batch", "4"], "constant": False}], l0
assert l0["outputs"][0]["name"] == "y" and l0["outputs"][0]["dtype"] == "f32"
assert info["layers"][1]["inputs"][0]["dtype"] == "i64"
PY

echo "bench test: $failures failure(s)"
exit $((failures > 0))
