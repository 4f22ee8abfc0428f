#!/usr/bin/env bash
# Stop one sandbox booted by up.sh and remove its instance copy.
#
# Usage: scripts/sandbox/down.sh NAME
#   Environment: PULUMI_VLLM_CACHE (as for up.sh).
#
# Stops only the systemd-nspawn process recorded in the instance's pid file
# (SIGTERM = orderly container poweroff; SIGKILL after 30 s), then swaps off any
# swap file still active under the instance root (swap inside the sandbox is
# the machine's own kernel's), then deletes the instance dir. Safe to run when
# the instance is already stopped or gone.
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
    kill -TERM "$PID" 2>/dev/null || true
    for _ in $(seq 1 60); do ours "$PID" || break; sleep 0.5; done
    if ours "$PID"; then
      log "no clean poweroff within 30s; killing pid $PID"
      kill -KILL "$PID" 2>/dev/null || true
      for _ in $(seq 1 20); do ours "$PID" || break; sleep 0.5; done
    fi
    ours "$PID" && die "nspawn pid $PID of sandbox '$NAME' does not exit"
  fi
fi

# Safety net: swapoff whatever swap file of this instance is still active.
while read -r dev _; do
  [[ $dev == Filename ]] && continue
  dev=$(printf '%b' "${dev//\\040/ }")
  case $dev in
    "$ROOT"/*) log "swapoff $dev"; swapoff "$dev" || log "WARNING: swapoff $dev failed" ;;
  esac
done </proc/swaps

rm -rf --one-file-system "$INST"
log "sandbox '$NAME' removed"
