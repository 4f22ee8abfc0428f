#!/usr/bin/env bash
# Build (or reuse) the cached root filesystem of the SLURM test cluster: the
# host-tier sandbox root (scripts/sandbox/build-rootfs.sh) plus Debian's
# slurm-wlm daemons (slurmctld, slurmd, slurmdbd), the client tools, munge and
# mariadb-server (for slurmdbd, so `sacct` really works).
#
# Usage: scripts/slurm-sandbox/build-rootfs.sh
#   Prints the absolute path of the ready root on stdout (last line); progress
#   goes to stderr.
#
# Environment (all optional):
#   PULUMI_VLLM_CACHE       cache dir (default ${XDG_CACHE_HOME:-$HOME/.cache}/pulumi-vllm)
#   PV_SLURM_REBUILD=1      build a fresh layer even when the cached one exists
#   PV_SANDBOX_APT_CACHE    host dir used as apt's archive cache while building
#                           (default $CACHE/apt-archives, shared with the host
#                           sandboxes; "" disables it)
#   (PV_DEBIAN_MIRROR and PV_SANDBOX_REBUILD are passed on to the base build.)
#
# The root lives at $CACHE/rootfs-slurm-<hash>; <hash> covers this script (so
# the package list and the tweaks below) and the base root's name (which is
# itself keyed by its script, suite and mirror). It is built in a temp dir by
# copying the base root and running apt-get inside it with `systemd-nspawn`
# (no boot; the host's network), then renamed into place, so a half-built
# layer is never used; concurrent builders serialise on a lock file.
# No secrets are baked in: the munge key is removed here and up.sh makes one
# per cluster; SSH host keys come from the base (none) and up.sh.
# Needs root, systemd-container (systemd-nspawn, systemctl), and network to
# the Debian mirror for the first build (~150 MB of packages).
set -euo pipefail

PACKAGES=(
  slurmctld slurmd slurmdbd slurm-client munge
  mariadb-server mariadb-client
  python3 curl iproute2 procps
)

log() { printf 'slurm-build-rootfs: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root"
command -v systemd-nspawn >/dev/null || die "systemd-nspawn is not installed (apt-get install -y systemd-container)"
command -v systemctl >/dev/null || die "systemctl is not installed (apt-get install -y systemd)"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd "$HERE/../.." && pwd -P)
CACHE=${PULUMI_VLLM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pulumi-vllm}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd -P)
APT_CACHE=${PV_SANDBOX_APT_CACHE-$CACHE/apt-archives}

BASE=$("$REPO/scripts/sandbox/build-rootfs.sh" | tail -n 1)
[[ -d $BASE && -f $BASE/.pv-rootfs-complete ]] || die "base build-rootfs.sh did not give a root dir"

self="${BASH_SOURCE[0]}"
hash=$( { cat "$self"; printf '%s\n' "$(basename "$BASE")" "${PACKAGES[*]}"; } | sha256sum | cut -c1-16)
ROOT="$CACHE/rootfs-slurm-$hash"

ready() { [[ -d $ROOT && -f $ROOT/.pv-rootfs-complete && ${PV_SLURM_REBUILD:-0} != 1 ]]; }
if ready; then
  log "reusing $ROOT"
  printf '%s\n' "$ROOT"
  exit 0
fi
exec 9>"$CACHE/.rootfs-slurm-$hash.lock"
flock 9
if ready; then
  log "reusing $ROOT (built by a concurrent run)"
  printf '%s\n' "$ROOT"
  exit 0
fi

in_use() { grep -qF "lowerdir=$1," /proc/self/mountinfo || grep -qF "lowerdir=$1 " /proc/self/mountinfo; }
if [[ -d $ROOT ]] && in_use "$ROOT"; then
  die "$ROOT is the lower dir of a running cluster; stop it (down.sh) before rebuilding"
fi
TMP=$(mktemp -d "$CACHE/.rootfs-slurm-$hash.tmp.XXXXXX")
cleanup() { if [[ -n ${TMP:-} && -d $TMP ]]; then rm -rf --one-file-system "$TMP"; fi; }
trap cleanup EXIT

start=$(date +%s)
log "copying base $BASE"
rmdir "$TMP"
cp -a --reflink=auto "$BASE" "$TMP"
rm -f "$TMP/.pv-rootfs-complete"
# Daemons running as their own users (munge, mysql, slurm) need to reach
# /bin/sh: make sure the top dir is not 0700 (mktemp -d; early base roots).
chmod 755 "$TMP"

# Keep package scripts from starting daemons in the build container.
printf '#!/bin/sh\nexit 101\n' >"$TMP/usr/sbin/policy-rc.d"
chmod 755 "$TMP/usr/sbin/policy-rc.d"

nspawn_args=(-q -D "$TMP" --register=no --keep-unit --resolv-conf=copy-host --pipe
  --setenv=DEBIAN_FRONTEND=noninteractive)
if [[ -n $APT_CACHE ]]; then
  mkdir -p "$APT_CACHE/partial"
  nspawn_args+=(--bind="$APT_CACHE:/var/cache/apt/archives")
fi
log "apt-get install ${PACKAGES[*]}"
# shellcheck disable=SC2016 # expanded inside the container
if ! systemd-nspawn "${nspawn_args[@]}" /bin/bash -c '
    set -euo pipefail
    apt-get update -q
    apt-get install -y -q --no-install-recommends "$@"
    apt-get clean
  ' install "${PACKAGES[@]}" >"$TMP.log" 2>&1; then
  tail -n 40 "$TMP.log" >&2 || true
  rm -f "$TMP.log"
  die "apt-get install in the build container failed"
fi
rm -f "$TMP.log"
rm -f "$TMP/usr/sbin/policy-rc.d"

log "configuring the layer"
# No baked secrets: up.sh writes one munge key per cluster.
rm -f "$TMP/etc/munge/munge.key"
# Daemons are enabled per container role by up.sh (munge runs everywhere).
systemctl --root="$TMP" disable slurmctld.service slurmd.service slurmdbd.service \
  mariadb.service mariadb.socket >/dev/null 2>&1 || true
systemctl --root="$TMP" enable munge.service >/dev/null 2>&1
# MariaDB only for slurmdbd: local socket, small buffers, SLURM's advice on
# lock timeouts.
cat >"$TMP/etc/mysql/mariadb.conf.d/99-pv-slurm.cnf" <<'EOF'
# written by pulumi-vllm scripts/slurm-sandbox/build-rootfs.sh
[mysqld]
skip-networking
innodb_buffer_pool_size = 64M
innodb_log_file_size = 16M
innodb_lock_wait_timeout = 900
max_allowed_packet = 16M
EOF
# Stand-in GPU device nodes for gres.conf: SLURM 22.05 drops a GPU GRES that
# has no File=, and wants a character device there. Major 195 is NVIDIA's;
# nothing opens them (task/none), SLURM only stats them and sets
# CUDA_VISIBLE_DEVICES from their index.
install -d -m 755 "$TMP/var/lib/pv-fake-gpu"
for i in 0 1 2 3 4 5 6 7; do
  mknod -m 666 "$TMP/var/lib/pv-fake-gpu/nvidia$i" c 195 "$i"
done
rm -rf "$TMP"/var/lib/apt/lists/* "$TMP"/var/cache/apt/*.bin
date -u +%FT%TZ >"$TMP/.pv-rootfs-complete"

if [[ -d $ROOT ]]; then
  old="$CACHE/.rootfs-slurm-$hash.old.$$"
  mv "$ROOT" "$old"
  rm -rf --one-file-system "$old"
fi
mv "$TMP" "$ROOT"
TMP=
log "built $ROOT in $(( $(date +%s) - start ))s ($(du -sh "$ROOT" | cut -f1))"
# Older layers (from earlier versions of this script or of the base) that no
# running cluster has mounted as its overlay's lower dir: ~600 MB each.
for old in "$CACHE"/rootfs-slurm-*; do
  [[ -d $old && $old != "$ROOT" ]] || continue
  in_use "$old" && continue
  log "removing the old layer $old"
  rm -rf --one-file-system "$old"
done
printf '%s\n' "$ROOT"
