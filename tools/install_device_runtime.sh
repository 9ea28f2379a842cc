#!/usr/bin/env bash
# Installs the device runner's runtime for aarch64 (numpy + ai-edge-litert) into a
# directory: the one step shared by the emulated board (tools/setup_arm64_emu.sh) and the
# arm64 ECU image (docker/Dockerfile.ecu-arm64).
#
# Usage: tools/install_device_runtime.sh SITE_DIR [WHEEL_DIR]
#   PYTHON=...          the pip to use (default python3); it may run on any architecture
#   LITERT_VERSION=...  default 2.3.0
#   NUMPY_SPEC=...      default "numpy>=2,<2.5"
#
# pip does not expand manylinux tags: every tag from manylinux_2_17 to manylinux_2_36 is
# named, or ai-edge-litert (tagged manylinux_2_27 only) silently resolves to an old release.
set -euo pipefail

SITE="${1:?usage: $0 SITE_DIR [WHEEL_DIR]}"
WHEELS="${2:-$SITE.wheels}"
PYTHON="${PYTHON:-python3}"
LITERT_VERSION="${LITERT_VERSION:-2.3.0}"
NUMPY_SPEC="${NUMPY_SPEC:-numpy>=2,<2.5}"
# The slot agent verifies Ed25519 release signatures with it (abi3 wheels, with cffi).
CRYPTOGRAPHY_SPEC="${CRYPTOGRAPHY_SPEC:-cryptography>=42}"

PLATFORMS=()
for minor in $(seq 17 36); do PLATFORMS+=(--platform "manylinux_2_${minor}_aarch64"); done
PLATFORMS+=(--platform manylinux2014_aarch64)
TAGS=(--only-binary=:all: --python-version 3.11 --implementation cp --abi cp311 --abi abi3 "${PLATFORMS[@]}")

mkdir -p "$WHEELS"
echo "[install_device_runtime] downloading aarch64 wheels: ai-edge-litert==$LITERT_VERSION, $NUMPY_SPEC" >&2
"$PYTHON" -m pip download -q --disable-pip-version-check "${TAGS[@]}" --dest "$WHEELS" \
  "ai-edge-litert==$LITERT_VERSION" "$NUMPY_SPEC" "$CRYPTOGRAPHY_SPEC" >&2
rm -rf "$SITE"
# --target writes only into SITE, never into a system site-packages.
PIP_BREAK_SYSTEM_PACKAGES=1 "$PYTHON" -m pip install -q --disable-pip-version-check --no-deps \
  --no-compile "${TAGS[@]}" --target "$SITE" --no-index --find-links "$WHEELS" "$WHEELS"/*.whl >&2
ls "$SITE"/ai_edge_litert-"$LITERT_VERSION".dist-info >/dev/null 2>&1 ||
  { echo "[install_device_runtime] error: ai-edge-litert $LITERT_VERSION missing from $SITE" >&2; exit 1; }
echo "$SITE"
