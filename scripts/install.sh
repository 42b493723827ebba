#!/usr/bin/env bash
# Install Skiff on this server (Debian/Ubuntu, as root). Idempotent: run it again to update;
# an update keeps every app running and every key, setting, release and service.
#
#   system packages, a running dockerd, the `skiff` user (in the docker group, key login
#   allowed), SKIFF_ROOT=/var/lib/skiff, skiff's venv in /opt/skiff/venv with every builtin
#   plugin and contrib postgres, redis (with the services toolkit), storage, cron, letsencrypt and dashboard, /usr/local/bin/skiff, sshd, nginx including skiff's
#   per-app configs, a sudoers rule for `nginx -t` / `nginx -s reload`, the state store's
#   migrations, the stack image, (where systemd runs) a unit that restores the apps at boot, and
#   the cron runner (contrib cron: a unit where systemd runs, else started detached with a pidfile),
#   and the same for the dashboard's server (contrib dashboard; it serves only after dashboard:enable).
#
# Settings (environment), so that a test can install into a temp prefix beside the server's own:
#   SKIFF_USER (skiff)                the service account
#   SKIFF_ROOT (/var/lib/skiff)       the state root
#   SKIFF_VENV (/opt/skiff/venv)      skiff's virtualenv
#   SKIFF_BIN (/usr/local/bin/skiff)  the wrapper
#   SKIFF_ETC (/etc)                  where the sshd, nginx, sudoers, logrotate and systemd snippets go
#   SKIFF_SERVICES (system)           system: start or reload the host's nginx and sshd;
#                                     none: only write their snippets (the caller runs its own)
#   SKIFF_SKIP_STACK=1                do not build the stack image
#   DOCKER_HOST                       the engine to use (default: the local socket)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
user=${SKIFF_USER:-skiff}
root=${SKIFF_ROOT:-/var/lib/skiff}
venv=${SKIFF_VENV:-/opt/skiff/venv}
bin=${SKIFF_BIN:-/usr/local/bin/skiff}
etc=${SKIFF_ETC:-/etc}
services=${SKIFF_SERVICES:-system}
nginx_bin=/usr/sbin/nginx

step() { echo "-----> $*"; }
die() { echo "!     $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "make install must run as root"
case "$services" in system|none) ;; *) die "SKIFF_SERVICES must be 'system' or 'none', not '$services'" ;; esac
[[ "$user" =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] || die "invalid SKIFF_USER '$user'"
for path in "$root" "$venv" "$bin" "$etc"; do
  [[ "$path" =~ ^/[A-Za-z0-9._/+-]*$ ]] || die "invalid path '$path': expected an absolute path of plain characters"
done
has_systemd() { [ "$services" = system ] && [ -d /run/systemd/system ]; }
# run as the service account, with the state root (and engine) of this install
as_user() { runuser -u "$user" -- env SKIFF_ROOT="$root" ${DOCKER_HOST:+DOCKER_HOST="$DOCKER_HOST"} "$@"; }

# -- packages and docker ---------------------------------------------------------
"$top/scripts/system-deps.sh"
"$top/scripts/ensure-docker.sh"

# -- the skiff user and its root ---------------------------------------------------
if ! id "$user" >/dev/null 2>&1; then
  step "Creating the $user user"
  useradd --system --create-home --home-dir "/home/$user" --shell /bin/bash "$user"
fi
# sshd refuses key logins to a locked account ("!" in /etc/shadow); "*" allows keys only.
usermod -p '*' "$user"
getent group docker >/dev/null && usermod -aG docker "$user"
home=$(getent passwd "$user" | cut -d: -f6)
install -d -o "$user" -g "$user" -m 0700 "$home/.ssh"
[ -f "$home/.ssh/authorized_keys" ] || install -o "$user" -g "$user" -m 0600 /dev/null "$home/.ssh/authorized_keys"
install -d -o "$user" -g "$user" -m 0755 "$root" "$root/nginx" "$root/nginx/conf.d" "$root/nginx/logs"
# ACME HTTP-01 challenge files (letsencrypt): nginx's workers read them, for every app
install -d -o "$user" -g "$user" -m 0755 "$root/acme-challenge"
install -d -o "$user" -g "$user" -m 0700 "$root/nginx/certs"

# -- skiff itself ------------------------------------------------------------------
# venv.sh reinstalls when the packaging changes; this stamp also catches code changes.
code=$(cd "$top" && find setup.cfg pyproject.toml VERSION core plugins -type f \( -name '*.py' -o -name '*.cfg' -o -name '*.toml' -o -name VERSION \) \
        -not -path '*/tests/*' -not -path '*/build/*' -not -path '*.egg-info/*' -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
if [ ! -f "$venv/.skiff-code" ] || [ "$(cat "$venv/.skiff-code")" != "$code" ]; then
  rm -f "$venv/.skiff-stamp"
  # pip builds in the source tree; a stale build/lib would bring back deleted modules
  rm -rf "$top/build" "$top"/plugins/*/*/build
  mkdir -p "$(dirname "$venv")"
  "$top/scripts/venv.sh" "$venv" copy
  echo "$code" > "$venv/.skiff-code"
fi
chmod -R go+rX "$(dirname "$venv")"

# Root runs every command as $user except those that need root (stack:build, plugin:install,
# plugin:uninstall): skiff itself switches user once it knows the command (SKIFF_USER).
mkdir -p "$(dirname "$bin")"
{
  echo '#!/bin/sh'
  echo "# skiff, installed by make install: root's commands run as the $user user, except those"
  echo "# that need root (skiff decides; see docs/install.md)."
  echo "export SKIFF_ROOT=\"\${SKIFF_ROOT:-$root}\" SKIFF_USER=$user"
  [ -n "${DOCKER_HOST:-}" ] && echo "export DOCKER_HOST=\"\${DOCKER_HOST:-$DOCKER_HOST}\""
  echo "exec $venv/bin/skiff \"\$@\""
} > "$bin.new"
chmod 0755 "$bin.new"
mv "$bin.new" "$bin"

# -- the state store: bring it to this version's schema, say what changed ---------------
# The store belongs to the account: a skiff run by root before the wrapper existed (or with
# SKIFF_ROOT pointing here) may have left root-owned files that the account cannot open.
for f in "$root"/skiff.db "$root"/skiff.db-wal "$root"/skiff.db-shm; do
  [ -e "$f" ] && chown "$user:$user" "$f"
done
as_user "$venv/bin/skiff" state:migrate

# -- sudo: the skiff user may test and reload nginx, nothing else ----------------------
mkdir -p "$etc/sudoers.d"
cat > "$etc/sudoers.d/skiff.new" <<EOF
# installed by skiff's make install
$user ALL=(root) NOPASSWD: $nginx_bin -t -q, $nginx_bin -s reload
EOF
chmod 0440 "$etc/sudoers.d/skiff.new"
visudo -cqf "$etc/sudoers.d/skiff.new" || die "the sudoers rule does not parse"
mv "$etc/sudoers.d/skiff.new" "$etc/sudoers.d/skiff"

# -- nginx -------------------------------------------------------------------------------
step "Wiring nginx to $root/nginx/conf.d"
mkdir -p "$etc/nginx/conf.d"
echo "# installed by skiff's make install: every app's config
include $root/nginx/conf.d/*.conf;" > "$etc/nginx/conf.d/skiff.conf"
if [ "$services" = system ]; then
  as_user "$venv/bin/skiff" proxy:build-config --all >/dev/null
  $nginx_bin -t -q || die "nginx -t fails; see the messages above"
  if $nginx_bin -s reload 2>/dev/null; then
    :
  elif has_systemd; then
    systemctl enable --now nginx
  else
    step "Starting nginx"
    $nginx_bin
  fi
fi

# per-app nginx logs: rotated daily where logrotate runs (nginx reopens them on USR1)
if [ -d "$etc/logrotate.d" ] || [ "$etc" != /etc ]; then
  mkdir -p "$etc/logrotate.d"
  cat > "$etc/logrotate.d/skiff-nginx" <<EOF
# installed by skiff's make install
$root/nginx/logs/*.log {
    daily
    rotate 14
    missingok
    notifempty
    compress
    delaycompress
    sharedscripts
    postrotate
        [ -s /run/nginx.pid ] && kill -USR1 "\$(cat /run/nginx.pid)" || true
    endscript
}
EOF
fi

# -- sshd --------------------------------------------------------------------------------
# The skiff user logs in with keys only; its authorized_keys lines force `skiff ssh-command`.
mkdir -p "$etc/ssh/sshd_config.d"
cat > "$etc/ssh/sshd_config.d/skiff.conf" <<EOF
# installed by skiff's make install
Match User $user
    PasswordAuthentication no
    KbdInteractiveAuthentication no
    AllowTcpForwarding no
    AllowAgentForwarding no
    X11Forwarding no
    PermitTunnel no
EOF
if [ "$services" = system ]; then
  ssh-keygen -A >/dev/null
  mkdir -p /run/sshd && chmod 0755 /run/sshd
  /usr/sbin/sshd -t || die "sshd -t fails; see the messages above"
  if [ -f /run/sshd.pid ] && kill -0 "$(cat /run/sshd.pid)" 2>/dev/null; then
    kill -HUP "$(cat /run/sshd.pid)"
  elif has_systemd; then
    systemctl enable --now ssh
    systemctl reload ssh
  else
    step "Starting sshd"
    /usr/sbin/sshd
  fi
fi

# -- the stack image (root: debootstrap; the wrapper keeps root for stack:build) -----------
if [ -z "${SKIFF_SKIP_STACK:-}" ]; then
  "$bin" stack:build
fi

# -- boot: restore the apps' containers (the docker plugin's unit template) ---------------
unit="$etc/systemd/system/skiff-restore.service"
template="$top/plugins/builtin/docker/skiff_docker/skiff-restore.service"
mkdir -p "$(dirname "$unit")"
# the wrapper runs skiff as the skiff user
sed -e "s|@SKIFF@|$bin|g" -e "s|@ROOT@|$root|g" "$template" > "$unit.new"
mv "$unit.new" "$unit"
if has_systemd; then
  systemctl daemon-reload
  systemctl enable skiff-restore.service >/dev/null
fi

# -- an update: start what should run (containers of the previous install keep running) ---
if [ -f "$root/skiff.db" ]; then
  as_user "$venv/bin/skiff" ps:restore >/dev/null || echo "!     ps:restore failed: see 'skiff ps:report'" >&2
fi

# -- long-running skiff processes: the cron runner (contrib cron) and the dashboard ----------
# keep_running UNIT WHAT DIR DIRMODE PIDFILE LOG SKIFF-ARGS...: runs `skiff SKIFF-ARGS --pidfile
# PIDFILE` as the service account for good: where systemd runs, a unit keeps it running and
# starts it at boot; elsewhere it is started detached with a pidfile, and every install restarts
# it (so it runs the code just installed). Only when the plugin that owns the command is
# installed, and not with SKIFF_SERVICES=none (the caller runs its own). Every argument is fixed
# by this script: nothing of a user's is written into a unit.
keep_running() {
  local unit=$1 what=$2 dir=$3 dirmode=$4 pidfile=$5 log=$6 old
  shift 6
  [ "$services" = system ] || return 0
  as_user "$venv/bin/skiff" "$1" --help >/dev/null 2>&1 || return 0
  install -d -o "$user" -g "$user" -m "$dirmode" "$dir"
  [ -f "$log" ] || install -o "$user" -g "$user" -m 0640 /dev/null "$log"
  if has_systemd; then
    cat > "$etc/systemd/system/$unit.new" <<EOF
# installed by skiff's make install: the $what
[Unit]
Description=Skiff $what
After=docker.service

[Service]
User=$user
Environment=SKIFF_ROOT=$root
ExecStart=$venv/bin/skiff $* --pidfile $pidfile
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
EOF
    mv "$etc/systemd/system/$unit.new" "$etc/systemd/system/$unit"
    systemctl daemon-reload
    systemctl enable "$unit" >/dev/null
    systemctl restart "$unit"
  else
    old=$(cat "$pidfile" 2>/dev/null || true)
    if [[ "$old" =~ ^[0-9]+$ ]] && grep -qa "$1" "/proc/$old/cmdline" 2>/dev/null; then
      step "Restarting the $what (pid $old)"
      kill -TERM "$old" 2>/dev/null || true
      for _ in $(seq 100); do kill -0 "$old" 2>/dev/null || break; sleep 0.1; done
    else
      step "Starting the $what"
    fi
    as_user setsid -f "$venv/bin/skiff" "$@" --pidfile "$pidfile" >>"$log" 2>&1 </dev/null
  fi
}

# app.json cron jobs, cleanup, renewals: the runner reads them from the store every minute, so
# nothing of a job is written into a crontab or a unit.
keep_running skiff-cron.service "cron runner" "$root/cron" 0755 \
  "$root/cron/runner.pid" "$root/cron/runner.log" cron:runner
# `dashboard:serve --service` waits while the dashboard is off and serves on 127.0.0.1:PORT
# while it is on (dashboard:enable / dashboard:disable flip it within seconds; nginx's site is
# written by those commands).
keep_running skiff-dashboard.service "dashboard server" "$root/dashboard" 0700 \
  "$root/dashboard/server.pid" "$root/dashboard/server.log" dashboard:serve --service

step "Skiff is installed: $("$bin" version)"
