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
# A failed test's last lines, repeated here so that the tail of a CI log
# says why (ctest's --output-on-failure shows them far above).
if [ "$rc" -ne 0 ] && [ -s Testing/Temporary/LastTestsFailed.log ]; then
  while IFS=: read -r _ name; do
    echo
    echo "Last lines of failed test $name:"
    awk -v n="$name" '/^[0-9]+\/[0-9]+ Test: / && substr($0, index($0, "Test: ") + 6) == n {on=1}
      on {print} on && index($0, "\"" n "\" end time") == 1 {exit}' \
      Testing/Temporary/LastTest.log | tail -n 40 | sed 's/^/  /'
  done < Testing/Temporary/LastTestsFailed.log
fi
# ctest's own summary stays the closing line.
grep -E '^[0-9]+% tests passed' ctest.log | tail -1
exit "$rc"
