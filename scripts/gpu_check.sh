#!/usr/bin/env bash
# One call on the GPU machine: report the environment, build kiln with the
# CUDA backend (16 cores), run every test (GPU ones included) and the
# benchmarks, and print a short summary table last. Logs go to $OUT (or
# /tmp/kiln-gpu). The machine has no network: nothing is installed here.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/kiln-gpu}
mkdir -p "$OUT"
export PATH="$PATH:/usr/local/cuda/bin"
jobs=$(nproc)
summary=()
row() { summary+=("$(printf '%-28s %s' "$1" "$2")"); }

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

start=$(date +%s)
if cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
     -DPython3_EXECUTABLE="$(command -v python3)" >"$OUT/configure.log" 2>&1 &&
   ninja -C build-gpu -j"$jobs" >"$OUT/build.log" 2>&1; then
  row "build" "ok in $(( $(date +%s) - start )) s"
else
  row "build" "FAILED (see build.log)"
  tail -30 "$OUT/build.log" "$OUT/configure.log"
  printf '%s\n' "${summary[@]}"
  exit 1
fi

(cd build-gpu && ctest -L gpu --output-on-failure >"$OUT/ctest_gpu.log" 2>&1)
row "ctest -L gpu" "$(grep -E 'tests passed|No tests were found' "$OUT/ctest_gpu.log" | tail -1)"
grep -E '\(Failed\)|\(Timeout\)|Failure|Expected|Which is' "$OUT/ctest_gpu.log" | head -30
(cd build-gpu && ctest -LE gpu -j"$jobs" --output-on-failure >"$OUT/ctest.log" 2>&1)
row "ctest (no gpu label)" "$(grep -E 'tests passed' "$OUT/ctest.log" | tail -1)"
while IFS= read -r line; do row "conformance" "$line"; done < <(grep -h '^conformance \[' build-gpu/Testing/Temporary/LastTest.log)
grep -E '\(Failed\)|\(Timeout\)|\*\*\*' "$OUT/ctest.log" | head -20

if [[ -x build-gpu/kiln_cuda_bench ]]; then
  build-gpu/kiln_cuda_bench --runs 50 >"$OUT/cuda_bench.txt" 2>&1
  row "cuda kernel bench" "exit $? (cuda_bench.txt)"
fi

echo
[[ -f "$OUT/cuda_bench.txt" ]] && cat "$OUT/cuda_bench.txt"
echo
echo "summary"
printf '%s\n' "${summary[@]}"
