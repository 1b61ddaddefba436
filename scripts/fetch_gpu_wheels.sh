#!/usr/bin/env bash
# Downloads, into .debs/wheels/ (gitignored, carried with .debs), the Python
# wheels the server's pytest suite needs on the GPU machine beyond what its
# image has (numpy, grpcio, protobuf, pytest, onnx, aiohttp are there; see the
# device tool's KINDS.md): tritonclient and the HTTP client's compiled
# dependencies (gevent, geventhttpclient, greenlet, python-rapidjson, brotli,
# zope.event, zope.interface), for CPython 3.12 on manylinux x86_64 (the
# machine's Ubuntu 24.04). scripts/gpu_check.sh's `server-tests` stage
# installs them with `pip install --no-index --no-deps --target`.
#   fetch_gpu_wheels.sh [PYTHON_VERSION]   (default 3.12)
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:-3.12}
abi=cp${version/./}
python=$( [[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python3 )
rm -rf .debs/wheels
mkdir -p .debs/wheels
"$python" -m pip download -q --disable-pip-version-check --no-deps --dest .debs/wheels --only-binary=:all: \
  --python-version "$version" --implementation cp --abi "$abi" --platform manylinux_2_28_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
  --platform manylinux_2_5_x86_64 --platform manylinux_2_24_x86_64 --platform any \
  tritonclient gevent geventhttpclient greenlet python-rapidjson brotli zope.event zope.interface
ls .debs/wheels
du -sh .debs/wheels
