#!/usr/bin/env bash
# The README's first command: installs what is needed, builds kiln, and runs
# it on the model bundled in the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/build.sh
echo
echo "$ build/kiln inspect examples/tiny_cnn.onnx"
build/kiln inspect examples/tiny_cnn.onnx
