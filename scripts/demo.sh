#!/usr/bin/env bash
# make demo: install Skiff, then deploy examples/catmeow by a real `git push` over SSH and
# print its answer fetched through nginx. Run it again and it redeploys.
#
# Settings (environment): SKIFF_DEMO_DOMAIN (skiff.localhost: only used in the Host header,
# no DNS needed), SKIFF_DEMO_DIR (/var/tmp/skiff-demo: the demo key and work tree),
# SKIFF_DEMO_SSH_PORT (22), SKIFF_DEMO_HTTP_PORT (80), SKIFF_USER (skiff: the account to push to),
# SKIFF_DEMO_APP (catmeow: the app name).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
domain=${SKIFF_DEMO_DOMAIN:-skiff.localhost}
demo=${SKIFF_DEMO_DIR:-/var/tmp/skiff-demo}
ssh_port=${SKIFF_DEMO_SSH_PORT:-22}
http_port=${SKIFF_DEMO_HTTP_PORT:-80}
user=${SKIFF_USER:-skiff}
app=${SKIFF_DEMO_APP:-catmeow}  # the app examples/catmeow is pushed as (make demo-cluster: catmeow-swarm)

step() { echo "-----> $*"; }

[ -n "${SKIFF_DEMO_NO_INSTALL:-}" ] || "$top/scripts/install.sh"

# -- a key for the demo ------------------------------------------------------------------
mkdir -p "$demo" && chmod 0700 "$demo"
key="$demo/id_ed25519"
if [ ! -f "$key" ]; then
  step "Creating the demo key $key"
  ssh-keygen -q -t ed25519 -N "" -C skiff-demo -f "$key"
  skiff ssh-keys:remove demo >/dev/null 2>&1 || true
fi
if ! skiff ssh-keys:list --format json | grep -q '"name": "demo"'; then
  skiff ssh-keys:add demo - --role admin < "$key.pub"
fi

skiff domains:set-global "$domain"

# -- the app's repository (a clone of examples/catmeow) -------------------------------------
work="$demo/$app"
mkdir -p "$work"
cp -a "$top/examples/catmeow/." "$work/"
export GIT_AUTHOR_NAME="Skiff demo" GIT_AUTHOR_EMAIL="demo@skiff.invalid"
export GIT_COMMITTER_NAME="Skiff demo" GIT_COMMITTER_EMAIL="demo@skiff.invalid"
if [ ! -d "$work/.git" ]; then
  git -C "$work" init -q -b main
fi
git -C "$work" add -A
git -C "$work" commit -q --allow-empty -m "demo deploy $(date -u +%FT%TZ)"

# -- git push over SSH -----------------------------------------------------------------------
step "git push $user@127.0.0.1:$app main"
export GIT_SSH_COMMAND="ssh -p $ssh_port -i $key -o IdentitiesOnly=yes -o IdentityAgent=none \
-o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=$demo/known_hosts -o BatchMode=yes"
# --force: the server may hold a demo pushed from another checkout (the demo is a throwaway repo)
git -C "$work" push --force "ssh://$user@127.0.0.1:$ssh_port/$app" HEAD:main

# -- through nginx ---------------------------------------------------------------------------
host="$app.$domain"
step "curl -H 'Host: $host' http://127.0.0.1:$http_port/"
answer=$(curl -fsS --retry 5 --retry-delay 1 --retry-all-errors -H "Host: $host" "http://127.0.0.1:$http_port/")
echo "$answer"
[ "$answer" = "Cat dreams meow.." ] || { echo "!     unexpected answer" >&2; exit 1; }
