#!/usr/bin/env bash
# The README's first command: installs what is needed, builds kiln, and runs
# it on the model bundled in the repository: inspect it, build an engine with
# a dynamic-batch profile, and run the engine on random inputs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/build.sh
run() {
  echo
  echo "\$ $*"
  "$@"
}
run build/kiln inspect examples/tiny_cnn.onnx
run build/kiln build examples/tiny_cnn.onnx -o build/tiny_cnn.kiln \
  --minShapes image:1x3x32x32 --optShapes image:8x3x32x32 --maxShapes image:64x3x32x32
run build/kiln run build/tiny_cnn.kiln --shapes image:4x3x32x32
