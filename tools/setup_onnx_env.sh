#!/usr/bin/env bash
# Builds the ONNX Runtime environment the peer benchmark (benchmarks/device/bench_peer.py) runs in:
#   DEST/venv        a venv that sees this Python's TensorFlow (--system-site-packages) plus
#                    onnx, onnxruntime and tf2onnx (installed --no-deps: its pins would
#                    downgrade TensorFlow's numpy/protobuf)
#   DEST/aarch64-site  onnxruntime + numpy aarch64 wheels for the emulated board
#                    (pip install --target, as tools/install_device_runtime.sh does)
#
# Usage: tools/setup_onnx_env.sh [DEST]        (default DEST = .cache/onnx-env)
#   PYTHON=...        the Python whose TensorFlow the venv sees (default python3)
#   ORT_VERSION=...   default 1.32.0
#   ONNX_VERSION=...  default 1.23.2
#   TF2ONNX_VERSION=... default 1.17.0
# Idempotent: DEST/READY marks a finished environment.
set -euo pipefail

DEST="${1:-.cache/onnx-env}"
PYTHON="${PYTHON:-python3}"
ORT_VERSION="${ORT_VERSION:-1.32.0}"
ONNX_VERSION="${ONNX_VERSION:-1.23.2}"
TF2ONNX_VERSION="${TF2ONNX_VERSION:-1.17.0}"
NUMPY_SPEC="${NUMPY_SPEC:-numpy>=2,<2.5}"
STAMP="ort=$ORT_VERSION onnx=$ONNX_VERSION tf2onnx=$TF2ONNX_VERSION"

if [[ -f "$DEST/READY" ]] && [[ "$(cat "$DEST/READY")" == "$STAMP" ]]; then
  echo "$DEST"
  exit 0
fi
"$PYTHON" -c "import tensorflow" 2>/dev/null ||
  { echo "[setup_onnx_env] error: $PYTHON cannot import tensorflow; fix: install edgeped first (tools/install.sh)" >&2; exit 1; }
mkdir -p "$DEST"
rm -f "$DEST/READY"

echo "[setup_onnx_env] host venv: onnx==$ONNX_VERSION onnxruntime==$ORT_VERSION tf2onnx==$TF2ONNX_VERSION" >&2
"$PYTHON" -m venv --system-site-packages "$DEST/venv"
VPY="$DEST/venv/bin/python"
# onnx and onnxruntime with their dependencies (protobuf, flatbuffers, sympy, ...), but
# pip must not touch TensorFlow's numpy/protobuf: constrain them to what is installed.
"$PYTHON" -c "import numpy, google.protobuf as p; print(f'numpy=={numpy.__version__}\nprotobuf=={p.__version__}')" \
  >"$DEST/constraints.txt"
"$VPY" -m pip install -q --disable-pip-version-check -c "$DEST/constraints.txt" \
  "onnx==$ONNX_VERSION" "onnxruntime==$ORT_VERSION" >&2
"$VPY" -m pip install -q --disable-pip-version-check --no-deps "tf2onnx==$TF2ONNX_VERSION" >&2
"$VPY" -c "import onnx, onnxruntime, tf2onnx, tensorflow" >&2 ||
  { echo "[setup_onnx_env] error: the venv cannot import onnx/onnxruntime/tf2onnx/tensorflow" >&2; exit 1; }

echo "[setup_onnx_env] aarch64 wheels: onnxruntime==$ORT_VERSION, $NUMPY_SPEC" >&2
PLATFORMS=()
for minor in $(seq 17 36); do PLATFORMS+=(--platform "manylinux_2_${minor}_aarch64"); done
PLATFORMS+=(--platform manylinux2014_aarch64)
TAGS=(--only-binary=:all: --python-version 3.11 --implementation cp --abi cp311 "${PLATFORMS[@]}")
WHEELS="$DEST/aarch64-wheels"
mkdir -p "$WHEELS"
# --no-deps: onnxruntime imports only numpy at session time (flatbuffers/sympy/protobuf
# serve its tools, not InferenceSession); fewer files for the emulated board to load.
"$PYTHON" -m pip download -q --disable-pip-version-check --no-deps "${TAGS[@]}" --dest "$WHEELS" \
  "onnxruntime==$ORT_VERSION" "$NUMPY_SPEC" >&2
rm -rf "$DEST/aarch64-site"
PIP_BREAK_SYSTEM_PACKAGES=1 "$PYTHON" -m pip install -q --disable-pip-version-check --no-deps \
  --no-compile "${TAGS[@]}" --target "$DEST/aarch64-site" --no-index --find-links "$WHEELS" \
  "$WHEELS"/onnxruntime-"$ORT_VERSION"-*.whl "$WHEELS"/numpy-*.whl >&2
ls "$DEST/aarch64-site"/onnxruntime-"$ORT_VERSION".dist-info >/dev/null ||
  { echo "[setup_onnx_env] error: onnxruntime $ORT_VERSION missing from $DEST/aarch64-site" >&2; exit 1; }
echo "$STAMP" >"$DEST/READY"
echo "$DEST"
