#!/usr/bin/env bash
# pulumi-vllm host step library: redaction of secret values in text a step
# prints (a journal tail, a tool's error). Included like lib/txn.sh (see
# there). Needs from the step: the array SECRET_VALUES (the values to hide).

# stdin -> stdout, every value of SECRET_VALUES replaced by [REDACTED]
# (literal replacement: a value is never read as a pattern). Also collapses
# tqdm's \r redraws (journald keeps them in one line, shown only with -a) to
# the line's prefix plus its last state.
redact() {
  local line v
  while IFS= read -r line || [[ -n $line ]]; do
    if [[ $line == *$'\r'* ]]; then line="${line%%$'\r'*}${line##*$'\r'}"; fi
    for v in "${SECRET_VALUES[@]}"; do
      [[ -n $v ]] && line=${line//"$v"/[REDACTED]}
    done
    printf '%s\n' "$line"
  done
}
