#!/usr/bin/env bash
# Build (or reuse) the cached Debian bookworm root filesystem that the host-tier
# sandboxes boot with systemd-nspawn.
#
# Usage: scripts/sandbox/build-rootfs.sh
#   Prints the absolute path of the ready root filesystem on stdout (last line);
#   progress goes to stderr.
#
# Environment (all optional):
#   PULUMI_VLLM_CACHE    cache dir (default ${XDG_CACHE_HOME:-$HOME/.cache}/pulumi-vllm)
#   PV_DEBIAN_MIRROR     Debian mirror (default http://deb.debian.org/debian)
#   PV_SANDBOX_REBUILD=1 build a fresh root even when the cached one exists
#   PV_SANDBOX_KEEP_OLD_ROOTFS=1  keep roots built by other versions of this
#                        script (by default a new build removes them)
#
# The root lives at $CACHE/rootfs-bookworm-<hash>, where <hash> covers this
# script (and so the package list below) and the mirror. It is built in a temp
# dir next to it and renamed into place at the end, so a half-built root is
# never used; concurrent builders serialise on a lock file. No keys of any kind
# are baked in: SSH host keys are deleted here and up.sh makes fresh ones per
# instance. Needs root, debootstrap and network access to the mirror.
set -euo pipefail

SUITE=bookworm
MIRROR=${PV_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# What a "bare Debian box" of the host tier has: systemd + sshd, apt, python3
# (the uv/vLLM steps need an interpreter), curl, and the usual admin tools.
PACKAGES=(
  systemd systemd-sysv dbus openssh-server ca-certificates curl python3
  iproute2 procps sudo less kmod
)

log() { printf 'build-rootfs: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root (debootstrap needs it)"
command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install -y debootstrap)"

CACHE=${PULUMI_VLLM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pulumi-vllm}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd -P)

self="${BASH_SOURCE[0]}"
hash=$( { cat "$self"; printf '%s\n' "$SUITE" "$MIRROR" "${PACKAGES[*]}"; } | sha256sum | cut -c1-16)
ROOT="$CACHE/rootfs-$SUITE-$hash"

if [[ -d $ROOT && ${PV_SANDBOX_REBUILD:-0} != 1 && -f $ROOT/.pv-rootfs-complete ]]; then
  log "reusing $ROOT"
  printf '%s\n' "$ROOT"
  exit 0
fi

# Serialise concurrent builders (two test runs starting at once).
exec 9>"$CACHE/.rootfs-$SUITE-$hash.lock"
flock 9
if [[ -d $ROOT && ${PV_SANDBOX_REBUILD:-0} != 1 && -f $ROOT/.pv-rootfs-complete ]]; then
  log "reusing $ROOT (built by a concurrent run)"
  printf '%s\n' "$ROOT"
  exit 0
fi

TMP=$(mktemp -d "$CACHE/.rootfs-$SUITE-$hash.tmp.XXXXXX")
cleanup() { if [[ -n ${TMP:-} && -d $TMP ]]; then rm -rf --one-file-system "$TMP"; fi; }
trap cleanup EXIT

start=$(date +%s)
includes=$(IFS=,; printf '%s' "${PACKAGES[*]}")
log "debootstrap $SUITE ($includes) from $MIRROR into $TMP"
if ! debootstrap --variant=minbase --include="$includes" "$SUITE" "$TMP" "$MIRROR" >"$TMP.log" 2>&1; then
  tail -n 40 "$TMP.log" >&2 || true
  rm -f "$TMP.log"
  die "debootstrap failed"
fi
rm -f "$TMP.log"

log "configuring the root for nspawn"
# mktemp -d made the dir 0700; as the machine's "/" it must be 0755 or every
# non-root service (dbus, _apt) fails with EACCES.
chmod 0755 "$TMP"
# No baked keys: host keys are per instance (up.sh).
rm -f "$TMP"/etc/ssh/ssh_host_*
# Empty machine-id: up.sh writes a fresh one per instance.
: >"$TMP/etc/machine-id"
rm -f "$TMP/var/lib/dbus/machine-id"
# Timers that would run apt, or touch the machine's real disks, at random times
# during tests. (A real host has the apt ones; the toolchain step copes with a
# held apt lock, and a test proves it deterministically.)
for unit in apt-daily.timer apt-daily-upgrade.timer fstrim.timer e2scrub_all.timer; do
  ln -sf /dev/null "$TMP/etc/systemd/system/$unit"
done
# sshd: up.sh writes /etc/ssh/sshd_config.d/pv-sandbox.conf per instance.
printf 'pv-sandbox\n' >"$TMP/etc/hostname"
apt_clean() { rm -rf "$TMP"/var/cache/apt/archives/*.deb "$TMP"/var/cache/apt/*.bin; }
apt_clean
date -u +%FT%TZ >"$TMP/.pv-rootfs-complete"

if [[ -d $ROOT ]]; then
  old="$CACHE/.rootfs-$SUITE-$hash.old.$$"
  mv "$ROOT" "$old"
  rm -rf --one-file-system "$old"
fi
mv "$TMP" "$ROOT"
TMP=
# Roots built by other versions of this script are dead weight in a CI cache.
if [[ ${PV_SANDBOX_KEEP_OLD_ROOTFS:-0} != 1 ]]; then
  for old in "$CACHE"/rootfs-"$SUITE"-*; do
    [[ -d $old && $old != "$ROOT" && -f $old/.pv-rootfs-complete ]] || continue
    log "removing the outdated root $old"
    rm -rf --one-file-system "$old"
    rm -f "$CACHE/.$(basename "$old").lock"
  done
fi
log "built $ROOT in $(( $(date +%s) - start ))s ($(du -sh "$ROOT" | cut -f1))"
printf '%s\n' "$ROOT"
