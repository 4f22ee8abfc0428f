#!/usr/bin/env bash
# pulumi-vllm host step library: apt, for the steps that install packages
# (toolchain.sh, earlyoom.sh). Included like lib/txn.sh (see there).
# Needs from the step: LOCK_TIMEOUT (seconds to wait for a held apt/dpkg
# lock) and log().

# apt-get, non-interactive, waiting for held locks. DPkg::Lock::Timeout makes
# apt wait for the dpkg frontend lock; the lists lock (apt-get update) and the
# archives lock fail at once, so those are retried until the same deadline.
apt_get() {
  local deadline errf rc waited=0
  deadline=$(( $(date +%s) + LOCK_TIMEOUT ))
  errf=$(mktemp)
  while :; do
    rc=0
    apt-get -q -y -o DPkg::Lock::Timeout="$LOCK_TIMEOUT" -o Dpkg::Use-Pty=0 \
      -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
      "$@" </dev/null >&2 2>"$errf" || rc=$?
    if (( rc != 0 )) && grep -qE 'Could not get lock|Unable to lock|Unable to acquire the dpkg frontend lock' "$errf" \
      && (( $(date +%s) < deadline )); then
      if (( ! waited )); then
        log "apt is locked by another process ($(grep -m1 -oE 'held by process [0-9]+( \([^)]*\))?' "$errf" || echo 'unknown holder')); waiting up to ${LOCK_TIMEOUT}s"
        waited=1
      fi
      sleep 2
      continue
    fi
    cat "$errf" >&2
    rm -f "$errf"
    return "$rc"
  done
}

is_installed() { [[ $(dpkg-query -W -f='${db:Status-Abbrev}' -- "$1" 2>/dev/null) == "ii " ]]; }
installed_set() { dpkg-query -W -f='${binary:Package} ${db:Status-Abbrev}\n' | awk '$2 == "ii" { print $1 }' | sort -u; }
# Packages with anything on disk (also half-installed or unpacked ones).
present_set() { dpkg-query -W -f='${binary:Package} ${db:Status-Abbrev}\n' | awk 'substr($2, 2, 1) !~ /[nc]/ { print $1 }' | sort -u; }
has_candidate() {
  local c
  c=$(apt-cache policy -- "$1" 2>/dev/null | awk '$1 == "Candidate:" { print $2 }')
  [[ -n $c && $c != "(none)" ]]
}
# Strip the :arch qualifier dpkg adds to Multi-Arch: same packages.
base_names() { sed 's/:[a-z0-9]*$//' | sort -u; }

# Rollback of a failed install (registered with txn_undo before installing,
# with present_set's output): purges what is on disk now and was not before.
undo_install() {
  local -a new=()
  mapfile -t new < <(comm -13 <(printf '%s\n' "$1") <(present_set) | grep -v '^$' || true)
  (( ${#new[@]} )) || return 0
  log "rollback: purging ${new[*]}"
  apt_get purge -- "${new[@]}"
}
