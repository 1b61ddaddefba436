#!/usr/bin/env bash
# Runs the kiln serve tests with the repo's .venv (tritonclient[http], pytest):
# run_tests.sh KILN PYTHON [PYTEST ARGS...] (default: every test here). Exit 77
# (skipped) when the packages are missing.
set -uo pipefail
kiln=$1
python=$2
shift 2
if ! "$python" -c "import tritonclient.http, tritonclient.grpc, pytest, onnx, numpy" 2>/dev/null; then
  echo "kiln serve tests: tritonclient[http,grpc] or pytest missing from $python (scripts/install_deps.sh); skipped"
  exit 77
fi
cd "$(dirname "$0")"
[ $# -gt 0 ] || set -- .
KILN=$kiln exec "$python" -m pytest -q -rs -p no:cacheprovider "$@"
