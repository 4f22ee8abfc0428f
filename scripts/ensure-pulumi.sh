#!/usr/bin/env bash
# ensure-pulumi.sh: make the Pulumi engine available, built only from the Go
# module proxy, into a cache directory outside the repository.
#
# Prints progress to stderr and, on stdout, one line: the directory to put on
# PATH (pulumi and its language host). The resource plugins are installed in
# the plugin cache of ${PULUMI_HOME:-<engine dir>/home}; pulumi-env.sh sets
# PULUMI_HOME to that default when it is unset.
# `source scripts/pulumi-env.sh` calls this and sets up the environment.
#
# Inputs (environment, all optional):
#   PULUMI_VLLM_CACHE          cache root
#                              (default ${XDG_CACHE_HOME:-$HOME/.cache}/pulumi-vllm)
#   PULUMI_VLLM_GOMODCACHE     Go module cache (default $PULUMI_VLLM_CACHE/go/mod)
#   PULUMI_VLLM_GOCACHE        Go build cache (default $PULUMI_VLLM_CACHE/go/build;
#                              safe to delete, it only speeds up rebuilds)
#   PULUMI_VLLM_IGNORE_PATH    1: do not use a pulumi found on PATH (default 0)
#   PULUMI_VLLM_ALLOW_MISSING  space-separated components that may fail to
#                              build without failing this script
#                              (cli nodejs random command; default none:
#                              every component is built)
#   PULUMI_VLLM_RETRY_FAILED   1: retry a build that failed before with the
#                              same inputs (default: not retried)
#
# What is built (the cache key is the versions; a component whose inputs,
# i.e. versions and files under scripts/engine/, changed is rebuilt):
#   pulumi                  github.com/pulumi/pulumi/pkg/v3/cmd/pulumi at
#                           PULUMI_VERSION, from a wrapper module that repeats
#                           the replace directives of pkg/go.mod and sdk/go.mod.
#   pulumi-language-nodejs  upstream github.com/pulumi/pulumi
#                           sdk/nodejs/cmd/pulumi-language-nodejs at
#                           PULUMI_VERSION, from the unmodified source archive in
#                           $PULUMI_VLLM_UPSTREAM (the proxy does not serve that
#                           module): its relative replaces of pkg/sdk dropped and
#                           both required at PULUMI_VERSION, as upstream's
#                           release build resolves them.
#   pulumi-resource-random  Terraform's random provider (TF_RANDOM_VERSION)
#                           through pulumi-terraform-bridge, with the tokens of
#                           the npm @pulumi/random SDK, reporting RANDOM_VERSION
#                           (scripts/engine/random; github.com/pulumi/pulumi-random/
#                           provider/v4 is not served by the proxy). It has the
#                           8 resources of that Terraform provider; the SDK's
#                           RandomUuid4 and RandomUuid7 are not among them.
#   pulumi-resource-command upstream github.com/pulumi/pulumi-command/provider
#                           at v$COMMAND_VERSION, unmodified, from the source
#                           archive in $PULUMI_VLLM_UPSTREAM, with its own go.mod
#                           and go.sum. This is the plugin users get from
#                           `pulumi plugin install resource command 1.2.1`.
#
#   PULUMI_VLLM_UPSTREAM       where the upstream source archives are
#                              (default <repo>/../shared/upstream)
set -euo pipefail

# ---- pinned versions -------------------------------------------------------
readonly PULUMI_VERSION=v3.259.0
# npm @pulumi/command (package.json): the plugin version its SDK asks for.
readonly COMMAND_VERSION=1.2.1
# npm @pulumi/random (package.json) and what its provider is built from.
readonly RANDOM_VERSION=4.21.2
# The bridge brings its own pulumi pkg/sdk (v3.253.0 for v3.135.0).
readonly BRIDGE_VERSION=v3.135.0
readonly BRIDGE_PULUMI_VERSION=v3.253.0
readonly HCL_VERSION=v2.24.0
readonly TF_RANDOM_VERSION=v1.3.2-0.20231204135814-c6e90de46687
# Replace directives repeated from upstream go.mod files.
readonly CLIPBOARD_REPLACE="github.com/atotto/clipboard => github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e"
readonly XTEXT_REPLACE="golang.org/x/text => golang.org/x/text v0.39.0"
readonly TFSDK_REPLACE="github.com/hashicorp/terraform-plugin-sdk/v2 => github.com/pulumi/terraform-plugin-sdk/v2 v2.0.0-20260318212141-5525259d096b"
readonly GO_DIRECTIVE=1.25.11

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly SCRIPT_DIR
readonly TEMPLATES="$SCRIPT_DIR/engine"
UPSTREAM=${PULUMI_VLLM_UPSTREAM:-$SCRIPT_DIR/../../shared/upstream}
readonly UPSTREAM
readonly COMMAND_TARBALL="pulumi-command-v${COMMAND_VERSION}-provider.tar.gz"
readonly NODEJS_TARBALL="pulumi-language-nodejs-${PULUMI_VERSION}.tar.gz"
CACHE_ROOT=${PULUMI_VLLM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pulumi-vllm}
readonly CACHE_ROOT
readonly ENGINE_DIR="$CACHE_ROOT/engine-${PULUMI_VERSION}-cmd${COMMAND_VERSION}-rand${RANDOM_VERSION}-upstream"
readonly BIN_DIR="$ENGINE_DIR/bin"
readonly STAMP_DIR="$ENGINE_DIR/stamps"
readonly BUILD_DIR="$ENGINE_DIR/build"
readonly ALLOW_MISSING=" ${PULUMI_VLLM_ALLOW_MISSING:-} "

log() { printf '[ensure-pulumi] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Hash of a component's inputs: its version line plus its template files.
inputs_hash() {
  local line=$1; shift
  {
    printf '%s\n' "$line" "$GO_DIRECTIVE" "$(go env GOVERSION 2>/dev/null || true)"
    local f
    for f in "$@"; do
      if [[ -d $f ]]; then
        find "$f" -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum
      elif [[ -f $f ]]; then
        # by content and name: the same archive reached by another path is the same input
        printf '%s  %s\n' "$(sha256sum <"$f" | cut -d' ' -f1)" "${f##*/}"
      fi
    done | sed "s|$TEMPLATES/||"
  } | sha256sum | cut -c1-16
}

is_current() { # name hash
  [[ -x $BIN_DIR/$1 && -f $STAMP_DIR/$1 && $(cat "$STAMP_DIR/$1") == "$2" ]]
}

# ---- 1. a pulumi already on PATH -------------------------------------------
plugin_findable() { # binary-name dir-of-pulumi
  command -v "$1" >/dev/null 2>&1 && return 0
  [[ -x $2/$1 ]] && return 0
  local home=${PULUMI_HOME:-$HOME/.pulumi}
  compgen -G "$home/plugins/*/$1" >/dev/null 2>&1
}

if [[ ${PULUMI_VLLM_IGNORE_PATH:-0} != 1 ]] && command -v pulumi >/dev/null 2>&1; then
  path_pulumi=$(command -v pulumi)
  path_dir=$(cd "$(dirname "$path_pulumi")" && pwd)
  if [[ $path_dir != "$BIN_DIR" ]]; then
    path_version=$(PULUMI_SKIP_UPDATE_CHECK=true pulumi version 2>/dev/null || true)
    missing=""
    for p in pulumi-language-nodejs pulumi-resource-random pulumi-resource-command; do
      plugin_findable "$p" "$path_dir" || missing+=" $p"
    done
    if [[ $path_version == "$PULUMI_VERSION" && -z $missing ]]; then
      log "using pulumi $path_version on PATH ($path_pulumi)"
      printf '%s\n' "$path_dir"
      exit 0
    fi
    log "not using pulumi on PATH ($path_pulumi, version '${path_version}', missing:${missing:- none}); using the cache"
  fi
fi

# ---- 2. build into the cache -----------------------------------------------
command -v go >/dev/null 2>&1 || die "go is not installed (apt-get install golang-go, or the image's Go)"
mkdir -p "$BIN_DIR" "$STAMP_DIR" "$BUILD_DIR"

# One build at a time per cache; a second caller waits.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$CACHE_ROOT/.engine.lock"
  if ! flock -n 9; then
    log "another ensure-pulumi.sh is building in $CACHE_ROOT; waiting"
    flock 9
  fi
fi

export GOMODCACHE=${PULUMI_VLLM_GOMODCACHE:-$CACHE_ROOT/go/mod}
export GOCACHE=${PULUMI_VLLM_GOCACHE:-$CACHE_ROOT/go/build}
export GOFLAGS="-mod=mod -buildvcs=false"
export GOTOOLCHAIN=local
export CGO_ENABLED=0

HASH_CLI=$(inputs_hash "cli $PULUMI_VERSION $CLIPBOARD_REPLACE $XTEXT_REPLACE")
HASH_NODEJS=$(inputs_hash "nodejs-upstream $PULUMI_VERSION" "$UPSTREAM/$NODEJS_TARBALL")
HASH_RANDOM=$(inputs_hash "random $RANDOM_VERSION $BRIDGE_VERSION $BRIDGE_PULUMI_VERSION $HCL_VERSION $TF_RANDOM_VERSION $TFSDK_REPLACE $CLIPBOARD_REPLACE" "$TEMPLATES/random")
HASH_COMMAND=$(inputs_hash "command-upstream $COMMAND_VERSION" "$UPSTREAM/$COMMAND_TARBALL")

failed=""
total_start=$SECONDS

# run_step NAME HASH FUNCTION: build one component unless current, timed.
run_step() {
  local name=$1 hash=$2 fn=$3 start log_file
  if is_current "$name" "$hash"; then
    log "$name: cached ($BIN_DIR/$name)"
    return 0
  fi
  # A build that failed with the same inputs is not retried (no network on a
  # warm run) unless PULUMI_VLLM_RETRY_FAILED=1.
  if [[ ${PULUMI_VLLM_RETRY_FAILED:-0} != 1 && -f $STAMP_DIR/$name.failed &&
    $(cat "$STAMP_DIR/$name.failed") == "$hash" ]]; then
    log "$name: failed before with the same inputs, not retrying (PULUMI_VLLM_RETRY_FAILED=1 retries; log: $BUILD_DIR/$name.log)"
    failed+=" $name"
    return 0
  fi
  start=$SECONDS
  log_file="$BUILD_DIR/$name.log"
  log "$name: building (log: $log_file)"
  # A subshell outside any `if`, so that set -e stops at the first failure.
  set +e
  (set -e; "$fn") >"$log_file" 2>&1
  local rc=$?
  set -e
  if [[ $rc -eq 0 ]]; then
    printf '%s\n' "$hash" >"$STAMP_DIR/$name"
    rm -f "$STAMP_DIR/$name.failed"
    log "$name: built in $((SECONDS - start))s"
  else
    log "$name: FAILED after $((SECONDS - start))s; last lines of $log_file:"
    tail -n 15 "$log_file" >&2 || true
    rm -f "$STAMP_DIR/$name"
    printf '%s\n' "$hash" >"$STAMP_DIR/$name.failed"
    failed+=" $name"
  fi
}

write_go_mod() { # dir module require-lines... ; replaces from REPLACES array
  local dir=$1 module=$2; shift 2
  mkdir -p "$dir"
  {
    printf 'module %s\n\ngo %s\n\n' "$module" "$GO_DIRECTIVE"
    local r
    for r in "${REPLACES[@]}"; do printf 'replace %s\n' "$r"; done
    printf '\nrequire (\n'
    for r in "$@"; do printf '\t%s\n' "$r"; done
    printf ')\n'
  } >"$dir/go.mod.new"
  # Keep go.sum (and the resolved go.mod) when nothing changed.
  if ! cmp -s "$dir/go.mod.new" "$dir/go.mod.in" 2>/dev/null; then
    mv "$dir/go.mod.new" "$dir/go.mod.in"
    cp "$dir/go.mod.in" "$dir/go.mod"
    rm -f "$dir/go.sum"
  else
    rm -f "$dir/go.mod.new"
  fi
}

install_bin() { # built-file name
  chmod 0755 "$1"
  mv -f "$1" "$BIN_DIR/$2"
}

build_cli() {
  local dir="$BUILD_DIR/cli"
  REPLACES=("$CLIPBOARD_REPLACE" "$XTEXT_REPLACE")
  write_go_mod "$dir" pulumi-vllm.local/engine/cli \
    "github.com/pulumi/pulumi/pkg/v3 $PULUMI_VERSION" \
    "github.com/pulumi/pulumi/sdk/v3 $PULUMI_VERSION"
  (cd "$dir" && go build -trimpath -o "$dir/pulumi.tmp" \
    -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION" \
    github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
  install_bin "$dir/pulumi.tmp" pulumi
  "$BIN_DIR/pulumi" version
}

# Unpacks an upstream source archive into a fresh directory of the build dir.
unpack_upstream() { # archive dest
  [[ -f $UPSTREAM/$1 ]] || { echo "missing $UPSTREAM/$1 (set PULUMI_VLLM_UPSTREAM to the folder holding the upstream source archives)"; return 1; }
  rm -rf "$2"
  mkdir -p "$2"
  tar -xzf "$UPSTREAM/$1" -C "$2" --strip-components=1
}

build_nodejs() {
  local src="$BUILD_DIR/nodejs-upstream"
  unpack_upstream "$NODEJS_TARBALL" "$src"
  local dir="$src/sdk/nodejs/cmd/pulumi-language-nodejs"
  # Upstream builds it inside its monorepo (relative replaces of pkg and sdk);
  # outside it, require the released modules of the same tag instead.
  (cd "$dir" &&
    go mod edit -dropreplace github.com/pulumi/pulumi/pkg/v3 -dropreplace github.com/pulumi/pulumi/sdk/v3 \
      -require "github.com/pulumi/pulumi/pkg/v3@$PULUMI_VERSION" -require "github.com/pulumi/pulumi/sdk/v3@$PULUMI_VERSION" &&
    go mod tidy &&
    go build -trimpath -o "$dir/host.tmp" \
      -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION" .)
  install_bin "$dir/host.tmp" pulumi-language-nodejs
  rm -rf "$src"
}

build_random() {
  local dir="$BUILD_DIR/random"
  mkdir -p "$dir"
  rm -rf "$dir/info" "$dir/cmd" "$dir/shim"/*.go
  cp -R "$TEMPLATES/random/info" "$TEMPLATES/random/cmd" "$dir/"
  mkdir -p "$dir/shim"
  cp "$TEMPLATES/random/shim/shim.go" "$dir/shim/"
  REPLACES=()
  write_go_mod "$dir/shim" github.com/terraform-providers/terraform-provider-random/shim \
    "github.com/terraform-providers/terraform-provider-random $TF_RANDOM_VERSION"
  # The bridge imports pulumi-yaml and pulumi-language-dotnet codegen (example
  # conversion, C# schema section) at pseudo-versions the proxy does not serve;
  # the served releases do not compile against its pulumi, so small local
  # stand-ins (scripts/engine/random/stubs) take their place.
  local m
  for m in "yaml github.com/pulumi/pulumi-yaml" "dotnet github.com/pulumi/pulumi-dotnet/pulumi-language-dotnet/v3"; do
    rm -rf "$dir/stubs/${m%% *}"
    mkdir -p "$dir/stubs"
    cp -R "$TEMPLATES/random/stubs/${m%% *}" "$dir/stubs/"
    REPLACES=()
    write_go_mod "$dir/stubs/${m%% *}" "${m#* }" \
      "github.com/pulumi/pulumi/pkg/v3 $BRIDGE_PULUMI_VERSION" \
      "github.com/hashicorp/hcl/v2 $HCL_VERSION"
  done
  REPLACES=("$TFSDK_REPLACE" "$CLIPBOARD_REPLACE"
    "github.com/terraform-providers/terraform-provider-random/shim => ./shim"
    "github.com/pulumi/pulumi-yaml => ./stubs/yaml"
    "github.com/pulumi/pulumi-dotnet/pulumi-language-dotnet/v3 => ./stubs/dotnet")
  write_go_mod "$dir" pulumi-vllm.local/engine/random \
    "github.com/pulumi/pulumi-terraform-bridge/v3 $BRIDGE_VERSION" \
    "github.com/terraform-providers/terraform-provider-random $TF_RANDOM_VERSION" \
    "github.com/terraform-providers/terraform-provider-random/shim v0.0.0"
  # The schema generator embeds placeholders; it then writes the real files.
  printf '{}\n' >"$dir/info/schema.json"
  printf '{}\n' >"$dir/info/bridge-metadata.json"
  local ldflags="-s -w -X pulumi-vllm.local/engine/random/info.Version=$RANDOM_VERSION"
  (cd "$dir" && go build -trimpath -o "$dir/pulumi-tfgen-random" -ldflags "$ldflags" ./cmd/pulumi-tfgen-random)
  (cd "$dir" && PULUMI_HOME="$dir/.pulumi-home" PULUMI_SKIP_UPDATE_CHECK=true \
    ./pulumi-tfgen-random schema --out info --skip-docs --skip-examples)
  [[ $(wc -c <"$dir/info/schema.json") -gt 100 ]] || { echo "schema.json was not generated"; return 1; }
  (cd "$dir" && go build -trimpath -o "$dir/random.tmp" -ldflags "$ldflags" ./cmd/pulumi-resource-random)
  install_bin "$dir/random.tmp" pulumi-resource-random
  rm -f "$dir/pulumi-tfgen-random"
  "$BIN_DIR/pulumi-resource-random" -version
}

build_command() {
  local src="$BUILD_DIR/command-upstream"
  unpack_upstream "$COMMAND_TARBALL" "$src"
  (cd "$src/provider" && go build -trimpath -o "$src/command.tmp" \
    -ldflags "-s -w -X github.com/pulumi/pulumi-command/provider/pkg/version.Version=$COMMAND_VERSION" \
    ./cmd/pulumi-resource-command)
  install_bin "$src/command.tmp" pulumi-resource-command
  rm -rf "$src"
}

log "engine cache: $ENGINE_DIR (GOMODCACHE=$GOMODCACHE)"
run_step pulumi "$HASH_CLI" build_cli
run_step pulumi-language-nodejs "$HASH_NODEJS" build_nodejs
run_step pulumi-resource-random "$HASH_RANDOM" build_random
run_step pulumi-resource-command "$HASH_COMMAND" build_command
log "engine ready check took $((SECONDS - total_start))s in total"

if [[ -n $failed ]]; then
  fatal=""
  for f in $failed; do
    case $f in
      pulumi) short=cli ;;
      pulumi-language-nodejs) short=nodejs ;;
      *) short=${f#pulumi-resource-} ;;
    esac
    [[ $ALLOW_MISSING == *" $short "* ]] || fatal+=" $f"
  done
  if [[ -n $fatal ]]; then
    die "could not build:$fatal (set PULUMI_VLLM_ALLOW_MISSING to go on without them)"
  fi
  log "going on without:$failed (PULUMI_VLLM_ALLOW_MISSING)"
fi

# ---- 3. lay the engine out the way Pulumi looks for it ---------------------
# The resource plugins go into the plugin cache ($PULUMI_HOME/plugins/
# resource-<name>-v<version>/), where the engine finds them by version; on
# PATH it would use them too, but warn "using ... from $PATH" on every run.
# PATH gets only pulumi and its bundled language host (links into bin/, which
# Pulumi recognises as bundled next to itself).
PLUGIN_HOME=${PULUMI_HOME:-$ENGINE_DIR/home}
publish_plugin() { # binary-name version
  local name=${1#pulumi-resource-} dir
  [[ -x $BIN_DIR/$1 ]] || return 0
  dir="$PLUGIN_HOME/plugins/resource-$name-v$2"
  if ! cmp -s "$BIN_DIR/$1" "$dir/$1" 2>/dev/null; then
    mkdir -p "$dir"
    ln -f "$BIN_DIR/$1" "$dir/$1" 2>/dev/null || cp -f "$BIN_DIR/$1" "$dir/$1"
    rm -f "$dir.partial"
  fi
}
publish_plugin pulumi-resource-command "$COMMAND_VERSION"
publish_plugin pulumi-resource-random "$RANDOM_VERSION"
PATH_DIR="$ENGINE_DIR/path"
mkdir -p "$PATH_DIR"
for b in pulumi pulumi-language-nodejs; do
  [[ -x $BIN_DIR/$b ]] && ln -sfn "$BIN_DIR/$b" "$PATH_DIR/$b"
done
printf '%s\n' "$PATH_DIR"
