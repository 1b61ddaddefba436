#!/usr/bin/env bash
# One call on the GPU machine: report the environment, build kiln with the
# CUDA backend (16 cores), run every test (GPU ones included), the CUDA
# conformance suites, the shared models on the GPU in fp32 and fp16, the
# kernel benchmark and kiln against PyTorch on ResNet-50 and BERT-base, and
# print a short summary table last. Logs go to $OUT (or /tmp/kiln-gpu; over 8
# files, one archive $OUT/logs.tgz). The machine has no network: nothing is
# installed here.
#   GPU_CHECK_STAGES  which stages run (default: "tests conformance models bench peer", which
#                     fits one 10-minute call on an H100 or H200 from a fresh clone; "profile"
#                     and "kernels" add per-layer times and the kernel benchmark, "ncu" Nsight
#                     Compute's sections for one kernel of it (NCU_KERNEL, a regex over the
#                     demangled name, default "stem_igemm_kernel<__half, [^>]*4>" (the 4 may
#                     print as "(int)4"): ResNet-50's stem on kiln_igemm; NCU_BENCH, the
#                     kiln_cuda_bench --only section, default stem;
#                     NCU_LAUNCHES, default 2; then the stall reasons of one launch), "cpu-tests"
#                     the non-GPU suite, which CI runs anyway)
#   GPU_TEST_REGEX    only the GPU tests whose names match (ctest -R), e.g. StemConv
#   KERNELS_ONLY      the kernel benchmark's sections (kiln_cuda_bench --only), e.g. stem
#   GPU_CHECK_TARGETS what ninja builds (default: kiln, kiln_gpu_tests and kiln_cuda_bench,
#                     or everything when the stages include cpu-tests)
#   GPU_CHECK_BUDGET  seconds the whole call may take (default 570, inside the device tool's
#                     10 minutes): a stage that would not fit in what is left is skipped, and
#                     says so in the summary
#   KILN_TESTDATA     folder with node/ (Debian's libonnx-testdata node cases) and
#                     models/ (../shared/models), carried to the machine (default .testdata)
#   PEER_MODELS       the torch_peer.py model list (default resnet50:128,bert:32; issue #5's
#                     whole table: GPU_CHECK_STAGES=peer with the models of docs/performance.md)
#   PEER_FLAGS        more torch_peer.py flags, e.g. --max-autotune (the issue's third peer; slow),
#                     --kiln-variant=o5=--builderOptimizationLevel=5 (kiln also built with those flags),
#                     --resume (keep the models an earlier call on this warm machine measured with
#                     the same flags, run the rest, print the table of all: the whole table of
#                     docs/performance.md over several calls, each cut short with its rows kept)
#   PEER_SAVE_CACHE   1: after the peer, archive torch.compile's caches (inductor's graphs and
#                     autotune choices, Triton's kernels) as $OUT/inductor.tgz; copied here to
#                     .peer-cache/inductor.tgz and carried, a fresh machine's peer starts from them
#                     (max-autotune spends minutes a CNN choosing kernels otherwise)
# Stage `serve` (not in the default list: it needs .debs/, made here by
# scripts/fetch_server_debs.sh and carried): unpacks Boost and gRPC C++ from
# .debs/ with dpkg -x, rebuilds kiln with `kiln serve` and `kiln perf`, and
# measures the server on the GPU: tiny_cnn at concurrency 1 over HTTP and
# gRPC, and over HTTP with optimization.cuda graphs and busy_wait_events
# (server overhead at the median), ResNet-50 fp16 with dynamic batching and
# batch buckets at concurrency 64 against `kiln bench` of the same engine at
# the bucket the server ran most. GPU_CHECK_STAGES=serve runs it alone.
# Stage `server-tests` (not in the default list either): the same server
# build, then tests/server's pytest suite with tritonclient from .debs/wheels
# (scripts/fetch_gpu_wheels.sh), whose KIND_GPU tests run only on a GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/kiln-gpu}
mkdir -p "$OUT"
export PATH="$PATH:/usr/local/cuda/bin"
jobs=$(nproc)
summary=()
t0=$(date +%s)
row() { summary+=("$(printf '%-28s %s  [t=%ss]' "$1" "$2" "$(( $(date +%s) - t0 ))")"); }

{
  nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv,noheader
  nvcc --version | tail -1
  cmake --version | head -1
  g++ --version | head -1
  python3 -c "import onnx, numpy; print('onnx', onnx.__version__, 'numpy', numpy.__version__)"
  python3 -c "import torch; print('torch', torch.__version__)" 2>&1 | tail -1
  dpkg -l | awk '/protobuf|libgtest|cli11|nlohmann|libfmt|spdlog|cudnn|benchmark|ccache|libonnx/ {print $2, $3}'
} >"$OUT/env.txt" 2>&1
row "gpu" "$(nvidia-smi --query-gpu=name,compute_cap --format=csv,noheader 2>/dev/null | head -1)"

# A kiln that an earlier call's `serve` stage linked against the gRPC in
# build-gpu/debroot (a warm machine keeps it) loads it from there.
multiarch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
if [[ -d build-gpu/debroot/usr/lib/$multiarch ]]; then
  export LD_LIBRARY_PATH="$PWD/build-gpu/debroot/usr/lib/$multiarch${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

stages=" ${GPU_CHECK_STAGES:-tests conformance models bench peer} "
targets=${GPU_CHECK_TARGETS:-kiln kiln_gpu_tests kiln_cuda_bench}
[[ $stages == *" cpu-tests "* && -z ${GPU_CHECK_TARGETS:-} ]] && targets=""  # everything
start=$(date +%s)
if cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
     -DPython3_EXECUTABLE="$(command -v python3)" >"$OUT/configure.log" 2>&1 &&
   ninja -C build-gpu -j"$jobs" $targets >"$OUT/build.log" 2>&1; then
  row "build" "ok in $(( $(date +%s) - start )) s"
  # Each step's start and end (ms): where a fresh machine's build time goes.
  cp build-gpu/.ninja_log "$OUT/ninja_log.txt" 2>/dev/null
else
  row "build" "FAILED (see build.log)"
  tail -30 "$OUT/build.log" "$OUT/configure.log"
  printf '%s\n' "${summary[@]}"
  exit 1
fi

budget=${GPU_CHECK_BUDGET:-570}
left() { echo $((budget - ($(date +%s) - t0))); }
# About how long each stage takes on an H100/H200 (s; tests: 137 s on the H200 in session 7): one that would not fit is skipped.
declare -A need=([tests]=150 [cpu-tests]=150 [conformance]=90 [models]=40 [bench]=120 [peer]=150 [profile]=40
  [kernels]=40 [ncu]=60 [serve]=360 [server-tests]=120)
# The serve stage's windows are 5 s by default; at SERVE_INTERVAL_MS=2000 it took 196 s (session 9, H100),
# before the two busy-wait client runs and the resnet50_b32x3 one.
((${SERVE_INTERVAL_MS:-5000} <= 2000)) && need[serve]=300
want() {
  [[ $stages == *" $1 "* ]] || return 1
  if (($(left) < ${need[$1]:-60})); then
    row "$1" "SKIPPED: $(left) s left of GPU_CHECK_BUDGET=$budget, the stage needs about ${need[$1]:-60} s"
    return 1
  fi
}
data=${KILN_TESTDATA:-.testdata}
kiln=build-gpu/kiln

if want tests; then
  (cd build-gpu && ctest -L gpu ${GPU_TEST_REGEX:+-R "$GPU_TEST_REGEX"} -j"${GPU_TEST_JOBS:-8}" --timeout 240 \
    --output-on-failure >"$OUT/ctest_gpu.log" 2>&1)
  row "ctest -L gpu" "$(grep -E 'tests passed|No tests were found' "$OUT/ctest_gpu.log" | tail -1)"
  grep -E '\(Failed\)|\(Timeout\)|Failure|Expected|Which is' "$OUT/ctest_gpu.log" | head -30
fi
if want cpu-tests; then
  (cd build-gpu && ctest -LE gpu -j"$jobs" --output-on-failure >"$OUT/ctest.log" 2>&1)
  row "ctest (no gpu label)" "$(grep -E 'tests passed' "$OUT/ctest.log" | tail -1)"
  grep -E '\(Failed\)|\(Timeout\)|\*\*\*' "$OUT/ctest.log" | head -20
fi

if want conformance; then
  # fp32 on the GPU (TF32 off): both ONNX node suites.
  python3 scripts/gen_onnx_node_tests.py build-gpu/onnx-node-tests >"$OUT/gen_node_tests.log" 2>&1
  for suite in "$data/node" build-gpu/onnx-node-tests; do
    [[ -d $suite ]] || { row "conformance cuda" "$suite missing"; continue; }
    log="$OUT/conformance_cuda_$(basename "$(dirname "$suite")")_$(basename "$suite").txt"
    "$kiln" conformance "$suite" --backend cuda -j "$jobs" >"$log" 2>&1
    row "conformance cuda $(basename "$suite")" "$(tail -1 "$log")"
  done
fi

if want models; then
  export KILN_SHARED_MODELS="$data/models"
  KILN_MODELS_FLAGS="--backend cuda --noTF32" KILN_MODELS_RTOL=1e-3 KILN_MODELS_ATOL=1e-4 \
    tests/cli/shared_models.sh "$kiln" >"$OUT/models_cuda_fp32.txt" 2>&1
  row "shared models cuda fp32" "$(tail -1 "$OUT/models_cuda_fp32.txt")"
  KILN_MODELS_FLAGS="--backend cuda --fp16" KILN_MODELS_TOLERANCES=tests/cli/fp16_tolerances.txt \
    tests/cli/shared_models.sh "$kiln" >"$OUT/models_cuda_fp16.txt" 2>&1
  row "shared models cuda fp16" "$(tail -1 "$OUT/models_cuda_fp16.txt")"
  grep -h '^FAIL' -A3 "$OUT"/models_cuda_*.txt | head -30
fi

if want bench; then
  # kiln bench on every shared model: GPU compute time per inference (median),
  # fp32 and fp16, CUDA graphs on, the inputs' dynamic dims at 1.
  for model in "$data"/models/*/model.onnx; do
    [[ -f $model ]] || continue
    m=$(basename "$(dirname "$model")")
    for prec in fp32 fp16; do
      flags=(--backend cuda --useCudaGraph --noDataTransfers --duration 1 --timingCacheFile /tmp/kiln-gpu-check.timing)
      [[ $prec == fp16 ]] && flags+=(--fp16)
      "$kiln" bench "$model" "${flags[@]}" >"$OUT/bench_${m}_$prec.txt" 2>&1
      ms=$(grep -oE 'compute_ms: median=[0-9.e+-]+' "$OUT/bench_${m}_$prec.txt" | cut -d= -f2)
      row "bench $m $prec" "${ms:-FAILED} ms (GPU compute, median)"
    done
  done
fi

if want peer; then
  peer_timeout=${PEER_TIMEOUT:-420}
  (($(left) - 60 < peer_timeout)) && peer_timeout=$(($(left) - 60))  # leave time for the profile and summary
  export TORCHINDUCTOR_CACHE_DIR=/tmp/kiln-inductor
  if [[ -f .peer-cache/inductor.tgz && ! -d $TORCHINDUCTOR_CACHE_DIR ]]; then
    mkdir -p "$TORCHINDUCTOR_CACHE_DIR" && tar xzf .peer-cache/inductor.tgz -C "$TORCHINDUCTOR_CACHE_DIR"
    row "peer cache" "torch.compile's caches from .peer-cache/inductor.tgz ($(du -sh "$TORCHINDUCTOR_CACHE_DIR" | cut -f1))"
  fi
  timeout "$peer_timeout" python3 bench/torch_peer.py --kiln "$kiln" --out /tmp/kiln-peer \
    --models "${PEER_MODELS:-resnet50:128,bert:32}" ${PEER_FLAGS:-} 2>&1 | tee "$OUT/peer.txt" | grep -v -i -E "warning|torch.onnx.export\(|^ *$"
  row "torch peer" "exit $? (peer.txt)"
  if [[ ${PEER_SAVE_CACHE:-} == 1 && -d $TORCHINDUCTOR_CACHE_DIR ]]; then
    tar czf /tmp/kiln-inductor.tgz -C "$TORCHINDUCTOR_CACHE_DIR" .
    size=$(stat -c %s /tmp/kiln-inductor.tgz)
    if ((size < 15 * 1024 * 1024)); then  # the device tool returns files up to 16 MiB
      mv /tmp/kiln-inductor.tgz "$OUT/inductor.tgz"
      row "peer cache saved" "inductor.tgz, $((size / 1024)) KiB (copy it to .peer-cache/ and carry it)"
    else
      row "peer cache" "NOT saved: $((size / 1024 / 1024)) MiB compressed, over the 16 MiB a returned file may have"
    fi
  fi
fi

if want profile; then
  # Per-layer GPU times of the peer's engines (where the time goes).
  for engine in /tmp/kiln-peer/*_b*.cold.kiln; do
    [[ -f $engine ]] || continue
    tag=$(basename "$engine" .cold.kiln)
    batch=${tag##*_b}
    case $tag in
      bert*|gpt2*) shape="input_ids:${batch}x128" ;;
      *) shape="input:${batch}x3x224x224" ;;
    esac
    "$kiln" bench --loadEngine "$engine" --shapes "$shape" --dumpProfile --iterations 50 --noDataTransfers \
      --exportProfile "$OUT/profile_$tag.json" >"$OUT/profile_$tag.txt" 2>&1
    row "profile $tag" "exit $? (profile_$tag.txt)"
    # Where the time goes, by op type (the largest ten).
    sed -n '/=== Profile by op ===/,/^kiln-bench/p' "$OUT/profile_$tag.txt" | grep -v '^kiln-bench' | head -12 |
      sed "s/^/  $tag: /"
    # The layers as built: tactics, precisions, layouts (the attention's tactic first).
    "$kiln" inspect "$engine" >>"$OUT/profile_$tag.txt" 2>&1
    grep -E "^  [^ ]+ +(Attention|PackedAttention|FusedConv|FusedMatMul) " "$OUT/profile_$tag.txt" | sort -u -k2,2 | cut -c1-140 |
      sed "s/^/  $tag: /"
  done
fi

if [[ -x build-gpu/kiln_cuda_bench ]] && want kernels; then
  build-gpu/kiln_cuda_bench --runs 50 ${KERNELS_ONLY:+--only "$KERNELS_ONLY"} >"$OUT/cuda_bench.txt" 2>&1
  row "cuda kernel bench" "exit $? (cuda_bench.txt)"
fi

# Nsight Compute on one section of the kernel benchmark: where a kiln
# kernel's cycles go (throughput against the SM's and memory's peaks,
# occupancy, the warps' stall reasons), which CUDA events cannot say. The
# clocks stay as they are (--clock-control none; METHOD.md); one launch of
# each matching kernel is profiled.
if [[ -x build-gpu/kiln_cuda_bench ]] && want ncu; then
  ncu_bin=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
  if [[ -z $ncu_bin ]]; then
    row "ncu" "SKIPPED: no ncu on this machine"
  else
    ncu_kernel=${NCU_KERNEL:-stem_igemm_kernel<__half, [^>]*4>}
    ncu_run=(build-gpu/kiln_cuda_bench --runs 3 --only "${NCU_BENCH:-stem}")
    "$ncu_bin" --clock-control none --launch-count "${NCU_LAUNCHES:-2}" --kernel-name-base demangled \
      -k "regex:$ncu_kernel" \
      --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
      --section MemoryWorkloadAnalysis --section ComputeWorkloadAnalysis --section SchedulerStats --section SourceCounters \
      "${ncu_run[@]}" >"$OUT/ncu.txt" 2>&1
    row "ncu $ncu_kernel" "exit $? (ncu.txt)"
    # The warps' stall reasons, cycles per issued instruction each (the
    # sections above print only their sum), and the instructions issued.
    stalls=$(printf 'smsp__average_warps_issue_stalled_%s_per_issue_active.ratio,' barrier long_scoreboard \
      short_scoreboard mio_throttle math_pipe_throttle wait not_selected selected lg_throttle dispatch_stall \
      no_instruction branch_resolving membar)
    "$ncu_bin" --clock-control none --launch-count 1 --kernel-name-base demangled \
      -k "regex:$ncu_kernel" --metrics "${stalls}smsp__inst_executed.sum" "${ncu_run[@]}" >"$OUT/ncu_stalls.txt" 2>&1
    row "ncu stall reasons" "exit $? (ncu_stalls.txt)"
    grep -E "stalled|inst_executed" "$OUT/ncu_stalls.txt" | sed 's/smsp__average_warps_issue_stalled_//; s/_per_issue_active.ratio//'
    grep -E "^  [a-zA-Z_].*\(|Duration|Compute \(SM\) Throughput|Memory Throughput|Achieved Occupancy|Theoretical Occupancy|Stall|Issued Warp|No Eligible|Registers Per" \
      "$OUT/ncu.txt" | head -40
  fi
fi

# Boost and gRPC C++ from .debs/ (scripts/fetch_server_debs.sh), unpacked
# into a prefix that CMake and pkg-config search, and kiln rebuilt with `kiln
# serve` and `kiln perf`; the libraries load from the prefix through
# LD_LIBRARY_PATH. Once per call (the serve and server-tests stages).
serve_built=""
serve_build() {
  [[ -n $serve_built ]] && { [[ $serve_built == ok ]]; return; }
  serve_built=failed
  if [[ ! -f .debs/distro.txt ]]; then
    row "serve build" "SKIPPED: no .debs/ (run scripts/fetch_server_debs.sh and carry .debs)"
    return 1
  fi
  . /etc/os-release
  here="${ID:-unknown} ${VERSION_CODENAME:-${VERSION_ID:-unknown}} $(dpkg --print-architecture)"
  [[ $(cat .debs/distro.txt) == "$here" ]] ||
    echo "serve: .debs/ is for $(cat .debs/distro.txt), this machine is $here: the build may fail"
  prefix=$PWD/build-gpu/debroot
  rm -rf "$prefix"
  for deb in .debs/*.deb; do dpkg -x "$deb" "$prefix"; done
  # Development links to runtimes left out as stock (libssl.so ->
  # libssl.so.3) point at the system's copy.
  while IFS= read -r link; do
    target=/usr/lib/$multiarch/$(readlink "$link")
    [[ -e $target ]] && ln -sf "$target" "$link"
  done < <(find "$prefix" -xtype l)
  export LD_LIBRARY_PATH="$prefix/usr/lib/$multiarch${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export PKG_CONFIG_SYSROOT_DIR="$prefix"
  export PKG_CONFIG_PATH="$prefix/usr/lib/$multiarch/pkgconfig:$prefix/usr/share/pkgconfig"
  pkgconf=$(command -v pkg-config || echo "$prefix/usr/bin/pkgconf")
  # The system's .pc files stay visible (protobuf, zlib, openssl's runtime).
  # The server tests' Python is the machine's (the repo's .venv is not carried).
  if cmake -S . -B build-gpu -DCMAKE_PREFIX_PATH="$prefix/usr" -DPKG_CONFIG_EXECUTABLE="$pkgconf" \
       -DKILN_TEST_PYTHON="$(command -v python3)" >"$OUT/serve_configure.log" 2>&1 && ninja -C build-gpu -j"$jobs" kiln >"$OUT/serve_build.log" 2>&1 &&
     "$kiln" perf --help >/dev/null 2>&1; then
    grep -E "gRPC|Boost" "$OUT/serve_configure.log" | head -3
    row "serve build" "ok ($(grep -c . <(ls .debs/*.deb)) debs, $(du -csh .debs/*.deb | tail -1 | cut -f1))"
    serve_built=ok
    return 0
  fi
  row "serve build" "FAILED (serve_configure.log, serve_build.log)"
  tail -20 "$OUT/serve_configure.log" "$OUT/serve_build.log"
  return 1
}

if want serve && serve_build; then
  bash scripts/gpu_serve_bench.sh "$kiln" "$OUT" | tee "$OUT/serve.txt"
  while IFS= read -r line; do summary+=("$line"); done < <(grep '^serve ' "$OUT/serve.txt")
fi

# The server's pytest suite (tritonclient over HTTP and gRPC) against the GPU
# build, which runs its KIND_GPU tests: batch buckets, CUDA graphs, the
# threaded input gather. tritonclient comes from .debs/wheels
# (scripts/fetch_gpu_wheels.sh), installed here without the network.
if want server-tests && serve_build; then
  if ls .debs/wheels/*.whl >/dev/null 2>&1 &&
     python3 -m pip install -q --no-index --no-deps --target build-gpu/pylib .debs/wheels/*.whl \
       >"$OUT/server_wheels.log" 2>&1; then
    (cd build-gpu && PYTHONPATH="$PWD/pylib${PYTHONPATH:+:$PYTHONPATH}" ctest -R "server_kserve|server_readme" \
       -V --timeout 600 >"$OUT/ctest_server_gpu.log" 2>&1)
    # ctest counts a skipped test (exit 77: tritonclient missing) as passed: say so.
    skipped=$(grep -c '\*\*\*Skipped' "$OUT/ctest_server_gpu.log")
    # pytest's own summaries ("N passed, M skipped in S s"), so a KIND_GPU test skipped inside shows.
    pytest_lines=$(grep -oE '[0-9]+ passed[^=]* in [0-9.]+s' "$OUT/ctest_server_gpu.log" | paste -sd ';' -)
    row "server tests (GPU build)" "$(grep -E 'tests passed' "$OUT/ctest_server_gpu.log" | tail -1)$( ((skipped)) && echo ", $skipped SKIPPED")${pytest_lines:+ (pytest: $pytest_lines)}"
    grep -E "^(FAILED|ERROR) |passed|failed" "$OUT/ctest_server_gpu.log" | head -20
  else
    row "server tests (GPU build)" "SKIPPED: no .debs/wheels (scripts/fetch_gpu_wheels.sh) or pip failed (server_wheels.log)"
  fi
fi

echo
[[ -f "$OUT/cuda_bench.txt" ]] && cat "$OUT/cuda_bench.txt"

echo
echo "summary"
printf '%s\n' "${summary[@]}"

# The device tool brings back at most 8 files: with more, every log goes
# into one archive (tar xzf logs.tgz to read them); inductor.tgz stays apart.
if (($(find "$OUT" -type f | wc -l) > 8)); then
  tar czf /tmp/kiln-gpu-logs.tgz -C "$OUT" --exclude ./inductor.tgz . &&
    find "$OUT" -mindepth 1 ! -name inductor.tgz -delete && mv /tmp/kiln-gpu-logs.tgz "$OUT/logs.tgz"
fi
