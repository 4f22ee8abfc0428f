#!/usr/bin/env bash
# Boot one sandbox host: a fresh writable copy of the cached Debian bookworm
# root (build-rootfs.sh), booted with systemd-nspawn, with sshd answering on
# 127.0.0.1:SSH_PORT for root with a fresh key pair and a fresh host key.
#
# Usage: scripts/sandbox/up.sh NAME SSH_PORT
#   NAME      [a-z0-9][a-z0-9-]{0,30}; one instance per name (different names
#             can run at the same time, each with its own port)
#   SSH_PORT  1024..65535, must be free on 127.0.0.1
#
# Environment (all optional):
#   PULUMI_VLLM_CACHE         cache dir (default ${XDG_CACHE_HOME:-$HOME/.cache}/pulumi-vllm)
#   PV_SANDBOX_BOOT_TIMEOUT   seconds to wait for ssh (default 120)
#   PV_SANDBOX_APT_CACHE      host dir bind-mounted on /var/cache/apt/archives so
#                             .debs are downloaded once for all instances
#                             (default $CACHE/apt-archives; set to "" to disable)
#
# Output (stdout): one line of JSON; the same JSON is written to
# $CACHE/instances/NAME/sandbox.json and as shell assignments to sandbox.env:
#   {"name","host":"127.0.0.1","port","user":"root","privateKey":<path>,
#    "hostKey":"ssh-ed25519 AAAA...","knownHosts":<path>,"root":<machine root>,
#    "instanceDir":<dir>,"pid":<nspawn pid>,"consoleLog":<path>}
# Connect:  ssh -i $privateKey -o UserKnownHostsFile=$knownHosts \
#               -o StrictHostKeyChecking=yes -o BatchMode=yes -p $port root@127.0.0.1
#
# The container shares the host's network namespace (ports inside are host
# loopback ports) and runs with CAP_SYS_ADMIN + the @swap syscalls, so swapon
# inside acts on this machine's own kernel: keep swapfiles tiny. Stop it with
# scripts/sandbox/down.sh NAME.
set -euo pipefail

log() { printf 'sandbox-up: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ $# -eq 2 ]] || die "usage: $0 NAME SSH_PORT"
NAME=$1
PORT=$2
[[ $NAME =~ ^[a-z0-9][a-z0-9-]{0,30}$ ]] || die "bad NAME '$NAME' (want [a-z0-9][a-z0-9-]{0,30})"
if ! [[ $PORT =~ ^[0-9]+$ ]] || (( PORT < 1024 || PORT > 65535 )); then
  die "bad SSH_PORT '$PORT' (want 1024..65535)"
fi
[[ $(id -u) -eq 0 ]] || die "must run as root"
command -v systemd-nspawn >/dev/null || die "systemd-nspawn is not installed (apt-get install -y systemd-container)"
if ! command -v ssh-keygen >/dev/null || ! command -v ssh >/dev/null; then
  die "openssh-client is not installed"
fi

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
CACHE=${PULUMI_VLLM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pulumi-vllm}
mkdir -p "$CACHE/instances"
CACHE=$(cd "$CACHE" && pwd -P)
INST="$CACHE/instances/$NAME"
TIMEOUT=${PV_SANDBOX_BOOT_TIMEOUT:-120}
APT_CACHE=${PV_SANDBOX_APT_CACHE-$CACHE/apt-archives}

port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if [[ -e $INST ]]; then
  if [[ -f $INST/pid ]] && kill -0 "$(cat "$INST/pid")" 2>/dev/null; then
    die "sandbox '$NAME' is already running (pid $(cat "$INST/pid")); stop it with $HERE/down.sh $NAME"
  fi
  log "removing a stale instance dir $INST"
  "$HERE/down.sh" "$NAME" >&2
fi
port_taken "$PORT" && die "port 127.0.0.1:$PORT is already taken; pick another SSH_PORT"

ROOTFS=$("$HERE/build-rootfs.sh" | tail -n 1)
[[ -d $ROOTFS ]] || die "build-rootfs.sh did not give a root dir"

t0=$(date +%s%N)
mkdir -p "$INST"
ROOT="$INST/root"
cp -a --reflink=auto "$ROOTFS" "$ROOT"
chmod 0755 "$ROOT"
t_copy=$(( ($(date +%s%N) - t0) / 1000000 ))

# Fresh keys for this instance only.
KEY="$INST/id_ed25519"
ssh-keygen -q -t ed25519 -N '' -C "pv-sandbox-$NAME-client" -f "$KEY"
rm -f "$ROOT"/etc/ssh/ssh_host_*
ssh-keygen -q -t ed25519 -N '' -C "pv-sandbox-$NAME-host" -f "$ROOT/etc/ssh/ssh_host_ed25519_key"
HOSTKEY=$(cut -d' ' -f1,2 "$ROOT/etc/ssh/ssh_host_ed25519_key.pub")
KNOWN="$INST/known_hosts"
printf '[127.0.0.1]:%s %s\n' "$PORT" "$HOSTKEY" >"$KNOWN"
install -d -m 700 "$ROOT/root/.ssh"
install -m 600 "$KEY.pub" "$ROOT/root/.ssh/authorized_keys"
cat >"$ROOT/etc/ssh/sshd_config.d/pv-sandbox.conf" <<EOF
# written by pulumi-vllm scripts/sandbox/up.sh for sandbox $NAME
Port $PORT
ListenAddress 127.0.0.1
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
EOF
tr -d '-' </proc/sys/kernel/random/uuid >"$ROOT/etc/machine-id"
printf 'pv-%s\n' "$NAME" >"$ROOT/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tpv-%s\n::1\tlocalhost ip6-localhost ip6-loopback\n' "$NAME" >"$ROOT/etc/hosts"

args=(
  -D "$ROOT" -b --register=no --keep-unit
  --capability=CAP_SYS_ADMIN --system-call-filter=@swap
  --machine="pv-$NAME" --link-journal=no --resolv-conf=copy-host
  --console=read-only
)
if [[ -n $APT_CACHE ]]; then
  mkdir -p "$APT_CACHE/partial"
  args+=(--bind="$APT_CACHE:/var/cache/apt/archives")
fi

CONSOLE="$INST/console.log"
# setsid: the container outlives the caller (a test runner) until down.sh.
setsid systemd-nspawn "${args[@]}" </dev/null >"$CONSOLE" 2>&1 &
PID=$!
printf '%s\n' "$PID" >"$INST/pid"
log "booting $NAME (nspawn pid $PID, port $PORT, copy ${t_copy}ms)"

ssh_opts=(
  -i "$KEY" -p "$PORT" -o BatchMode=yes -o StrictHostKeyChecking=yes
  -o UserKnownHostsFile="$KNOWN" -o GlobalKnownHostsFile=/dev/null
  -o ConnectTimeout=5 -o LogLevel=ERROR
)
deadline=$(( $(date +%s) + TIMEOUT ))
while :; do
  if ! kill -0 "$PID" 2>/dev/null; then
    tail -n 60 "$CONSOLE" >&2 || true
    die "sandbox '$NAME': systemd-nspawn exited before sshd answered (console log above, full log: $CONSOLE)"
  fi
  if ssh "${ssh_opts[@]}" root@127.0.0.1 true </dev/null 2>/dev/null; then
    break
  fi
  if (( $(date +%s) >= deadline )); then
    tail -n 60 "$CONSOLE" >&2 || true
    die "sandbox '$NAME': sshd did not answer on 127.0.0.1:$PORT within ${TIMEOUT}s (console log above, full log: $CONSOLE; stop with $HERE/down.sh $NAME)"
  fi
  sleep 0.5
done
# Wait (bounded) until boot has settled, so tests do not race units still
# starting; "degraded" is fine (a container lacks some hardware units).
state=$(ssh "${ssh_opts[@]}" root@127.0.0.1 \
  'timeout 90 systemctl is-system-running --wait 2>/dev/null; true' </dev/null || true)
if [[ $state != running ]]; then
  log "WARNING: sandbox '$NAME' system state is '${state:-unknown}' (failed units: $(ssh "${ssh_opts[@]}" root@127.0.0.1 'systemctl --failed --plain --no-legend | cut -d" " -f1 | tr "\n" " "' </dev/null || true))"
fi
log "sandbox '$NAME' is up in $(( ($(date +%s%N) - t0) / 1000000 ))ms"

json_str() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; printf '"%s"' "$s"; }
JSON=$(printf '{"name":%s,"host":"127.0.0.1","port":%s,"user":"root","privateKey":%s,"hostKey":%s,"knownHosts":%s,"root":%s,"instanceDir":%s,"pid":%s,"consoleLog":%s}' \
  "$(json_str "$NAME")" "$PORT" "$(json_str "$KEY")" "$(json_str "$HOSTKEY")" "$(json_str "$KNOWN")" \
  "$(json_str "$ROOT")" "$(json_str "$INST")" "$PID" "$(json_str "$CONSOLE")")
printf '%s\n' "$JSON" >"$INST/sandbox.json"
{
  printf 'SANDBOX_NAME=%q\nSANDBOX_HOST=127.0.0.1\nSANDBOX_PORT=%q\nSANDBOX_USER=root\n' "$NAME" "$PORT"
  printf 'SANDBOX_KEY=%q\nSANDBOX_HOSTKEY=%q\nSANDBOX_KNOWN_HOSTS=%q\n' "$KEY" "$HOSTKEY" "$KNOWN"
  printf 'SANDBOX_ROOT=%q\nSANDBOX_DIR=%q\nSANDBOX_PID=%q\nSANDBOX_CONSOLE=%q\n' "$ROOT" "$INST" "$PID" "$CONSOLE"
} >"$INST/sandbox.env"
printf '%s\n' "$JSON"
