#!/usr/bin/env bash
# make demo-cluster: a Docker Swarm of three engines on this machine, each in its own network
# namespace on a private bridge (skiff.testing.cluster), formed with cluster:init / cluster:add;
# the registry Skiff runs (registry:serve: TLS with its own CA, a password) on the manager's
# cluster address; then examples/catmeow pushed by git as the swarm app catmeow-swarm, scaled to
# web=3 over the nodes, and its answer fetched through nginx. `make demo-cluster-clean` (this
# script with --clean) removes all of it.
#
# Settings (environment): SKIFF_DEMO_CLUSTER_DIR (/var/tmp/skiff-cluster: the engines' files),
# SKIFF_DEMO_APP (catmeow-swarm), SKIFF_DEMO_REGISTRY_PORT (5443), SKIFF_VENV (/opt/skiff/venv),
# SKIFF_BIN (skiff), SKIFF_DEMO_CLUSTER_ONLY (set: stop once the cluster and the registry are up),
# and those of scripts/demo.sh (SKIFF_DEMO_NO_INSTALL, SKIFF_DEMO_DOMAIN, SKIFF_DEMO_HTTP_PORT...).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
dir=${SKIFF_DEMO_CLUSTER_DIR:-/var/tmp/skiff-cluster}
app=${SKIFF_DEMO_APP:-catmeow-swarm}
port=${SKIFF_DEMO_REGISTRY_PORT:-5443}
venv=${SKIFF_VENV:-/opt/skiff/venv}
skiff=${SKIFF_BIN:-skiff}
domain=${SKIFF_DEMO_DOMAIN:-skiff.localhost}
http_port=${SKIFF_DEMO_HTTP_PORT:-80}
# skiff.testing.cluster uses the standard library only, but its package (skiff.testing) imports
# pytest, which an installed Skiff does not have: run the module's file itself (runpy adds
# nothing to sys.path, so no file beside it shadows a module)
cluster_py=$("$venv/bin/python" -c 'import pathlib, skiff; print(pathlib.Path(skiff.__file__).parent / "testing" / "cluster.py")')
cluster=("$venv/bin/python" -c 'import runpy, sys; sys.argv.pop(0); runpy.run_path(sys.argv[0], run_name="__main__")' "$cluster_py")

step() { echo "-----> $*"; }

clean() {
  if [ -f "$dir/cluster.json" ]; then
    host=$("${cluster[@]}" address "$dir" host)
    step "Removing $app, the registry and the cluster in $dir"
    "$skiff" apps:destroy "$app" --force >/dev/null 2>&1 || true
    "$skiff" registry:serve --stop || true
    "$skiff" registry:logout "$host:$port" >/dev/null 2>&1 || true
    for key in server push-server; do "$skiff" registry:set --global "$key" >/dev/null || true; done
    "$skiff" swarm:set --global manager >/dev/null 2>&1 || true
  fi
  "${cluster[@]}" down "$dir"
  step "Nothing of the demo cluster is left"
}

if [ "${1:-}" = "--clean" ]; then
  clean
  exit 0
fi
[ "$(id -u)" = 0 ] || { echo "!     make demo-cluster needs root (network namespaces, engines)" >&2; exit 1; }
[ -n "${SKIFF_DEMO_NO_INSTALL:-}" ] || "$top/scripts/install.sh"
export SKIFF_DEMO_NO_INSTALL=1
[ ! -f "$dir/cluster.json" ] || clean

# -- three engines, each in its own namespace; a swarm formed over their API ------------------
step "Starting three Docker engines in their own network namespaces ($dir)"
"${cluster[@]}" up --no-swarm "$dir" >/dev/null
manager=$("${cluster[@]}" url "$dir" node1)
host=$("${cluster[@]}" address "$dir" host)
"$skiff" cluster:init --manager "$manager" "$("${cluster[@]}" address "$dir" node1)"
for node in node2 node3; do
  "$skiff" cluster:add --manager "$manager" "$("${cluster[@]}" url "$dir" "$node")" \
    --advertise "$("${cluster[@]}" address "$dir" "$node")"
done
"$skiff" cluster:list --manager "$manager"

# -- the registry, on the manager's address on the cluster network ------------------------------
"$skiff" registry:serve "$host:$port"
# builds run on this host's engine, which does not trust the CA: it pushes over loopback
"$skiff" registry:set --global push-server "127.0.0.1:$port"
ca=$("$skiff" registry:report --format json | "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["ca_certificate"])')
"${cluster[@]}" trust "$dir" "$host:$port" "$ca"
step "Every node's engine trusts the registry's CA (its own /etc/docker/certs.d/$host:$port/ca.crt)"
if [ -n "${SKIFF_DEMO_CLUSTER_ONLY:-}" ]; then
  step "Cluster and registry are up (SKIFF_DEMO_CLUSTER_ONLY); make demo-cluster-clean removes them"
  exit 0
fi

# -- catmeow as a swarm app: git push, web=3 over the nodes, through nginx ----------------------
"$skiff" swarm:set --global manager "$manager"
"$skiff" apps:create "$app" >/dev/null 2>&1 || true
"$skiff" scheduler:set "$app" selected swarm
SKIFF_DEMO_APP=$app "$top/scripts/demo.sh"
"$skiff" ps:scale "$app" web=3
"$skiff" ps:report "$app" || true
step "curl -H 'Host: $app.$domain' http://127.0.0.1:$http_port/ (three times)"
for _ in 1 2 3; do
  answer=$(curl -fsS --retry 5 --retry-delay 1 --retry-all-errors -H "Host: $app.$domain" "http://127.0.0.1:$http_port/")
  echo "$answer"
  [ "$answer" = "Cat dreams meow.." ] || { echo "!     unexpected answer" >&2; exit 1; }
done
step "Served from the cluster; make demo-cluster-clean removes it all"
