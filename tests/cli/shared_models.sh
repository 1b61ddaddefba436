#!/usr/bin/env bash
# For each model folder in the shared models folder (NAME/model.onnx plus
# NAME/test_data_set_0): `kiln run --compare` straight from the ONNX file, then
# `kiln build` and `kiln run --compare` from the engine file, both against the
# reference outputs (rtol 1e-4, atol 1e-5 by default). Any build error,
# unsupported op or mismatch fails. Exit 77 (CTest's skip) only when the
# folder is absent.
#   KILN_MODELS_FLAGS        builder flags for both runs (e.g. "--backend cuda --fp16")
#   KILN_MODELS_TOLERANCES   a file of "NAME RTOL ATOL" lines overriding the tolerances per model
set -u
KILN=$1
MODELS=${KILN_SHARED_MODELS:-${2:-}}
RTOL=${KILN_MODELS_RTOL:-1e-4}
ATOL=${KILN_MODELS_ATOL:-1e-5}
read -r -a FLAGS <<<"${KILN_MODELS_FLAGS:-}"
if [[ -z "$MODELS" || ! -d "$MODELS" ]]; then
  echo "SKIP: no shared models folder ('$MODELS'); set KILN_SHARED_MODELS"
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0 failed=0
check() {  # name, what, model file
  local name=$1 what=$2 model=$3 data=$MODELS/$1/test_data_set_0 rtol=$RTOL atol=$ATOL
  if [[ -n "${KILN_MODELS_TOLERANCES:-}" ]]; then
    read -r _ r a < <(grep "^$name " "$KILN_MODELS_TOLERANCES") && rtol=$r && atol=$a
  fi
  local flags=()
  [[ $what == onnx ]] && flags=("${FLAGS[@]}")
  if "$KILN" run "$model" "${flags[@]}" --load-inputs "$data" --compare "$data" --rtol "$rtol" --atol "$atol" >"$work/$name.$what.run" 2>&1; then
    echo "PASS   $name ($what, rtol $rtol atol $atol): $(grep -h 'max abs' "$work/$name.$what.run" | tr -s ' ' | paste -sd';' | cut -c1-200)"
    passed=$((passed + 1))
  else
    echo "FAIL   $name ($what):"
    sed 's/^/         /' "$work/$name.$what.run" | tail -20
    failed=$((failed + 1))
  fi
}
for dir in "$MODELS"/*/; do
  name=$(basename "$dir")
  [[ -f "$dir/model.onnx" && -d "$dir/test_data_set_0" ]] || continue
  check "$name" onnx "$dir/model.onnx"
  if "$KILN" build "$dir/model.onnx" "${FLAGS[@]}" -o "$work/$name.kiln" >"$work/$name.build" 2>&1; then
    check "$name" engine "$work/$name.kiln"
  else
    echo "FAIL   $name (build): $(head -c 600 "$work/$name.build")"
    failed=$((failed + 1))
  fi
done
echo "shared models (${KILN_MODELS_FLAGS:-cpu}; rtol $RTOL, atol $ATOL unless listed): $passed passed, $failed failed"
(( failed > 0 )) && exit 1
exit 0
