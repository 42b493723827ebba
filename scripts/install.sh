#!/usr/bin/env bash
# Install Skiff on this server (Debian/Ubuntu, as root). Idempotent: run it again to update.
#
#   system packages, a running dockerd, the `skiff` user (in the docker group, key login
#   allowed), SKIFF_ROOT=/var/lib/skiff, skiff's venv in /opt/skiff/venv with every builtin
#   plugin and contrib postgres, /usr/local/bin/skiff, sshd, nginx including skiff's
#   per-app configs, a sudoers rule for `nginx -t` / `nginx -s reload`, the stack image and
#   (where systemd runs) a unit that restores the apps at boot.
#
# Settings (environment): SKIFF_USER (skiff), SKIFF_ROOT (/var/lib/skiff),
# SKIFF_VENV (/opt/skiff/venv), SKIFF_SKIP_STACK=1 to skip building the stack image.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
user=${SKIFF_USER:-skiff}
root=${SKIFF_ROOT:-/var/lib/skiff}
venv=${SKIFF_VENV:-/opt/skiff/venv}
nginx_bin=/usr/sbin/nginx

step() { echo "-----> $*"; }
die() { echo "!     $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "make install must run as root"
has_systemd() { [ -d /run/systemd/system ]; }

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
install -d -o "$user" -g "$user" -m 0700 "$root/nginx/certs"

# -- skiff itself ------------------------------------------------------------------
# venv.sh reinstalls when the packaging changes; this stamp also catches code changes.
code=$(cd "$top" && find setup.cfg pyproject.toml core plugins -type f \( -name '*.py' -o -name '*.cfg' -o -name '*.toml' \) \
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

cat > /usr/local/bin/skiff.new <<EOF
#!/bin/sh
# skiff, installed by make install: runs as the $user user (root switches to it).
export SKIFF_ROOT="\${SKIFF_ROOT:-$root}"
if [ "\$(id -u)" = 0 ]; then
  cd / && exec runuser -u $user -- $venv/bin/skiff "\$@"
fi
exec $venv/bin/skiff "\$@"
EOF
chmod 0755 /usr/local/bin/skiff.new
mv /usr/local/bin/skiff.new /usr/local/bin/skiff

# -- sudo: the skiff user may test and reload nginx, nothing else ----------------------
cat > /etc/sudoers.d/skiff.new <<EOF
# installed by skiff's make install
$user ALL=(root) NOPASSWD: $nginx_bin -t -q, $nginx_bin -s reload
EOF
chmod 0440 /etc/sudoers.d/skiff.new
visudo -cqf /etc/sudoers.d/skiff.new || die "the sudoers rule does not parse"
mv /etc/sudoers.d/skiff.new /etc/sudoers.d/skiff

# -- nginx -------------------------------------------------------------------------------
step "Wiring nginx to $root/nginx/conf.d"
echo "# installed by skiff's make install: every app's config
include $root/nginx/conf.d/*.conf;" > /etc/nginx/conf.d/skiff.conf
runuser -u "$user" -- env SKIFF_ROOT="$root" "$venv/bin/skiff" proxy:build-config --all >/dev/null
$nginx_bin -t -q || die "nginx -t fails; see the messages above"
if $nginx_bin -s reload 2>/dev/null; then
  :
elif has_systemd; then
  systemctl enable --now nginx
else
  step "Starting nginx"
  $nginx_bin
fi

# per-app nginx logs: rotated daily where logrotate runs (nginx reopens them on USR1)
if [ -d /etc/logrotate.d ]; then
  cat > /etc/logrotate.d/skiff-nginx <<EOF
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
mkdir -p /etc/ssh/sshd_config.d
cat > /etc/ssh/sshd_config.d/skiff.conf <<EOF
# installed by skiff's make install
Match User $user
    PasswordAuthentication no
    KbdInteractiveAuthentication no
    AllowTcpForwarding no
    AllowAgentForwarding no
    X11Forwarding no
    PermitTunnel no
EOF
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

# -- the stack image ---------------------------------------------------------------------
if [ -z "${SKIFF_SKIP_STACK:-}" ]; then
  /usr/local/bin/skiff stack:build
fi

# -- boot: restore the apps' containers (the docker plugin's unit template) ---------------
unit=/etc/systemd/system/skiff-restore.service
template="$top/plugins/builtin/docker/skiff_docker/skiff-restore.service"
mkdir -p /etc/systemd/system
if [ -f "$template" ]; then
  # the wrapper runs skiff as the skiff user
  sed -e "s|@SKIFF@|/usr/local/bin/skiff|g" -e "s|@ROOT@|$root|g" "$template" > "$unit.new"
else
  cat > "$unit.new" <<EOF
[Unit]
Description=Skiff: start every app that should be running (skiff ps:restore)
After=docker.service network-online.target
Wants=docker.service network-online.target

[Service]
Type=oneshot
Environment=SKIFF_ROOT=$root
ExecStart=/usr/local/bin/skiff ps:restore
RemainAfterExit=yes

[Install]
WantedBy=multi-user.target
EOF
fi
mv "$unit.new" "$unit"
if has_systemd; then
  systemctl daemon-reload
  systemctl enable skiff-restore.service >/dev/null
fi

step "Skiff is installed: $(/usr/local/bin/skiff version)"
