#!/usr/bin/env bash
# The README's second command, and what CI runs: installs what is needed,
# builds, and runs every test that needs no GPU (unit tests, ONNX conformance
# on both suites, the shared real models, CLI tests, formatting, and a short
# fuzzing run of the importer). Prints ctest's summary last.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
# CI builds the CUDA code for sm_90 only (the performance target); tests that
# need a GPU carry the label "gpu" and are skipped where there is none.
scripts/build.sh -DCMAKE_CUDA_ARCHITECTURES=90
labels=()
if ! nvidia-smi -L >/dev/null 2>&1; then
  labels=(-LE gpu)
fi
cd build
set +e
ctest --output-on-failure -j"$(nproc)" "${labels[@]}" 2>&1 | tee ctest.log
rc=${PIPESTATUS[0]}
set -e
echo
echo "ONNX conformance on the CPU backend:"
grep -h '^conformance \[' Testing/Temporary/LastTest.log | sed 's/^/  /' || echo "  (not run)"
# ctest's own summary stays the closing line.
grep -E '^[0-9]+% tests passed' ctest.log | tail -1
exit "$rc"
