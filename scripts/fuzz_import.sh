#!/usr/bin/env bash
# Builds the ONNX import fuzzer (clang, libFuzzer + ASan + UBSan) in build-fuzz/
# and runs it for SECONDS (default 60) on a seed corpus of small ONNX models.
# Exits non-zero when the fuzzer finds a crash, leak, hang or sanitizer error;
# the reproducer is left in build-fuzz/artifacts/.
#   scripts/fuzz_import.sh [SECONDS]
set -euo pipefail

seconds="${1:-60}"
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$root/build-fuzz"
seeds="${KILN_FUZZ_SEEDS:-/usr/share/libonnx-testdata/data/node}"
python="$root/.venv/bin/python"
[ -x "$python" ] || python=python3

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DKILN_FUZZ=ON -DKILN_TESTS=OFF -DKILN_CUDA=OFF -DPython3_EXECUTABLE="$python" >/dev/null
ninja -C "$build" import_fuzzer

# The seed corpus is made at run time, never committed: ~50 small models.
corpus="$build/corpus"
mkdir -p "$corpus" "$build/artifacts"
if [ -d "$seeds" ] && [ -z "$(ls -A "$corpus")" ]; then
  # Every 8th small model, 50 at most (awk reads all its input: no SIGPIPE under pipefail).
  find "$seeds" -name model.onnx -size -4k | sort | awk 'NR % 8 == 1 && n < 50 { n++; print }' |
    while read -r m; do cp "$m" "$corpus/$(basename "$(dirname "$m")").onnx"; done
  # Control flow from the suites, and what they lack (functions, sparse, external data).
  for t in test_if test_loop11 test_scan9_sum test_sequence_map_identity_1_sequence; do
    if [ -f "$seeds/$t/model.onnx" ]; then cp "$seeds/$t/model.onnx" "$corpus/$t.onnx"; fi
  done
  "$python" "$root/scripts/fuzz_import_seeds.py" "$corpus" || echo "fuzz_import: no generated seeds (needs python onnx)"
fi
echo "fuzz_import: $(ls "$corpus" | wc -l) seeds, ${seconds}s"

# -rss_limit_mb: the importer must not allocate without bound on any input.
# KILN_FUZZ_SEED fixes libFuzzer's random seed and KILN_FUZZ_RUNS the number of
# inputs (CI sets both, so a CI run repeats exactly; SECONDS stays a cap); 0/-1 mean
# a random seed and no run limit.
"$build/tests/fuzz/import_fuzzer" "$corpus" -seed="${KILN_FUZZ_SEED:-0}" -runs="${KILN_FUZZ_RUNS:--1}" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
  -max_len=65536 -print_final_stats=1 -artifact_prefix="$build/artifacts/" \
  -dict=<(printf '"ai.onnx"\n"com.example"\n"Constant"\n"If"\n"value"\n"location"\n"offset"\n"length"\n')
