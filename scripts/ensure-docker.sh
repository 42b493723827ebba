#!/usr/bin/env bash
# Make sure a Docker engine answers; start dockerd in the background when none does.
set -euo pipefail
if docker info >/dev/null 2>&1; then
  exit 0
fi
if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
  systemctl start docker && docker info >/dev/null 2>&1 && exit 0 || true
fi
echo "-----> Starting dockerd"
log=/var/log/skiff-dockerd.log
nohup dockerd --storage-driver=overlay2 >"$log" 2>&1 &
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    exit 0
  fi
  sleep 0.5
done
echo "!     dockerd did not start; see $log" >&2
tail -n 20 "$log" >&2 || true
exit 1
