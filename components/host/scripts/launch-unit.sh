#!/usr/bin/env bash
# pulumi-vllm host step: launch-unit
#
# Runs the vLLM server as a systemd service: writes the unit rendered by
# components/host/render-unit.ts and a root-only environment file with the
# secrets, enables the unit and (re)starts it when either changed.
#
# Inputs (environment):
#   PV_ACTION            create | delete
#   PV_UNIT_NAME         unit name, e.g. vllm.service
#   PV_UNIT_CONTENT      the full unit text (renderUnit()); must contain
#                        `EnvironmentFile=PV_ENV_FILE` and no secret value
#   PV_ENV_FILE          absolute path of the secrets file, e.g.
#                        /etc/pulumi-vllm/vllm.service.env
#   PV_PORT              optional: TCP port the server listens on; create
#                        refuses, before writing anything, when a process that
#                        is not this unit already listens there
#   PV_BIND_HOST         optional: address it binds (default 0.0.0.0)
#   PV_REQUIRED_SECRETS  optional: comma-separated names that must be on stdin
#                        (e.g. VLLM_API_KEY)
#   PV_ADOPT             optional: 1 = take over a unit of this name that this
#                        step did not make (default 0: refuse it, so that no
#                        other service is overwritten and later deleted)
#   PV_VENV_LINK         optional (with PV_VENV_TARGET): the path the unit runs
#                        vLLM from (host.venvPath, ExecStart=<link>/bin/vllm),
#                        a symlink this step points at PV_VENV_TARGET
#   PV_VENV_TARGET       the versioned venv to run (made and verified by the
#                        vllm-install step), e.g. /opt/pulumi-vllm/venvs/0.11.0-py3.12
#   PV_HEALTH_URL        optional: the server's base URL, e.g.
#                        http://127.0.0.1:8000; with PV_SERVED_MODEL and
#                        PV_SWITCH_TIMEOUT, the gate of a switch (below)
#   PV_SERVED_MODEL      the model name /v1/models must list
#   PV_SWITCH_TIMEOUT    seconds the new server has to answer after a switch
#   PV_SERVICE_USER      optional: the system user the unit runs as (its
#                        User=); made here (useradd --system, no login, put in
#                        the groups `video` and `render` where the host has
#                        them: the GPU device nodes), unless it exists. Unset:
#                        no user is made (a unit of release 0.1.0, as root).
#   PV_SERVICE_HOME      with PV_SERVICE_USER: the server's home (HOME, its
#                        compile caches), made 0700 for the user
#   PV_CACHE_DIR         with PV_SERVICE_USER: HF_HOME, made if absent and
#                        given to the user (what root owned in it too: a
#                        server of release 0.1.0 ran as root)
#   PV_ADOPT_USER        optional: 1 = run as a PV_SERVICE_USER that exists and
#                        that this step did not make (default 0: refuse it)
# Secrets (stdin, create only): `NAME=value` lines (may be empty), e.g.
#   VLLM_API_KEY=...  HF_TOKEN=...   They never travel as env or argv, and
#   this script never prints a value.
#
# create:
#   - env file: written (umask 077, temp file + rename, root:root 0600) only
#     when its content or mode differs; values are double-quoted for systemd.
#   - unit: /etc/systemd/system/PV_UNIT_NAME written (0644) only when it
#     differs, then `systemctl daemon-reload`; enabled if not enabled.
#   - service: restarted when the unit, the env file or the link changed,
#     started when not active (after reset-failed), else left alone (same PID).
#   - switch: when the link moves from one venv to another while the server
#     runs (a vLLM upgrade), the old server serves until this restart, and the
#     new one must answer /health and list PV_SERVED_MODEL on /v1/models within
#     PV_SWITCH_TIMEOUT. If it does not (it crashed, systemd restarts it, the
#     time runs out), its last journal lines are printed (secrets redacted),
#     the step fails and its rollback points the link and the unit back at the
#     previous venv, restarts the previous server, waits for its /health and
#     says `rolled back to <venv>`. The failed update leaves the state with the
#     old inputs, which is again what the host runs: the next `up` retries the
#     upgrade, and a reverted config changes nothing.
#   - A real directory at PV_VENV_LINK (the one venv of releases before
#     versioned venvs) that pulumi-vllm made (the uv-venv step's record) is
#     replaced by the link once the new server answered, and removed with the
#     records of it; one it did not make is refused.
# delete: stops and disables the unit, removes the unit file, the env file
#   (and the empty /etc/pulumi-vllm) and the venv link, daemon-reload,
#   reset-failed; removes the server's home, and the service user once no unit
#   of this step uses it: if this step made it, the user (and what it owns in
#   the model cache goes back to root, so that no file belongs to a uid a later
#   account may get); if it was adopted, only the groups this step put it in. A unit
#   that was adopted (PV_ADOPT=1) gets its original file back instead, enabled
#   and running as it was.
# Ownership: create refuses a unit of this name that exists on the host (in
#   /etc/systemd/system or from a package) without a record of this step,
#   unless PV_ADOPT=1; and a PV_SERVICE_USER it did not make, unless
#   PV_ADOPT_USER=1, or of uid 0; and a PV_CACHE_DIR owned by another user.
#
# A create or update that fails (e.g. systemd refuses the unit, the restart
# fails) puts back what this run replaced: the previous unit and env file (or
# none), the unit's enabled state, and restarts the previous server if it was
# running (lib/txn.sh). Time limit: 600 s, plus twice PV_SWITCH_TIMEOUT
# (PV_STEP_TIMEOUT).
# State for undo: /var/lib/pulumi-vllm/launch-unit/<unit>.state (env file path,
#   venv link, service user, home, cache dir); launch-unit/users/<user> (made
#   or adopted, the groups added).
# Needs: root, systemd.
# Output: progress on stderr; the last stdout line is `changed` or `unchanged`.
set -euo pipefail

log() { printf 'launch-unit: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
trap 'log "ERROR: unexpected failure (exit $?) at line $LINENO"' ERR
# shellcheck source=SCRIPTDIR/lib/txn.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/txn.sh"
# shellcheck source=SCRIPTDIR/lib/redact.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/redact.sh"
cd /  # a neutral cwd: uv reads uv.toml/pyproject.toml from it, and it may be unreadable

ACTION=${PV_ACTION:-}
UNIT=${PV_UNIT_NAME:-}
ENV_FILE=${PV_ENV_FILE:-}
PORT=${PV_PORT:-}
BIND_HOST=${PV_BIND_HOST:-0.0.0.0}
REQUIRED=${PV_REQUIRED_SECRETS:-}
ADOPT=${PV_ADOPT:-0}
LINK=${PV_VENV_LINK:-}
TARGET=${PV_VENV_TARGET:-}
HEALTH_URL=${PV_HEALTH_URL:-}
MODEL=${PV_SERVED_MODEL:-}
SWITCH_TIMEOUT=${PV_SWITCH_TIMEOUT:-0}
STATE_DIR=/var/lib/pulumi-vllm/launch-unit
SERVICE_USER=${PV_SERVICE_USER:-}
SERVICE_HOME=${PV_SERVICE_HOME:-}
CACHE_DIR=${PV_CACHE_DIR:-}
ADOPT_USER=${PV_ADOPT_USER:-0}
USERS_DIR=$STATE_DIR/users

[[ $(id -u) -eq 0 ]] || die "must run as root (use sudo)"
[[ $ACTION == create || $ACTION == delete ]] || die "PV_ACTION must be create or delete, got '$ACTION'"
[[ $UNIT =~ ^[A-Za-z0-9:_.@-]+\.service$ ]] || die "PV_UNIT_NAME must look like vllm.service, got '$UNIT'"
[[ $ENV_FILE == /* && $ENV_FILE != */ && ! $ENV_FILE =~ [[:space:]] ]] || \
  die "PV_ENV_FILE must be an absolute file path without spaces, got '$ENV_FILE'"
if [[ -n $SERVICE_USER ]]; then
  [[ $SERVICE_USER =~ ^[a-z_][a-z0-9_-]{0,31}$ && $SERVICE_USER != root ]] || die "PV_SERVICE_USER must be a user name like vllm (not root), got '$SERVICE_USER'"
  for d in "$SERVICE_HOME" "$CACHE_DIR"; do
    [[ $d == /?* && $d != */ && ! $d =~ [[:space:]] && $d != *//* && $d != */./* && $d != */../* ]] || \
      die "PV_SERVICE_HOME and PV_CACHE_DIR must be normalized absolute paths without spaces, got '$d'"
  done
fi
UNIT_FILE=/etc/systemd/system/$UNIT
STATE="$STATE_DIR/$UNIT.state"
ORIG="$STATE_DIR/$UNIT.orig"
command -v systemctl >/dev/null || die "systemctl not found: this step needs systemd"
if [[ -n $LINK || -n $TARGET ]]; then
  [[ $LINK == /* && $TARGET == /* && $LINK != "$TARGET" ]] || die "PV_VENV_LINK and PV_VENV_TARGET must be two absolute paths, got '$LINK' and '$TARGET'"
  LINK=${LINK%/}
  TARGET=${TARGET%/}
fi
[[ $SWITCH_TIMEOUT =~ ^[0-9]+$ ]] || die "PV_SWITCH_TIMEOUT must be seconds, got '$SWITCH_TIMEOUT'"
[[ -z $HEALTH_URL || $HEALTH_URL =~ ^https?://[^[:space:]]+$ ]] || die "PV_HEALTH_URL must be an http(s) URL, got '$HEALTH_URL'"

# ---------------------------------------------------------------- helpers --
declare -a SECRET_VALUES=()


journal_tail() {
  journalctl -a -u "$UNIT" -n "${1:-30}" --no-pager -o short-iso 2>/dev/null | redact >&2 || true
}

# systemd EnvironmentFile double-quoted value: \ " ` $ are backslash-escaped.
env_quote() {
  local v=$1
  v=${v//\\/\\\\}
  v=${v//\"/\\\"}
  v=${v//\`/\\\`}
  v=${v//\$/\\\$}
  printf '"%s"' "$v"
}

is_wildcard() { [[ $1 == 0.0.0.0 || $1 == :: || $1 == "" || $1 == "[::]" ]]; }

# hex address from /proc/net/tcp (little-endian IPv4) -> dotted quad
hex_to_ipv4() {
  local h=$1
  printf '%d.%d.%d.%d' "0x${h:6:2}" "0x${h:4:2}" "0x${h:2:2}" "0x${h:0:2}"
}

# Refuses when PORT is listened on by a process that is not this unit.
check_port() {
  [[ -n $PORT ]] || return 0
  if ! [[ $PORT =~ ^[0-9]+$ ]] || (( PORT < 1 || PORT > 65535 )); then die "PV_PORT must be 1..65535, got '$PORT'"; fi
  local bind=$BIND_HOST hexport cg
  [[ $bind == localhost ]] && bind=127.0.0.1
  hexport=$(printf '%04X' "$PORT")
  cg=$(systemctl show -p ControlGroup --value "$UNIT" 2>/dev/null || true)
  local file addr inode ip conflict pids pid comm owner_cg
  for file in /proc/net/tcp /proc/net/tcp6; do
    [[ -r $file ]] || continue
    while read -r addr inode; do
      ip=${addr%:*}
      conflict=0
      if [[ ${#ip} -eq 8 ]]; then
        ip=$(hex_to_ipv4 "$ip")
        if is_wildcard "$bind" || is_wildcard "$ip" || [[ $ip == "$bind" ]]; then conflict=1; fi
      else
        if [[ $ip =~ ^0+$ ]]; then ip="::"; else ip="(IPv6 $ip)"; fi
        if is_wildcard "$bind" || [[ $ip == "::" || $bind == *:* ]]; then conflict=1; fi
      fi
      (( conflict )) || continue
      # find exits 1 when a process vanishes mid-scan: that is not an error here
      pids=$( { find /proc/[0-9]*/fd -lname "socket:\\[$inode\\]" 2>/dev/null || true; } | cut -d/ -f3 | sort -u | tr '\n' ' ')
      if [[ -z ${pids// /} ]]; then
        die "port $PORT ($ip) is already in use by a process not visible from here (another container or namespace), not $UNIT: stop it or choose another port"
      fi
      for pid in $pids; do
        owner_cg=$(sed -n 's/^0:://p' "/proc/$pid/cgroup" 2>/dev/null || true)
        if [[ -n $cg && ( $owner_cg == "$cg" || $owner_cg == "$cg"/* ) ]]; then continue; fi
        comm=$(cat "/proc/$pid/comm" 2>/dev/null || echo '?')
        die "port $PORT ($ip) is already in use by pid $pid ($comm, cgroup ${owner_cg:-?}), which is not $UNIT: stop it or choose another port (PV_PORT)"
      done
    done < <(awk -v p=":$hexport" 'NR > 1 && $4 == "0A" && substr($2, length($2) - 4) == p { print $2, $10 }' "$file")
  done
}

# write_if_changed TARGET MODE CONTENT: makes TARGET (root:root MODE) hold
# exactly CONTENT, through a temp file in the same directory and a rename,
# unless it already does (then nothing is touched, not even the directory).
# Returns 0 if it wrote. CONTENT never goes into argv (printf is a builtin).
write_if_changed() {
  local target=$1 mode=$2 content=$3 tmp
  if [[ -f $target ]] && cmp -s -- "$target" <(printf '%s' "$content") && \
     [[ $(stat -c '%a %u %g' -- "$target") == "$mode 0 0" ]]; then
    return 1
  fi
  journal
  tmp=$(mktemp "$(dirname "$target")/.pv-tmp.XXXXXX")
  printf '%s' "$content" >"$tmp"
  chown 0:0 -- "$tmp"
  chmod "$mode" -- "$tmp"
  mv -f -- "$tmp" "$target"
  return 0
}

# Rollback of a failed create/update, run after the files are restored: the
# unit as it was (enabled or not, running or not), or gone.
undo_service() { # was_enabled was_active
  systemctl daemon-reload || true
  if [[ -f $UNIT_FILE ]]; then
    if [[ $1 == 1 ]]; then systemctl enable "$UNIT" 2>/dev/null || true; else systemctl disable "$UNIT" 2>/dev/null || true; fi
    systemctl reset-failed "$UNIT" >/dev/null 2>&1 || true
    if [[ $2 == 1 ]]; then
      log "rollback: restarting the previous $UNIT"
      systemctl restart "$UNIT" || log "rollback: the previous $UNIT did not start either"
    else
      systemctl stop "$UNIT" 2>/dev/null || true
    fi
  else
    systemctl stop "$UNIT" 2>/dev/null || true
    systemctl reset-failed "$UNIT" >/dev/null 2>&1 || true
  fi
}

# ------------------------------------------------------- venv switch --
# The venv the link points at ("" when there is no link yet).
link_target() { if [[ -L $LINK ]]; then readlink -- "$LINK"; elif [[ -e $LINK ]]; then printf '%s' "$LINK"; fi; }

# Records of a real venv at LINK made by an earlier release (uv-venv made it,
# vllm-install filled it); none when it was adopted or is someone else's.
legacy_records() {
  local f root=/var/lib/pulumi-vllm
  f="$root/uv-venv/$(printf '%s' "$LINK" | sha256sum | cut -c1-16).state"
  [[ -f $f ]] && grep -qxF "venv=$LINK" "$f" && grep -qx 'adopted=0' "$f" || return 0
  printf '%s\n' "$f"
  grep -lxF "venv=$LINK" "$root"/vllm-install/*.state 2>/dev/null || true
}

# Does the new server answer: /health 200 and /v1/models listing MODEL?
# Fails as soon as the unit fails, is restarted by systemd, or time runs out.
switch_gate() {
  local since=$1 start now code restarts0 u
  start=$(date +%s)
  restarts0=$(systemctl show -p NRestarts --value "$UNIT" 2>/dev/null || echo 0)
  log "waiting up to ${SWITCH_TIMEOUT}s for vLLM from $TARGET to answer at $HEALTH_URL"
  while :; do
    code=$(curl -s -o /dev/null -m 5 --connect-timeout 3 -w '%{http_code}' -- "$HEALTH_URL/health" 2>/dev/null || true)
    if [[ $code == 200 ]]; then
      if models_list_model; then
        log "vLLM from $TARGET answers /health and lists '$MODEL' after $(($(date +%s) - start))s"
        return 0
      fi
    fi
    u=$(systemctl show -p ActiveState -p SubState -p NRestarts "$UNIT" 2>/dev/null | tr '\n' ' ')
    now=$(date +%s)
    case $u in
      *ActiveState=failed* | *ActiveState=inactive*) SWITCH_ERR="the server exited ($u)" ;;
      *SubState=auto-restart*) SWITCH_ERR="the server crashed and systemd is about to restart it" ;;
      *) if [[ $u =~ NRestarts=([0-9]+) ]] && ((BASH_REMATCH[1] > restarts0)); then
           SWITCH_ERR="the server crashed and was restarted by systemd"
         elif ((now - start >= SWITCH_TIMEOUT)); then
           SWITCH_ERR="it did not answer within ${SWITCH_TIMEOUT}s (host.readinessTimeoutMinutes)"
         else
           sleep 2
           continue
         fi ;;
    esac
    log "vLLM from $TARGET: its last journal lines (secrets redacted):"
    journalctl -a -u "$UNIT" --since "@$since" -n 40 --no-pager -q -o short-iso 2>/dev/null | redact >&2 || true
    return 1
  done
}

models_list_model() {
  local body
  body=$({
    if [[ -n ${SECRETS[VLLM_API_KEY]:-} ]]; then
      local k=${SECRETS[VLLM_API_KEY]//\\/\\\\}
      printf 'header = "Authorization: Bearer %s"\n' "${k//\"/\\\"}"
    fi
  } | curl -s -m 10 --connect-timeout 3 -K - -- "$HEALTH_URL/v1/models" 2>/dev/null || true)
  [[ $body == *"\"$MODEL\""* ]]
}

# Rollback of a failed switch, run once the previous unit is back and
# restarted (undo_service): waits for the previous server and says so.
after_rollback() { # previous-venv
  local start i code
  start=$(date +%s)
  for ((i = 0; ; i++)); do
    code=$(curl -s -o /dev/null -m 5 --connect-timeout 3 -w '%{http_code}' -- "$HEALTH_URL/health" 2>/dev/null || true)
    if [[ $code == 200 ]]; then
      log "rolled back to ${1##*/} ($1): it answers /health again after $(($(date +%s) - start))s"
      return 0
    fi
    if (($(date +%s) - start >= SWITCH_TIMEOUT)); then
      log "rolled back to ${1##*/} ($1), but it does not answer /health after ${SWITCH_TIMEOUT}s: see journalctl -u $UNIT"
      return 1
    fi
    sleep 2
  done
}

# ------------------------------------------------------------ service user --
# The server runs as PV_SERVICE_USER, not root: a system account of this
# step's making (or adopted), in the GPU groups, owning its home and the
# model cache. launch-unit/users/<user> records what this step did to the
# account: `created=1` (it made it), `group=G` (it added it to G), `cache=D`
# (it gave it D). These functions use journal() and state_get of create/delete.

user_record() { printf '%s/%s' "$USERS_DIR" "$1"; }
user_record_has() { [[ -f $(user_record "$1") ]] && grep -qxF -- "$2" "$(user_record "$1")"; }
# user_record_add USER LINE: journaled, once.
user_record_add() {
  local rec
  rec=$(user_record "$1")
  user_record_has "$1" "$2" && return 0
  journal
  txn_new_dir "$USERS_DIR"
  txn_save "$rec"
  install -d -m 0755 "$USERS_DIR"
  printf '%s\n' "$2" >>"$rec"
}

# The first missing directory on the way to $1 (what a rollback removes).
first_missing() {
  local p=$1
  while [[ ! -e $(dirname "$p") ]]; do p=$(dirname "$p"); done
  printf '%s' "$p"
}

# make_owned_dir DIR MODE: DIR (and its missing parents, root 0755) for the user.
make_owned_dir() {
  journal
  txn_new_dir "$(first_missing "$1")"
  install -d -m 0755 "$(dirname "$1")"
  install -d -m "$2" -o "$SERVICE_USER" -g "$SERVICE_USER" "$1"
}

# Rollback of a cache handed over: what the user owns there goes back to root.
give_back() { # dir user
  if [[ -d $1 ]] && id -u "$2" >/dev/null 2>&1; then find "$1" -user "$2" -exec chown -h 0:0 {} + || true; fi
}

service_user_create() {
  [[ -n $SERVICE_USER ]] || return 0
  local g uid
  if id -u "$SERVICE_USER" >/dev/null 2>&1; then
    uid=$(id -u "$SERVICE_USER")
    (( uid != 0 )) || die "user $SERVICE_USER has uid 0: vLLM would run as root -> choose another host.serviceUser"
    if [[ ! -f $(user_record "$SERVICE_USER") ]]; then
      [[ $ADOPT_USER == 1 ]] || die "user $SERVICE_USER already exists on this host and was not made by pulumi-vllm: refusing to run vLLM as it (and change its groups) -> choose another host.serviceUser, or list 'user' in host.adopt to use it (destroy then leaves it)"
      log "adopting the existing user $SERVICE_USER (PV_ADOPT_USER=1): delete will leave it"
      user_record_add "$SERVICE_USER" created=0
    fi
  else
    journal
    txn_undo userdel "$SERVICE_USER"
    useradd --system --user-group --no-create-home --home-dir "$SERVICE_HOME" --shell /usr/sbin/nologin \
      --comment "vLLM server (pulumi-vllm)" "$SERVICE_USER"
    user_record_add "$SERVICE_USER" created=1
    log "made the system user $SERVICE_USER (uid $(id -u "$SERVICE_USER"))"
  fi
  # GPU device nodes: /dev/dri/* and AMD's /dev/kfd are root:video / root:render
  # 0660 (NVIDIA's /dev/nvidia* are 0666 by default).
  for g in video render; do
    getent group "$g" >/dev/null || continue
    id -nG "$SERVICE_USER" | tr ' ' '\n' | grep -qxF "$g" && continue
    user_record_add "$SERVICE_USER" "group=$g"
    txn_undo gpasswd -d "$SERVICE_USER" "$g"
    gpasswd -a "$SERVICE_USER" "$g" >/dev/null
    log "added $SERVICE_USER to the group $g (GPU devices)"
  done
  # Its home: only its own (0700), and its owner's even if the user was renamed.
  if [[ ! -d $SERVICE_HOME ]]; then
    make_owned_dir "$SERVICE_HOME" 0700
  elif [[ $(stat -c %U "$SERVICE_HOME") != "$SERVICE_USER" ]]; then
    journal
    txn_undo chown -hR "$(stat -c %u:%g "$SERVICE_HOME")" "$SERVICE_HOME"
    chown -hR "$SERVICE_USER:$SERVICE_USER" "$SERVICE_HOME"
  fi
  # The model cache: made for it, or taken from root (a server of release 0.1.0,
  # or root's weights step, wrote it as root); another user's cache is not taken.
  if [[ ! -e $CACHE_DIR ]]; then
    make_owned_dir "$CACHE_DIR" 0750
    user_record_add "$SERVICE_USER" "cache=$CACHE_DIR"
  else
    [[ -d $CACHE_DIR && ! -L $CACHE_DIR ]] || die "$CACHE_DIR (host.cacheDir) exists and is not a directory -> choose another host.cacheDir"
    uid=$(stat -c %u "$CACHE_DIR")
    if [[ $uid != 0 && $uid != "$(id -u "$SERVICE_USER")" ]]; then
      die "$CACHE_DIR (host.cacheDir) belongs to $(stat -c %U "$CACHE_DIR"), neither root nor $SERVICE_USER: refusing to take it over -> choose another host.cacheDir, or give it to the service user yourself (chown -R $SERVICE_USER: $CACHE_DIR)"
    fi
    if [[ -n $(find "$CACHE_DIR" -user 0 -print -quit) ]]; then
      user_record_add "$SERVICE_USER" "cache=$CACHE_DIR"
      txn_undo give_back "$CACHE_DIR" "$SERVICE_USER"
      find "$CACHE_DIR" -user 0 -exec chown -h "$SERVICE_USER:$SERVICE_USER" {} +
      log "gave $CACHE_DIR to $SERVICE_USER (what root owned in it)"
    fi
  fi
}

# Fails early, with the fix, when the user could not start the server or write its cache.
service_user_check() {
  [[ -n $SERVICE_USER ]] || return 0
  local exe
  exe=$(sed -n 's/^ExecStart="\([^"]*\)".*/\1/p' <<<"$CONTENT" | head -n 1)
  if [[ -n $exe ]] && ! runuser -u "$SERVICE_USER" -- test -x "$exe"; then
    die "user $SERVICE_USER cannot run $exe: a directory on the way is closed to it -> make the venv readable (chmod -R a+rX on it) and its parents searchable (chmod o+x)"
  fi
  if ! runuser -u "$SERVICE_USER" -- test -w "$CACHE_DIR" -a -x "$CACHE_DIR"; then
    die "user $SERVICE_USER cannot write $CACHE_DIR (host.cacheDir): a parent directory is closed to it -> chmod o+x its parents, or choose another host.cacheDir"
  fi
}

# The lines of the unit's state about its user.
service_state() {
  [[ -n $SERVICE_USER ]] || return 0
  printf 'service_user=%s\nservice_home=%s\ncache_dir=%s\n' "$SERVICE_USER" "$SERVICE_HOME" "$CACHE_DIR"
}

# delete: the home of the unit whose state is read (it holds only caches).
service_home_remove() {
  local home
  home=$(state_get service_home)
  [[ $home == /var/lib/pulumi-vllm/home/?* && -d $home ]] || return 0
  log "removing $home"
  rm -rf -- "$home"
  rmdir --ignore-fail-on-non-empty /var/lib/pulumi-vllm/home 2>/dev/null || true
}

# Accounts no unit state names any more: a user this step made is removed
# (its files in the caches it was given go back to root first), an adopted
# one leaves the groups this step put it in. Runs last: it never fails a step.
service_users_gc() {
  local rec user line made
  for rec in "$USERS_DIR"/*; do
    [[ -f $rec ]] || continue
    user=${rec##*/}
    if grep -qxF -- "service_user=$user" "$STATE_DIR"/*.state 2>/dev/null; then continue; fi
    made=0
    grep -qx created=1 "$rec" && made=1
    while IFS= read -r line; do
      case $line in
        cache=*) give_back "${line#cache=}" "$user" ;;
        group=*) (( made )) || gpasswd -d "$user" "${line#group=}" >/dev/null 2>&1 || true ;;
      esac
    done <"$rec"
    if (( made )) && id -u "$user" >/dev/null 2>&1; then
      log "removing the system user $user (made by this step, no longer used)"
      userdel "$user" 2>&1 | sed 's/^/launch-unit: userdel: /' >&2 || true
      if getent group "$user" >/dev/null; then groupdel "$user" 2>/dev/null || true; fi
    else
      log "user $user is no longer used: left in place (not made by this step)"
    fi
    rm -f -- "$rec"
    changed=1
  done
  rmdir --ignore-fail-on-non-empty -- "$USERS_DIR" 2>/dev/null || true
}

limit=600
if [[ -n $LINK && -n $HEALTH_URL ]]; then limit=$((600 + 2 * SWITCH_TIMEOUT)); fi
txn_begin launch-unit "$limit"

# ----------------------------------------------------------------- delete --
state_get() { if [[ -f $STATE ]]; then sed -n "s/^$1=//p" "$STATE" | head -n 1; fi; }

# The venv link this step made (recorded), never anything else.
remove_link() {
  local link
  link=$(state_get venv_link)
  if [[ -n $link && -L $link ]]; then
    log "removing the link $link"
    rm -f -- "$link"
    changed=1
  fi
}

if [[ $ACTION == delete && $(state_get adopted) == 1 ]]; then
  # Not ours to delete: the unit as it was before this step took it over.
  log "$UNIT was adopted: putting its original back"
  if [[ -f $ORIG ]]; then cp -a -- "$ORIG" "$UNIT_FILE"; else rm -f -- "$UNIT_FILE"; fi
  systemctl daemon-reload
  if [[ $(state_get was_enabled) == 1 ]]; then systemctl enable "$UNIT" 2>/dev/null || true; else systemctl disable "$UNIT" 2>/dev/null || true; fi
  if [[ $(state_get was_active) == 1 ]]; then systemctl restart "$UNIT" || log "the original $UNIT did not start"; else systemctl stop "$UNIT" 2>/dev/null || true; fi
  env_file=$(state_get env_file)
  remove_link
  service_home_remove
  rm -f -- "${env_file:-$ENV_FILE}" "$ORIG" "$STATE"
  service_users_gc
  rmdir --ignore-fail-on-non-empty /etc/pulumi-vllm "$STATE_DIR" /var/lib/pulumi-vllm 2>/dev/null || true
  txn_commit
  echo changed
  exit 0
fi

if [[ $ACTION == delete ]]; then
  changed=0
  if [[ -f $UNIT_FILE ]] || systemctl cat "$UNIT" >/dev/null 2>&1; then
    if systemctl is-active --quiet "$UNIT" || systemctl is-enabled --quiet "$UNIT" 2>/dev/null; then
      log "stopping and disabling $UNIT"
      systemctl disable --now "$UNIT" >&2 2>/dev/null || systemctl stop "$UNIT" >&2 || true
      changed=1
    fi
  fi
  if [[ -f $UNIT_FILE ]]; then
    log "removing $UNIT_FILE"
    rm -f -- "$UNIT_FILE"
    systemctl daemon-reload
    changed=1
  fi
  systemctl reset-failed "$UNIT" >/dev/null 2>&1 || true
  remove_link
  env_file=$ENV_FILE
  if [[ -f $STATE ]]; then env_file=$(state_get env_file); fi
  for f in "$ENV_FILE" "$env_file"; do
    if [[ -n $f && -f $f ]]; then
      log "removing $f"
      rm -f -- "$f"
      changed=1
    fi
    if [[ -n $f && $(dirname "$f") == /etc/pulumi-vllm && -d /etc/pulumi-vllm ]]; then
      rmdir --ignore-fail-on-non-empty /etc/pulumi-vllm
    fi
  done
  service_home_remove
  if [[ -f $STATE ]]; then rm -f -- "$STATE"; changed=1; fi
  service_users_gc
  for d in "$STATE_DIR" /var/lib/pulumi-vllm; do
    if [[ -d $d ]]; then rmdir --ignore-fail-on-non-empty -- "$d"; fi
  done
  txn_commit
  if (( changed )); then echo changed; else echo unchanged; fi
  exit 0
fi

# ----------------------------------------------------------------- create --
CONTENT=${PV_UNIT_CONTENT:-}
[[ -n $CONTENT ]] || die "PV_UNIT_CONTENT is empty"
[[ $CONTENT == *$'\n[Service]\n'* ]] || die "PV_UNIT_CONTENT has no [Service] section"
env_line="EnvironmentFile=${ENV_FILE//%/%%}"
if ! grep -qxF -e "$env_line" -e "EnvironmentFile=-${ENV_FILE//%/%%}" <<<"$CONTENT"; then
  die "PV_UNIT_CONTENT does not load PV_ENV_FILE ($env_line): the secrets would not reach the server"
fi

# Secrets from stdin (never from a terminal).
declare -A SECRETS=()
declare -a SECRET_ORDER=()
if [[ ! -t 0 ]]; then
  while IFS= read -r line || [[ -n $line ]]; do
    [[ -z $line ]] && continue
    [[ $line == *=* ]] || die "stdin: a line is not NAME=value (line not shown: it may hold a secret)"
    name=${line%%=*}
    value=${line#*=}
    [[ $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "stdin: bad secret name (want [A-Za-z_][A-Za-z0-9_]*)"
    [[ -z ${SECRETS[$name]+x} ]] || die "stdin: secret $name is given twice"
    [[ $value != *$'\r'* ]] || die "stdin: secret $name contains a carriage return"
    SECRETS[$name]=$value
    SECRET_ORDER+=("$name")
    SECRET_VALUES+=("$value")
  done
fi
IFS=, read -r -a required <<<"$REQUIRED"
for name in "${required[@]}"; do
  name=${name// /}
  [[ -z $name ]] && continue
  [[ -n ${SECRETS[$name]+x} ]] || die "secret $name is required (PV_REQUIRED_SECRETS) but not on stdin"
done
for name in "${SECRET_ORDER[@]}"; do
  v=${SECRETS[$name]}
  if (( ${#v} >= 4 )) && [[ $CONTENT == *"$v"* ]]; then
    die "the value of secret $name appears in PV_UNIT_CONTENT; secrets belong only in the env file"
  fi
done

check_port

# Ownership: a unit of this name that this step has no record of belongs to
# someone else (another service, a package): never overwrite it silently.
adopting=0
# (FragmentPath: a unit file of this name anywhere systemd looks; drop-ins alone do not count.)
if [[ ! -f $STATE ]] && { [[ -e $UNIT_FILE ]] || [[ -n $(systemctl show -p FragmentPath --value "$UNIT" 2>/dev/null) ]]; }; then
  if [[ $ADOPT != 1 ]]; then
    die "$UNIT already exists on this host and was not made by pulumi-vllm: refusing to overwrite it (destroy would then remove it) -> choose another host.unitName, or list 'unit' in host.adopt to take it over (destroy then puts the original back)"
  fi
  adopting=1
  log "adopting the existing $UNIT (PV_ADOPT=1): its original is kept for delete"
fi

changed=0
umask 077

# What to put back if this run fails, journaled before the first change (a
# run that changes nothing writes nothing). The service first: its undo runs
# last, once the files are back.
env_dir=$(dirname "$ENV_FILE")
was_enabled=0; was_active=0
systemctl is-enabled --quiet "$UNIT" 2>/dev/null && was_enabled=1
case $(systemctl is-active "$UNIT" 2>/dev/null || true) in active | activating | reloading) was_active=1 ;; esac
# A switch of venv while the server runs is gated, and rolled back whole.
PREV_TARGET=
LEGACY=()
GATE=0
if [[ -n $LINK ]]; then
  PREV_TARGET=$(link_target)
  if [[ -e $LINK && ! -L $LINK ]]; then
    mapfile -t LEGACY < <(legacy_records)
    ((${#LEGACY[@]})) || die "$LINK exists and is not a venv or link pulumi-vllm made (or it was adopted): host.venvPath is now a link to the venv vLLM runs from -> move it away, or choose another host.venvPath"
  fi
  [[ -x $TARGET/bin/vllm ]] || die "$TARGET/bin/vllm is missing: the vllm-install step makes and verifies that venv first"
  if [[ -n $PREV_TARGET && $PREV_TARGET != "$TARGET" && -n $HEALTH_URL && $was_active == 1 ]]; then GATE=1; fi
fi

JOURNALED=0
journal() {
  (( JOURNALED )) && return 0
  # Undone last, once the previous unit, env file and link are back and restarted.
  if (( GATE )); then txn_undo after_rollback "$PREV_TARGET"; fi
  txn_undo undo_service "$was_enabled" "$was_active"
  txn_new_dir "$env_dir"
  txn_new_dir "$STATE_DIR"
  txn_save "$ENV_FILE" "$UNIT_FILE" "$STATE"
  JOURNALED=1
}

# env file
if [[ ! -d $env_dir ]]; then
  journal
  install -d -m 0700 -o root -g root "$env_dir"
fi
env_content=$(printf '# Managed by pulumi-vllm (launch-unit.sh) for %s. Root-only secrets; do not edit.\n' "$UNIT"
  for name in $(printf '%s\n' "${SECRET_ORDER[@]}" | sort); do
    printf '%s=%s\n' "$name" "$(env_quote "${SECRETS[$name]}")"
  done)
env_changed=0
if write_if_changed "$ENV_FILE" 600 "$env_content"$'\n'; then
  env_changed=1
  log "wrote $ENV_FILE (root:root 0600, ${#SECRET_ORDER[@]} secret(s): ${SECRET_ORDER[*]:-none})"
else
  log "$ENV_FILE unchanged"
fi

# unit file
umask 022
service_user_create
if (( adopting )) && [[ -f $UNIT_FILE && ! -f $ORIG ]]; then
  journal
  txn_save "$ORIG"
  install -d -m 0755 "$STATE_DIR"
  cp -a -- "$UNIT_FILE" "$ORIG"
fi
unit_changed=0
if write_if_changed "$UNIT_FILE" 644 "$CONTENT"; then
  unit_changed=1
  log "wrote $UNIT_FILE"
  systemctl daemon-reload
else
  log "$UNIT_FILE unchanged"
fi
# venv link: where ExecStart's <link>/bin/vllm leads
link_changed=0
if [[ -n $LINK && $PREV_TARGET != "$TARGET" ]]; then
  journal
  if ((${#LEGACY[@]})); then
    # The one venv of an earlier release: kept aside (the rollback target) until the new server answers.
    log "$LINK is the venv an earlier release made: it becomes a link (the venv is removed once the new server answers)"
    txn_save "${LEGACY[@]}"
    rm -f -- "${LEGACY[@]}"
    txn_move_aside "$LINK"
  fi
  txn_save "$LINK"
  txn_new_dir "$(dirname "$LINK")"
  install -d -m 0755 "$(dirname "$LINK")"
  ln -sfnT "$TARGET" "$LINK.pv-tmp"
  mv -fT -- "$LINK.pv-tmp" "$LINK"
  link_changed=1
  log "pointed $LINK at $TARGET (before: ${PREV_TARGET:-nothing})"
fi

load_state=$(systemctl show -p LoadState --value "$UNIT")
if [[ $load_state != loaded ]]; then
  systemctl status "$UNIT" --no-pager 2>&1 | head -n 20 | redact >&2 || true
  die "systemd could not load $UNIT (LoadState=$load_state); see above"
fi
service_user_check

if [[ ! -f $STATE || $(state_get env_file) != "$ENV_FILE" || $(state_get venv_link) != "$LINK" \
  || $(grep '^service_\|^cache_dir=' "$STATE") != "$(service_state)" ]]; then
  journal
  install -d -m 0755 "$STATE_DIR"
  adopted=$(state_get adopted)
  (( adopting )) && adopted=1
  # (an adopted unit's state before the takeover is what delete restores: kept)
  { printf 'env_file=%s\nadopted=%s\nwas_enabled=%s\nwas_active=%s\nvenv_link=%s\n' "$ENV_FILE" "${adopted:-0}" \
      "$(state_get was_enabled || true)" "$(state_get was_active || true)" "$LINK"; service_state; } >"$STATE.tmp"
  sed -i "s/^was_enabled=$/was_enabled=$was_enabled/; s/^was_active=$/was_active=$was_active/" "$STATE.tmp"
  mv -f -- "$STATE.tmp" "$STATE"
fi

if ! systemctl is-enabled --quiet "$UNIT" 2>/dev/null; then
  journal
  log "enabling $UNIT"
  systemctl enable "$UNIT" >&2 2>/dev/null || systemctl enable "$UNIT" >&2
  changed=1
fi

active=$(systemctl is-active "$UNIT" 2>/dev/null || true)
action=
if (( unit_changed || env_changed || link_changed )); then
  case $active in
    active | activating | reloading) action=restart ;;
    *) action=start ;;
  esac
elif [[ $active != active && $active != activating && $active != reloading ]]; then
  action=start
fi
if [[ -n $action ]]; then
  if (( unit_changed || env_changed || link_changed )); then
    log "configuration changed: ${action}ing $UNIT"
  else
    log "$UNIT is ${active:-unknown}: starting it"
  fi
  journal
  systemctl reset-failed "$UNIT" >/dev/null 2>&1 || true
  switch_since=$(date +%s)
  # Type=exec: this returns once the server binary has been executed; whether
  # it then comes up is the readiness gate's business.
  if ! out=$(systemctl "$action" "$UNIT" 2>&1); then
    printf '%s\n' "$out" | redact >&2
    log "last journal lines of $UNIT (secrets redacted):"
    journal_tail 30
    die "systemctl $action $UNIT failed (state: $(systemctl is-active "$UNIT" || true))"
  fi
  if ((GATE)) && ! switch_gate "$switch_since"; then
    die "vLLM from $TARGET does not serve: $SWITCH_ERR -> rolling back to ${PREV_TARGET##*/}"
  fi
  changed=1
else
  log "$UNIT is active and its configuration is unchanged"
fi
if (( unit_changed || env_changed || link_changed )); then changed=1; fi
log "$UNIT: $(systemctl is-active "$UNIT" || true), MainPID $(systemctl show -p MainPID --value "$UNIT")"
service_users_gc
txn_commit
if (( changed )); then echo changed; else echo unchanged; fi
