#!/usr/bin/env bash
# Configures and builds kiln in build/ (CUDA backend too when nvcc is found).
# Extra arguments go to cmake's configure step.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -d /usr/local/cuda/bin ]] && export PATH="$PATH:/usr/local/cuda/bin"
# BASEDIR makes paths relative and NOHASHDIR keeps the working directory out
# of the key of -g compiles, so clones and worktrees elsewhere share the cache.
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}" CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=true
cmake -S . -B build -G Ninja -DPython3_EXECUTABLE="$PWD/.venv/bin/python" "$@" >/dev/null
ninja -C build
