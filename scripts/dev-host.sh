#!/usr/bin/env bash
# The dev stack's host: the test sandbox (a Debian bookworm container with
# systemd and sshd, scripts/sandbox) booted as "dev" on 127.0.0.1:2299, made
# ready for Pulumi.dev.yaml.
#
# Usage: scripts/dev-host.sh up | down
# Environment: PULUMI_VLLM_CACHE (cache dir, as in scripts/sandbox), PV_DEV_SSH_PORT (default 2299).
#
# up: boots the sandbox when it is not running, links its key and known_hosts
#     at .sandbox/dev/ (Pulumi.dev.yaml points there), and prepares what a
#     real GPU box would not need:
#       - the vLLM stand-in wheels (test/standin, versions 0.11.0 and 0.11.1)
#         in /opt/pulumi-vllm-standin/wheels, since vLLM itself cannot run here;
#       - this machine's extra CA certificates, when it has any (a TLS proxy
#         in front of PyPI), so uv inside can fetch from PyPI.
# down: stops the sandbox and removes .sandbox/dev.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PORT=${PV_DEV_SSH_PORT:-2299}
CACHE=${PULUMI_VLLM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pulumi-vllm}
INST="$CACHE/instances/dev"
LINK="$REPO/.sandbox/dev"
STANDIN_VERSIONS=(0.11.0 0.11.1)

log() { echo "dev-host: $*" >&2; }

case ${1:-} in
  up)
    if [[ -f $INST/pid ]] && kill -0 "$(cat "$INST/pid")" 2>/dev/null; then
      log "sandbox dev is running (pid $(cat "$INST/pid"))"
    else
      "$REPO/scripts/sandbox/up.sh" dev "$PORT" >/dev/null
    fi
    mkdir -p "$REPO/.sandbox"
    ln -sfn "$INST" "$LINK"
    root="$INST/root"
    wheels="$root/opt/pulumi-vllm-standin/wheels"
    mkdir -p "$wheels"
    for v in "${STANDIN_VERSIONS[@]}"; do
      python3 "$REPO/test/standin/build-wheel.py" --version "$v" --out "$wheels" >/dev/null
    done
    shopt -s nullglob
    cas=(/usr/local/share/ca-certificates/*.crt)
    if ((${#cas[@]})); then
      mkdir -p "$root/usr/local/share/ca-certificates"
      cp -f "${cas[@]}" "$root/usr/local/share/ca-certificates/"
      ssh -i "$LINK/id_ed25519" -o UserKnownHostsFile="$LINK/known_hosts" -o StrictHostKeyChecking=yes \
        -o BatchMode=yes -p "$PORT" root@127.0.0.1 update-ca-certificates >/dev/null 2>&1
    fi
    log "ready: root@127.0.0.1:$PORT (key .sandbox/dev/id_ed25519, host key pinned from .sandbox/dev/known_hosts)"
    ;;
  down)
    "$REPO/scripts/sandbox/down.sh" dev >/dev/null 2>&1 || true
    rm -f "$LINK"
    log "stopped"
    ;;
  *)
    echo "usage: $0 up|down" >&2
    exit 2
    ;;
esac
