#!/usr/bin/env bash
# The emulated arm64 board's python: execs qemu-aarch64 on the aarch64 python3.11 that
# tools/setup_arm64_emu.sh built. Installed as DEST/bin/python-aarch64; usable anywhere a
# python path is expected (e.g. a targets.toml `python` key for a test sshd).
#
# Environment:
#   EDGEPED_EMU_CORE   cortex-a53 | cortex-a72 | cortex-a76 (default cortex-a76)
#   EDGEPED_INSN_OUT   if set, load the instruction-counting plugin and append one line
#                      per marked region ("<count>") to this file
set -euo pipefail
DEST="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
CORE="${EDGEPED_EMU_CORE:-cortex-a76}"
ROOT="$DEST/cores/$CORE"
if [[ ! -d "$ROOT" ]]; then
  echo "python-aarch64: unknown core model '$CORE' (have: $(ls "$DEST/cores" | tr '\n' ' '))" >&2
  exit 64
fi
PLUGIN_ARGS=()
if [[ -n "${EDGEPED_INSN_OUT:-}" ]]; then
  PLUGIN_ARGS=(-plugin "$DEST/plugin/libinsncount.so,out=$EDGEPED_INSN_OUT")
fi
unset PYTHONHOME PYTHONSTARTUP
# Fixed hash seed and one BLAS thread: the instruction count per invoke must repeat exactly.
export PYTHONPATH="$DEST/site" PYTHONNOUSERSITE=1 PYTHONDONTWRITEBYTECODE=1 \
       PYTHONHASHSEED=0 OPENBLAS_NUM_THREADS=1
exec qemu-aarch64 -cpu "$CORE" -L "$ROOT" "${PLUGIN_ARGS[@]}" "$ROOT/usr/bin/python3.11" "$@"
