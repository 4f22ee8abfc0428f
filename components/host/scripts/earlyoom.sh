#!/usr/bin/env bash
# pulumi-vllm host step: earlyoom
#
# EarlyOOM as the box's watchdog (seed 000): when available RAM (and swap)
# falls below a threshold it kills vLLM before the kernel freezes the machine,
# and it spares sshd and the shells, so the box stays reachable.
#
# Inputs (environment; rendered by components/host/remote-command.ts):
#   PV_ACTION                  create | delete
#   PV_EARLYOOM_MEM_PERCENT    -m: act when available RAM is below this percent
#                              ("5", or "5,3" = SIGTERM at 5 %, SIGKILL at 3 %)
#   PV_EARLYOOM_SWAP_PERCENT   -s: ... and free swap is below this percent (same form)
#   PV_EARLYOOM_AVOID          --avoid regex of process names to spare, e.g.
#                              '^(sshd|ssh|bash|zsh|systemd)$'; empty = none
#   PV_EARLYOOM_PREFER         --prefer regex of process names to kill first, e.g.
#                              '^(vllm|python3?)$'; empty = none
#                              (regexes: no quotes, backslashes, backticks, % or
#                              whitespace, and `$` only at the end or before `)`
#                              or `|`: the config file is also read by /bin/sh;
#                              earlyoom matches them against the process name,
#                              /proc/PID/comm)
#   PV_EARLYOOM_REPORT_SECONDS -r: memory report interval (default 3600, the
#                              Debian default)
#   PV_APT_LOCK_TIMEOUT        seconds to wait for a held dpkg/apt lock (default 600)
#
# create: installs the earlyoom package when missing (apt, waiting for held
#   locks; recorded so delete can remove it). On the first create the existing
#   /etc/default/earlyoom (or its absence) and whether the service was enabled
#   and running are saved. Writes /etc/default/earlyoom with one EARLYOOM_ARGS
#   line built from the inputs (earlyoom.service reads it), only when its
#   content differs; restarts earlyoom only then; enables and starts it if it
#   is not. Checks that the running earlyoom got exactly these arguments.
# delete: if this step installed earlyoom, purges it (and what came with it);
#   otherwise puts the saved /etc/default/earlyoom back (content, mode, mtime),
#   restarts earlyoom if the config changed, and restores enabled/running.
# A create or update that fails half-way (apt, or earlyoom refusing the new
# arguments) puts back the previous config file and service state and purges
# what this run installed (lib/txn.sh). Time limit: 900 s (PV_STEP_TIMEOUT).
# State (for delete): /var/lib/pulumi-vllm/earlyoom/.
# Output: progress on stderr; the last stdout line is `changed` or `unchanged`.
set -euo pipefail
export LC_ALL=C DEBIAN_FRONTEND=noninteractive

log() { printf 'pv-earlyoom: %s\n' "$*" >&2; }
die() { printf 'pv-earlyoom: ERROR: %s\n' "$*" >&2; exit 1; }
# shellcheck source=SCRIPTDIR/lib/txn.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/txn.sh"

STATE_DIR=/var/lib/pulumi-vllm/earlyoom
CONF=/etc/default/earlyoom
UNIT=earlyoom.service
ACTION=${PV_ACTION:-}
LOCK_TIMEOUT=${PV_APT_LOCK_TIMEOUT:-600}
CHANGED=0

[[ $ACTION == create || $ACTION == delete ]] || die "PV_ACTION must be create or delete (got '${ACTION}')"
[[ $LOCK_TIMEOUT =~ ^[0-9]+$ ]] || die "PV_APT_LOCK_TIMEOUT must be a whole number of seconds (got '$LOCK_TIMEOUT')"
[[ $(id -u) -eq 0 ]] || die "must run as root (use sudo)"
command -v systemctl >/dev/null || die "systemctl not found: this step needs a systemd host"

# shellcheck source=SCRIPTDIR/lib/apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/apt.sh"

drop_state() {
  rm -rf -- "$STATE_DIR"
  rmdir /var/lib/pulumi-vllm 2>/dev/null || true
}
unit_enabled() { [[ $(systemctl is-enabled "$UNIT" 2>/dev/null || true) == enabled ]]; }
unit_active() { systemctl is-active --quiet "$UNIT"; }

# Rollback of a failed create/update, after the config file is back: the
# service as it was.
undo_service() { # was_enabled was_active
  is_installed earlyoom || return 0
  if [[ $1 == 1 ]]; then systemctl enable "$UNIT" 2>/dev/null || true; else systemctl disable "$UNIT" 2>/dev/null || true; fi
  if [[ $2 == 1 ]]; then systemctl restart "$UNIT" || true; else systemctl stop "$UNIT" 2>/dev/null || true; fi
}

txn_begin earlyoom 900

# --- delete -------------------------------------------------------------------
if [[ $ACTION == delete ]]; then
  if [[ ! -d $STATE_DIR ]]; then
    log "nothing recorded by this step; nothing to undo"
    txn_commit
    echo unchanged
    exit 0
  fi
  if [[ -f $STATE_DIR/installed-by-us ]]; then
    mapfile -t ADDED < <(grep -v '^$' "$STATE_DIR/added" 2>/dev/null || true)
    mapfile -t PURGE < <(for p in "${ADDED[@]}" earlyoom; do is_installed "$p" && printf '%s\n' "$p"; done | sort -u)
    if (( ${#PURGE[@]} )); then
      others=$(apt-get -s -o Debug::NoLocking=1 purge -- "${PURGE[@]}" 2>/dev/null | awk '$1 == "Purg" || $1 == "Remv" { print $2 }' | sort -u \
        | comm -23 - <(printf '%s\n' "${PURGE[@]}") || true)
      if [[ -n $others ]]; then
        # Something installed later needs them: keep those, purge earlyoom only.
        log "keeping ${PURGE[*]} except earlyoom: needed by $others"
        PURGE=(earlyoom)
      fi
      log "purging ${PURGE[*]} (installed by this step)"
      apt_get purge -- "${PURGE[@]}" || die "apt-get purge ${PURGE[*]} failed (see above)"
    fi
    if [[ -f $STATE_DIR/orig-default ]] && ! cmp -s "$STATE_DIR/orig-default" "$CONF"; then
      log "putting back the $CONF that was there before earlyoom was installed"
      cp -p -- "$STATE_DIR/orig-default" "$CONF"
    fi
  else
    if [[ -f $STATE_DIR/orig-default ]]; then
      if ! cmp -s "$STATE_DIR/orig-default" "$CONF"; then
        log "restoring the previous $CONF"
        cp -p -- "$STATE_DIR/orig-default" "$CONF"
        if unit_active; then systemctl restart "$UNIT"; fi
      fi
    elif [[ -f $STATE_DIR/orig-absent && -e $CONF ]]; then
      log "removing $CONF (there was none before)"
      rm -f -- "$CONF"
      if unit_active; then systemctl restart "$UNIT"; fi
    fi
    if [[ -f $STATE_DIR/orig-disabled ]] && unit_enabled; then systemctl disable "$UNIT" >&2 2>&1; fi
    if [[ -f $STATE_DIR/orig-inactive ]] && unit_active; then systemctl stop "$UNIT"; fi
  fi
  drop_state
  txn_commit
  echo changed
  exit 0
fi

# --- create: validate ---------------------------------------------------------
MEM=${PV_EARLYOOM_MEM_PERCENT:-}
SWAP=${PV_EARLYOOM_SWAP_PERCENT:-}
AVOID=${PV_EARLYOOM_AVOID:-}
PREFER=${PV_EARLYOOM_PREFER:-}
REPORT=${PV_EARLYOOM_REPORT_SECONDS:-3600}
PCT_RE='^[0-9]+(\.[0-9]+)?(,[0-9]+(\.[0-9]+)?)?$'
[[ $MEM =~ $PCT_RE ]] || die "PV_EARLYOOM_MEM_PERCENT must be a percent like 5 or 5,3 (got '$MEM')"
[[ $SWAP =~ $PCT_RE ]] || die "PV_EARLYOOM_SWAP_PERCENT must be a percent like 10 or 10,5 (got '$SWAP')"
[[ $REPORT =~ ^[0-9]+$ ]] || die "PV_EARLYOOM_REPORT_SECONDS must be a whole number (got '$REPORT')"
for pct in "${MEM//,/ }" "${SWAP//,/ }"; do
  for v in $pct; do
    awk -v v="$v" 'BEGIN { exit !(v > 0 && v <= 100) }' || die "earlyoom percent $v is not in (0, 100]"
  done
done
RE_OK='^[][A-Za-z0-9_.|()^$*+?{}:/,=!<>@#&;~-]*$'
[[ $AVOID =~ $RE_OK ]] || die "PV_EARLYOOM_AVOID may not contain quotes, backslashes, backticks, % or whitespace (got '$AVOID')"
[[ $PREFER =~ $RE_OK ]] || die "PV_EARLYOOM_PREFER may not contain quotes, backslashes, backticks, % or whitespace (got '$PREFER')"
# /etc/default/earlyoom is also sourced by /bin/sh (the init.d script): inside
# its double quotes a `$` may only stand where the shell leaves it alone.
DOLLAR_BAD='[$][^)|]'
[[ ! $AVOID =~ $DOLLAR_BAD ]] || die "PV_EARLYOOM_AVOID: '\$' may only end the regex or stand before ')' or '|' (got '$AVOID')"
[[ ! $PREFER =~ $DOLLAR_BAD ]] || die "PV_EARLYOOM_PREFER: '\$' may only end the regex or stand before ')' or '|' (got '$PREFER')"

ARGS=(-m "$MEM" -s "$SWAP" -r "$REPORT")
[[ -z $AVOID ]] || ARGS+=(--avoid "$AVOID")
[[ -z $PREFER ]] || ARGS+=(--prefer "$PREFER")
line="-m $MEM -s $SWAP -r $REPORT"
[[ -z $AVOID ]] || line+=" --avoid '$AVOID'"
[[ -z $PREFER ]] || line+=" --prefer '$PREFER'"
WANT_CONF="# Managed by pulumi-vllm (earlyoom step); changes here are overwritten.
# Read by earlyoom.service (EnvironmentFile). The file as it was before is kept
# in $STATE_DIR and put back when the step is deleted.
EARLYOOM_ARGS=\"$line\""

# --- create: install ------------------------------------------------------------
# Journaled before the first change (a run that changes nothing writes nothing).
was_enabled=0; was_active=0
unit_enabled && was_enabled=1
unit_active && was_active=1
JOURNALED=0
journal() {
  (( JOURNALED )) && return 0
  txn_undo undo_service "$was_enabled" "$was_active"
  txn_new_dir "$STATE_DIR"
  txn_save "$CONF"
  JOURNALED=1
}
[[ -d $STATE_DIR ]] || journal
mkdir -p "$STATE_DIR"
if ! is_installed earlyoom; then
  journal
  if [[ ! -f $STATE_DIR/orig-absent && ! -f $STATE_DIR/orig-default ]]; then
    # A config written before the package was there is the user's: the
    # package's purge would take it (it becomes a conffile), delete puts it back.
    if [[ -f $CONF ]]; then cp -p -- "$CONF" "$STATE_DIR/orig-default"; else : >"$STATE_DIR/orig-absent"; fi
  fi
  log "installing earlyoom"
  apt_get update || die "apt-get update failed (see above)"
  has_candidate earlyoom || die "package earlyoom has no install candidate in the configured apt sources (Debian/Ubuntu: universe/main). Nothing was installed."
  BEFORE=$(installed_set | base_names)
  txn_undo undo_install "$(present_set)"
  apt_get install --no-install-recommends -- earlyoom || die "apt-get install earlyoom failed (see above)"
  comm -13 <(printf '%s\n' "$BEFORE") <(installed_set | base_names) >"$STATE_DIR/added"
  : >"$STATE_DIR/installed-by-us"
  CHANGED=1
elif [[ ! -f $STATE_DIR/orig-default && ! -f $STATE_DIR/orig-absent ]]; then
  # First create on a host that already has earlyoom: keep what it had.
  journal
  if [[ -f $CONF ]]; then cp -p -- "$CONF" "$STATE_DIR/orig-default"; else : >"$STATE_DIR/orig-absent"; fi
  unit_enabled || : >"$STATE_DIR/orig-disabled"
  unit_active || : >"$STATE_DIR/orig-inactive"
  log "saved the previous earlyoom config and service state in $STATE_DIR"
  CHANGED=1
fi

# --- create: configure ----------------------------------------------------------
RESTART=0
if [[ ! -f $CONF ]] || [[ $(cat "$CONF") != "$WANT_CONF" ]]; then
  journal
  log "writing $CONF: EARLYOOM_ARGS=\"$line\""
  tmp=$(mktemp "$CONF.pv.XXXXXX")
  printf '%s\n' "$WANT_CONF" >"$tmp"
  chmod 0644 "$tmp"
  mv -f -- "$tmp" "$CONF"
  RESTART=1
  CHANGED=1
fi
if ! unit_enabled; then
  journal
  log "enabling $UNIT"
  systemctl enable "$UNIT" >&2 2>&1
  CHANGED=1
fi
if ! unit_active; then
  journal
  log "starting $UNIT"
  systemctl start "$UNIT"
  CHANGED=1
elif (( RESTART )); then
  log "config changed: restarting $UNIT"
  systemctl restart "$UNIT"
fi

# --- create: verify what earlyoom really runs with --------------------------------
# MainPID is set when systemd forks; wait until that process has exec'd earlyoom.
pid=""
GOT=()
for _ in $(seq 1 50); do
  pid=$(systemctl show -p MainPID --value "$UNIT")
  if [[ -n $pid && $pid != 0 && -r /proc/$pid/cmdline ]]; then
    mapfile -d '' -t GOT <"/proc/$pid/cmdline" || true
    [[ ${GOT[0]:-} == */earlyoom ]] && break
  fi
  sleep 0.2
done
[[ ${GOT[0]:-} == */earlyoom ]] || die "$UNIT is not running after start: $(systemctl status "$UNIT" --no-pager 2>&1 | tail -n 5)"
if [[ "${GOT[*]:1}" != "${ARGS[*]}" || ${#GOT[@]} -ne $(( ${#ARGS[@]} + 1 )) ]]; then
  die "earlyoom (pid $pid) runs with [${GOT[*]:1}], expected [${ARGS[*]}]"
fi
log "earlyoom pid $pid runs with: ${ARGS[*]}"

txn_commit
if (( CHANGED )); then echo changed; else echo unchanged; fi
