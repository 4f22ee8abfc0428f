#!/usr/bin/env bash
# Stop a SLURM test cluster booted by up.sh and remove everything it made.
#
# Usage: scripts/slurm-sandbox/down.sh CLUSTER_NAME
#   Environment: PULUMI_VLLM_CACHE (as for up.sh).
#
# Stops only the systemd-nspawn processes whose pids up.sh recorded (and only
# if such a pid is still the nspawn of that very instance root): SIGTERM, an
# orderly poweroff of the container; after 30 s SIGKILL of the container's
# init (recorded by up.sh with its start time) and of nspawn. Then unmounts the
# overlay roots, deletes the veths, network namespaces and the bridge that
# up.sh recorded, and the instance dir (with the shared dir, unless
# PV_SLURM_SHARED_DIR gave it).
# Safe to run when the cluster is stopped, half-built or gone.
set -euo pipefail

log() { printf 'slurm-down: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ $# -eq 1 ]] || die "usage: $0 CLUSTER_NAME"
NAME=$1
[[ $NAME =~ ^[a-z]([a-z0-9-]{0,18}[a-z0-9])?$ ]] || die "bad CLUSTER_NAME '$NAME'"
[[ $(id -u) -eq 0 ]] || die "must run as root"
CACHE=${PULUMI_VLLM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pulumi-vllm}
[[ -d $CACHE/slurm ]] || { log "no clusters dir; nothing to do"; exit 0; }
CACHE=$(cd "$CACHE" && pwd -P)
INST="$CACHE/slurm/$NAME"
[[ -e $INST ]] || { log "cluster '$NAME' does not exist; nothing to do"; exit 0; }
ROLES=(n1 n2 ctl)

# Is PID the nspawn process of this instance's ROLE? (never signal anything else)
ours() {
  local pid=$1 root=$2 exe cmd
  [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] || return 1
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
  [[ $exe == */systemd-nspawn ]] || return 1
  cmd=$(tr '\0' '\n' <"/proc/$pid/cmdline")
  grep -qxF -- "$root" <<<"$cmd"
}

declare -A PIDS=()
for r in "${ROLES[@]}"; do
  [[ -f $INST/$r/pid ]] || continue
  pid=$(cat "$INST/$r/pid")
  if ours "$pid" "$INST/$r/root"; then
    PIDS[$r]=$pid
    log "stopping $NAME-$r (nspawn pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
  fi
done
any_left() { local r; for r in "${!PIDS[@]}"; do ours "${PIDS[$r]}" "$INST/$r/root" && return 0; done; return 1; }
for _ in $(seq 1 60); do any_left || break; sleep 0.5; done
# The container's init as recorded by up.sh (pid + start time), if it still
# is that very process.
init_of() {
  local f="$INST/$1/init" pid start
  [[ -f $f ]] || return 1
  read -r pid start <"$f"
  [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/stat ]] || return 1
  [[ $(sed 's/.*) //' "/proc/$pid/stat" | cut -d' ' -f20) == "$start" ]] || return 1
  printf '%s\n' "$pid"
}
if any_left; then
  for r in "${!PIDS[@]}"; do
    if ours "${PIDS[$r]}" "$INST/$r/root"; then
      log "no clean poweroff of $NAME-$r within 30s; killing its init and nspawn pid ${PIDS[$r]}"
      # Killing PID 1 of the container ends every process in it; killing only
      # nspawn would leave them running, reparented.
      if init=$(init_of "$r"); then kill -KILL "$init" 2>/dev/null || true; fi
      kill -KILL "${PIDS[$r]}" 2>/dev/null || true
    fi
  done
  for _ in $(seq 1 20); do any_left || break; sleep 0.5; done
  any_left && die "an nspawn of cluster '$NAME' does not exit"
fi
# A container whose nspawn died on its own (killed by someone) keeps running
# under its init: end it.
for r in "${ROLES[@]}"; do
  if init=$(init_of "$r"); then
    log "$NAME-$r: nspawn is gone but its init $init runs; killing it"
    kill -KILL "$init" 2>/dev/null || true
    for _ in $(seq 1 20); do [[ -d /proc/$init ]] || break; sleep 0.5; done
  fi
done

for r in "${ROLES[@]}"; do
  root="$INST/$r/root"
  if [[ -d $root ]] && mountpoint -q "$root"; then
    umount "$root" 2>/dev/null || umount -l "$root" || log "WARNING: cannot unmount $root"
  fi
done
if [[ -f $INST/veths ]]; then
  while read -r v; do
    [[ $v =~ ^pvs[0-9]+n[0-9]$ ]] || continue
    if ip link show "$v" >/dev/null 2>&1; then ip link del "$v" || log "WARNING: cannot delete veth $v"; fi
  done <"$INST/veths"
fi
if [[ -f $INST/netns ]]; then
  while read -r ns; do
    [[ $ns =~ ^pvs[0-9]+n[0-9]$ ]] || continue
    if [[ -e /run/netns/$ns ]]; then ip netns del "$ns" || log "WARNING: cannot delete netns $ns"; fi
  done <"$INST/netns"
fi
if [[ -f $INST/bridge ]]; then
  br=$(cat "$INST/bridge")
  if [[ $br =~ ^pvsbr[0-9]+$ ]] && ip link show "$br" >/dev/null 2>&1; then
    ip link del "$br" || log "WARNING: cannot delete bridge $br"
  fi
fi
for r in "${ROLES[@]}"; do
  if [[ -d $INST/$r/root ]] && mountpoint -q "$INST/$r/root"; then
    die "$INST/$r/root is still mounted; not deleting $INST"
  fi
done
rm -rf --one-file-system "$INST"
log "cluster '$NAME' removed"
