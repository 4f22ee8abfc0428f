#!/usr/bin/env bash
# `npm run smoke -- --stack <name> [--endpoint URL]`: `pulumi-vllm smoke` with
# this repository's engine and backend (scripts/pulumi-env.sh), for the demo's
# stacks. The built-in dev stack gets its published passphrase unless one is
# set; any other stack uses yours. Outside this repository run
# `npx pulumi-vllm smoke --stack <name>` with your own pulumi and backend.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/pulumi-env.sh
source "$repo/scripts/pulumi-env.sh" >/dev/null
stack=
prev=
for a in "$@"; do
  if [[ $prev == --stack ]]; then stack=$a; fi
  if [[ $a == --stack=* ]]; then stack=${a#--stack=}; fi
  prev=$a
done
if [[ $stack == dev && -z ${PULUMI_CONFIG_PASSPHRASE+x} && -z ${PULUMI_CONFIG_PASSPHRASE_FILE:-} ]]; then
  export PULUMI_CONFIG_PASSPHRASE=$PULUMI_VLLM_DEV_PASSPHRASE
fi
cd "$repo"
exec node "$repo/bin/pulumi-vllm.js" smoke "$@"
