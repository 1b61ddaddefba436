#!/usr/bin/env bash
# Configures and builds kiln in build/ (CUDA backend too when nvcc is found).
# Extra arguments go to cmake's configure step.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -d /usr/local/cuda/bin ]] && export PATH="$PATH:/usr/local/cuda/bin"
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}" CCACHE_BASEDIR="$PWD"
cmake -S . -B build -G Ninja -DPython3_EXECUTABLE="$PWD/.venv/bin/python" "$@" >/dev/null
ninja -C build
