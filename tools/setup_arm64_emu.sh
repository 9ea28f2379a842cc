#!/usr/bin/env bash
# Builds the emulated arm64 board: an aarch64 Python 3.11 root filesystem from Debian
# .debs, numpy + ai-edge-litert aarch64 wheels, per-core /proc/cpuinfo files and the
# QEMU TCG instruction-counting plugin. Idempotent: a finished step is not redone.
#
# Usage: tools/setup_arm64_emu.sh [DEST]      (default: <repo>/.cache/arm64-emu)
#
# Needs on the host: qemu-user (NOT qemu-user-static: it cannot load plugins), apt-get,
# dpkg, pip for Python 3.11 (PYTHON=... to choose), gcc, xz. The host's dpkg
# architectures and apt lists are never touched: arm64 package lists live in a private
# apt state directory under DEST.
#
# Layout of DEST:
#   rootfs/                 dpkg -x of the arm64 .debs (python3.11 + its libraries)
#   cores/<core>/           per core model (cortex-a53/a72/a76): symlinks into rootfs/ and
#                           proc/cpuinfo for that core (qemu -L makes the guest read it)
#   site/                   numpy + ai-edge-litert for aarch64 (pip install --target)
#   plugin/libinsncount.so  counts guest instructions between the runner's marker syscalls
#   bin/python-aarch64      wrapper: exec qemu-aarch64 ... python3.11 "$@"
#   READY                   written last; its presence means the board is complete
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$(mkdir -p "${1:-$REPO/.cache/arm64-emu}" && cd "${1:-$REPO/.cache/arm64-emu}" && pwd)"
PYTHON="${PYTHON:-python3}"
LITERT_VERSION="${LITERT_VERSION:-2.3.0}"
NUMPY_SPEC="${NUMPY_SPEC:-numpy>=2,<2.5}"
SUITE="${SUITE:-bookworm}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${SECURITY_MIRROR:-http://deb.debian.org/debian-security}"

ROOTFS="$DEST/rootfs"
SITE="$DEST/site"
APTDIR="$DEST/apt"
PLUGIN_DIR="$DEST/plugin"

# python3.11 and the shared libraries its interpreter and stdlib extension modules load.
DEBS=(
  python3.11-minimal libpython3.11-minimal libpython3.11-stdlib
  libc6 libgcc-s1 libstdc++6 zlib1g libexpat1 libffi8 libssl3 libbz2-1.0 liblzma5
  libsqlite3-0 libncursesw6 libtinfo6 libreadline8 libuuid1 libdb5.3 libnsl2 libtirpc3
  libcrypt1 libkrb5-3 libkrb5support0 libk5crypto3 libgssapi-krb5-2 libcom-err2
  libkeyutils1 media-types
)

log() { printf '[setup_arm64_emu] %s\n' "$*" >&2; }
die() { printf '[setup_arm64_emu] error: %s\n' "$*" >&2; exit 1; }

if [[ -f "$DEST/READY" ]]; then
  if [[ -d "$DEST/site/cryptography" ]]; then
    log "board already built at $DEST"
    echo "$DEST"
    exit 0
  fi
  # A board built before the agent verified signatures: only its Python packages are redone.
  log "board at $DEST lacks the agent's signature verifier (cryptography): reinstalling its packages"
  rm -f "$DEST/READY" "$DEST/site.done"
fi

for tool in qemu-aarch64 apt-get dpkg gcc tar; do
  command -v "$tool" >/dev/null || die "'$tool' not found; install it (apt-get install --no-install-recommends qemu-user gcc dpkg-dev xz-utils)"
done
"$PYTHON" -m pip --version >/dev/null 2>&1 || die "pip for $PYTHON not found (set PYTHON=/path/to/python3.11)"

# --- a private apt state: arm64 lists + deb-src, the host's dpkg untouched ---------------
APT_OPTS=(
  -o "Dir::State=$APTDIR/state" -o "Dir::State::status=$APTDIR/state/status"
  -o "Dir::Cache=$APTDIR/cache" -o "Dir::Etc::SourceList=$APTDIR/sources.list"
  -o "Dir::Etc::SourceParts=$APTDIR/sources.list.d" -o "Dir::Etc::Preferences=$APTDIR/preferences"
  -o "Dir::Etc::PreferencesParts=$APTDIR/preferences.d"
  -o "APT::Architecture=arm64" -o "APT::Architectures::=arm64"
  -o "Acquire::Languages=none" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root"
)
mkdir -p "$APTDIR/state/lists/partial" "$APTDIR/cache/archives/partial" \
         "$APTDIR/sources.list.d" "$APTDIR/preferences.d" "$APTDIR/debs" "$APTDIR/src"
touch "$APTDIR/state/status" "$APTDIR/preferences"
cat > "$APTDIR/sources.list" <<EOF
deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR $SUITE main
deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR $SUITE-updates main
deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $SECURITY_MIRROR $SUITE-security main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR $SUITE main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR $SUITE-updates main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $SECURITY_MIRROR $SUITE-security main
EOF

if [[ ! -f "$APTDIR/lists.done" ]]; then
  log "fetching arm64 package lists into $APTDIR (host apt state untouched)"
  apt-get "${APT_OPTS[@]}" update -qq >&2
  touch "$APTDIR/lists.done"
fi

# --- root filesystem ------------------------------------------------------------------
if [[ ! -f "$DEST/rootfs.done" ]]; then
  log "downloading ${#DEBS[@]} arm64 .debs"
  (cd "$APTDIR/debs" && apt-get "${APT_OPTS[@]}" download -qq "${DEBS[@]/%/:arm64}" >&2)
  rm -rf "$ROOTFS" && mkdir -p "$ROOTFS"
  for deb in "$APTDIR"/debs/*.deb; do dpkg -x "$deb" "$ROOTFS"; done
  [[ -x "$ROOTFS/usr/bin/python3.11" ]] || die "python3.11 missing from the extracted root filesystem"
  touch "$DEST/rootfs.done"
fi

# --- cpuinfo per core model (LiteRT parses it; -L makes the guest see ROOTFS/proc/cpuinfo)
write_cpuinfo() {  # core part-number features
  local name="$1" part="$2" variant="$3" revision="$4" features="$5" n
  {
    for n in 0 1 2 3; do
      cat <<EOF
processor	: $n
BogoMIPS	: 50.00
Features	: $features
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: $variant
CPU part	: $part
CPU revision	: $revision

EOF
    done
  } > "$DEST/cpuinfo/$name"
}
mkdir -p "$DEST/cpuinfo"
write_cpuinfo cortex-a53 0xd03 0x0 4 "fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid"
write_cpuinfo cortex-a72 0xd08 0x0 3 "fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid"
write_cpuinfo cortex-a76 0xd0b 0x4 1 "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"
# One root view per core model (symlinks into rootfs/ plus its own proc/cpuinfo), so runs
# on different core models can proceed side by side.
for core in cortex-a53 cortex-a72 cortex-a76; do
  view="$DEST/cores/$core"
  mkdir -p "$view/proc"
  for entry in "$ROOTFS"/*; do
    name="$(basename "$entry")"
    [[ "$name" == proc ]] && continue
    ln -sfn "../../rootfs/$name" "$view/$name"
  done
  cp "$DEST/cpuinfo/$core" "$view/proc/cpuinfo"
done

# --- aarch64 wheels ---------------------------------------------------------------------
if [[ ! -f "$DEST/site.done" ]]; then
  PYTHON="$PYTHON" LITERT_VERSION="$LITERT_VERSION" NUMPY_SPEC="$NUMPY_SPEC" \
    bash "$REPO/tools/install_device_runtime.sh" "$SITE" "$DEST/wheels" >/dev/null
  touch "$DEST/site.done"
fi

# --- instruction-counting plugin ---------------------------------------------------------
build_plugin() {
  local header="$PLUGIN_DIR/include/qemu-plugin.h"
  mkdir -p "$PLUGIN_DIR/include"
  if [[ ! -f "$header" ]]; then
    log "fetching qemu source for qemu-plugin.h (apt-get source --download-only qemu)"
    (cd "$APTDIR/src" && apt-get "${APT_OPTS[@]}" source --download-only -qq qemu >&2)
    local orig
    orig="$(ls "$APTDIR"/src/qemu_*.orig.tar.* | head -n1)" || die "qemu source tarball not downloaded"
    tar -xf "$orig" -C "$PLUGIN_DIR/include" --wildcards --strip-components=3 '*/include/qemu/qemu-plugin.h'
    [[ -f "$header" ]] || die "qemu-plugin.h not found in $orig"
  fi
  gcc -shared -fPIC -O2 -Wall -Werror -I "$PLUGIN_DIR/include" \
    -o "$PLUGIN_DIR/libinsncount.so" "$REPO/tools/qemu_insncount.c"
}
if [[ ! -f "$PLUGIN_DIR/libinsncount.so" || "$REPO/tools/qemu_insncount.c" -nt "$PLUGIN_DIR/libinsncount.so" ]]; then
  build_plugin
fi

# --- the wrapper that makes the board look like an ordinary python ----------------------
mkdir -p "$DEST/bin"
cp "$REPO/tools/run_arm64.sh" "$DEST/bin/python-aarch64"
chmod +x "$DEST/bin/python-aarch64"

log "smoke test: import ai_edge_litert on emulated cortex-a76"
EDGEPED_EMU_CORE=cortex-a76 "$DEST/bin/python-aarch64" -c \
  "import platform, numpy, ai_edge_litert.interpreter as i; assert platform.machine() == 'aarch64', platform.machine(); print('ok', numpy.__version__)" >&2

date -u +%Y-%m-%dT%H:%M:%SZ > "$DEST/READY"
log "board ready at $DEST"
echo "$DEST"
