#!/usr/bin/env bash
# Install the Debian packages Skiff needs; does nothing when they are all there.
# docker-registry: the binary `registry:serve` runs for a cluster. --test adds what only the test
# suite needs (`make test`): iproute2 and util-linux (nsenter, unshare) for the one-machine
# cluster of skiff.testing.cluster, pebble, Let's Encrypt's ACME test
# server, which the letsencrypt plugin's end-to-end tests start on loopback ports, and chromium
# with chromium-driver, the headless browser of skiff.testing.browser (the dashboard's tests).
set -euo pipefail
packages=(docker.io debootstrap nginx openssh-server git python3 python3-venv curl ca-certificates openssl sudo wrk docker-registry gnupg)
if [ "${1:-}" = "--test" ]; then
  packages+=(pebble iproute2 util-linux chromium chromium-driver)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "-----> Installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
# nginx and sshd from the package may try to start system services; Skiff manages its own.
# docker-registry's package enables a registry on :5000 of its own; `registry:serve` runs Skiff's
# (TLS, htpasswd, its own storage) only when asked, so the packaged service stays off.
if [[ " ${missing[*]} " == *" docker-registry "* ]] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  systemctl disable --now docker-registry.service >/dev/null 2>&1 || true
fi
