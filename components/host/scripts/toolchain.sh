#!/usr/bin/env bash
# pulumi-vllm host step: toolchain
#
# Debian packages vLLM needs to JIT-compile kernels (seed 001: "JIT failed"
# until build-essential, python3-dev, libnuma-dev, pkg-config were there).
#
# Inputs (environment; rendered by components/host/remote-command.ts):
#   PV_ACTION            create | delete
#   PV_PACKAGES          space-separated Debian package names (the default set
#                        comes from the TypeScript side); may be empty
#   PV_APT_LOCK_TIMEOUT  seconds to wait for a dpkg/apt lock held by another
#                        process (unattended-upgrades, apt-daily, a person)
#                        before failing (default 600)
#
# create: packages already installed are left alone (no apt-get update, no
#   install when nothing is missing -> `unchanged`). Otherwise: apt-get update,
#   then every missing name is checked to have an install candidate (an unknown
#   name fails here, before anything is installed), then one non-interactive
#   `apt-get install --no-install-recommends` of the missing ones. Held locks are
#   waited for, not failed on (DPkg::Lock::Timeout plus a retry on the lists
#   and archives locks). What this step installed (the names asked for and
#   every package that came with them) is recorded. A name this step installed
#   earlier and no longer asked for is removed as on delete, after the install
#   (so a failed install leaves it in place).
# delete: removes (purges) exactly what this step installed and is no longer
#   needed by anything else: the names it installed, then those of their
#   dependencies that came with them and are now unused. Packages that were
#   there before create are never touched; one of ours that another package
#   now depends on is kept (marked automatically installed).
# A create or update that fails half-way (a broken mirror, a full disk, the
# time limit) purges what this run installed and puts the state files back
# (lib/txn.sh). Time limit: 1800 s (PV_STEP_TIMEOUT); apt waits for held locks
# at most PV_APT_LOCK_TIMEOUT of that.
# State (for delete): /var/lib/pulumi-vllm/toolchain/{requested,added}.
# Output: progress on stderr; the last stdout line is `changed` or `unchanged`.
set -euo pipefail
export LC_ALL=C DEBIAN_FRONTEND=noninteractive

log() { printf 'pv-toolchain: %s\n' "$*" >&2; }
die() { printf 'pv-toolchain: ERROR: %s\n' "$*" >&2; exit 1; }
# shellcheck source=SCRIPTDIR/lib/txn.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/txn.sh"

STATE_DIR=/var/lib/pulumi-vllm/toolchain
ACTION=${PV_ACTION:-}
LOCK_TIMEOUT=${PV_APT_LOCK_TIMEOUT:-600}
CHANGED=0

[[ $ACTION == create || $ACTION == delete ]] || die "PV_ACTION must be create or delete (got '${ACTION}')"
[[ $LOCK_TIMEOUT =~ ^[0-9]+$ ]] || die "PV_APT_LOCK_TIMEOUT must be a whole number of seconds (got '$LOCK_TIMEOUT')"
[[ $(id -u) -eq 0 ]] || die "must run as root (use sudo)"
command -v apt-get >/dev/null || die "apt-get not found: this step supports Debian/Ubuntu hosts only"

# shellcheck source=SCRIPTDIR/lib/apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/apt.sh"

read_list() { if [[ -f $STATE_DIR/$1 ]]; then grep -v '^$' "$STATE_DIR/$1" | sort -u; fi; }
write_list() { # name, lines on stdin; touches nothing when already so
  local want
  want=$(grep -v '^$' | sort -u || true)
  if [[ -f $STATE_DIR/$1 && $(cat "$STATE_DIR/$1") == "$want" ]]; then return 0; fi
  mkdir -p "$STATE_DIR"
  printf '%s\n' "$want" >"$STATE_DIR/.$1.tmp"
  chmod 0644 "$STATE_DIR/.$1.tmp"
  mv -f "$STATE_DIR/.$1.tmp" "$STATE_DIR/$1"
}
drop_state() {
  rm -f "$STATE_DIR/requested" "$STATE_DIR/added"
  rmdir "$STATE_DIR" 2>/dev/null || true
  rmdir /var/lib/pulumi-vllm 2>/dev/null || true
}

# Remove packages this step installed: the given names plus the dependencies
# recorded in `added`, as far as nothing else needs them any more.
remove_ours() {
  local -a drop=() still=() removable=()
  local p
  read -r -a drop <<<"$*"
  (( ${#drop[@]} )) || return 0
  for p in "${drop[@]}"; do if is_installed "$p"; then still+=("$p"); fi; done
  if (( ${#still[@]} )); then
    log "marking ${still[*]} as automatically installed"
    apt-mark auto -- "${still[@]}" >&2
  fi
  local ours autoremovable
  ours=$( { printf '%s\n' "${drop[@]}"; read_list added; } | base_names)
  # Only hard dependencies count: a package that merely Recommends or Suggests
  # one of ours (apt Suggests dpkg-dev, which Recommends build-essential) does
  # not need it, and before create it was not there either.
  autoremovable=$(apt-get -s -o Debug::NoLocking=1 -o APT::AutoRemove::RecommendsImportant=false \
    -o APT::AutoRemove::SuggestsImportant=false autoremove 2>/dev/null | awk '$1 == "Remv" { print $2 }' | base_names)
  mapfile -t removable < <(comm -12 <(printf '%s\n' "$ours") <(printf '%s\n' "$autoremovable") | grep -v '^$' || true)
  if (( ${#removable[@]} )); then
    # Check the purge takes nothing but ours with it.
    local others
    others=$(apt-get -s -o Debug::NoLocking=1 purge -- "${removable[@]}" 2>/dev/null | awk '$1 == "Purg" || $1 == "Remv" { print $2 }' | base_names \
      | comm -23 - <(printf '%s\n' "${removable[@]}" | sort -u) || true)
    [[ -z $others ]] || die "refusing to remove ${removable[*]}: apt would also remove packages this step did not install: $others"
    log "purging ${removable[*]}"
    apt_get purge -- "${removable[@]}"
    CHANGED=1
  fi
  for p in "${still[@]}"; do
    if is_installed "$p"; then log "kept $p: another installed package depends on it"; fi
  done
  # Forget what is gone (and the names we were asked to drop).
  read_list requested | comm -23 - <(printf '%s\n' "${drop[@]}" | sort -u) | write_list requested
  local gone
  gone=$(comm -23 <(read_list added | base_names) <(installed_set | base_names))
  read_list added | base_names | comm -23 - <(printf '%s\n' "$gone") | write_list added
}

txn_begin toolchain 1800

if [[ $ACTION == delete ]]; then
  if [[ ! -d $STATE_DIR ]]; then
    log "nothing recorded by this step; nothing to remove"
    txn_commit
    echo unchanged
    exit 0
  fi
  mapfile -t requested < <(read_list requested)
  remove_ours "${requested[@]}"
  drop_state
  txn_commit
  echo changed
  exit 0
fi

# --- create ---------------------------------------------------------------------
read -r -a WANT <<<"${PV_PACKAGES:-}"
for p in "${WANT[@]}"; do
  [[ $p =~ ^[a-z0-9][a-z0-9+.-]+(:[a-z0-9]+)?$ ]] || die "bad package name '$p' in PV_PACKAGES (Debian names are [a-z0-9][a-z0-9+.-]+)"
done
mapfile -t WANT < <(printf '%s\n' "${WANT[@]}" | grep -v '^$' | sort -u || true)
# Before the state files change (only then: a no-op run writes nothing).
journal_state() { txn_new_dir "$STATE_DIR"; txn_save "$STATE_DIR/requested" "$STATE_DIR/added"; }

# Names this step installed before and that are no longer asked for. They are
# removed last, once the new ones are in: a failed install then leaves them
# as they were (the rollback only purges what this run added).
mapfile -t STALE < <(comm -23 <(read_list requested) <(printf '%s\n' "${WANT[@]}" | sort -u) | grep -v '^$' || true)
remove_stale() {
  (( ${#STALE[@]} )) || return 0
  log "no longer asked for: ${STALE[*]}"
  journal_state
  remove_ours "${STALE[@]}"
}

MISSING=()
for p in "${WANT[@]}"; do is_installed "$p" || MISSING+=("$p"); done
if (( ${#MISSING[@]} == 0 )); then
  log "all of ${WANT[*]:-(none)} already installed"
  remove_stale
  txn_commit
  if (( CHANGED )); then echo changed; else echo unchanged; fi
  exit 0
fi

log "missing: ${MISSING[*]}; apt-get update"
apt_get update || die "apt-get update failed (see above)"
UNKNOWN=()
for p in "${MISSING[@]}"; do has_candidate "$p" || UNKNOWN+=("$p"); done
if (( ${#UNKNOWN[@]} )); then
  die "unknown package(s) (no install candidate in the configured apt sources): ${UNKNOWN[*]}. Nothing was installed; fix PV_PACKAGES or the apt sources."
fi

BEFORE=$(installed_set)
journal_state
txn_undo undo_install "$(present_set)"
log "installing ${MISSING[*]}"
apt_get install --no-install-recommends -- "${MISSING[@]}" || die "apt-get install ${MISSING[*]} failed (see above)"
AFTER=$(installed_set)
{ read_list requested; printf '%s\n' "${MISSING[@]}"; } | write_list requested
{ read_list added; comm -13 <(printf '%s\n' "$BEFORE") <(printf '%s\n' "$AFTER") | base_names; } | write_list added
log "installed $(comm -13 <(printf '%s\n' "$BEFORE") <(printf '%s\n' "$AFTER") | wc -l) package(s)"
remove_stale
txn_commit
echo changed
