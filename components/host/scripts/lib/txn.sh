#!/usr/bin/env bash
# pulumi-vllm host step library: bounded output, a time limit, and a journal
# of changes that is rolled back when the step fails.
#
# Why: the upstream Command provider records nothing for a failed create (so
# `pulumi destroy` never runs that step's delete) and keeps the OLD inputs
# after a failed update (so a reverted config is a no-op). A step that fails
# half-way must therefore leave the host exactly as it found it. And a step
# must never hang the engine: upstream stops reading a command's output at a
# line over 64 KiB (`pulumi up` then hangs for ever), and Ctrl-C does not stop
# a running command.
#
# Included into each step script by components/host/remote-command.ts (the
# `. "$(dirname ...)/lib/txn.sh"` line is replaced by this text), so a step is
# still one self-contained `bash -c` on the host.
#
# Use, in a step script, after its own helpers are defined:
#   txn_begin <step> [time-limit-seconds]
#       bounds every output line (`\r` redraws collapsed to the last one, each
#       line cut at PV_LINE_MAX characters), starts the time limit (the step
#       is stopped and rolled back when it runs out; PV_STEP_TIMEOUT overrides
#       it, 0 = none), rolls back a journal left by an earlier run that was
#       killed before it could roll back, and opens a new journal.
#   txn_save <path>...   before changing a file: remembers it (a copy with mode
#                        and owner) or that it was absent.
#   txn_new_dir <dir>    before creating a directory tree that is absent: the
#                        rollback removes it (a no-op when it already exists).
#   txn_move_aside <path>
#                        instead of deleting something the step replaces (an
#                        old venv, an old uv): renames it next to itself; the
#                        rollback renames it back, txn_commit deletes it.
#   txn_undo <cmd> [args...]
#                        registers a command (a function of the script or a
#                        program) that the rollback runs; undo entries run in
#                        reverse order of registration, files and commands
#                        interleaved as they were recorded.
#   txn_commit           the step succeeded: the journal is dropped.
# A step that exits non-zero (an error, `die`, a signal, the time limit) before
# txn_commit is rolled back, then exits with its own status. The journal lives
# in ${PV_STATE_DIR:-/var/lib/pulumi-vllm}/txn/<step>/ (0700): a run killed
# with SIGKILL leaves it there, and the next run of the step rolls it back first.
#
# Inputs (environment, optional): PV_STEP_TIMEOUT (seconds), PV_LINE_MAX
# (default 4000 characters), PV_STATE_DIR (steps that run as a user on a
# SLURM login node keep their state, and this journal, on a path of theirs).

TXN_ROOT=${PV_STATE_DIR:-/var/lib/pulumi-vllm}
TXN_ROOT=${TXN_ROOT%/}/txn
TXN_DIR=
TXN_SEQ=0
TXN_STATE=none # none | open | committed | rolling-back
TXN_STEP=
declare -a TXN_FILTER_PIDS=()
TXN_WATCHDOG=

txn_log() { printf '%s: %s\n' "${TXN_STEP:-step}" "$*" >&2; }

# One output stream through a filter that keeps each line bounded. sed reads a
# whole line (any length), keeps what follows the last `\r` (progress redraws),
# and cuts it; -u passes each line on at once (live progress in `pulumi up`).
txn_bound_output() {
  local max=${PV_LINE_MAX:-4000}
  [[ $max =~ ^[0-9]+$ ]] && ((max >= 80 && max <= 30000)) || max=4000
  exec 3>&1 4>&2
  exec 1> >(LC_ALL=C.UTF-8 sed -u -E -e 's/\r+$//' -e 's/.*\r//' -e "s/^(.{$max}).+$/\\1 [line cut at $max characters]/")
  TXN_FILTER_PIDS+=("$!")
  exec 2> >(LC_ALL=C.UTF-8 sed -u -E -e 's/\r+$//' -e 's/.*\r//' -e "s/^(.{$max}).+$/\\1 [line cut at $max characters]/" >&4)
  TXN_FILTER_PIDS+=("$!")
}

# Is PID still running? A filter that has ended stays a zombie until bash
# reaps it, and kill -0 would count that as running.
txn_running() {
  local stat
  { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
  [[ ${stat##*) } != Z* ]]
}

# Closes the filtered streams and waits (at most 5 s) until the filters have
# passed everything on: the last stdout line (`changed`) must reach the engine.
txn_flush_output() {
  ((${#TXN_FILTER_PIDS[@]})) || return 0
  exec 1>&3 2>&4
  local pid i
  for pid in "${TXN_FILTER_PIDS[@]}"; do
    for ((i = 0; i < 50; i++)); do
      txn_running "$pid" || break
      sleep 0.1
    done
  done
  TXN_FILTER_PIDS=()
}

# Children of a process, from /proc (no procps: a minimal host has no pgrep).
txn_children() {
  local parent=$1 stat p
  local -a fields
  for p in /proc/[0-9]*; do
    { read -r stat <"$p/stat"; } 2>/dev/null || continue
    # the fields after the command name (which may hold spaces): state, ppid, ...
    read -r -a fields <<<"${stat##*) }"
    if [[ ${fields[1]:-} == "$parent" ]]; then printf '%s\n' "${p#/proc/}"; fi
  done
}

# The time limit: a watcher that, when it runs out, stops the step's children
# and then the step (whose trap rolls back). A host frozen for a while (SIGSTOP)
# still ends the step once it runs again, because the watcher counts wall time.
# Its sleep holds none of the step's output pipes: a sleep left behind would
# keep the SSH session, and so `pulumi up`, open until it ends.
txn_start_watchdog() {
  local seconds=$1 main=$$
  ((seconds > 0)) || return 0
  local keep=" ${TXN_FILTER_PIDS[*]} "
  (
    sleep "$seconds" >/dev/null 2>&1 3>&- 4>&-
    printf '%s: ERROR: time limit of %ss reached (PV_STEP_TIMEOUT): stopping the step\n' "$TXN_STEP" "$seconds" >&2
    # The step's children first (bash runs its trap only once the command it
    # waits for has ended), but not the output filters nor this watcher.
    local child
    for child in $(txn_children "$main"); do
      [[ $keep == *" $child "* || $child == "$BASHPID" ]] || kill -TERM "$child" 2>/dev/null || true
    done
    kill -TERM "$main" 2>/dev/null || true
  ) &
  TXN_WATCHDOG=$!
}

# The watcher first (so that it cannot go on to stop the step), then its sleep.
txn_stop_watchdog() {
  [[ -n $TXN_WATCHDOG ]] || return 0
  local sleeper
  sleeper=$(txn_children "$TXN_WATCHDOG")
  kill -TERM "$TXN_WATCHDOG" 2>/dev/null || true
  wait "$TXN_WATCHDOG" 2>/dev/null || true
  # shellcheck disable=SC2086  # a list of pids
  [[ -z $sleeper ]] || kill -TERM $sleeper 2>/dev/null || true
  TXN_WATCHDOG=
}

# Journal entries, one file each, named by sequence number:
#   <n>.file  first line: the path; second line: `absent` or `saved`
#             (a copy of the file is <n>.data, made with cp -a)
#   <n>.dir   a directory that did not exist: removed by the rollback
#   <n>.cmd   a command line, each word %q-quoted (safe to eval)
#   <n>.aside first line: the path; second line: where it was moved
# Sets TXN_ENTRY to the path (without suffix) of the next journal entry; not
# called in $(...), whose subshell would lose the counter. The journal
# directory is made at the first entry: a run that changes nothing touches
# nothing on disk.
TXN_ENTRY=
txn_next() {
  if [[ -z $TXN_DIR ]]; then
    install -d -m 0700 "$TXN_ROOT" "$TXN_ROOT/$TXN_STEP"
    TXN_DIR=$(mktemp -d "$TXN_ROOT/$TXN_STEP/run.XXXXXX")
  fi
  TXN_SEQ=$((TXN_SEQ + 1))
  printf -v TXN_ENTRY '%s/%06d' "$TXN_DIR" "$TXN_SEQ"
}

txn_save() {
  [[ $TXN_STATE == open ]] || return 0
  local p e
  for p in "$@"; do
    # Only the first save of a path counts: that is the state before the step.
    if [[ -n $TXN_DIR ]] && grep -qxF -- "$p" "$TXN_DIR"/*.file 2>/dev/null; then continue; fi
    txn_next
    e=$TXN_ENTRY
    if [[ -e $p || -L $p ]]; then
      cp -a -- "$p" "$e.data"
      printf '%s\nsaved\n' "$p" >"$e.file"
    else
      printf '%s\nabsent\n' "$p" >"$e.file"
    fi
  done
}

txn_new_dir() {
  [[ $TXN_STATE == open ]] || return 0
  [[ -e $1 ]] && return 0
  txn_next
  printf '%s\n' "$1" >"$TXN_ENTRY.dir"
}

txn_move_aside() {
  [[ $TXN_STATE == open ]] || return 0
  [[ -e $1 || -L $1 ]] || return 0
  local e aside
  txn_next
  e=$TXN_ENTRY
  aside="$1.pv-txn-${e##*/}-$$"
  mv -T -- "$1" "$aside"
  printf '%s\n%s\n' "$1" "$aside" >"$e.aside"
}

txn_undo() {
  [[ $TXN_STATE == open ]] || return 0
  txn_next
  printf '%q ' "$@" >"$TXN_ENTRY.cmd"
}

# Rolls back the journal in DIR (newest entry first). Each entry is tried on
# its own: one that fails is reported and the others still run.
txn_rollback_dir() {
  local dir=$1 entry path how
  local -a entries=()
  mapfile -t entries < <(find "$dir" -maxdepth 1 -type f \( -name '*.file' -o -name '*.dir' -o -name '*.cmd' -o -name '*.aside' \) -printf '%f\n' | LC_ALL=C sort -r)
  for entry in "${entries[@]}"; do
    case $entry in
      *.file)
        path=$(sed -n 1p "$dir/$entry")
        how=$(sed -n 2p "$dir/$entry")
        if [[ $how == absent ]]; then
          if [[ -e $path || -L $path ]]; then
            txn_log "rollback: removing $path"
            rm -rf -- "$path" || txn_log "rollback: could not remove $path"
          fi
        elif ! cmp -s -- "$dir/${entry%.file}.data" "$path" 2>/dev/null ||
          [[ $(stat -c '%a %u %g' -- "$dir/${entry%.file}.data") != "$(stat -c '%a %u %g' -- "$path" 2>/dev/null)" ]]; then
          txn_log "rollback: restoring $path"
          rm -rf -- "$path.pv-restore"
          if ! { cp -a -- "$dir/${entry%.file}.data" "$path.pv-restore" && mv -fT -- "$path.pv-restore" "$path"; }; then
            txn_log "rollback: could not restore $path"
          fi
        fi
        ;;
      *.dir)
        path=$(cat "$dir/$entry")
        if [[ -e $path ]]; then
          txn_log "rollback: removing $path"
          rm -rf -- "$path" || txn_log "rollback: could not remove $path"
        fi
        ;;
      *.aside)
        path=$(sed -n 1p "$dir/$entry")
        how=$(sed -n 2p "$dir/$entry")
        if [[ -e $how || -L $how ]]; then
          txn_log "rollback: putting back $path"
          if ! { rm -rf -- "$path" && mv -T -- "$how" "$path"; }; then
            txn_log "rollback: could not put back $path (it is at $how)"
          fi
        fi
        ;;
      *.cmd)
        txn_log "rollback: $(cat "$dir/$entry")"
        # The words were written with %q: eval gives them back unchanged.
        eval "$(cat "$dir/$entry")" >&2 || txn_log "rollback: that command failed (status $?)"
        ;;
    esac
  done
  rm -rf -- "$dir"
}

txn_on_exit() {
  local status=$?
  trap - EXIT
  trap '' INT TERM HUP PIPE
  txn_stop_watchdog
  if [[ $TXN_STATE == open && -n $TXN_DIR ]]; then
    if ((status == 0)); then
      # A script that changed something and ends without txn_commit has not
      # said it succeeded (a step that changes nothing needs no commit).
      status=1
      txn_log "ERROR: ended without committing"
    fi
    TXN_STATE=rolling-back
    txn_log "failed (status $status): undoing what this run changed"
    txn_rollback_dir "$TXN_DIR"
    txn_remove_empty_dirs
    txn_log "rolled back: the host is as it was before this run"
  fi
  txn_flush_output
  exit "$status"
}

txn_begin() {
  TXN_STEP=$1
  local limit=${PV_STEP_TIMEOUT:-${2:-0}}
  [[ $limit =~ ^[0-9]+$ ]] || limit=${2:-0}
  txn_bound_output
  trap txn_on_exit EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP
  # A lost SSH connection closes the output pipes: keep going to the rollback.
  trap '' PIPE
  txn_start_watchdog "$limit"
  local old
  for old in "$TXN_ROOT/$TXN_STEP"/run.*/; do
    [[ -d $old ]] || continue
    txn_log "an earlier run was stopped before it could roll back: undoing it first"
    txn_rollback_dir "${old%/}"
    txn_remove_empty_dirs
  done
  TXN_DIR=
  TXN_STATE=open
}

txn_remove_empty_dirs() {
  rmdir -- "$TXN_ROOT/$TXN_STEP" "$TXN_ROOT" "$(dirname "$TXN_ROOT")" 2>/dev/null || true
}

txn_commit() {
  [[ $TXN_STATE == open ]] || return 0
  if [[ -n $TXN_DIR ]]; then
    local e
    for e in "$TXN_DIR"/*.aside; do
      [[ -f $e ]] && rm -rf -- "$(sed -n 2p "$e")"
    done
    rm -rf -- "$TXN_DIR"
    txn_remove_empty_dirs
  fi
  TXN_STATE=committed
}
