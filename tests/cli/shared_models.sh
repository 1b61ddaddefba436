#!/usr/bin/env bash
# For each model folder in the shared models folder (NAME/model.onnx plus
# NAME/test_data_set_0): `kiln build`, then `kiln run --load-inputs --compare`.
# A model whose build stops at an unsupported op is skipped (the op is still
# being added); a model that builds but fails or mismatches fails the test.
# Exit 77 (CTest's skip) when the folder is absent or every model was skipped.
set -u
KILN=$1
MODELS=${KILN_SHARED_MODELS:-${2:-}}
RTOL=${KILN_MODELS_RTOL:-1e-3}
ATOL=${KILN_MODELS_ATOL:-1e-4}
if [[ -z "$MODELS" || ! -d "$MODELS" ]]; then
  echo "SKIP: no shared models folder ('$MODELS'); set KILN_SHARED_MODELS"
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0 failed=0 skipped=0
for dir in "$MODELS"/*/; do
  name=$(basename "$dir")
  [[ -f "$dir/model.onnx" && -d "$dir/test_data_set_0" ]] || continue
  if ! "$KILN" build "$dir/model.onnx" -o "$work/$name.kiln" >"$work/$name.build" 2>&1; then
    if grep -q "unsupported" "$work/$name.build"; then
      ops=$(grep -o "kiln has no op '[^']*'" "$work/$name.build" | sed "s/kiln has no op //; s/'//g" | sort -u | tr '\n' ' ')
      kernels=$(grep -o "no kernel yet for: .*" "$work/$name.build" | head -1)
      echo "SKIP   $name: ${ops:+no op: $ops}${kernels}"
      skipped=$((skipped + 1))
    else
      echo "FAIL   $name: build: $(head -c 400 "$work/$name.build")"
      failed=$((failed + 1))
    fi
    continue
  fi
  if "$KILN" run "$work/$name.kiln" --load-inputs "$dir/test_data_set_0" --compare "$dir/test_data_set_0" \
      --rtol "$RTOL" --atol "$ATOL" >"$work/$name.run" 2>&1; then
    echo "PASS   $name"
    passed=$((passed + 1))
  elif grep -q "unsupported" "$work/$name.run"; then
    echo "SKIP   $name: $(grep -m1 unsupported "$work/$name.run")"
    skipped=$((skipped + 1))
  else
    echo "FAIL   $name:"
    sed 's/^/         /' "$work/$name.run" | tail -20
    failed=$((failed + 1))
  fi
done
echo "shared models: $passed passed, $failed failed, $skipped skipped (unsupported ops)"
(( failed > 0 )) && exit 1
(( passed == 0 )) && exit 77
exit 0
