#!/usr/bin/env bash
# Installs the real vLLM releases the vllm tier checks (test/vllm/releases.json)
# into cached venvs, and prunes the ones no longer listed.
#
# Layout, under ${PULUMI_VLLM_CACHE:-~/.cache/pulumi-vllm}/vllm-releases:
#   uv/<version>/uv     uv, pinned like the hosts' (components/config/schema.ts
#                       vllm.uvVersion default), from its PyPI wheel, sha256-checked
#                       (components/host/scripts/uv-venv.sh does that part)
#   uv-cache/           uv's cache: the unpacked wheels
#   venvs/<release>/    one venv per release, its files HARDLINKED from uv-cache,
#                       so releases that share torch and the CUDA wheels share
#                       their bytes on disk
# A release is installed when venvs/<release>/.pv-installed holds the release
# and the hash of what it was installed with; a second run reuses it (seconds).
# Each release is `vllm==X` with its dependencies minus test/vllm/excludes.txt
# (kernels, compilers, media libraries the parser never imports: -36 % on
# 0.33.0). `--no-deps` is not enough: the parser cannot be built without torch
# (vllm/engine/arg_utils.py imports it), and torch does not import without
# the CUDA runtime wheels it depends on.
#
# Environment: PULUMI_VLLM_CACHE (cache root), PV_VLLM_RELEASE_GIB (free disk
# required before installing one release; default 10, one release with its own
# torch measured 9.1 GiB), PV_UV_VERSION (default: the schema's uv version).
# Needs python3 (the list and uv's wheel) and access to PyPI.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

log() { printf 'ensure-vllm-releases: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

CACHE=${PULUMI_VLLM_CACHE:-$HOME/.cache/pulumi-vllm}
DIR=$CACHE/vllm-releases
NEED_GIB=${PV_VLLM_RELEASE_GIB:-10}
LIST=$ROOT/test/vllm/releases.json
EXCLUDES=$ROOT/test/vllm/excludes.txt
UV_VERSION=${PV_UV_VERSION:-$(sed -n 's/.*uvVersion:.*\.default("\([0-9.]*\)").*/\1/p' components/config/schema.ts | head -n 1)}
[[ $UV_VERSION =~ ^[0-9]+(\.[0-9]+)+$ ]] || die "cannot read the uv version from components/config/schema.ts (vllm.uvVersion default) -> set PV_UV_VERSION"

read -r PYTHON < <(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["python"])' "$LIST")
mapfile -t RELEASES < <(python3 -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))["releases"]))' "$LIST")
(( ${#RELEASES[@]} > 0 )) || die "$LIST lists no releases"

mkdir -p "$DIR/venvs"
export UV_CACHE_DIR=$DIR/uv-cache
UV=$DIR/uv/$UV_VERSION/uv

venv_step() { # action release
  PV_ACTION=$1 PV_UV_VERSION=$UV_VERSION PV_VENV_PATH=$DIR/venvs/$2 PV_PYTHON=$PYTHON \
    PV_UV_DIR=$DIR/uv PV_STATE_DIR=$DIR/state bash components/host/scripts/uv-venv.sh >/dev/null
}

free_gib() { df -P -k "$DIR" | awk 'NR == 2 { printf "%d", $4 / 1048576 }'; }

# What a release was installed with: a change of the excludes or of its
# companion packages reinstalls it (uv would not remove what is now excluded).
stamp() { printf '%s %s %s' "$1" "$(sha256sum <"$EXCLUDES" | cut -c1-16)" "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("alongside", {}).get(sys.argv[2], {}).get("packages", []))' "$LIST" "$1")"; }
installed() { [[ -f $DIR/venvs/$1/.pv-installed && $(cat "$DIR/venvs/$1/.pv-installed") == "$(stamp "$1")" ]]; }

# Prune first: it frees the room the new ones may need.
pruned=0
for d in "$DIR"/venvs/*/; do
  [[ -d $d ]] || continue
  r=$(basename "$d")
  if [[ " ${RELEASES[*]} " != *" $r "* ]]; then
    log "pruning vllm $r (no longer in test/vllm/releases.json)"
    venv_step delete "$r" || true
    rm -rf -- "${DIR:?}/venvs/$r"
    pruned=1
  fi
done
sweep_cache() {
  # An unpacked wheel that no venv links to any more belongs to pruned or
  # reinstalled releases only (uv re-fetches an archive that has gone missing).
  [[ -d $UV_CACHE_DIR/archive-v0 ]] || return 0
  local a n=0
  for a in "$UV_CACHE_DIR"/archive-v0/*/; do
    if [[ -z $(find "$a" -type f -links +1 -print -quit) ]]; then rm -rf -- "$a"; n=$((n + 1)); fi
  done
  log "removed $n cached wheels no kept release uses"
}

installed_now=0
for r in "${RELEASES[@]}"; do
  if installed "$r"; then
    log "vllm $r: cached in $DIR/venvs/$r"
    continue
  fi
  have=$(free_gib)
  if (( have < NEED_GIB )); then
    die "installing vllm==$r needs ~$NEED_GIB GiB free under $DIR and $have GiB are free -> free disk space, point PULUMI_VLLM_CACHE at a bigger disk, or drop releases from test/vllm/releases.json"
  fi
  start=$SECONDS
  log "vllm $r: installing (free: $have GiB)"
  if [[ -e $DIR/venvs/$r ]]; then
    log "vllm $r: installed with other excludes or companions (or unfinished): starting over"
    venv_step delete "$r" || true
    rm -rf -- "${DIR:?}/venvs/$r"
    pruned=1
  fi
  venv_step create "$r"
  # cd /: uv reads pyproject.toml/uv.toml from the working directory.
  mapfile -t extra < <(python3 -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1])).get("alongside", {}).get(sys.argv[2], {}).get("packages", [])))' "$LIST" "$r" | sed '/^$/d')
  (cd / && "$UV" pip install --quiet --python "$DIR/venvs/$r/bin/python" --link-mode hardlink --excludes "$EXCLUDES" "vllm==$r" "${extra[@]}") ||
    die "uv could not install vllm==$r (output above)"
  got=$("$DIR/venvs/$r/bin/python" -c 'import importlib.metadata as m; print(m.version("vllm"))')
  [[ $got == "$r" ]] || die "venvs/$r has vllm $got, not $r"
  stamp "$r" >"$DIR/venvs/$r/.pv-installed"
  installed_now=1
  log "vllm $r: installed in $((SECONDS - start)) s (free now: $(free_gib) GiB)"
done
(( pruned )) && sweep_cache
if (( pruned || installed_now )); then
  log "ready: ${RELEASES[*]} in $DIR ($(du -sh "$DIR" 2>/dev/null | cut -f1) on disk, hardlinks counted once)"
else
  log "ready: ${RELEASES[*]} in $DIR (all cached)"
fi
