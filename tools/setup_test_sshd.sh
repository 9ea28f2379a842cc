#!/usr/bin/env bash
# Starts (or stops) a throwaway sshd that plays an ECU called `ecu-dev`.
#
# Usage:
#   tools/setup_test_sshd.sh start DIR [PORT]   (PORT default 2222)
#   tools/setup_test_sshd.sh stop DIR
#
# `start` creates in DIR: its own host key, a client key pair, authorized_keys,
# known_hosts (holding the host key, so host key checking stays ON), sshd_config and an
# ssh_config whose `Host ecu-dev` alias points at the server. When it can (root, iproute2),
# the server runs inside a network namespace named `ecu-dev`, reached over a veth pair
# (10.77.0.1 <-> 10.77.0.2) and with its own hostname (unshare --uts); otherwise it
# listens on 127.0.0.1. DIR/env records MODE (netns|loopback), HOST, PORT and USER.
#
# Environment (used by docker/Dockerfile.ecu-arm64, where the board is the container):
#   EDGEPED_SSHD_LISTEN=ADDR            listen on ADDR (e.g. 0.0.0.0), no namespace
#   EDGEPED_SSHD_AUTHORIZED_KEYS=FILE   extra public keys allowed to log in
#
# Needs: openssh-server, openssh-client (ssh-keygen); for the namespace: iproute2, unshare.
set -euo pipefail

NETNS="${EDGEPED_TEST_NETNS:-ecu-dev}"
HOST_IF="ecuh0"
NS_IF="ecud0"
HOST_ADDR="10.77.0.1"
NS_ADDR="10.77.0.2"

log() { printf '[setup_test_sshd] %s\n' "$*" >&2; }
die() { printf '[setup_test_sshd] error: %s\n' "$*" >&2; exit 1; }

stop() {
  local dir="$1"
  if [[ -f "$dir/sshd.pid" ]]; then
    local pid
    pid="$(cat "$dir/sshd.pid")"
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$dir/sshd.pid"
  fi
  if [[ -f "$dir/env" ]] && grep -q '^MODE=netns$' "$dir/env"; then
    ip link del "$HOST_IF" 2>/dev/null || true
    ip netns del "$NETNS" 2>/dev/null || true
  fi
}

make_netns() {
  [[ "$(id -u)" == 0 ]] || return 1
  command -v ip >/dev/null && command -v unshare >/dev/null || return 1
  # A namespace left behind by an earlier run is replaced.
  ip link del "$HOST_IF" 2>/dev/null || true
  ip netns del "$NETNS" 2>/dev/null || true
  ip netns add "$NETNS" || return 1
  if ! { ip netns exec "$NETNS" ip link set lo up &&
         ip link add "$HOST_IF" type veth peer name "$NS_IF" &&
         ip link set "$NS_IF" netns "$NETNS" &&
         ip addr add "$HOST_ADDR/30" dev "$HOST_IF" && ip link set "$HOST_IF" up &&
         ip netns exec "$NETNS" ip addr add "$NS_ADDR/30" dev "$NS_IF" &&
         ip netns exec "$NETNS" ip link set "$NS_IF" up; }; then
    ip link del "$HOST_IF" 2>/dev/null || true
    ip netns del "$NETNS" 2>/dev/null || true
    return 1
  fi
}

start() {
  local dir="$1" port="${2:-2222}"
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  local sshd
  sshd="$(command -v sshd || echo /usr/sbin/sshd)"
  [[ -x "$sshd" ]] || die "sshd not found: apt-get install --no-install-recommends openssh-server"
  command -v ssh-keygen >/dev/null || die "ssh-keygen not found: apt-get install openssh-client"
  stop "$dir"
  mkdir -p /run/sshd  # privilege separation directory sshd insists on
  [[ -f "$dir/ssh_host_ed25519_key" ]] || ssh-keygen -q -t ed25519 -N '' -C ecu-dev-host -f "$dir/ssh_host_ed25519_key"
  [[ -f "$dir/id_ed25519" ]] || ssh-keygen -q -t ed25519 -N '' -C edgeped-test -f "$dir/id_ed25519"
  cp "$dir/id_ed25519.pub" "$dir/authorized_keys"
  if [[ -n "${EDGEPED_SSHD_AUTHORIZED_KEYS:-}" ]]; then
    cat "$EDGEPED_SSHD_AUTHORIZED_KEYS" >> "$dir/authorized_keys"
  fi
  chmod 600 "$dir/authorized_keys" "$dir/id_ed25519" "$dir/ssh_host_ed25519_key"

  local mode addr
  if [[ -n "${EDGEPED_SSHD_LISTEN:-}" ]]; then mode=listen; addr="$EDGEPED_SSHD_LISTEN"
  elif make_netns; then mode=netns; addr="$NS_ADDR"
  else mode=loopback; addr=127.0.0.1; fi
  local client_addr="$addr"
  [[ "$addr" == 0.0.0.0 ]] && client_addr=127.0.0.1
  local user
  user="$(id -un)"

  cat > "$dir/sshd_config" <<EOF
Port $port
ListenAddress $addr
HostKey $dir/ssh_host_ed25519_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
LogLevel VERBOSE
EOF
  # known_hosts holds the real host key: the client verifies it, nothing is disabled.
  local hostkey
  hostkey="$(cut -d' ' -f1,2 "$dir/ssh_host_ed25519_key.pub")"
  echo "[$client_addr]:$port $hostkey" > "$dir/known_hosts"
  cat > "$dir/ssh_config" <<EOF
Host ecu-dev
  HostName $client_addr
  Port $port
  User $user
  IdentityFile $dir/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $dir/known_hosts
  BatchMode yes
EOF
  printf 'MODE=%s\nHOST=%s\nPORT=%s\nUSER=%s\nNETNS=%s\n' "$mode" "$client_addr" "$port" "$user" \
    "$([[ $mode == netns ]] && echo "$NETNS")" > "$dir/env"

  if [[ "$mode" == netns ]]; then
    ip netns exec "$NETNS" unshare --uts sh -c "hostname ecu-dev && exec '$sshd' -f '$dir/sshd_config' -E '$dir/sshd.log'"
  else
    "$sshd" -f "$dir/sshd_config" -E "$dir/sshd.log"
  fi
  for _ in $(seq 50); do
    if ssh -F "$dir/ssh_config" -o ConnectTimeout=2 ecu-dev true 2>/dev/null; then
      log "sshd for ecu-dev up ($mode, $addr:$port); ssh -F $dir/ssh_config ecu-dev"
      echo "$dir/ssh_config"
      return 0
    fi
    sleep 0.2
  done
  tail -5 "$dir/sshd.log" >&2 || true
  die "sshd did not accept connections on $addr:$port"
}

case "${1:-}" in
  start) [[ $# -ge 2 ]] || die "usage: $0 start DIR [PORT]"; start "$2" "${3:-2222}" ;;
  stop)  [[ $# -eq 2 ]] || die "usage: $0 stop DIR"; stop "$2" ;;
  *) die "usage: $0 start DIR [PORT] | stop DIR" ;;
esac
