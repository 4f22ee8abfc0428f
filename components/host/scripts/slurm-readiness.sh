#!/usr/bin/env bash
# slurm-readiness: the readiness gate of a SLURM job, run on the login node:
# waits until the job's head node answers /health and lists the served model
# on /v1/models (with the API key from the shared 0600 secrets file, so the
# key never travels), reporting progress from the job's log while it waits.
#
# Inputs (environment):
#   PV_ACTION           create | delete (delete does nothing)
#   PV_JOB_NAME         job name: finds the job id recorded by slurm-job
#   PV_STATE_DIR        as in slurm-job (default ~/.local/state/pulumi-vllm)
#   PV_LOG_DIR          directory of the job's log
#   PV_SECRETS_FILE     the job's secrets file (VLLM_API_KEY=...)
#   PV_PORT             the server's port on the head node
#   PV_SERVED_MODEL     the name /v1/models must list
#   PV_TIMEOUT_SECONDS  give up after this long (default 3600)
#   PV_POLL_SECONDS     seconds between probes (default 5)
# Fails at once when the job leaves RUNNING (crash, time limit, node
# failure) and on timeout, with SLURM's reason and the log tail, secrets
# redacted. When ready, prints `endpoint=<url>`, then vLLM's own startup
# figures from the job's log as `vllm: <line>` (every node's ranks write to
# that one log: weights loaded, available KV memory, KV cache size, maximum
# concurrency, CUDA graph memory; redacted; the server exports them as
# `measured`). Last stdout line: `unchanged` (the gate changes nothing).
set -euo pipefail

: "${PV_ACTION:?}" "${PV_JOB_NAME:?}"
export PV_STATE_DIR=${PV_STATE_DIR:-$HOME/.local/state/pulumi-vllm}
# shellcheck source=SCRIPTDIR/lib/txn.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/txn.sh"
# shellcheck source=SCRIPTDIR/lib/redact.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/redact.sh"
# shellcheck source=SCRIPTDIR/lib/measured.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/measured.sh"
if [[ $PV_ACTION == delete ]]; then
  echo unchanged
  exit 0
fi
: "${PV_LOG_DIR:?}" "${PV_SECRETS_FILE:?}" "${PV_PORT:?}" "${PV_SERVED_MODEL:?}"
STATE=$PV_STATE_DIR/$PV_JOB_NAME.job
TIMEOUT=${PV_TIMEOUT_SECONDS:-3600}
[[ $TIMEOUT =~ ^[0-9]+$ ]] || { echo "slurm-readiness: PV_TIMEOUT_SECONDS must be a whole number, got '$TIMEOUT'" >&2; exit 1; }
# Bounded output, and a hard stop a little after the gate's own timeout.
txn_begin slurm-readiness "$((TIMEOUT + 120))"
POLL=${PV_POLL_SECONDS:-5}

[[ -f $STATE ]] || { echo "slurm-readiness: no job recorded in $STATE -> the slurm-job step must run first" >&2; exit 1; }
read -r id _ <"$STATE"
logfile="$PV_LOG_DIR/$PV_JOB_NAME-$id.out"

key=""
# Every value of the job's secrets file is hidden from what this step prints (redact).
declare -a SECRET_VALUES=()
if [[ -f $PV_SECRETS_FILE ]]; then
  key=$(sed -n 's/^VLLM_API_KEY=//p' "$PV_SECRETS_FILE" | tail -n 1)
  while IFS= read -r line || [[ -n $line ]]; do
    if [[ $line == *=* && -n ${line#*=} ]]; then SECRET_VALUES+=("${line#*=}"); fi
  done <"$PV_SECRETS_FILE"
fi

redacted_tail() {
  [[ -f $logfile ]] || { echo "(no log at $logfile)"; return; }
  tail -n "${1:-40}" "$logfile" | redact
}

fail() {
  echo "slurm-readiness: $1" >&2
  echo "--- last lines of $logfile ---" >&2
  redacted_tail 40 >&2
  exit 1
}

# curl reads the Authorization header from stdin, so the key is not in its argv.
# In curl's config a quoted value ends at `"` and `\` escapes: a key holding
# either (apiKey from config) is escaped, or the server gets another key (401).
get() {
  if [[ -n $key ]]; then
    local k=${key//\\/\\\\}
    k=${k//\"/\\\"}
    printf 'header = "Authorization: Bearer %s"\n' "$k" | curl -fsS --max-time 10 -K - "$1"
  else
    curl -fsS --max-time 10 "$1"
  fi
}

start=$SECONDS
seen=0
while :; do
  st=$(squeue -h -j "$id" -o %T 2>/dev/null | head -n 1 || true)
  if [[ $st == COMPLETING ]] && ((SECONDS - start < TIMEOUT)); then
    # ending: wait until SLURM has its final state (TIMEOUT, NODE_FAIL, ...) to report
    sleep 1
    continue
  fi
  if [[ $st != RUNNING ]]; then
    reason=$(sacct -n -X -P -j "$id" -o State,ExitCode,Reason 2>/dev/null | head -n 1 || true)
    fail "job $id is ${st:-no longer in the queue} (${reason:-no accounting record}) -> read the log below; resubmit with pulumi up"
  fi
  head=$(scontrol show hostnames "$(squeue -h -j "$id" -o %N)" | head -n 1)
  base="http://$head:$PV_PORT"
  if get "$base/health" >/dev/null 2>&1; then
    if models=$(get "$base/v1/models" 2>/dev/null) && grep -qF "\"$PV_SERVED_MODEL\"" <<<"$models"; then
      echo "ready: job $id on $head serves $PV_SERVED_MODEL at $base/v1 after $((SECONDS - start)) s" >&2
      echo "endpoint=$base/v1"
      # A job spans nodes: up to nodes x GPUs workers print their own lines (the rig's 64 may be short).
      if [[ -r $logfile ]]; then measured_lines 256 <"$logfile"; fi
      echo unchanged
      exit 0
    fi
  fi
  if [[ -f $logfile ]]; then
    total=$(wc -l <"$logfile")
    if ((total > seen)); then
      tail -n +"$((seen + 1))" "$logfile" | grep -E 'Loading|loading|%|[Gg]raph|startup|Started|Starting|node|rank' | tail -n 5 | redact | sed 's/^/progress: /' >&2 || true
      seen=$total
    fi
  fi
  if ((SECONDS - start >= TIMEOUT)); then
    fail "job $id did not answer on $base within $TIMEOUT s -> raise host.readinessTimeoutMinutes if it is still loading"
  fi
  sleep "$POLL"
done
