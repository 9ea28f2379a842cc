#!/usr/bin/env bash
# Installs edgeped and what it needs on a fresh machine. Idempotent.
#   tools/install.sh          the package and its Python dependencies (enough for the demo)
#   tools/install.sh --dev    also test tools and the Beam extra (the suite runs the Beam
#                             pipelines), and (as root, with apt) qemu-user,
#                             openssh-server and iproute2 for the emulated-board and SSH tests
#   tools/install.sh --beam   the package with the Beam extra (pipeline workers)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
dev=0
beam=0
[[ "${1:-}" == "--dev" ]] && dev=1
[[ "${1:-}" == "--beam" ]] && beam=1

if [[ $dev == 1 ]]; then
  need=()
  command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
  command -v sshd >/dev/null || [[ -x /usr/sbin/sshd ]] || need+=(openssh-server)
  command -v ssh >/dev/null || need+=(openssh-client)
  command -v ip >/dev/null || need+=(iproute2)
  command -v gcc >/dev/null || need+=(gcc)
  if [[ ${#need[@]} -gt 0 ]]; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
      echo "installing system packages: ${need[*]}"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
    else
      echo "warning: missing ${need[*]}; the emulated and ssh tests need them (install as root)" >&2
    fi
  fi
  extras=".[dev,beam]"
elif [[ $beam == 1 ]]; then
  extras=".[beam]"
else
  extras="."
fi
"$PYTHON" -m pip install --disable-pip-version-check -q -e "$extras"
# The import check loads TensorFlow, whose C++/absl start-up lines would open every
# `make demo`: keep its output, and show it only when the check fails.
if ! check=$(TF_CPP_MIN_LOG_LEVEL=3 "$PYTHON" -c \
    "import edgeped, ai_edge_litert, tensorflow_model_optimization" 2>&1); then
  echo "$check" >&2
  echo "error: edgeped or a dependency does not import (above)" >&2
  exit 1
fi
echo "edgeped installed: $(command -v edgeped)"
