#!/usr/bin/env bash
# pulumi-vllm host step: readiness (the readiness gate, run after launch-unit)
#
# Waits until the vLLM server of a systemd unit answers: /health is 200 and
# /v1/models (with the API key) lists the served model. While it waits it
# prints the server's progress from the journal (weights loading %, CUDA graph
# capture, startup), so a 45-minute start is never silent. It fails fast when
# the unit crashes (failed, stopped, or restarted by systemd) and on timeout,
# with the last journal lines, every secret of the env file replaced by
# [REDACTED].
#
# Inputs (environment):
#   PV_ACTION             create | delete
#   PV_UNIT_NAME          the unit, e.g. vllm.service
#   PV_ENV_FILE           the unit's root-only env file; VLLM_API_KEY is read
#                         from it ON THE HOST (the key never travels), and all
#                         its values are redacted from what this step prints
#   PV_BASE_URL           e.g. http://127.0.0.1:8000
#   PV_SERVED_MODEL       the name /v1/models must list
#   PV_TIMEOUT_SECONDS    give up after this long (default 5400: seed 001's
#                         rig took ~28 min to load plus 15-20 min to init)
#   PV_POLL_SECONDS       poll interval (default 5)
#   PV_HEARTBEAT_SECONDS  print a "still waiting" line after this long without
#                         news (default 60)
#   PV_TAIL_LINES         journal lines printed on failure (default 40)
#
# create: the checks above. The key goes to curl in a config on stdin, never
#   in argv. On success prints vLLM's own startup figures of this start as
#   `vllm: <journal line>` (weights loaded, available KV memory, KV cache size,
#   maximum concurrency, CUDA graph memory; redacted, at most 64 lines; the
#   server exports them as `measured`), then `ready: ...` facts, then
#   `unchanged` (the gate changes nothing on the host). On failure exits 1
#   with a clear message.
# delete: nothing (prints `unchanged`).
#
# Needs: systemd (systemctl, journalctl), curl.
# Output: progress on stderr; the last stdout line is `unchanged`.
set -euo pipefail

log() { printf 'readiness: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
trap 'log "ERROR: unexpected failure (exit $?) at line $LINENO"' ERR
# shellcheck source=SCRIPTDIR/lib/txn.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/txn.sh"
# shellcheck source=SCRIPTDIR/lib/redact.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/redact.sh"
# shellcheck source=SCRIPTDIR/lib/measured.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/measured.sh"
cd /  # a neutral cwd: uv reads uv.toml/pyproject.toml from it, and it may be unreadable

ACTION=${PV_ACTION:-}
[[ $ACTION == create || $ACTION == delete ]] || die "PV_ACTION must be create or delete, got '$ACTION'"
if [[ $ACTION == delete ]]; then
  echo unchanged
  exit 0
fi

UNIT=${PV_UNIT_NAME:-}
ENV_FILE=${PV_ENV_FILE:-}
BASE_URL=${PV_BASE_URL:-}
MODEL=${PV_SERVED_MODEL:-}
TIMEOUT=${PV_TIMEOUT_SECONDS:-5400}
POLL=${PV_POLL_SECONDS:-5}
HEARTBEAT=${PV_HEARTBEAT_SECONDS:-60}
TAIL=${PV_TAIL_LINES:-40}

[[ $UNIT =~ ^[A-Za-z0-9:_.@-]+\.service$ ]] || die "PV_UNIT_NAME must look like vllm.service, got '$UNIT'"
[[ $ENV_FILE == /* ]] || die "PV_ENV_FILE must be an absolute path, got '$ENV_FILE'"
[[ $BASE_URL =~ ^https?://[^[:space:]]+$ ]] || die "PV_BASE_URL must be an http(s) URL, got '$BASE_URL'"
BASE_URL=${BASE_URL%/}
[[ -n $MODEL ]] || die "PV_SERVED_MODEL is required"
for v in TIMEOUT POLL HEARTBEAT TAIL; do
  [[ ${!v} =~ ^[0-9]+$ && ${!v} -gt 0 ]] || die "PV_${v}_SECONDS/LINES must be a positive integer, got '${!v}'"
done
# Bounded output, and a hard stop a little after the gate's own timeout.
txn_begin readiness "$((TIMEOUT + 120))"
command -v curl >/dev/null || die "curl is not installed"
command -v journalctl >/dev/null || die "journalctl not found: this step needs systemd"

# ------------------------------------------------------------ secrets -------
declare -a SECRET_VALUES=()
API_KEY=

# Value of a NAME=... env-file line, as systemd reads what launch-unit.sh
# writes: "..." with \" \\ \` \$ escapes, '...' literal, or bare.
decode_env_value() {
  local raw=$1 out='' i c n
  if [[ ${#raw} -ge 2 && $raw == \"*\" ]]; then
    raw=${raw:1:${#raw}-2}
    for (( i = 0; i < ${#raw}; i++ )); do
      c=${raw:i:1}
      if [[ $c == "\\" ]] && (( i + 1 < ${#raw} )); then
        n=${raw:i+1:1}
        case $n in
          \" | \\ | \` | \$) out+=$n; i=$(( i + 1 )); continue ;;
        esac
      fi
      out+=$c
    done
  elif [[ ${#raw} -ge 2 && $raw == \'*\' ]]; then
    out=${raw:1:${#raw}-2}
  else
    out=$raw
  fi
  printf '%s' "$out"
}

if [[ -r $ENV_FILE ]]; then
  while IFS= read -r line || [[ -n $line ]]; do
    [[ $line =~ ^[[:space:]]*(#|$) ]] && continue
    [[ $line == *=* ]] || continue
    name=${line%%=*}
    name=${name#export }
    value=$(decode_env_value "${line#*=}")
    if (( ${#value} >= 3 )); then SECRET_VALUES+=("$value"); fi
    if [[ $name == VLLM_API_KEY ]]; then API_KEY=$value; fi
  done <"$ENV_FILE"
elif [[ -e $ENV_FILE ]]; then
  die "cannot read $ENV_FILE (run as root)"
else
  log "no env file $ENV_FILE: querying without an API key"
fi

START=$(date +%s)
elapsed() { echo $(( $(date +%s) - START )); }

journal_tail() {
  log "last $TAIL journal lines of $UNIT (secrets redacted):"
  journalctl -a -u "$UNIT" -n "$TAIL" --no-pager -q -o short-iso 2>/dev/null | redact >&2 || true
}

fail() {
  log "ERROR: $* (after $(elapsed)s)"
  journal_tail
  log "ERROR: $UNIT is not ready: $*"
  exit 1
}

# curl with the API key from a config on stdin (never in argv).
# Prints the body, then a last line with the HTTP status (000 = no answer).
http_get() {
  local url=$1 auth=${2:-}
  {
    if [[ -n $auth && -n $API_KEY ]]; then
      local k=${API_KEY//\\/\\\\}
      k=${k//\"/\\\"}
      printf 'header = "Authorization: Bearer %s"\n' "$k"
    fi
  } | curl -sS -m 10 --connect-timeout 5 -K - -w '\n%{http_code}' -- "$url" 2>/dev/null || true
}

# ---------------------------------------------------------- unit state -----
declare -A U=()
read_unit() {
  local k v
  U=()
  while IFS='=' read -r k v; do U[$k]=$v; done < <(
    systemctl show "$UNIT" -p LoadState -p ActiveState -p SubState -p NRestarts -p MainPID -p Result -p InvocationID \
      -p MemoryCurrent -p CPUUsageNSec 2>/dev/null)
}

read_unit
[[ ${U[LoadState]:-} == loaded ]] || die "unit $UNIT is not loaded (LoadState=${U[LoadState]:-unknown}); run the launch-unit step first"
RESTARTS0=${U[NRestarts]:-0}

# ------------------------------------------------------------- progress ----
PROGRESS_RE='Loading (safetensors|pt|weights)|checkpoint shards|Loading weights|Model loading took|Downloading|Capturing CUDA graph|[Gg]raph captur|Available KV cache|KV cache size|Maximum concurrency|init engine|torch\.compile|Compiling|Starting vLLM API server|Application startup complete|Uvicorn running|ERROR|Error|Traceback|Exception|out of memory'
CURSOR=
LAST_NEWS=$START

show_progress() {
  local out line printed=0 lines=()
  if [[ -z $CURSOR ]]; then
    local inv=${U[InvocationID]:-}
    if [[ -n $inv ]]; then
      out=$(journalctl -a -u "$UNIT" "_SYSTEMD_INVOCATION_ID=$inv" --no-pager -q -o cat --show-cursor 2>/dev/null || true)
    fi
    if [[ -z ${out:-} ]]; then
      out=$(journalctl -a -u "$UNIT" -n 20 --no-pager -q -o cat --show-cursor 2>/dev/null || true)
    fi
  else
    out=$(journalctl -a -u "$UNIT" --after-cursor="$CURSOR" --no-pager -q -o cat --show-cursor 2>/dev/null || true)
  fi
  [[ -n $out ]] || return 0
  while IFS= read -r line; do
    if [[ $line == "-- cursor: "* ]]; then CURSOR=${line#-- cursor: }; continue; fi
    line=${line##*$'\r'}            # tqdm redraws with \r: keep the last state
    if [[ $line =~ $PROGRESS_RE ]]; then lines+=("$line"); fi
  done <<<"$out"
  local n=${#lines[@]} from=0
  (( n > 12 )) && from=$(( n - 12 ))
  for (( ; from < n; from++ )); do
    printf '[readiness +%ss] %s\n' "$(elapsed)" "${lines[from]}" | redact >&2
    printed=1
  done
  if (( printed )); then LAST_NEWS=$(date +%s); fi
}

# vLLM's startup figures of this start (lib/measured.sh).
print_measured() {
  local inv=${U[InvocationID]:-} out
  [[ -n $inv ]] || return 0
  out=$(journalctl -a -u "$UNIT" "_SYSTEMD_INVOCATION_ID=$inv" --no-pager -q -o cat 2>/dev/null || true)
  measured_lines 64 <<<"$out"
}

# Does the /v1/models body $1 list $MODEL?
model_listed() {
  if command -v python3 >/dev/null; then
    PV_BODY=$1 python3 -c '
import json, os, sys
try:
    ids = [m.get("id") for m in json.loads(os.environ["PV_BODY"]).get("data", [])]
except Exception:
    sys.exit(1)
sys.exit(0 if sys.argv[1] in ids else 1)' "$MODEL"
  else
    grep -qF -e "\"id\":\"$MODEL\"" -e "\"id\": \"$MODEL\"" <<<"$1"
  fi
}

# ------------------------------------------------------------------ loop ---
log "waiting for $UNIT to serve '$MODEL' at $BASE_URL (timeout ${TIMEOUT}s, poll ${POLL}s)"
first=1
health_ok=0
while :; do
  read_unit
  show_progress
  state="${U[ActiveState]:-?}/${U[SubState]:-?}"
  restarts=${U[NRestarts]:-0}

  # Ready?
  resp=$(http_get "$BASE_URL/health")
  code=${resp##*$'\n'}
  if [[ $code == 200 ]]; then
    if (( ! health_ok )); then log "+$(elapsed)s /health answers 200"; health_ok=1; fi
    resp=$(http_get "$BASE_URL/v1/models" auth)
    code=${resp##*$'\n'}
    body=${resp%$'\n'*}
    case $code in
      200)
        if model_listed "$body"; then
          show_progress # the lines logged since the last poll (startup complete)
          print_measured
          printf 'ready: %s serves %s (%s, MainPID %s) after %ss\n' "$BASE_URL" "$MODEL" "$state" "${U[MainPID]:-?}" "$(elapsed)"
          echo unchanged
          exit 0
        fi
        served=$(grep -o '"id": *"[^"]*"' <<<"$body" | sed 's/"id": *//' | paste -sd, - | redact)
        fail "the server at $BASE_URL answers but serves ${served:-no model}, not \"$MODEL\" (check --served-model-name)"
        ;;
      401 | 403)
        if [[ -z $API_KEY ]]; then
          fail "/v1/models answered $code: the server wants an API key but $ENV_FILE has no VLLM_API_KEY"
        fi
        fail "/v1/models answered $code: the server does not accept the VLLM_API_KEY of $ENV_FILE"
        ;;
    esac
  fi

  # Crashed?
  if [[ ${U[ActiveState]:-} == failed ]]; then
    fail "$UNIT failed (result ${U[Result]:-?}, $restarts automatic restart(s)): the server exited"
  fi
  if [[ ${U[ActiveState]:-} == inactive ]]; then
    fail "$UNIT is not running (inactive): it was stopped or exited"
  fi
  if [[ ${U[SubState]:-} == auto-restart ]]; then
    fail "$UNIT exited and systemd is about to restart it (result ${U[Result]:-?}): the server crashed"
  fi
  if (( restarts > RESTARTS0 )) || (( first && restarts > 0 )); then
    fail "$UNIT crashed and was restarted by systemd ($restarts time(s) since it was started)"
  fi
  first=0

  now=$(date +%s)
  if (( now - START >= TIMEOUT )); then
    fail "timed out after ${TIMEOUT}s: $UNIT is $state but $BASE_URL did not serve '$MODEL' (last HTTP status $code)"
  fi
  if (( now - LAST_NEWS >= HEARTBEAT )); then
    if (( health_ok )); then what="/health is up, waiting for /v1/models"; else what="/health not answering yet (loading)"; fi
    # Weights load silently for long stretches (tqdm bars reach the journal only
    # when they end): the unit's memory and CPU time show it is progressing.
    usage=
    if [[ ${U[MemoryCurrent]:-} =~ ^[0-9]+$ ]]; then usage+=", memory $(( U[MemoryCurrent] / 1048576 )) MiB"; fi
    if [[ ${U[CPUUsageNSec]:-} =~ ^[0-9]+$ ]]; then usage+=", CPU $(( U[CPUUsageNSec] / 1000000000 ))s"; fi
    log "+$(elapsed)s still waiting: $UNIT is $state (MainPID ${U[MainPID]:-?}$usage), $what"
    LAST_NEWS=$now
  fi
  sleep "$POLL"
done
