#!/usr/bin/env bash
# slurm-job: submit the vLLM batch job on a SLURM cluster (run on the login
# node as the cluster user) and wait until it runs.
#
# Inputs (environment):
#   PV_ACTION            create | delete
#   PV_JOB_NAME          job name; also names the script, secrets and state files
#   PV_BATCH_SCRIPT      the whole batch script (rendered by components/plan/sbatch.ts)
#   PV_SCRIPT_DIR        shared directory for the script (<dir>/<job>.sbatch)
#   PV_LOG_DIR           shared directory of the job's log (%x-%j.out)
#   PV_SECRETS_FILE      0600 file the job sources (VLLM_API_KEY, HF_TOKEN)
#   PV_STATE_DIR         where the submitted job id is recorded (default ~/.local/state/pulumi-vllm)
#   PV_PENDING_TIMEOUT   seconds the job may pend before it is cancelled (default 1800)
#   PV_POLL_SECONDS      seconds between squeue polls (default 5)
# stdin: secret NAME=value lines, written to PV_SECRETS_FILE (umask 077).
#
# create: writes the secrets file and the script; when the recorded job is
#   still pending/running with the same script and secrets it only waits for
#   it (`unchanged`); otherwise it cancels the recorded job, submits with
#   sbatch, records the id and waits until the job RUNS (`changed`). Prints
#   job_id=, head_node=, log= lines. A job that ends, or pends longer than
#   PV_PENDING_TIMEOUT (then it is cancelled), fails with SLURM's reason and
#   the tail of its log.
# delete: cancels the recorded job, waits until squeue no longer lists it,
#   removes the script, the secrets file and the record.
# A create or update that fails (sbatch refuses, the job pends too long or
# ends) cancels the job it submitted and puts back the script, secrets file
# and record as they were; when it had cancelled the previous job, that job's
# script is submitted again (lib/txn.sh, journal under PV_STATE_DIR). Time
# limit: the pending timeout plus 600 s (PV_STEP_TIMEOUT).
set -euo pipefail

: "${PV_ACTION:?}" "${PV_JOB_NAME:?}" "${PV_SECRETS_FILE:?}"
export PV_STATE_DIR=${PV_STATE_DIR:-$HOME/.local/state/pulumi-vllm}
STATE_DIR=$PV_STATE_DIR
# shellcheck source=SCRIPTDIR/lib/txn.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/txn.sh"
STATE="$STATE_DIR/$PV_JOB_NAME.job"
SCRIPT="${PV_SCRIPT_DIR:-$STATE_DIR}/$PV_JOB_NAME.sbatch"
POLL=${PV_POLL_SECONDS:-5}

log() { echo "slurm-job: $*" >&2; }

job_state() { # prints PENDING/RUNNING/... or nothing when squeue no longer lists the job
  squeue -h -j "$1" -o %T 2>/dev/null | head -n 1 || true
}

ended_reason() {
  local id=$1 out
  out=$(sacct -n -X -P -j "$id" -o State,ExitCode,Reason 2>/dev/null | head -n 1 || true)
  [[ -n $out ]] || out=$(scontrol show job "$id" 2>/dev/null | grep -oE '(JobState|Reason|ExitCode)=[^ ]+' | tr '\n' ' ' || true)
  echo "${out:-no record left (sacct and scontrol know nothing of it)}"
}

redacted_tail() { # last lines of a log with every secret value replaced
  local file=$1 text
  [[ -f $file ]] || { echo "(no log at $file)"; return; }
  text=$(tail -n 40 "$file")
  if [[ -f $PV_SECRETS_FILE ]]; then
    while IFS= read -r line; do
      local v=${line#*=}
      [[ -n $v && $line == *=* ]] && text=${text//"$v"/[REDACTED]}
    done <"$PV_SECRETS_FILE"
  fi
  printf '%s\n' "$text"
}

cancel_and_wait() {
  local id=$1
  [[ -n $(job_state "$id") ]] || return 0
  log "cancelling job $id"
  scancel "$id"
  for _ in $(seq 120); do
    [[ -z $(job_state "$id") ]] && return 0
    sleep 1
  done
  log "job $id is still listed by squeue 120 s after scancel"
  return 1
}

# Rollback: the job this run submitted goes; the previous one (cancelled by
# this run) is submitted again from its restored script, and recorded.
undo_cancel() { scancel "$1" 2>/dev/null || true; }
undo_resubmit() { # previous record: "<id> <hash>"
  local out
  [[ -f $SCRIPT ]] || return 0
  if out=$(sbatch --parsable "$SCRIPT" 2>&1); then
    log "rollback: submitted the previous job again as ${out%%;*}"
    echo "${out%%;*} ${1#* }" >"$STATE"
  else
    log "rollback: sbatch refused the previous job: $out"
  fi
}

txn_begin slurm-job "$(( ${PV_PENDING_TIMEOUT:-1800} + 600 ))"

if [[ $PV_ACTION == delete ]]; then
  if [[ -f $STATE ]]; then
    read -r id _ <"$STATE"
    cancel_and_wait "$id"
    rm -f "$STATE" "$SCRIPT" "$PV_SECRETS_FILE"
    txn_commit
    echo changed
  else
    rm -f "$SCRIPT" "$PV_SECRETS_FILE"
    txn_commit
    echo unchanged
  fi
  exit 0
fi

: "${PV_BATCH_SCRIPT:?}" "${PV_LOG_DIR:?}"
umask 077
for d in "$STATE_DIR" "$(dirname "$SCRIPT")" "$(dirname "$PV_SECRETS_FILE")" "$PV_LOG_DIR"; do txn_new_dir "$d"; done
mkdir -p "$STATE_DIR" "$(dirname "$SCRIPT")" "$(dirname "$PV_SECRETS_FILE")"
mkdir -p "$PV_LOG_DIR"

secrets=$(cat)
secrets_hash=$(printf '%s' "$secrets" | sha256sum | cut -d' ' -f1)
script_hash=$(printf '%s' "$PV_BATCH_SCRIPT" | sha256sum | cut -d' ' -f1)
want="$script_hash-$secrets_hash"

id="" recorded=""
[[ -f $STATE ]] && read -r id recorded <"$STATE"
result=unchanged
if [[ -n $id && $recorded == "$want" && -n $(job_state "$id") ]]; then
  log "job $id is already submitted with this script"
else
  txn_save "$STATE" "$SCRIPT" "$PV_SECRETS_FILE"
  if [[ -n $id && -n $(job_state "$id") ]]; then
    txn_undo undo_resubmit "$id $recorded"
    cancel_and_wait "$id"
  fi
  tmp=$(mktemp "$PV_SECRETS_FILE.XXXXXX")
  txn_undo rm -f -- "$tmp"
  printf '%s' "$secrets" >"$tmp"
  [[ -z $secrets || $secrets == *$'\n' ]] || printf '\n' >>"$tmp"
  chmod 600 "$tmp"
  mv -f "$tmp" "$PV_SECRETS_FILE"
  printf '%s' "$PV_BATCH_SCRIPT" >"$SCRIPT"
  if ! out=$(sbatch --parsable "$SCRIPT" 2>&1); then
    echo "slurm-job: sbatch refused the job: $out" >&2
    exit 1
  fi
  id=${out%%;*}
  txn_undo undo_cancel "$id"
  echo "$id $want" >"$STATE"
  log "submitted job $id"
  result=changed
fi

deadline=$((SECONDS + ${PV_PENDING_TIMEOUT:-1800}))
logfile="$PV_LOG_DIR/$PV_JOB_NAME-$id.out"
while :; do
  st=$(job_state "$id")
  case $st in
    RUNNING) break ;;
    PENDING | CONFIGURING | REQUEUED)
      if ((SECONDS >= deadline)); then
        reason=$(squeue -h -j "$id" -o %r 2>/dev/null || true)
        echo "slurm-job: job $id pended longer than ${PV_PENDING_TIMEOUT:-1800} s (SLURM reason: ${reason:-unknown}); cancelled it -> check the partition, account and qos, or raise slurm.pendingTimeoutMinutes" >&2
        exit 1
      fi
      log "job $id is $st ($(squeue -h -j "$id" -o %r 2>/dev/null || true))"
      ;;
    "")
      echo "slurm-job: job $id ended before it ran the server: $(ended_reason "$id")" >&2
      echo "--- last lines of $logfile ---" >&2
      redacted_tail "$logfile" >&2
      exit 1
      ;;
    *)
      log "job $id is $st"
      ;;
  esac
  sleep "$POLL"
done

nodes=$(squeue -h -j "$id" -o %N)
head=$(scontrol show hostnames "$nodes" | head -n 1)
echo "job_id=$id"
echo "head_node=$head"
echo "nodes=$nodes"
echo "log=$logfile"
txn_commit
echo "$result"
