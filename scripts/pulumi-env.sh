# shellcheck shell=bash
# pulumi-env.sh: source this file (`source scripts/pulumi-env.sh`) to get the
# Pulumi engine of scripts/ensure-pulumi.sh on PATH, set up for local,
# offline use. It does not change the caller's shell options.
#
# Exports:
#   PATH                                         the engine's bin dir first
#   PULUMI_SKIP_UPDATE_CHECK=true                no update check over the network
#   PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
#                                                a missing plugin is an error, not a download
#   PULUMI_VLLM_DEV_PASSPHRASE                   the passphrase of the built-in dev stack
#                                                (Pulumi.dev.yaml's salt belongs to it). Only
#                                                that stack's scripts (demo, smoke --stack dev)
#                                                use it; PULUMI_CONFIG_PASSPHRASE is never set
#                                                here, so no other stack's secrets are silently
#                                                encrypted with a published value
#   PULUMI_BACKEND_URL                           kept if set; else file://<repo>/.pulumi-state
#   PULUMI_VLLM_ENGINE_BIN                       the engine's bin dir
#   PULUMI_HOME                                  kept if set; else the engine's home, whose plugin
#                                                cache holds the command and random plugins
# Inputs: those of ensure-pulumi.sh (PULUMI_VLLM_CACHE, ...).
# Returns non-zero (and changes nothing) when the engine cannot be made ready.

pulumi_vllm_env() {
  local repo bin
  repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd) || return 1
  bin=$("$repo/scripts/ensure-pulumi.sh") || {
    echo "pulumi-env.sh: scripts/ensure-pulumi.sh failed; environment unchanged" >&2
    return 1
  }
  case ":$PATH:" in
    *":$bin:"*) ;;
    *) export PATH="$bin:$PATH" ;;
  esac
  export PULUMI_VLLM_ENGINE_BIN="$bin"
  # The resource plugins are in this home's plugin cache (see ensure-pulumi.sh).
  export PULUMI_HOME="${PULUMI_HOME:-$(dirname "$bin")/home}"
  export PULUMI_SKIP_UPDATE_CHECK=true
  export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
  export PULUMI_VLLM_DEV_PASSPHRASE="pulumi-vllm-dev-passphrase"
  if [[ -z ${PULUMI_BACKEND_URL:-} ]]; then
    mkdir -p "$repo/.pulumi-state"
    export PULUMI_BACKEND_URL="file://$repo/.pulumi-state"
  fi
}

pulumi_vllm_env
