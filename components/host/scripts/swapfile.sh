#!/usr/bin/env bash
# pulumi-vllm host step: swapfile
#
# A swap file of a given size, active now and at boot (one /etc/fstab line).
# Seed 000/001: a 72B model on a 16 GB box needs a large swap file; the hand-made
# version appended a new fstab line on every run. This one does not.
#
# Inputs (environment; rendered by components/host/remote-command.ts):
#   PV_ACTION             create | delete
#   PV_SWAP_PATH          absolute path of the swap file, e.g. /swapfile
#                         (characters A-Za-z0-9._/- only; not under /proc, /sys, /dev)
#   PV_SWAP_SIZE_MIB      size in MiB; 0 = no swap: create removes our swap file
#   PV_SWAP_MIN_FREE_MIB  free space (MiB) that must remain on the file system
#                         after the swap file is written (default 1024)
#   PV_ADOPT              optional: 1 = resize a swap file of another size that
#                         this step did not make (default 0: refuse it)
#   PV_SWAP_ALLOC         auto | fallocate | dd (default auto: fallocate, and dd
#                         when fallocate is unsupported, leaves holes, or the
#                         kernel refuses the fallocated file)
#
# create: if the file exists with the right size, a swap signature, mode 0600,
#   is active and has exactly one fstab line -> nothing (prints `unchanged`).
#   Otherwise: refuses, before writing anything, when the file system lacks
#   room for size + PV_SWAP_MIN_FREE_MIB (counting space a file being replaced
#   gives back); a wrong size swaps the old file off and recreates it; writes
#   the new file under a temp name (mode 0600 from the start), mkswap, renames
#   it into place, swapon; makes /etc/fstab hold exactly one line
#   `<path> none swap sw 0 0` (stale or duplicate lines for the path replaced).
#   A swap file of the right size already at the path (made by hand) is
#   adopted, not rewritten. Ownership: a file at the path that is not a swap
#   file is never touched; a swap file of another size that this step did not
#   make is refused unless PV_ADOPT=1 (then resized, and left by delete). A changed PV_SWAP_PATH removes the swap file this step made at
#   the old path.
# delete: swaps off and removes the swap file this step made and its fstab
#   line; an adopted file is left (swapped off again if it was off before);
#   nothing recorded -> `unchanged`.
# A create or update that fails half-way leaves the host as it was: a new
# file is swapped off and removed, a replaced one of the old size is made
# again, /etc/fstab and the state are put back, swap is on again if it was
# (lib/txn.sh). Time limit: 3600 s (PV_STEP_TIMEOUT; dd of a large file).
# State (for delete): /var/lib/pulumi-vllm/swapfile/state (key=value lines).
# Output: progress on stderr; the last stdout line is `changed` or `unchanged`.
set -euo pipefail
export LC_ALL=C

log() { printf 'pv-swapfile: %s\n' "$*" >&2; }
die() { printf 'pv-swapfile: ERROR: %s\n' "$*" >&2; exit 1; }
# shellcheck source=SCRIPTDIR/lib/txn.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/txn.sh"

STATE_DIR=/var/lib/pulumi-vllm/swapfile
STATE="$STATE_DIR/state"
FSTAB=${PV_FSTAB:-/etc/fstab}
ACTION=${PV_ACTION:-}
CHANGED=0
TMPFILE=

[[ $ACTION == create || $ACTION == delete ]] || die "PV_ACTION must be create or delete (got '${ACTION}')"
[[ $(id -u) -eq 0 ]] || die "must run as root (use sudo)"

valid_path() {
  [[ $1 =~ ^/[A-Za-z0-9._/-]+$ && $1 != */ && $1 != *//* && $1 != */./* && $1 != */../* && $1 != */. && $1 != */.. ]] || return 1
  case $1 in /proc/* | /sys/* | /dev/* | /run/*) return 1 ;; esac
}

# --- state (key=value, parsed, never sourced) ---------------------------------
declare -A ST=()
read_state() {
  ST=()
  [[ -f $STATE ]] || return 0
  local k v
  while IFS='=' read -r k v; do
    [[ -n $k && $k != \#* ]] && ST[$k]=$v
  done <"$STATE"
}
write_state() { # path size_mib created fstab_added was_active
  local want
  want=$(printf 'path=%s\nsize_mib=%s\ncreated=%s\nfstab_added=%s\nwas_active=%s' "$@")
  # Touch nothing (not even the dir, with a temp file) when it is already so.
  if [[ -f $STATE && $(cat "$STATE") == "$want" ]]; then return 0; fi
  journal
  mkdir -p "$STATE_DIR"
  printf '%s\n' "$want" >"$STATE.tmp"
  mv -f "$STATE.tmp" "$STATE"
}
drop_state() {
  rm -f "$STATE"
  rmdir "$STATE_DIR" 2>/dev/null || true
  rmdir /var/lib/pulumi-vllm 2>/dev/null || true
}

# --- probes -------------------------------------------------------------------
is_active() { awk -v p="$1" 'NR > 1 && $1 == p { found = 1 } END { exit !found }' /proc/swaps; }
has_swap_signature() {
  local pagesize sig
  pagesize=$(getconf PAGESIZE)
  sig=$(dd if="$1" bs=1 skip=$((pagesize - 10)) count=10 status=none 2>/dev/null || true)
  [[ $sig == SWAPSPACE2 ]]
}
size_ok() { [[ -f $1 && ! -L $1 && $(stat -c %s -- "$1") -eq $(($2 * 1048576)) ]] && has_swap_signature "$1"; }
perms_ok() { [[ $(stat -c '%a %u' -- "$1") == "600 0" ]]; }
fstab_line() { printf '%s none swap sw 0 0' "$1"; }
# Lines of fstab that mount PATH (comments ignored), whitespace normalised.
fstab_entries() { [[ -f $FSTAB ]] || return 0; awk -v p="$1" '$1 !~ /^#/ && $1 == p { $1 = $1; print }' "$FSTAB"; }
fstab_ok() { [[ $(fstab_entries "$1") == "$(fstab_line "$1")" ]]; }
has_fstab_entry() { [[ -n $(fstab_entries "$1") ]]; }

# Rewrite fstab without lines for PATH; with "present", append the one line.
fstab_set() {
  local path=$1 want=$2 tmp
  tmp=$(mktemp "$(dirname "$FSTAB")/.fstab.pv-swapfile.XXXXXX")
  if [[ -f $FSTAB ]]; then
    awk -v p="$path" '!($1 !~ /^#/ && $1 == p)' "$FSTAB" >"$tmp"
    chmod --reference="$FSTAB" "$tmp"
    chown --reference="$FSTAB" "$tmp"
  else
    chmod 0644 "$tmp"
  fi
  if [[ $want == present ]]; then fstab_line "$path" >>"$tmp"; printf '\n' >>"$tmp"; fi
  if [[ -f $FSTAB ]] && cmp -s "$tmp" "$FSTAB"; then
    rm -f "$tmp"
    return 0
  fi
  mv -f "$tmp" "$FSTAB"
  log "$FSTAB: $( [[ $want == present ]] && echo "one line for $path" || echo "removed lines for $path")"
  CHANGED=1
}

swap_off() {
  if is_active "$1"; then
    log "swapoff $1"
    swapoff -- "$1" || die "swapoff $1 failed (is there enough free RAM to take back what is swapped out?)"
    CHANGED=1
  fi
}

remove_ours() { # path
  swap_off "$1"
  if [[ -e $1 ]]; then log "removing $1"; rm -f -- "$1"; CHANGED=1; fi
  fstab_set "$1" absent
}

# Allocate FILE of MIB MiB, mode 0600 from the start; METHOD fallocate|dd.
# Every command is checked explicitly: this runs in `if` context, where
# set -e does not apply.
allocate() {
  local file=$1 mib=$2 method=$3 blocks
  rm -f -- "$file" || return 1
  (umask 077 && : >"$file") || return 1
  if [[ $method == fallocate ]]; then
    if ! fallocate -l "$((mib * 1048576))" -- "$file" 2>/dev/null; then
      log "fallocate is not supported here"
      return 1
    fi
    blocks=$(( $(stat -c '%b*%B' -- "$file") ))
    if (( blocks < mib * 1048576 )); then
      log "fallocate left holes ($blocks of $((mib * 1048576)) bytes allocated)"
      return 1
    fi
  else
    log "writing $mib MiB of zeros with dd"
    dd if=/dev/zero of="$file" bs=1M count="$mib" conv=fsync status=none || return 1
  fi
  chmod 0600 -- "$file" || return 1
  mkswap -- "$file" >&2 || return 1
}

do_remove_recorded() {
  read_state
  if [[ -z ${ST[path]:-} ]]; then
    log "no swap file recorded by this step; nothing to remove"
    return 0
  fi
  local path=${ST[path]}
  if [[ ${ST[created]:-0} == 1 ]]; then
    remove_ours "$path"
  else
    log "$path was there before this step: leaving the file"
    if [[ ${ST[was_active]:-1} == 0 ]]; then swap_off "$path"; fi
    if [[ ${ST[fstab_added]:-0} == 1 ]]; then fstab_set "$path" absent; fi
  fi
  drop_state
  CHANGED=1
}

finish() { txn_commit; if (( CHANGED )); then echo changed; else echo unchanged; fi; }

# --- rollback of a failed create/update (see lib/txn.sh) ----------------------
undo_swap_off() { if is_active "$1"; then swapoff -- "$1" || true; fi; }
# A swap file this run replaced: made again at its old size.
undo_recreate() { # path size_mib
  [[ -e $1 || $2 -le 0 ]] && return 0
  allocate "$1.pv-new" "$2" fallocate || allocate "$1.pv-new" "$2" dd || return 1
  mv -f -- "$1.pv-new" "$1"
}
undo_swap_state() { # path was_active
  if [[ $2 == 1 && -f $1 ]] && ! is_active "$1"; then swapon -- "$1" || true; fi
  if [[ $2 == 0 ]]; then undo_swap_off "$1"; fi
}

txn_begin swapfile 3600

if [[ $ACTION == delete ]]; then
  do_remove_recorded
  finish
  exit 0
fi

# --- create ---------------------------------------------------------------------
SWAP_PATH=${PV_SWAP_PATH:-}
SIZE=${PV_SWAP_SIZE_MIB:-}
MARGIN=${PV_SWAP_MIN_FREE_MIB:-1024}
ALLOC=${PV_SWAP_ALLOC:-auto}
[[ $SIZE =~ ^[0-9]+$ ]] || die "PV_SWAP_SIZE_MIB must be a whole number of MiB (got '$SIZE')"
[[ $MARGIN =~ ^[0-9]+$ ]] || die "PV_SWAP_MIN_FREE_MIB must be a whole number of MiB (got '$MARGIN')"
[[ $ALLOC == auto || $ALLOC == fallocate || $ALLOC == dd ]] || die "PV_SWAP_ALLOC must be auto, fallocate or dd (got '$ALLOC')"
SIZE=$((10#$SIZE))
MARGIN=$((10#$MARGIN))

if (( SIZE == 0 )); then
  log "PV_SWAP_SIZE_MIB=0: no swap file wanted"
  do_remove_recorded
  finish
  exit 0
fi

valid_path "$SWAP_PATH" || die "PV_SWAP_PATH must be an absolute path of A-Za-z0-9._/- outside /proc /sys /dev /run (got '$SWAP_PATH')"
DIR=$(dirname "$SWAP_PATH")
[[ -d $DIR ]] || die "directory $DIR of PV_SWAP_PATH does not exist"
if [[ -e $SWAP_PATH || -L $SWAP_PATH ]] && [[ ! -f $SWAP_PATH || -L $SWAP_PATH ]]; then
  die "$SWAP_PATH exists and is not a regular file; refusing to touch it"
fi

read_state
# Journaled before the first change (a run that changes nothing writes
# nothing): fstab and the state as they are, and swap on/off as it is.
JOURNALED=0
WAS_ACTIVE=0
is_active "$SWAP_PATH" && WAS_ACTIVE=1
journal() {
  (( JOURNALED )) && return 0
  txn_undo undo_swap_state "$SWAP_PATH" "$WAS_ACTIVE"
  txn_new_dir "$STATE_DIR"
  txn_save "$FSTAB" "$STATE"
  JOURNALED=1
}
# The path changed: take away the swap file this step made at the old path
# (made again, and on, if this run fails).
if [[ -n ${ST[path]:-} && ${ST[path]} != "$SWAP_PATH" ]]; then
  journal
  log "swap path changed from ${ST[path]} to $SWAP_PATH"
  if [[ -f ${ST[path]} ]]; then
    txn_undo undo_swap_state "${ST[path]}" "$(is_active "${ST[path]}" && echo 1 || echo 0)"
    [[ ${ST[created]:-0} == 1 ]] && txn_undo undo_recreate "${ST[path]}" "${ST[size_mib]:-0}"
  fi
  do_remove_recorded
  read_state
fi

created=${ST[created]:-}
fstab_added=${ST[fstab_added]:-}
was_active=${ST[was_active]:-}
if [[ -z $created ]]; then
  # First create: remember what was there before us, and take nothing that is not ours.
  if [[ -e $SWAP_PATH ]]; then
    created=0
    has_swap_signature "$SWAP_PATH" ||
      die "$SWAP_PATH exists and is not a swap file: refusing to touch it -> choose another host.swap.path"
    if ! size_ok "$SWAP_PATH" "$SIZE" && [[ ${PV_ADOPT:-0} != 1 ]]; then
      die "$SWAP_PATH is a swap file of $(( $(stat -c %s -- "$SWAP_PATH") / 1048576 )) MiB that pulumi-vllm did not make: refusing to replace it (destroy would then delete it) -> choose another host.swap.path, set host.swap to its size, or list 'swap' in host.adopt to resize it (destroy then leaves it)"
    fi
  else
    created=1
  fi
  if has_fstab_entry "$SWAP_PATH"; then fstab_added=0; else fstab_added=1; fi
  if is_active "$SWAP_PATH"; then was_active=1; else was_active=0; fi
fi

if size_ok "$SWAP_PATH" "$SIZE"; then
  if ! perms_ok "$SWAP_PATH"; then
    journal
    log "chmod 600 $SWAP_PATH"
    chown 0:0 -- "$SWAP_PATH"
    chmod 0600 -- "$SWAP_PATH"
    CHANGED=1
  fi
else
  # (Re)create. Check for room first, before anything is touched.
  avail=$(df -P -B1 -- "$DIR" | awk 'NR == 2 { print $4 }')
  reclaim=0
  if [[ -f $SWAP_PATH ]]; then reclaim=$(( $(stat -c '%b*%B' -- "$SWAP_PATH") )); fi
  need=$(( (SIZE + MARGIN) * 1048576 ))
  if (( avail + reclaim < need )); then
    die "not enough room for a ${SIZE} MiB swap file at $SWAP_PATH: $(( (avail + reclaim) / 1048576 )) MiB available on $(df -P -- "$DIR" | awk 'NR == 2 { print $6 }'), need ${SIZE} MiB + ${MARGIN} MiB margin (PV_SWAP_MIN_FREE_MIB). Nothing was changed; lower PV_SWAP_SIZE_MIB or free disk space."
  fi
  journal
  if [[ -f $SWAP_PATH ]]; then
    log "$SWAP_PATH has the wrong size or no swap signature: recreating it as ${SIZE} MiB"
    old_mib=$(( $(stat -c %s -- "$SWAP_PATH") / 1048576 ))
    old_swap=0
    has_swap_signature "$SWAP_PATH" && old_swap=1
    swap_off "$SWAP_PATH"
    rm -f -- "$SWAP_PATH"
    if (( old_swap && old_mib > 0 )); then txn_undo undo_recreate "$SWAP_PATH" "$old_mib"; fi
  fi
  TMPFILE="$SWAP_PATH.pv-new"
  txn_save "$SWAP_PATH" "$TMPFILE"
  method=$ALLOC
  if [[ $method == auto ]]; then method=fallocate; fi
  log "creating ${SIZE} MiB swap file $SWAP_PATH ($method)"
  if ! allocate "$TMPFILE" "$SIZE" "$method"; then
    [[ $ALLOC == auto && $method == fallocate ]] || die "allocating $SWAP_PATH with $method failed"
    method="dd"
    allocate "$TMPFILE" "$SIZE" dd || die "allocating $SWAP_PATH with dd failed"
  fi
  mv -f -- "$TMPFILE" "$SWAP_PATH"
  TMPFILE=
  CHANGED=1
fi

if ! is_active "$SWAP_PATH"; then
  journal
  txn_undo undo_swap_off "$SWAP_PATH"
  log "swapon $SWAP_PATH"
  if ! swapon -- "$SWAP_PATH"; then
    if [[ $ALLOC == auto && ${method:-} == fallocate ]]; then
      log "the kernel refused the fallocated file; rewriting it with dd"
      TMPFILE="$SWAP_PATH.pv-new"
      allocate "$TMPFILE" "$SIZE" dd || die "allocating $SWAP_PATH with dd failed"
      mv -f -- "$TMPFILE" "$SWAP_PATH"
      TMPFILE=
      swapon -- "$SWAP_PATH" || die "swapon $SWAP_PATH failed"
    else
      die "swapon $SWAP_PATH failed"
    fi
  fi
  CHANGED=1
fi

fstab_ok "$SWAP_PATH" || { journal; fstab_set "$SWAP_PATH" present; }

before=$(cat "$STATE" 2>/dev/null || true)
write_state "$SWAP_PATH" "$SIZE" "$created" "$fstab_added" "$was_active"
[[ $before == "$(cat "$STATE")" ]] || CHANGED=1
finish
