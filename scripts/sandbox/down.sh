#!/usr/bin/env bash
# Stop one sandbox booted by up.sh and remove its instance copy.
#
# Usage: scripts/sandbox/down.sh NAME
#   Environment: PULUMI_VLLM_CACHE (as for up.sh).
#
# Stops only the systemd-nspawn process recorded in the instance's pid file
# (first `swapoff -a` inside the sandbox's mount namespace, since swap there is
# the machine's own kernel's; then SIGTERM = orderly container poweroff, SIGKILL
# after 30 s), then deletes the instance dir. Safe to run when the instance is
# already stopped or gone.
set -euo pipefail

log() { printf 'sandbox-down: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ $# -eq 1 ]] || die "usage: $0 NAME"
NAME=$1
[[ $NAME =~ ^[a-z0-9][a-z0-9-]{0,30}$ ]] || die "bad NAME '$NAME'"
CACHE=${PULUMI_VLLM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pulumi-vllm}
[[ -d $CACHE/instances ]] || { log "no instances dir; nothing to do"; exit 0; }
CACHE=$(cd "$CACHE" && pwd -P)
INST="$CACHE/instances/$NAME"
ROOT="$INST/root"
[[ -e $INST ]] || { log "sandbox '$NAME' does not exist; nothing to do"; exit 0; }

# Is PID the nspawn process of this very instance? (never signal anything else)
ours() {
  local pid=$1 exe cmd
  [[ -r /proc/$pid/cmdline ]] || return 1
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
  [[ $exe == */systemd-nspawn ]] || return 1
  cmd=$(tr '\0' '\n' <"/proc/$pid/cmdline")
  grep -qxF -- "$ROOT" <<<"$cmd"
}

if [[ -f $INST/pid ]]; then
  PID=$(cat "$INST/pid")
  if [[ $PID =~ ^[0-9]+$ ]] && ours "$PID"; then
    log "stopping sandbox '$NAME' (nspawn pid $PID)"
    # Swap inside the sandbox is this machine's kernel's: swap off the
    # sandbox's own swap files from inside its mount namespace (paths in
    # /proc/swaps are relative to the sandbox root, so the host cannot tell
    # them apart from its own).
    init_pid=$(awk '{ print $1 }' "/proc/$PID/task/$PID/children" 2>/dev/null || true)
    if [[ $init_pid =~ ^[0-9]+$ ]]; then
      nsenter -t "$init_pid" -m -- swapoff -a 2>/dev/null || true
    fi
    kill -TERM "$PID" 2>/dev/null || true
    for _ in $(seq 1 60); do ours "$PID" || break; sleep 0.5; done
    if ours "$PID"; then
      log "no clean poweroff within 30s; killing pid $PID"
      kill -KILL "$PID" 2>/dev/null || true
      for _ in $(seq 1 20); do ours "$PID" || break; sleep 0.5; done
    fi
    ours "$PID" && die "nspawn pid $PID of sandbox '$NAME' does not exit"
    # A killed nspawn leaves its container's init (and sshd on the port) running:
    # end that init too, which takes the container's whole PID namespace with it.
    if [[ $init_pid =~ ^[0-9]+$ && -d /proc/$init_pid ]] &&
      [[ $(readlink "/proc/$init_pid/root" 2>/dev/null) == "$ROOT" ]]; then
      log "killing the orphaned container init (pid $init_pid)"
      kill -KILL "$init_pid" 2>/dev/null || true
    fi
  fi
fi

rm -rf --one-file-system "$INST"
log "sandbox '$NAME' removed"
