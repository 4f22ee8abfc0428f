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
#   PV_INDEX_URL      optional: package index (uv --index-url; default PyPI);
#                     HPC sites point this at their mirror
#   PV_NO_INDEX       optional: 1 = use only PV_FIND_LINKS (uv --no-index)
#   PV_TORCH_BACKEND  optional: uv --torch-backend (e.g. auto, cu128) for vLLM
#   PV_UV_SYSTEM_CERTS optional: 1 (default) = uv trusts the system CA store
#                     (site proxies / mirrors with their own CA), 0 = uv's
#                     bundled roots
#   PV_STATE_DIR      optional: state root (default /var/lib/pulumi-vllm); this
#                     step keeps its state in PV_STATE_DIR/vllm-install
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

# The index options of this step (also what a rollback reinstalls from).
INDEX_ARGS=()
if [[ -n $INDEX_URL ]]; then INDEX_ARGS+=(--index-url "$INDEX_URL"); fi
if [[ $NO_INDEX == 1 ]]; then INDEX_ARGS+=(--no-index); fi
if [[ -n $FIND_LINKS ]]; then INDEX_ARGS+=(--find-links "$FIND_LINKS"); fi

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
  "$UV" pip sync --python "$PY" "${INDEX_ARGS[@]}" "$req" >&2 || { rm -f "$req"; return 1; }
  rm -f "$req"
}

txn_begin vllm-install 3600

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
  log "uv ${args[*]}"
  start=$(date +%s)
  txn_undo undo_packages "$("$UV" pip freeze --python "$PY" 2>/dev/null)"
  txn_new_dir "$STATE_DIR"
  txn_save "$STATE"
  if ! "$UV" "${args[@]}" >&2; then
    die "uv pip install '$PACKAGE' into $VENV failed (see above)"
  fi
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
