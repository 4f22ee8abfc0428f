#!/usr/bin/env bash
# pulumi-vllm host step: vllm-install
#
# Installs a pinned Python distribution (vLLM, or in tests a small stand-in)
# into the venv made by the uv-venv step, with that step's uv.
#
# Inputs (environment):
#   PV_ACTION         create | delete
#   PV_VENV_PATH      absolute path of the venv (made by uv-venv)
#   PV_UV_BIN         absolute path of the uv binary (made by uv-venv)
#   PV_PACKAGE        the requirement to install, e.g. `vllm==0.11.0`
#                     (one pip requirement; extras and URLs allowed)
#   PV_DIST_NAME      distribution name importlib.metadata must know, e.g. vllm
#   PV_DIST_VERSION   version it must report afterwards, e.g. 0.11.0
#   PV_IMPORT_NAME    module imported to verify the install, e.g. vllm
#   PV_FIND_LINKS     optional: a local directory of wheels (uv --find-links)
#   PV_INDEX_URL      optional: package index (default PyPI); HPC sites point
#                     this at their mirror. uv gets it in its environment
#                     (UV_INDEX_URL), not in argv. Never with a login in it:
#                     that comes on stdin (below)
#   PV_NO_INDEX       optional: 1 = use only PV_FIND_LINKS (uv --no-index)
#   PV_TORCH_BACKEND  optional: uv --torch-backend (e.g. auto, cu128) for vLLM
#   PV_UV_SYSTEM_CERTS optional: 1 (default) = uv trusts the system CA store
#                     (site proxies / mirrors with their own CA), 0 = uv's
#                     bundled roots
#   PV_STATE_DIR      optional: state root (default /var/lib/pulumi-vllm); this
#                     step keeps its state in PV_STATE_DIR/vllm-install
# Versioned venvs (single host): set PV_VENVS_DIR and the step makes the venv
# itself, one per release, and keeps the last few:
#   PV_VENVS_DIR      directory of the versioned venvs, e.g. /opt/pulumi-vllm/venvs;
#                     PV_VENV_PATH must then be PV_VENVS_DIR/<name>, e.g.
#                     /opt/pulumi-vllm/venvs/0.11.0-py3.12
#   PV_PYTHON         the venv's Python (a version: 3.12), found by uv, never
#                     downloaded
#   PV_KEEP_VENVS     optional: venvs kept (default 2), counting the one this
#                     run installs or selects; the older ones this step made
#                     are removed. The venv PV_ACTIVE_LINK points at is kept in
#                     any case (the running server's, the rollback target)
#   PV_ACTIVE_LINK    optional: the symlink the launch-unit step points at the
#                     venv the server runs (host.venvPath)
# Secrets (stdin, optional): an `INDEX_CREDENTIALS=<user>:<password>` line,
#   the login to PV_INDEX_URL (a private mirror; the stack's secret
#   indexCredentials). uv gets it inside UV_INDEX_URL
#   (https://<user>:<password>@host/..., percent-encoded) in its environment,
#   never in argv, and sends it to that index's host only; everything uv
#   prints goes through redact (lib/redact.sh). A refusal by the index (HTTP
#   401/403) fails with the fix. Other NAME=value lines are ignored. A new or
#   rotated login alone changes nothing here: a release that verifies is not
#   installed again.
#
# Versioned create: the venv is made (uv venv) when absent, the package
#   installed, and verified: the version importlib.metadata reports, the
#   import, and `<venv>/bin/vllm --version` (exit 0, printing the version). A
#   venv that already verifies is left alone (nothing else runs: the server
#   keeps serving from whichever venv it uses). Each venv this step made has a
#   record in PV_STATE_DIR/vllm-install/venvs/ (its ownership: only recorded
#   venvs are ever removed; a directory at PV_VENV_PATH without one is refused).
#   Then the oldest recorded venvs beyond PV_KEEP_VENVS are removed.
# Versioned delete: every recorded venv in PV_VENVS_DIR is removed, except the
#   one PV_ACTIVE_LINK still points at (destroy deletes the unit and its link
#   first; a replacement of this step alone must not pull the running
#   server's venv away).
#
# create: nothing happens when PV_DIST_NAME is installed in the venv at
#   exactly PV_DIST_VERSION and PV_IMPORT_NAME imports. Otherwise
#   `uv pip install PV_PACKAGE` (a version change replaces the old version),
#   then the same check must pass, or the step fails.
# delete: `uv pip uninstall PV_DIST_NAME` when this step installed it (its
#   record says so) and it is still in the venv (its dependencies stay;
#   deleting the venv removes them). A distribution that was already there
#   before this step, at the wanted version, is not this step's: left alone.
#
# A create or update that fails (the install, the version check, the import,
# the time limit) puts the venv's packages back as they were (`uv pip sync`
# to the list frozen before, from uv's cache) (lib/txn.sh). Time limit:
# 3600 s (PV_STEP_TIMEOUT).
# State for undo: PV_STATE_DIR/vllm-install/<sha of venv+dist>.state
# Needs: write access to the venv and the state dir (root for the defaults;
# on a SLURM login node it runs as the user on a shared filesystem), the venv
# and uv of the uv-venv step, the index (or the wheels).
# Output: progress on stderr; the last stdout line is `changed` or `unchanged`.
set -euo pipefail

log() { printf 'vllm-install: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
trap 'log "ERROR: unexpected failure (exit $?) at line $LINENO"' ERR
# shellcheck source=SCRIPTDIR/lib/txn.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/txn.sh"
# shellcheck source=SCRIPTDIR/lib/redact.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/redact.sh"
# shellcheck source=SCRIPTDIR/lib/index-login.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/index-login.sh"
cd /  # a neutral cwd: uv reads uv.toml/pyproject.toml from it, and it may be unreadable

ACTION=${PV_ACTION:-}
VENV=${PV_VENV_PATH:-}
UV=${PV_UV_BIN:-}
PACKAGE=${PV_PACKAGE:-}
DIST=${PV_DIST_NAME:-}
DIST_VERSION=${PV_DIST_VERSION:-}
IMPORT=${PV_IMPORT_NAME:-}
FIND_LINKS=${PV_FIND_LINKS:-}
INDEX_URL=${PV_INDEX_URL:-}
NO_INDEX=${PV_NO_INDEX:-0}
TORCH_BACKEND=${PV_TORCH_BACKEND:-}
SYSTEM_CERTS=${PV_UV_SYSTEM_CERTS:-1}
STATE_ROOT=${PV_STATE_DIR:-/var/lib/pulumi-vllm}
STATE_ROOT=${STATE_ROOT%/}
STATE_DIR=$STATE_ROOT/vllm-install

[[ $STATE_ROOT == /* ]] || die "PV_STATE_DIR must be an absolute path"
[[ $ACTION == create || $ACTION == delete ]] || die "PV_ACTION must be create or delete, got '$ACTION'"
[[ $VENV == /* ]] || die "PV_VENV_PATH must be an absolute path, got '$VENV'"
VENV=${VENV%/}
[[ $DIST =~ ^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$ ]] || die "PV_DIST_NAME must be a distribution name, got '$DIST'"
[[ $NO_INDEX == 0 || $NO_INDEX == 1 ]] || die "PV_NO_INDEX must be 0 or 1"
[[ $SYSTEM_CERTS == 0 || $SYSTEM_CERTS == 1 ]] || die "PV_UV_SYSTEM_CERTS must be 0 or 1"

PY="$VENV/bin/python"
state_key=$(printf '%s\n%s' "$VENV" "$DIST" | sha256sum | cut -c1-16)
STATE="$STATE_DIR/$state_key.state"

export UV_PYTHON_DOWNLOADS=never UV_NO_PROGRESS=1
export UV_HTTP_TIMEOUT=${UV_HTTP_TIMEOUT:-300}
if [[ $SYSTEM_CERTS == 1 ]]; then
  # uv <= 0.9 reads UV_NATIVE_TLS, newer uv UV_SYSTEM_CERTS; each ignores the other.
  export UV_NATIVE_TLS=1 UV_SYSTEM_CERTS=1
fi

# Installed version of $DIST in the venv ("" when absent).
installed_version() {
  [[ -x $PY ]] || return 0
  "$PY" - "$DIST" <<'PY' 2>/dev/null || true
import sys
from importlib import metadata
try:
    print(metadata.version(sys.argv[1]))
except metadata.PackageNotFoundError:
    pass
PY
}

# Imports $IMPORT; prints the error on failure.
import_ok() {
  "$PY" -c 'import importlib, sys; importlib.import_module(sys.argv[1])' "$IMPORT"
}

remove_empty_dirs() {
  local d
  for d in "$STATE_DIR" "$STATE_ROOT"; do
    if [[ -d $d ]]; then rmdir --ignore-fail-on-non-empty -- "$d" 2>/dev/null || true; fi
  done
}

# The index of this step (also what a rollback reinstalls from): in uv's
# environment, where the login can go (argv is readable by every user).
index_login_read
if [[ -n $INDEX_USER && -z $INDEX_URL ]]; then die "stdin: INDEX_CREDENTIALS given without PV_INDEX_URL (the login is for a mirror) -> set vllm.indexUrl"; fi
if [[ -n $INDEX_URL ]]; then
  UV_INDEX_URL=$(index_url_with_login "$INDEX_URL")
  export UV_INDEX_URL
  unset UV_DEFAULT_INDEX
fi
INDEX_NOTE=${INDEX_URL:+ (index $INDEX_URL${INDEX_USER:+, with the login of indexCredentials})}
INDEX_ARGS=()
if [[ $NO_INDEX == 1 ]]; then INDEX_ARGS+=(--no-index); fi
if [[ -n $FIND_LINKS ]]; then INDEX_ARGS+=(--find-links "$FIND_LINKS"); fi

# uv "$@", everything it prints redacted (the login may be in an error's URL);
# on failure: dies with $UV_FAILED, and the fix when the index refused.
uv_redacted() {
  local out refusal
  out=$(mktemp)
  if "$UV" "$@" 2>&1 | redact | tee -- "$out" >&2; then
    rm -f -- "$out"
    return 0
  fi
  refusal=$(index_refusal "$out")
  rm -f -- "$out"
  die "$UV_FAILED${refusal:+: $refusal}"
}

# ----------------------------------------------------- versioned venvs --
# Field $2 of the ownership record $1.
rec_get() { sed -n "s/^$2=//p" "$1" | head -n 1; }

# The venv PV_ACTIVE_LINK points at ("" when it is not a link).
active_target() {
  [[ -n ${PV_ACTIVE_LINK:-} && -L $PV_ACTIVE_LINK ]] || return 0
  readlink -- "$PV_ACTIVE_LINK"
}

# The install verifies: version, import, and the server's own entry point.
verify_venv() {
  local got err out
  got=$(installed_version)
  [[ $got == "$DIST_VERSION" ]] || { VERIFY_ERR="$DIST reports version '${got:-none}', not $DIST_VERSION"; return 1; }
  err=$(import_ok 2>&1) || { VERIFY_ERR="'import $IMPORT' fails: ${err##*$'\n'}"; return 1; }
  [[ -x $VENV/bin/vllm ]] || { VERIFY_ERR="$VENV/bin/vllm is missing: the package has no vllm entry point"; return 1; }
  if ! out=$(timeout 600 "$VENV/bin/vllm" --version 2>&1 </dev/null); then
    VERIFY_ERR="'$VENV/bin/vllm --version' fails (does this host see its GPU? nvidia-smi): $(tail -n 3 <<<"$out" | tr '\n' ' ')"
    return 1
  fi
  [[ $out == *"$DIST_VERSION"* ]] || { VERIFY_ERR="'vllm --version' prints '$(tail -n 1 <<<"$out")', not $DIST_VERSION"; return 1; }
  VERIFY_OUT=$(tail -n 1 <<<"$out")
  return 0
}

# Records this step made, of venvs in VENVS_DIR, newest install first.
owned_records() {
  local f v
  for f in "$REC_DIR"/*.venv; do
    [[ -f $f ]] || continue
    v=$(rec_get "$f" venv)
    [[ $(dirname -- "$v") == "$VENVS_DIR" ]] || continue
    printf '%s %s\n' "$(rec_get "$f" installed)" "$f"
  done | sort -rn | cut -d' ' -f2-
}

# Removes the oldest recorded venvs beyond KEEP (this run's counts first),
# never the active one. Journaled: a failed run puts them back.
prune_venvs() {
  local active f v kept=1
  active=$(active_target)
  while IFS= read -r f; do
    [[ -n $f ]] || continue
    v=$(rec_get "$f" venv)
    [[ $v == "$VENV" ]] && continue
    if ((kept < KEEP)); then
      kept=$((kept + 1))
      continue
    fi
    if [[ $v == "$active" ]]; then
      log "keeping $v: the server runs it (older than the last $KEEP)"
      continue
    fi
    log "removing $v (pulumi-vllm made it; only the last $KEEP venvs are kept)"
    txn_save "$f"
    rm -f -- "$f"
    txn_move_aside "$v"
    PRUNED=1
  done < <(owned_records)
}

versioned_venvs() {
  VENVS_DIR=${PV_VENVS_DIR%/}
  KEEP=${PV_KEEP_VENVS:-2}
  REC_DIR=$STATE_DIR/venvs
  [[ $VENVS_DIR == /* ]] || die "PV_VENVS_DIR must be an absolute path, got '$VENVS_DIR'"
  if ! [[ $KEEP =~ ^[0-9]+$ ]] || ((KEEP < 1 || KEEP > 100)); then die "PV_KEEP_VENVS must be a whole number from 1 to 100, got '$KEEP'"; fi
  [[ $(dirname -- "$VENV") == "$VENVS_DIR" ]] || die "PV_VENV_PATH must be PV_VENVS_DIR/<name>, got '$VENV'"
  local link=${PV_ACTIVE_LINK:-}
  [[ -z $link || $link == /* ]] || die "PV_ACTIVE_LINK must be an absolute path, got '$link'"
  REC="$REC_DIR/$(printf '%s' "$VENV" | sha256sum | cut -c1-16).venv"
  local changed=0

  if [[ $ACTION == delete ]]; then
    local active f v
    active=$(active_target)
    while IFS= read -r f; do
      [[ -n $f ]] || continue
      v=$(rec_get "$f" venv)
      if [[ $v == "$active" ]]; then
        log "keeping $v: $link still points at it (the unit's step removes the link first)"
        continue
      fi
      if [[ -e $v ]]; then log "removing venv $v"; rm -rf -- "$v"; fi
      rm -f -- "$f"
      changed=1
    done < <(owned_records)
    rmdir -- "$REC_DIR" "$VENVS_DIR" 2>/dev/null || true
    remove_empty_dirs
    txn_commit
    if ((changed)); then echo changed; else echo unchanged; fi
    exit 0
  fi

  [[ -n $PACKAGE && $PACKAGE != -* ]] || die "PV_PACKAGE must be a requirement like vllm==0.11.0, got '$PACKAGE'"
  [[ -n $DIST_VERSION ]] || die "PV_DIST_VERSION is required (the version importlib.metadata must report)"
  [[ $IMPORT =~ ^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$ ]] || die "PV_IMPORT_NAME must be a module name, got '$IMPORT'"
  [[ ${PV_PYTHON:-} =~ ^[0-9]+\.[0-9]+(\.[0-9]+)?$ ]] || die "PV_PYTHON must be a version like 3.12, got '${PV_PYTHON:-}'"
  [[ $UV == /* && -x $UV ]] || die "PV_UV_BIN '$UV' is not an executable (run the uv-venv step first)"
  if [[ -n $FIND_LINKS && ! -d $FIND_LINKS ]]; then die "PV_FIND_LINKS '$FIND_LINKS' is not a directory"; fi
  if [[ $NO_INDEX == 1 && -z $FIND_LINKS ]]; then die "PV_NO_INDEX=1 needs PV_FIND_LINKS"; fi

  if [[ -e $VENV || -L $VENV ]]; then
    [[ -f $REC ]] || die "$VENV exists and pulumi-vllm did not make it (no record in $REC_DIR): refusing to use or replace it -> remove it, or set host.venvsDir to a directory of its own"
    if verify_venv; then
      log "$DIST $DIST_VERSION in $VENV verifies ($VERIFY_OUT)"
    else
      # A venv this step made that no longer verifies: made again, the broken one kept aside until this run succeeds.
      log "$VENV no longer verifies ($VERIFY_ERR): making it again"
      txn_move_aside "$VENV"
    fi
  fi
  if [[ ! -e $VENV ]]; then
    log "installing $PACKAGE into a venv of its own, $VENV (the server keeps running from its venv meanwhile)"
    local start
    start=$(date +%s)
    txn_new_dir "$VENVS_DIR"
    txn_new_dir "$STATE_DIR"
    txn_new_dir "$REC_DIR"
    txn_save "$REC"
    txn_new_dir "$VENV"
    install -d -m 0755 "$VENVS_DIR" "$REC_DIR"
    UV_PYTHON_DOWNLOADS=never "$UV" venv --no-project --python "$PV_PYTHON" "$VENV" >&2 ||
      die "uv venv failed for Python $PV_PYTHON at $VENV (is python$PV_PYTHON installed? add it to host.extraPackages, e.g. python$PV_PYTHON-dev)"
    [[ -x $PY ]] || die "uv venv did not make $VENV"
    local args=(pip install --python "$PY" "${INDEX_ARGS[@]}")
    if [[ -n $TORCH_BACKEND ]]; then args+=(--torch-backend "$TORCH_BACKEND"); fi
    args+=(-- "$PACKAGE")
    log "uv ${args[*]}$INDEX_NOTE"
    UV_FAILED="uv pip install '$PACKAGE' into $VENV failed (see above)" uv_redacted "${args[@]}"
    verify_venv || die "the install does not verify: $VERIFY_ERR"
    printf 'venv=%s\ndist=%s\nversion=%s\npython=%s\ninstalled=%s\n' "$VENV" "$DIST" "$DIST_VERSION" "$PV_PYTHON" "$(date +%s%N)" >"$REC.tmp"
    mv -f -- "$REC.tmp" "$REC"
    log "installed $DIST $DIST_VERSION in $VENV in $(($(date +%s) - start))s; verified: import $IMPORT, vllm --version: $VERIFY_OUT"
    changed=1
  fi
  PRUNED=0
  prune_venvs
  ((PRUNED)) && changed=1
  txn_commit
  if ((changed)); then echo changed; else echo unchanged; fi
  exit 0
}

# Rollback of a failed install: the venv's packages as frozen before it.
undo_packages() { # `uv pip freeze` output from before
  local req now
  if [[ -z $1 ]]; then
    mapfile -t now < <("$UV" pip freeze --python "$PY" 2>/dev/null | sed -E 's/[ =@<>!~;[].*//' | grep -v '^$' || true)
    if (( ${#now[@]} )); then "$UV" pip uninstall --python "$PY" "${now[@]}" >&2; fi
    return 0
  fi
  req=$(mktemp)
  printf '%s\n' "$1" >"$req"
  "$UV" pip sync --python "$PY" "${INDEX_ARGS[@]}" "$req" 2>&1 | redact >&2 || { rm -f "$req"; return 1; }
  rm -f "$req"
}

txn_begin vllm-install 3600

if [[ -n ${PV_VENVS_DIR:-} ]]; then
  versioned_venvs
fi

if [[ $ACTION == create ]]; then
  [[ -n $PACKAGE && $PACKAGE != -* ]] || die "PV_PACKAGE must be a requirement like vllm==0.11.0, got '$PACKAGE'"
  [[ -n $DIST_VERSION ]] || die "PV_DIST_VERSION is required (the version importlib.metadata must report)"
  [[ $IMPORT =~ ^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$ ]] || die "PV_IMPORT_NAME must be a module name, got '$IMPORT'"
  [[ -x $PY ]] || die "no venv at $VENV (run the uv-venv step first)"
  [[ -w $VENV ]] || die "cannot write the venv $VENV as $(id -un): run as root (sudo) or as its owner"
  d=$STATE_DIR
  while [[ ! -e $d ]]; do d=$(dirname "$d"); done
  [[ -w $d ]] || die "cannot write $STATE_DIR as $(id -un): run as root (sudo) or set PV_STATE_DIR"
  [[ $UV == /* && -x $UV ]] || die "PV_UV_BIN '$UV' is not an executable (run the uv-venv step first)"
  if [[ -n $FIND_LINKS && ! -d $FIND_LINKS ]]; then die "PV_FIND_LINKS '$FIND_LINKS' is not a directory"; fi
  if [[ $NO_INDEX == 1 && -z $FIND_LINKS ]]; then die "PV_NO_INDEX=1 needs PV_FIND_LINKS"; fi
  # A plain `name==version` that contradicts PV_DIST_VERSION fails before acting.
  if [[ $PACKAGE =~ ^[[:space:]]*[A-Za-z0-9._-]+(\[[^]]*\])?[[:space:]]*==[[:space:]]*([^[:space:];,]+)[[:space:]]*$ ]] && \
     [[ ${BASH_REMATCH[2]} != "$DIST_VERSION" ]]; then
    die "PV_PACKAGE '$PACKAGE' pins ${BASH_REMATCH[2]} but PV_DIST_VERSION is $DIST_VERSION"
  fi

  have=$(installed_version)
  if [[ $have == "$DIST_VERSION" ]]; then
    if err=$(import_ok 2>&1); then
      log "$DIST $have is installed in $VENV and imports as $IMPORT"
      txn_commit
      echo unchanged
      exit 0
    fi
    log "$DIST $have is installed but 'import $IMPORT' fails; reinstalling: ${err##*$'\n'}"
    reinstall=1
  else
    log "$DIST in $VENV: ${have:-not installed}; want $DIST_VERSION"
    reinstall=0
  fi

  args=(pip install --python "$PY" "${INDEX_ARGS[@]}")
  if [[ -n $TORCH_BACKEND ]]; then args+=(--torch-backend "$TORCH_BACKEND"); fi
  if (( reinstall )); then args+=(--reinstall-package "$DIST"); fi
  args+=(-- "$PACKAGE")
  log "uv ${args[*]}$INDEX_NOTE"
  start=$(date +%s)
  txn_undo undo_packages "$("$UV" pip freeze --python "$PY" 2>/dev/null)"
  txn_new_dir "$STATE_DIR"
  txn_save "$STATE"
  UV_FAILED="uv pip install '$PACKAGE' into $VENV failed (see above)" uv_redacted "${args[@]}"
  got=$(installed_version)
  [[ $got == "$DIST_VERSION" ]] || \
    die "after installing '$PACKAGE', $DIST reports version '${got:-none}', not $DIST_VERSION: PV_PACKAGE and PV_DIST_VERSION disagree"
  err=$(import_ok 2>&1) || die "$DIST $got is installed but 'import $IMPORT' fails: $err"
  install -d -m 0755 "$STATE_DIR"
  printf 'venv=%s\ndist=%s\nversion=%s\n' "$VENV" "$DIST" "$DIST_VERSION" >"$STATE.tmp"
  mv -f "$STATE.tmp" "$STATE"
  log "installed $DIST $got in $VENV in $(( $(date +%s) - start ))s; 'import $IMPORT' works"
  txn_commit
  echo changed
  exit 0
fi

# delete
changed=0
if [[ ! -f $STATE ]]; then
  log "$DIST in $VENV was not installed by this step: leaving it"
elif [[ -n $(installed_version) ]]; then
  [[ $UV == /* && -x $UV ]] || die "PV_UV_BIN '$UV' is not an executable; cannot uninstall $DIST"
  log "uninstalling $DIST from $VENV"
  "$UV" pip uninstall --python "$PY" "$DIST" >&2 || die "uv pip uninstall $DIST failed"
  changed=1
else
  log "$DIST is not installed in $VENV"
fi
if [[ -f $STATE ]]; then
  rm -f -- "$STATE"
  changed=1
fi
remove_empty_dirs
txn_commit
if (( changed )); then echo changed; else echo unchanged; fi
