#!/usr/bin/env bash
# Debian packages the sandbox host, the host/e2e/slurm test tiers and the demo
# need on THIS machine (not on the target host). Installs only what is missing.
# Usage: scripts/install-prereqs.sh   (root; Debian/Ubuntu)
set -euo pipefail
want=(systemd-container debootstrap openssh-client util-linux shellcheck curl iproute2 python3 ca-certificates)
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-prereqs: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "install-prereqs: ok" >&2
