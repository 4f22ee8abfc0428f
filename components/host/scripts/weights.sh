#!/usr/bin/env bash
# pulumi-vllm host step: weights
#
# Downloads the model's files from the Hugging Face Hub into the Hugging Face
# cache (HF_HOME) with the CLI of the vLLM venv (`hf download`, or
# `huggingface-cli download` of an older huggingface_hub), before the unit
# starts: vLLM then starts with HF_HUB_OFFLINE=1 and its readiness wait covers
# loading and compiling only. Seed 001 spent ~28 minutes fetching inside that
# wait, with no progress of its own and a full disk found only mid-way.
#
# Inputs (environment):
#   PV_ACTION           create | delete
#   PV_MODEL_ID         org/name on the Hub, or an absolute path on the host
#                       (nothing is downloaded: the path must hold config.json)
#   PV_REVISION         optional: branch, tag or commit (default main)
#   PV_CACHE_DIR        HF_HOME: the files land in
#                       PV_CACHE_DIR/hub/models--<org>--<name>, where vLLM
#                       (same HF_HOME) finds them
#   PV_VENV_PATH        the venv whose `hf` and python (huggingface_hub) are used
#   PV_HF_ENDPOINT      optional: the Hub's URL (HF_ENDPOINT: a mirror, a test
#                       stand-in); default huggingface_hub's own
#   PV_CHECKPOINT_BYTES optional: the planner's estimate of the checkpoint,
#                       for the disk check when the Hub reports no file sizes
#   PV_CACHE_OWNER      optional: user[:group] that owns the cache directory
#                       and the downloaded model (the user vLLM runs as);
#                       default: the step's user. Files are world-readable.
#   PV_REMOVE_CACHE     optional: 1 = remove the models this step downloaded
#                       into PV_CACHE_DIR: on delete all of them, on create
#                       those other than the current one; 0 (default) keeps
#                       them (host.removeModelCache)
#   PV_PROGRESS_SECONDS optional: seconds between progress lines (default 10)
#   PV_STATE_DIR        optional: state root (default /var/lib/pulumi-vllm)
# Secrets (stdin, optional): a `HF_TOKEN=<token>` line, for gated models. It
#   reaches the CLI in its environment only: never argv, a file or the output.
#
# create: asks the Hub for the revision's commit and files (a gated model
#   without a usable token is refused here, with the fix), checks the free
#   disk of PV_CACHE_DIR against what is left to download and refuses before
#   downloading when it is short, downloads (resuming what an interrupted run
#   left: partial files are kept on purpose), prints a progress line every
#   PV_PROGRESS_SECONDS, verifies each file's size against the Hub's and the
#   sha256 of each file fetched by this run, and records the commit. Nothing
#   happens when that commit is recorded and its files are all there.
# delete: with PV_REMOVE_CACHE=1 removes the model directories this step
#   created (a model that was in the cache before is never removed); else
#   keeps them. Either way the step's records go.
#
# A run that fails puts the step's record back (lib/txn.sh); downloaded and
# partial files stay in the cache (costly to fetch again; the next run
# resumes). Time limit: 10800 s (PV_STEP_TIMEOUT; the component sets it from
# the planned download time).
# State: PV_STATE_DIR/weights/<sha of PV_CACHE_DIR>/ (current.state: the
#   verified commit; owned/<dir>: the model directories this step created).
# Needs: the venv of the vllm-install step (huggingface_hub comes with vLLM),
#   network to the Hub, write access to PV_CACHE_DIR and the state dir.
# Output: progress on stderr; stdout `commit=<sha>` and `bytes=<n>`, then the
#   last line `changed` or `unchanged`.
set -euo pipefail

log() { printf 'weights: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
trap 'log "ERROR: unexpected failure (exit $?) at line $LINENO"' ERR
# shellcheck source=SCRIPTDIR/lib/txn.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/txn.sh"
# shellcheck source=SCRIPTDIR/lib/redact.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/redact.sh"
cd /
umask 022 # the model must be readable by the user vLLM runs as

ACTION=${PV_ACTION:-}
MODEL=${PV_MODEL_ID:-}
REVISION=${PV_REVISION:-main}
CACHE=${PV_CACHE_DIR:-}
VENV=${PV_VENV_PATH:-}
ENDPOINT=${PV_HF_ENDPOINT:-}
PLANNED_BYTES=${PV_CHECKPOINT_BYTES:-0}
OWNER=${PV_CACHE_OWNER:-}
REMOVE=${PV_REMOVE_CACHE:-0}
PROGRESS=${PV_PROGRESS_SECONDS:-10}
STATE_ROOT=${PV_STATE_DIR:-/var/lib/pulumi-vllm}
STATE_ROOT=${STATE_ROOT%/}

[[ $ACTION == create || $ACTION == delete ]] || die "PV_ACTION must be create or delete, got '$ACTION'"
[[ $STATE_ROOT == /* ]] || die "PV_STATE_DIR must be an absolute path"
[[ $CACHE == /* && $CACHE != *..* ]] || die "PV_CACHE_DIR must be an absolute path, got '$CACHE'"
CACHE=${CACHE%/}
[[ $REMOVE == 0 || $REMOVE == 1 ]] || die "PV_REMOVE_CACHE must be 0 or 1"
[[ $PLANNED_BYTES =~ ^[0-9]+$ ]] || die "PV_CHECKPOINT_BYTES must be a number of bytes"
[[ $PROGRESS =~ ^[1-9][0-9]*$ ]] || die "PV_PROGRESS_SECONDS must be a positive number"
if [[ -n $OWNER && ! $OWNER =~ ^[a-z_][a-z0-9_-]*(:[a-z_][a-z0-9_-]*)?$ ]]; then die "PV_CACHE_OWNER must be user or user:group, got '$OWNER'"; fi

STATE_DIR=$STATE_ROOT/weights/$(printf '%s' "$CACHE" | sha256sum | cut -c1-16)
STATE=$STATE_DIR/current.state
HUB=$CACHE/hub

# 1.5 GiB, 320 MiB, 12 KiB: what a person reads in a progress line.
human() {
  awk -v b="$1" 'BEGIN { split("B KiB MiB GiB TiB", u, " "); i = 1; while (b >= 1024 && i < 5) { b /= 1024; i++ }
    printf (i == 1 ? "%d %s" : "%.1f %s"), b, u[i] }'
}

remove_empty_dirs() {
  rmdir -- "$STATE_DIR/owned" "$STATE_DIR" "$STATE_ROOT/weights" 2>/dev/null || true
}

# The model directories this step created in the cache (names under $HUB).
owned_dirs() {
  [[ -d $STATE_DIR/owned ]] || return 0
  find "$STATE_DIR/owned" -mindepth 1 -maxdepth 1 -type f -name 'models--*' -printf '%f\n' | LC_ALL=C sort
}

stop_download() { # pid of the CLI, if it is still that download
  local cmd
  cmd=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) || return 0
  if [[ $cmd == *" download "* ]]; then kill -TERM "$1" 2>/dev/null || true; fi
}

remove_owned() { # name under $HUB
  local dir=$HUB/$1 size
  if [[ -d $dir ]]; then
    size=$(du -sb -- "$dir" | cut -f1)
    rm -rf -- "$dir" "$HUB/.locks/$1"
    log "removed $dir ($(human "$size")), downloaded by this step (host.removeModelCache)"
  fi
  rm -f -- "$STATE_DIR/owned/$1"
}

txn_begin weights "${PV_STEP_TIMEOUT:-10800}"

if [[ $ACTION == delete ]]; then
  changed=0
  if [[ $MODEL == /* ]]; then
    log "model.id $MODEL is a path on the host: nothing was downloaded"
  elif [[ $REMOVE == 1 ]]; then
    while IFS= read -r d; do
      [[ -n $d ]] || continue
      remove_owned "$d"
      changed=1
    done < <(owned_dirs)
  elif [[ -n $(owned_dirs) ]]; then
    log "keeping the model files in $HUB (host.removeModelCache is false; they are costly to fetch again)"
  fi
  if [[ -d $STATE_DIR ]]; then
    rm -rf -- "$STATE_DIR"
    changed=1
  fi
  remove_empty_dirs
  txn_commit
  if ((changed)); then echo changed; else echo unchanged; fi
  exit 0
fi

# ---- create ---------------------------------------------------------------

if [[ $MODEL == /* ]]; then
  [[ -f $MODEL/config.json ]] || die "model.id $MODEL is a path on the host and holds no config.json -> copy the model there, or give its Hugging Face id (org/name)"
  log "model.id $MODEL is a path on the host: nothing to download"
  txn_commit
  echo unchanged
  exit 0
fi
[[ $MODEL =~ ^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9._-]+$ && $MODEL != *..* ]] || die "PV_MODEL_ID must be org/name or an absolute path, got '$MODEL'"
[[ $REVISION =~ ^[A-Za-z0-9._/-]+$ && $REVISION != *..* ]] || die "PV_REVISION must be a branch, tag or commit, got '$REVISION'"
[[ $VENV == /* ]] || die "PV_VENV_PATH must be an absolute path, got '$VENV'"
PY=$VENV/bin/python
[[ -x $PY ]] || die "no venv at $VENV (the uv-venv and vllm-install steps make it)"
if [[ -x $VENV/bin/hf ]]; then CLI=$VENV/bin/hf
elif [[ -x $VENV/bin/huggingface-cli ]]; then CLI=$VENV/bin/huggingface-cli
else die "no hf (or huggingface-cli) in $VENV/bin: huggingface_hub is not in the venv (vLLM brings it) -> check vllm.package installs vLLM"
fi

# The token, from stdin only.
TOKEN=
if [[ ! -t 0 ]]; then
  while IFS= read -r line || [[ -n $line ]]; do
    case $line in
      '') ;;
      HF_TOKEN=*) TOKEN=${line#HF_TOKEN=} ;;
      *=*) ;; # other secrets of the server are not this step's
      *) die "stdin: a line is not NAME=value (line not shown: it may hold a secret)" ;;
    esac
  done
fi
[[ $TOKEN != *[[:space:]]* ]] || die "stdin: HF_TOKEN contains whitespace (value not shown)"

# Any text a tool printed goes through redact (lib/redact.sh) with the token
# taken out (hub errors do not print it, but nothing leaves this step unchecked).
SECRET_VALUES=("$TOKEN")

# The environment of the hub client: the cache vLLM reads, the endpoint, the
# token; our own progress lines instead of tqdm's redraws.
unset HF_HUB_CACHE HUGGINGFACE_HUB_CACHE HF_HUB_OFFLINE TRANSFORMERS_OFFLINE HUGGING_FACE_HUB_TOKEN
export HF_HOME=$CACHE HF_HUB_DISABLE_PROGRESS_BARS=1 HF_HUB_DISABLE_TELEMETRY=1
if [[ -n $ENDPOINT ]]; then export HF_ENDPOINT=$ENDPOINT; else unset HF_ENDPOINT; fi
if [[ -n $TOKEN ]]; then export HF_TOKEN=$TOKEN; else unset HF_TOKEN; fi

REPO_NAME=models--${MODEL//\//--}
REPO_DIR=$HUB/$REPO_NAME
d=$CACHE
while [[ ! -e $d ]]; do d=$(dirname "$d"); done
[[ -d $d && -w $d ]] || die "cannot write $CACHE as $(id -un): run as root (sudo) or make $d writable"

TMP=$(mktemp -d)
# What the hub client printed (checked for the token before it is shown) lives here until the end.
die() { rm -rf -- "$TMP"; log "ERROR: $*"; exit 1; }

# ---- what the Hub has ----
info_py=$(cat <<'PY'
import sys
from huggingface_hub import HfApi
repo, rev = sys.argv[1], sys.argv[2]
try:
    info = HfApi().model_info(repo, revision=rev, files_metadata=True)
except Exception as e:  # the classes moved between huggingface_hub releases: match by name
    names = [c.__name__ for c in type(e).__mro__]
    status = getattr(getattr(e, "response", None), "status_code", None)
    kind = next((k for n, k in (("GatedRepoError", "gated"), ("RevisionNotFoundError", "norevision"),
                                ("RepositoryNotFoundError", "notfound")) if n in names), "other")
    text = " ".join(str(e).split())[:600] or names[0]
    print("error\t%s\t%s\t%s" % (kind, status or "-", text))
    sys.exit(3)
print("commit\t%s" % info.sha)
for s in info.siblings or []:
    lfs = s.lfs
    sha = (lfs.get("sha256") if isinstance(lfs, dict) else getattr(lfs, "sha256", None)) if lfs else None
    blob = getattr(s, "blob_id", None)
    print("file\t%s\t%s\t%s\t%s" % ("-" if s.size is None else s.size, sha or "-", blob or "-", s.rfilename))
PY
)
log "asking ${ENDPOINT:-the Hub} for $MODEL at $REVISION"
if ! "$PY" -c "$info_py" "$MODEL" "$REVISION" >"$TMP/info" 2>"$TMP/info.err"; then
  err=$(grep -m1 '^error' "$TMP/info" | redact || true)
  IFS=$'\t' read -r _ kind status text <<<"$err"
  case ${kind:-} in
    gated)
      if [[ -n $TOKEN ]]; then
        die "$MODEL is gated and the Hugging Face token given has no access to it (HTTP $status) -> accept the model's terms on its Hub page with the token's account, or set a token that has access: pulumi config set --secret pulumi-vllm:hfToken <token>"
      fi
      die "$MODEL is gated: downloading it needs a Hugging Face token of an account that accepted its terms (HTTP $status) -> pulumi config set --secret pulumi-vllm:hfToken <token> (the library: VllmServer's hfToken), then pulumi up"
      ;;
    notfound) die "$MODEL is not on ${ENDPOINT:-the Hub} (HTTP $status; a private repository needs a token) -> check model.id, or set pulumi config set --secret pulumi-vllm:hfToken <token>" ;;
    norevision) die "$MODEL has no revision '$REVISION' (HTTP $status) -> check model.revision (a branch, tag or commit of the repository)" ;;
    *)
      redact <"$TMP/info.err" | tail -n 5 >&2 || true
      die "could not ask ${ENDPOINT:-the Hub} about $MODEL at $REVISION: ${text:-see above} -> check the host reaches the Hub (host.env HF_ENDPOINT names a mirror)"
      ;;
  esac
fi
COMMIT=$(awk -F'\t' '$1 == "commit" { print $2 }' "$TMP/info")
[[ $COMMIT =~ ^[0-9a-f]{40}$ ]] || die "the Hub gave no commit for $MODEL at $REVISION"
SNAP=$REPO_DIR/snapshots/$COMMIT
log "$MODEL at $REVISION is commit $COMMIT"

# Per file: size on the Hub, sha256 (LFS files), path. Missing: not in this
# commit's snapshot (the CLI links it there). To fetch: missing and its blob
# (named by the sha256 or git blob id the Hub gives as its etag) is not in the
# cache either: another commit's identical file is linked, not downloaded.
declare -a F_PATH=() F_SIZE=() F_SHA=() MISSING=()
declare -A FETCH=()
total=0 missing_bytes=0 sizes_known=1
have_blob() { # size sha blob-id
  local n
  for n in "$2" "$3"; do
    [[ $n != - && -f $REPO_DIR/blobs/$n ]] && [[ $1 == - || $(stat -c %s -- "$REPO_DIR/blobs/$n") == "$1" ]] && return 0
  done
  return 1
}
while IFS=$'\t' read -r kind size sha blob path; do
  [[ $kind == file ]] || continue
  F_PATH+=("$path")
  F_SIZE+=("$size")
  F_SHA+=("$sha")
  n=$size
  if [[ $n == - ]]; then sizes_known=0; n=0; fi
  total=$((total + n))
  if [[ ! -f $SNAP/$path ]] || [[ $size != - && $(stat -L -c %s -- "$SNAP/$path") != "$size" ]]; then
    MISSING+=("$path")
    have_blob "$size" "$sha" "$blob" && continue
    FETCH[$path]=1
    part=0
    for b in "$sha" "$blob"; do
      if [[ $b != - && -f $REPO_DIR/blobs/$b.incomplete ]]; then part=$(stat -c %s -- "$REPO_DIR/blobs/$b.incomplete"); fi
    done
    missing_bytes=$((missing_bytes + n - (part < n ? part : n)))
  fi
done <"$TMP/info"
((${#F_PATH[@]})) || die "the Hub lists no files for $MODEL at $COMMIT"
printf '%s\n' "${F_PATH[@]}" | grep -qx 'config.json' || die "$MODEL at $COMMIT has no config.json: vLLM cannot load it -> check model.id"

ref_ok() { [[ $REVISION == "$COMMIT" ]] || [[ $(cat "$REPO_DIR/refs/$REVISION" 2>/dev/null) == "$COMMIT" ]]; }

# Verified before, and all there: nothing to do.
recorded=$(sed -n 's/^commit=//p' "$STATE" 2>/dev/null || true)
if ((${#MISSING[@]} == 0)) && ref_ok && [[ $recorded == "$COMMIT" ]] && grep -qxF "model=$MODEL" "$STATE"; then
  log "$MODEL $COMMIT is in $HUB ($(human "$total"), ${#F_PATH[@]} files, verified before)"
  rm -rf -- "$TMP"
  printf 'commit=%s\nbytes=%s\n' "$COMMIT" "$total"
  txn_commit
  echo unchanged
  exit 0
fi

# ---- the disk, before a byte is downloaded ----
need=$missing_bytes
if ((sizes_known == 0 && PLANNED_BYTES > need)); then need=$PLANNED_BYTES; fi
avail=$(df -B1 --output=avail -- "$d" | tail -n 1 | tr -d ' ')
if ((need > avail)); then
  die "not enough disk for $MODEL: $(human "$need") left to download into $CACHE and $(human "$avail") free there (nothing was downloaded) -> free space on that filesystem, or set host.cacheDir to a larger one"
fi

# ---- download ----
# Only the record is journaled: the model's files, partial ones included, stay
# when this run fails (the next run resumes them), and so does owned/.
txn_save "$STATE"
txn_undo rm -rf -- "$TMP"
install -d -m 0755 "$CACHE" "$HUB" "$STATE_DIR/owned"
# Recorded before the first byte and kept if this run fails: a partial download
# stays for the next run to resume, and is still this step's to remove.
if [[ ! -d $REPO_DIR || -f $STATE_DIR/owned/$REPO_NAME ]]; then
  printf 'model=%s\ncache=%s\n' "$MODEL" "$CACHE" >"$STATE_DIR/owned/$REPO_NAME"
fi
if ((${#MISSING[@]})); then
  log "downloading $MODEL $COMMIT: $(human "$missing_bytes") of $(human "$total") to fetch (${#FETCH[@]} of ${#F_PATH[@]} files; ${#MISSING[@]} new in this commit) into $REPO_DIR, $(human "$avail") free"
  blobs_bytes() { du -sb -- "$REPO_DIR/blobs" 2>/dev/null | cut -f1 || echo 0; }
  start=$(date +%s)
  base=$(blobs_bytes)
  : "${base:=0}"
  "$CLI" download "$MODEL" --revision "$COMMIT" >"$TMP/cli.out" 2>&1 &
  cli=$!
  # A step stopped from outside (its time limit, a lost connection) stops its download too: what
  # it fetched so far stays for the next run.
  txn_undo stop_download "$cli"
  last=$start
  while txn_running "$cli"; do
    sleep 1
    now=$(date +%s)
    if ((now - last >= PROGRESS)); then
      last=$now
      got=$(( $(blobs_bytes) - base ))
      ((got >= 0)) || got=0
      rate=$((got / (now - start > 0 ? now - start : 1)))
      eta=
      if ((rate > 0 && missing_bytes > got)); then eta=", ~$(( (missing_bytes - got) / rate / 60 + 1 )) min left"; fi
      log "downloaded $(human "$got") of $(human "$missing_bytes") ($(( missing_bytes > 0 ? got * 100 / missing_bytes : 100 ))%), $(human "$rate")/s$eta"
    fi
  done
  if ! wait "$cli"; then
    redact <"$TMP/cli.out" | tail -n 20 >&2 || true
    die "$(basename "$CLI") download $MODEL failed (see above); the files fetched so far stay in $REPO_DIR and the next run resumes"
  fi
  log "downloaded $(human "$missing_bytes") in $(( $(date +%s) - start ))s"
fi
# The branch or tag must point at the commit, as vLLM resolves it offline.
if ! ref_ok; then
  install -d -m 0755 "$REPO_DIR/refs/$(dirname "$REVISION")"
  printf '%s' "$COMMIT" >"$REPO_DIR/refs/$REVISION"
fi

# ---- verify ----
hashed=0
for i in "${!F_PATH[@]}"; do
  p=${F_PATH[$i]} size=${F_SIZE[$i]} sha=${F_SHA[$i]}
  [[ -f $SNAP/$p ]] || die "verification: $p of $MODEL is missing from $SNAP after the download"
  got=$(stat -L -c %s -- "$SNAP/$p")
  if [[ $size != - && $got != "$size" ]]; then
    die "verification: $p is $got bytes, the Hub says $size -> run pulumi up again (the download resumes)"
  fi
  if [[ $sha != - && -n ${FETCH[$p]:-} ]]; then
    have=$(sha256sum -- "$SNAP/$p" | cut -d' ' -f1)
    if [[ $have != "$sha" ]]; then
      rm -f -- "$(readlink -f -- "$SNAP/$p")"
      die "verification: the sha256 of $p is $have, the Hub says $sha: removed it -> run pulumi up again to fetch it anew"
    fi
    hashed=$((hashed + 1))
  fi
done
checked="sizes"
if ((hashed)); then checked+=" and the sha256 of the $hashed fetched"; fi
log "verified ${#F_PATH[@]} files ($(human "$total")) of $MODEL $COMMIT: $checked"

if [[ -n $OWNER ]]; then
  chown -- "$OWNER" "$CACHE" "$HUB"
  chown -R -- "$OWNER" "$REPO_DIR"
fi
printf 'model=%s\nrevision=%s\ncommit=%s\nbytes=%s\n' "$MODEL" "$REVISION" "$COMMIT" "$total" >"$STATE.tmp"
mv -f -- "$STATE.tmp" "$STATE"

if [[ $REMOVE == 1 ]]; then
  while IFS= read -r o; do
    [[ -n $o && $o != "$REPO_NAME" ]] && remove_owned "$o"
  done < <(owned_dirs)
fi
rm -rf -- "$TMP"
printf 'commit=%s\nbytes=%s\n' "$COMMIT" "$total"
txn_commit
echo changed
