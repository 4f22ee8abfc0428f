#!/usr/bin/env bash
# `npm run demo`: from a fresh clone (Linux, root) to a served model, for real:
# installs what is missing, ensures the Pulumi engine, boots the sandbox
# host, runs `pulumi up --stack dev`, then shows the endpoint and a working
# request. `npm run demo:down` (this script with `down`) destroys the stack
# and stops the sandbox host.
#
# There is no GPU here: the server is vllm-standin, a small stand-in that
# speaks vLLM's HTTP API (test/standin). The steps that put it there are the
# real ones a GPU box gets.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
STACK=dev

[[ $(id -u) -eq 0 ]] || { echo "demo: run as root (it boots a systemd-nspawn container)" >&2; exit 1; }
scripts/install-prereqs.sh
[[ -d node_modules/@pulumi/pulumi ]] || npm ci --no-audit --no-fund
# shellcheck source=scripts/pulumi-env.sh
source scripts/pulumi-env.sh
# The dev stack's own passphrase (its salt is in Pulumi.dev.yaml), unless the user set one.
if [[ -z ${PULUMI_CONFIG_PASSPHRASE+x} && -z ${PULUMI_CONFIG_PASSPHRASE_FILE:-} ]]; then
  export PULUMI_CONFIG_PASSPHRASE=$PULUMI_VLLM_DEV_PASSPHRASE
fi

if [[ ${1:-} == down ]]; then
  if pulumi stack select "$STACK" >/dev/null 2>&1; then
    scripts/dev-host.sh up
    pulumi destroy --yes --stack "$STACK"
  fi
  scripts/dev-host.sh down
  exit 0
fi

scripts/dev-host.sh up
pulumi stack select --create "$STACK" >/dev/null
pulumi up --yes --stack "$STACK"

endpoint=$(pulumi stack output endpoint --stack "$STACK")
model=$(pulumi stack output servedModelName --stack "$STACK")
body=$(printf '{"model": "%s", "messages": [{"role": "user", "content": "Say hello in five words."}], "max_tokens": 32}' "$model")
cat <<MSG

The server is up at $endpoint (model $model).
It is vllm-standin, a stand-in that speaks vLLM's API: there is no GPU on this machine.
Try it (the API key is a Pulumi secret; the header goes on stdin, not argv):

  pulumi stack output apiKey --show-secrets --stack $STACK | sed 's/^/Authorization: Bearer /' | \\
    curl -s -H @- -H 'Content-Type: application/json' $endpoint/chat/completions -d '$body'

MSG
pulumi stack output apiKey --show-secrets --stack "$STACK" | sed 's/^/Authorization: Bearer /' |
  curl -fsS -H @- -H 'Content-Type: application/json' "$endpoint/chat/completions" -d "$body"
echo
echo "Smoke check (models, chat, tool call): npm run smoke -- --stack $STACK"
echo "Tear down: npm run demo:down"
