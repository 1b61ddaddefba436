#!/usr/bin/env bash
# `kiln build` and `kiln run` end to end on tiny models: profiles, file
# formats, saving and comparing outputs, and the exit code and message of
# each kind of bad input. Usage: cli_test.sh KILN PYTHON
set -u
KILN=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
PYTHON=${2:-python3}
HERE=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PYTHON" "$HERE/make_tiny_models.py" "$work" || { echo "SKIP: python with onnx and numpy is needed"; exit 77; }
cd "$work"
source "$HERE/expect.sh"

expect 0 "built tiny.kiln" -- "$KILN" build tiny.onnx -o tiny.kiln \
  --minShapes x:1x4,ids:1x1 --optShapes x:2x4,ids:2x3 --maxShapes x:4x4,ids:4x8
expect 0 "built again.kiln" -- "$KILN" build tiny.onnx --saveEngine again.kiln \
  --minShapes x:1x4,ids:1x1 --optShapes x:2x4,ids:2x3 --maxShapes x:4x4,ids:4x8
expect 0 "" -- cmp tiny.kiln again.kiln
expect 0 "2 profiles" -- "$KILN" build tiny.onnx -o two.kiln --fp16 --memPoolSize workspace:64M \
  --minShapes x:1x4,ids:1x1 --maxShapes x:4x4,ids:4x8 --minShapes x:8x4,ids:8x1 --maxShapes x:16x4,ids:16x8
expect 0 "compare y .*OK" -- "$KILN" run tiny.kiln --load-inputs ref --compare ref
expect 0 "compare ids_out .*OK" -- "$KILN" run tiny.onnx --load-inputs x:x.npy,ids:ids.npy --compare ref
expect 1 "compare y .*MISMATCH" -- "$KILN" run tiny.kiln --load-inputs ref --compare wrong
expect 0 "output y .*f32\[3,4\]" -- "$KILN" run tiny.kiln --shapes x:3x4,ids:3x2 --seed 7
expect 0 "output y .*f32\[2,4\]" -- "$KILN" run tiny.kiln
expect 0 "output y .*f32\[16,4\]" -- "$KILN" run two.kiln --profile 1
expect 0 "" -- "$KILN" run tiny.kiln --load-inputs ref --save-outputs saved --npy
expect 0 "OK" -- "$KILN" run tiny.kiln --load-inputs ref --compare saved
expect 0 "" -- "$PYTHON" -c "import numpy as np; a = np.load('saved/y.npy'); assert a.shape == (2, 4) and np.isnan(a[0, 1])"

# The memory the builder planned: printed after the build and by inspect.
expect 0 "memory: weights 5.0 KiB, activations not planned" -- "$KILN" build affine.onnx -o affine.kiln \
  --memPoolSize workspace:64M
expect 0 "memory: weights 5.0 KiB, .*workspace limit 64.0 MiB" -- "$KILN" inspect affine.kiln
expect 0 '"weightBytes": 5120' -- "$KILN" inspect affine.kiln --json
expect 0 '"workspaceLimitBytes": 67108864' -- "$KILN" inspect affine.kiln --json
expect 0 "memory: weights 0 B" -- "$KILN" inspect tiny.kiln
# The cuda build's graph without a GPU: tiny_cnn's two convolutions in fp16
# run channels-last, with one Transpose at each end.
cnn="$HERE/../../examples/tiny_cnn.onnx"
expect 0 "kiln:FusedConv +2" -- "$KILN" inspect "$cnn" --optimized --backend cuda --fp16
expect 0 "Transpose +2" -- "$KILN" inspect "$cnn" --optimized --backend cuda --fp16
expect 0 "channels_last=1" -- "$KILN" inspect "$cnn" --optimized --backend cuda --fp16 --graph
expect 0 "Cast +2" -- "$KILN" inspect "$cnn" --optimized --backend cuda --fp16
expect 2 "backend: gpu not in" -- "$KILN" inspect "$cnn" --optimized --backend gpu
expect 2 "choose the rewrites of --optimized" -- "$KILN" inspect "$cnn" --backend cuda --fp16

# Bad input: each names the input and what was expected.
expect 1 "input 'x' dim 0 \(batch\) is 9, outside optimization profile 0's range \[1, 4\]" -- \
  "$KILN" run tiny.kiln --shapes x:9x4,ids:1x1
expect 1 "input 'ids': the data is i32, the engine expects i64" -- \
  "$KILN" run tiny.kiln --load-inputs x:x.npy,ids:ids32.npy
expect 1 "input 'x': shape \[1,2,4\] has rank 3, the engine expects rank 2 \[batch,4\]" -- \
  "$KILN" run tiny.kiln --load-inputs x:x3d.npy,ids:ids.npy
expect 1 "input 'ids' dim 0 \(batch\) is 2, but input 'x' set batch to 1" -- \
  "$KILN" run tiny.kiln --shapes x:1x4,ids:2x3
expect 2 "input 'ids' has no data" -- "$KILN" run tiny.kiln --load-inputs x:x.npy
expect 2 "'nope:x.npy': expected NAME:FILE with NAME one of the engine's inputs \('x', 'ids'\)" -- \
  "$KILN" run tiny.kiln --load-inputs nope:x.npy,ids:ids.npy
expect 2 "not a serialized ONNX TensorProto|is not" -- "$KILN" run tiny.kiln --load-inputs x:not_a_tensor.pb,ids:ids.npy
expect 2 "Fortran-order" -- "$KILN" run tiny.kiln --load-inputs x:fortran.npy,ids:ids.npy
expect 2 "object arrays" -- "$KILN" run tiny.kiln --load-inputs x:objects.npy,ids:ids.npy
expect 2 "missing.npy" -- "$KILN" run tiny.kiln --load-inputs x:missing.npy,ids:ids.npy
expect 2 "profile 0: input 'x' dim 0 needs 0 <= min <= opt <= max|needs 0 <= min <= opt <= max" -- \
  "$KILN" build tiny.onnx -o bad.kiln --minShapes x:4x4,ids:1x1 --maxShapes x:2x4,ids:4x8
expect 2 "gives no range for dynamic input 'ids'" -- "$KILN" build tiny.onnx -o bad.kiln --minShapes x:1x4
expect 2 "expected NAME:DIMS" -- "$KILN" build tiny.onnx -o bad.kiln --minShapes x
expect 2 "cannot open 'absent.onnx'|absent.onnx" -- "$KILN" build absent.onnx -o bad.kiln
head -c $(($(stat -c %s tiny.kiln) - 1)) tiny.kiln >truncated.kiln
expect 1 "truncated engine" -- "$KILN" run truncated.kiln
cp tiny.kiln flipped.kiln
printf '\x01' | dd of=flipped.kiln bs=1 seek=300 conv=notrunc status=none
expect 1 "checksum mismatch" -- "$KILN" run flipped.kiln
cp tiny.onnx notkiln.kiln
expect 1 "not a kiln engine" -- "$KILN" run notkiln.kiln

echo "cli test: $failures failure(s)"
exit $((failures > 0))
