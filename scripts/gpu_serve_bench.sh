#!/usr/bin/env bash
# The serving figures on the GPU machine (scripts/gpu_check.sh's `serve`
# stage runs it after building kiln with the server):
#   gpu_serve_bench.sh KILN OUT
# Serves a repository of two GPU models: tiny_cnn (examples/, one KIND_GPU
# instance, no batching) and ResNet-50 (torchvision, random weights, exported
# here with torch) in fp16 with dynamic batching on KIND_GPU instances (two by default).
# Then `kiln perf`: tiny_cnn at concurrency 1 over HTTP and gRPC (the server
# overhead at the median: client p50 - the server's compute time), ResNet-50
# at concurrency 64 over HTTP and gRPC, then again with system shared memory
# (http+shm, grpc+shm), and `kiln bench` of the server's ResNet-50 engine at
# the batch size the server ran (the batch bucket most of its executions ran
# at) over the protocol with the higher throughput, which it compares with;
# the same for the better shared memory run; then the same engine served as
# resnet50_b32x3 (three instances, batches of 32 after 500 us, so that two
# batches are in flight) over HTTP with shared memory, against bench at its
# bucket. Prints "serve ..." lines for the summary.
# The server runs every batch at a batch bucket (1, 2, 4, ..., 64 and the
# preferred sizes here) and builds each bucket's plans before the model is
# ready ("warmed batch buckets ... in N ms" in serve_server.log, printed
# here). kiln perf measures windows until the last 3 agree within 10% (else
# its lines say "unstable after N windows"); ResNet-50 gets warm-up requests
# and more windows.
#   SERVE_INTERVAL_MS       kiln perf's measurement interval (default 5000)
#   SERVE_MAX_TRIALS        its windows per level at most (default 10)
#   SERVE_RESNET_MAX_TRIALS the same for ResNet-50 (default 20)
#   SERVE_RESNET_WARMUP     ResNet-50's warm-up requests (default 640: 10 per client)
#   SERVE_RESNET_INSTANCES  ResNet-50's KIND_GPU instance count (default 2): more overlap
#                           more host work (the gather, the answers) with the GPU's
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
kiln=$(realpath "$1")
out=$2
interval=${SERVE_INTERVAL_MS:-5000}
trials=${SERVE_MAX_TRIALS:-10}
resnet_trials=${SERVE_RESNET_MAX_TRIALS:-20}
resnet_warmup=${SERVE_RESNET_WARMUP:-640}
resnet_instances=${SERVE_RESNET_INSTANCES:-2}
work=/tmp/kiln-serve
rm -rf "$work"
mkdir -p "$work/models/tiny_cnn/1" "$work/models/tiny_cnn_graphs/1" "$work/models/resnet50/1" \
  "$work/models/resnet50_b32x3/1"

cp examples/tiny_cnn.onnx "$work/models/tiny_cnn/1/model.onnx"
cat >"$work/models/tiny_cnn/config.pbtxt" <<'EOF'
max_batch_size: 8
instance_group [ { count: 1 kind: KIND_GPU } ]
EOF
# The same model with Triton's CUDA optimizations: a CUDA graph per bucket,
# and the instance polling for the end of a run.
cp examples/tiny_cnn.onnx "$work/models/tiny_cnn_graphs/1/model.onnx"
cat >"$work/models/tiny_cnn_graphs/config.pbtxt" <<'EOF'
max_batch_size: 8
instance_group [ { count: 1 kind: KIND_GPU } ]
optimization { cuda { graphs: true busy_wait_events: true } }
EOF

python3 - "$work/models/resnet50/1/model.onnx" <<'EOF' >"$out/serve_export.log" 2>&1
import sys
import torch
import torchvision
torch.manual_seed(0)
model = torchvision.models.resnet50(weights=None).eval()
example = torch.randn(1, 3, 224, 224)
try:
    torch.onnx.export(model, (example,), sys.argv[1], input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, opset_version=17, dynamo=False)
except Exception as e:  # the legacy exporter may be gone
    print(f"legacy export failed ({e}); dynamo=True")
    torch.onnx.export(model, (example,), sys.argv[1], input_names=["input"], output_names=["output"],
                      dynamic_shapes={"x": {0: torch.export.Dim("batch", max=64)}}, dynamo=True)
EOF
[[ -f $work/models/resnet50/1/model.onnx ]] || { echo "serve resnet50 export     FAILED (serve_export.log)"; exit 1; }
cat >"$work/models/resnet50/config.pbtxt" <<EOF
max_batch_size: 64
instance_group [ { count: $resnet_instances kind: KIND_GPU } ]
dynamic_batching { preferred_batch_size: [ 32, 64 ] max_queue_delay_microseconds: 2000 }
parameters { key: "precision" value { string_value: "fp16" } }
parameters { key: "min_shapes" value { string_value: "input:1x3x224x224" } }
parameters { key: "opt_shapes" value { string_value: "input:32x3x224x224" } }
parameters { key: "max_shapes" value { string_value: "input:64x3x224x224" } }
EOF

# The same engine (one cache entry) as resnet50_b32x3: three instances and
# batches of 32 after at most 500 us, so that at concurrency 64 two batches
# are in flight and one's upload overlaps another's compute (with one batch
# of 64 in flight the GPU waits for every upload and answer).
cp "$work/models/resnet50/1/model.onnx" "$work/models/resnet50_b32x3/1/model.onnx"
sed -e 's/count: [0-9]* kind/count: 3 kind/' \
  -e 's/dynamic_batching {.*}/dynamic_batching { preferred_batch_size: [ 32 ] max_queue_delay_microseconds: 500 }/' \
  "$work/models/resnet50/config.pbtxt" >"$work/models/resnet50_b32x3/config.pbtxt"

"$kiln" serve --model-repository "$work/models" --http-port 0 --grpc-port 0 --metrics-port 0 \
  --engine-cache-dir "$work/cache" 2>"$out/serve_server.log" &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null' EXIT
http="" grpc="" metrics=""
for _ in $(seq 1200); do
  line=$(grep -m1 "HTTP on" "$out/serve_server.log" 2>/dev/null)
  if [[ -n $line ]]; then
    http=$(sed -E 's/.*HTTP on ([^,]+),.*/\1/' <<<"$line")
    grpc=$(sed -nE 's/.*gRPC on ([^ ,]+).*/\1/p' <<<"$line")
    metrics=$(sed -nE 's/.*metrics on ([^ ,/]+).*/\1/p' <<<"$line")
    break
  fi
  kill -0 "$server" 2>/dev/null || break
  sleep 0.5
done
if [[ -z $http ]]; then
  echo "serve start               FAILED (serve_server.log)"
  tail -20 "$out/serve_server.log"
  exit 1
fi
grep -E "failed to load|is ready|warmed batch buckets" "$out/serve_server.log"
# resnet50's batch buckets as the server warmed them ("1,2,4,...,64").
buckets=$(sed -nE "s/.*model 'resnet50': warmed batch buckets ([0-9,]+) in .*/\1/p" "$out/serve_server.log" | head -1)
warmed_ms=$(sed -nE "s/.*model 'resnet50': warmed batch buckets [0-9,]+ in ([0-9]+) ms.*/\1/p" "$out/serve_server.log" | head -1)
printf 'serve resnet50 buckets    %s warmed in %s ms before ready\n' "${buckets:-?}" "${warmed_ms:-?}"

# Correctness on the GPU: tiny_cnn over HTTP/JSON against onnxruntime on the CPU.
python3 - "http://$http" examples/tiny_cnn.onnx <<'EOF' 2>&1 | tail -1
import json, sys, urllib.request
import numpy as np
import onnxruntime as ort
url, model = sys.argv[1], sys.argv[2]
image = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)
want = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"image": image})[0]
body = {"inputs": [{"name": "image", "shape": list(image.shape), "datatype": "FP32", "data": image.ravel().tolist()}]}
req = urllib.request.Request(url + "/v2/models/tiny_cnn/infer", json.dumps(body).encode(),
                             {"Content-Type": "application/json"})
out = json.load(urllib.request.urlopen(req, timeout=60))["outputs"][0]
have = np.array(out["data"], np.float32).reshape(out["shape"])
diff = float(np.abs(have - want).max())
print(f"serve tiny_cnn gpu check   max abs diff {diff:.2e} vs onnxruntime: {'ok' if diff < 1e-3 else 'FAILED'}")
EOF

perf() {  # tag, args...; PERF_TRIALS=N perf ... for other than $trials windows at most
  local tag=$1
  shift
  "$kiln" perf --measurement-interval "$interval" --max-trials "${PERF_TRIALS:-$trials}" "$@" >"$out/perf_$tag.txt" 2>&1
  local rc=$?
  grep -E "client|server|Concurrency:|first error|stable after|warm-up" "$out/perf_$tag.txt" | sed "s/^/  [$tag] /"
  return $rc
}
field() { grep -oE -- "$2" "$out/perf_$1.txt" | head -1 | grep -oE -- '-?[0-9.]+' | tail -1; }
# "", or " (unstable after N windows)" when the windows never agreed.
unstable() { grep -oE "unstable after [0-9]+ windows" "$out/perf_$1.txt" | head -1 | sed 's/.*/ (&)/'; }
# "", or perf_analyzer's view of the overhead (HTTP: the client's own sending and reading left out).
wait_overhead() {
  grep -oE "response wait - compute time: -?[0-9]+" "$out/perf_$1.txt" | head -1 | grep -oE -- '-?[0-9]+$' |
    sed 's/.*/, without the client'"'"'s send and receive & us/'
}

# The *_bw runs: the same over HTTP with a client that polls its socket up to
# 200 us for each answer (kiln perf --busy-wait-us) instead of sleeping in it,
# so the client's own wake-up is left out of what it measures.
for run in "tiny_cnn http" "tiny_cnn grpc" "tiny_cnn_graphs http" "tiny_cnn http_bw" "tiny_cnn_graphs http_bw"; do
  read -r model how <<<"$run"
  proto=${how%_bw}
  busy=()
  [[ $how == *_bw ]] && busy=(--busy-wait-us 200)
  url=$http
  [[ $proto == grpc ]] && url=$grpc
  tag=tiny${model#tiny_cnn}_$how
  [[ -n $url ]] || { echo "serve $model c1 $proto       SKIPPED (no gRPC)"; continue; }
  perf "$tag" -m "$model" -u "$url" -i "$proto" --concurrency-range 1 ${metrics:+--metrics-url "$metrics"} "${busy[@]}"
  printf 'serve %s c1 %-9s p50 %s us, server overhead %s us at the median (compute %s us%s); kiln timestamps p50 %s us%s\n' \
    "$model" "$how" "$(field "$tag" 'p50 [0-9]+ us')" "$(field "$tag" '[-0-9]+ us at the median')" \
    "$(field "$tag" 'compute [0-9]+\)')" "$(wait_overhead "$tag")" "$(field "$tag" 'engine run\): p50 [0-9.]+')" \
    "$(unstable "$tag")"
done

# A model's batch_stats (real batch size -> executions) as JSON into FILE:
# batch_stats FILE [MODEL] (default resnet50).
batch_stats() {
  python3 - "http://$http/v2/models/${2:-resnet50}/stats" >"$1" 2>/dev/null <<'EOF'
import json, sys, urllib.request
s = json.load(urllib.request.urlopen(sys.argv[1], timeout=30))["model_stats"][0]
print(json.dumps({str(b["batch_size"]): b["compute_infer"]["count"] for b in s["batch_stats"]}))
EOF
}
# "BUCKET PERCENT": the batch bucket that most executions between two
# batch_stats files ran at (a batch of n rows runs at the smallest bucket
# >= n, else at n), and its share of the executions; nothing without any.
bucket_ran() {  # BEFORE AFTER
  python3 - "$1" "$2" "$buckets" 2>/dev/null <<'EOF'
import json, sys
before, after = (json.load(open(f)) for f in sys.argv[1:3])
buckets = sorted(int(b) for b in sys.argv[3].split(",") if b)
runs = {}
for size, n in after.items():
    n -= before.get(size, 0)
    if n > 0:
        b = next((b for b in buckets if b >= int(size)), int(size))
        runs[b] = runs.get(b, 0) + n
if runs:
    b = max(runs, key=lambda k: (runs[k], k))
    print(b, round(100 * runs[b] / sum(runs.values())))
EOF
}

# Over the network (the tensors in each request), then with Triton's system
# shared memory (kiln perf --shared-memory system: each client's tensors in a
# region registered with the server; the requests only name it).
# MODEL at concurrency 64 over RUN (http, grpc, http_shm or grpc_shm), with
# INSTANCES GPU instances: its "serve ..." line; sets thr and ran (the
# throughput and the batch bucket most executions ran at; empty on failure).
serve_c64() {
  local model=$1 run=$2 instances=$3 proto=${2%_shm} url=$http shm=() tag=$1_$2
  [[ $run == *_shm ]] && shm=(--shared-memory system)
  [[ $proto == grpc ]] && url=$grpc
  thr="" ran=""
  [[ -n $url ]] || return 0
  batch_stats "$out/serve_stats_before_$tag.json" "$model"
  PERF_TRIALS=$resnet_trials perf "$tag" -m "$model" -u "$url" -i "$proto" --concurrency-range 64 \
    --warmup-request-count "$resnet_warmup" "${shm[@]}"
  batch_stats "$out/serve_stats_after_$tag.json" "$model"
  thr=$(field "$tag" 'throughput: [0-9.]+ infer/sec')
  local share="" batch warm
  batch=$(field "$tag" 'avg batch [0-9.]+')
  warm=$(field "$tag" 'warm-up: [0-9]+ requests in [0-9.]+')
  read -r ran share < <(bucket_ran "$out/serve_stats_before_$tag.json" "$out/serve_stats_after_$tag.json")
  printf 'serve %s fp16 c64 %-4s %s infer/s, avg batch %s, ran at bucket %s (%s%% of executions), %s instances (warm-up %s s)%s\n' \
    "$model" "${run/_shm/+shm}" "${thr:-FAILED}" "${batch:-?}" "${ran:-?}" "${share:-?}" "$instances" "${warm:-?}" \
    "$(unstable "$tag")"
}
for run in http grpc http_shm grpc_shm; do
  serve_c64 resnet50 "$run" "$resnet_instances"
  eval "thr_$run=${thr:-0} ran_$run=${ran:-0}"
done

# kiln bench of the server's ResNet-50 engine (the largest in its cache) at
# the bucket the server ran most over the protocol with the higher
# throughput, copies included, against that protocol's throughput.
engine=$(ls -S "$work"/cache/*.kiln 2>/dev/null | head -1)
# kiln bench of the engine at batch B (once per B; sets $items), and the line
# that compares a served throughput with it: bench_line LABEL THROUGHPUT B.
declare -A bench_items
bench_line() {
  local label=$1 thr=$2 b=$3
  if [[ -z ${bench_items[$b]:-} ]]; then
    "$kiln" bench --loadEngine "$engine" --shapes "input:${b}x3x224x224" --duration 5 >"$out/serve_bench_b$b.txt" 2>&1
    bench_items[$b]=$(grep -oE '[0-9.e+]+ items/s' "$out/serve_bench_b$b.txt" | head -1 | cut -d' ' -f1)
  fi
  items=${bench_items[$b]}
  ratio=$(awk -v s="$thr" -v k="${items:-0}" 'BEGIN { if (k > 0) printf "%.0f", 100 * s / k; else print "?" }')
  printf 'serve bench resnet50 b%-3s %s infer/s (kiln bench, copies included); served (%s, %s infer/s at bucket %s) / bench = %s%%\n' \
    "$b" "${items:-FAILED}" "$label" "$thr" "$b" "$ratio"
}
# The faster of the HTTP and gRPC runs named http$1 and grpc$1 against kiln
# bench at the bucket that run formed: bench_best "" (over the network) and
# bench_best _shm (with system shared memory).
bench_best() {
  local suffix=$1 best=http$1 thr b
  eval "local g=\${thr_grpc$suffix:-0} h=\${thr_http$suffix:-0}"
  awk -v g="$g" -v h="$h" 'BEGIN { exit !(g > h) }' && best=grpc$suffix
  eval "thr=\${thr_$best:-0} b=\${ran_$best:-0}"
  if [[ -n $engine && $b -gt 0 ]]; then
    bench_line "${best/_shm/+shm}" "$thr" "$b"
  else
    printf 'serve bench resnet50%-5s SKIPPED (no engine in the cache or no batch ran)\n' "${suffix/_/ }"
  fi
}
bench_best ""
bench_best _shm

# resnet50_b32x3 over HTTP with system shared memory, against kiln bench at its bucket.
serve_c64 resnet50_b32x3 http_shm 3
if [[ -n $engine && ${ran:-0} -gt 0 && -n $thr ]]; then
  bench_line "b32x3 http+shm" "$thr" "$ran"
fi
