#!/usr/bin/env bash
# kiln_cuda_bench's --only, which needs no GPU to check: a section name no
# section has is an error naming it and listing the sections (both the main
# file's and those registered from bench/cuda_bench_*.cpp); known names,
# separated by commas or spaces, are accepted.
set -u
bench=$1
fail=0
out=$("$bench" --only "memory,nosuch" 2>&1)
rc=$?
[[ $rc == 2 ]] || { echo "FAIL: --only memory,nosuch exited $rc, want 2"; fail=1; }
for want in "no section nosuch" "memory" "attention" "vit_gemm"; do
  [[ $out == *"$want"* ]] || { echo "FAIL: '$want' missing from: $out"; fail=1; }
done
for only in "memory,vit_gemm" "memory vit_gemm"; do
  out=$("$bench" --only "$only" 2>&1)
  rc=$?
  # 0 either way: no GPU prints that and stops; a GPU runs the two sections.
  [[ $rc == 0 ]] || { echo "FAIL: --only '$only' exited $rc: $out"; fail=1; }
done
((fail == 0)) && echo "kiln_cuda_bench --only: ok"
exit $fail
