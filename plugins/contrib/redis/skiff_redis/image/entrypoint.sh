#!/bin/sh
# Entrypoint of skiff's redis image. REDIS_PASSWORD (required) becomes `requirepass` in a
# private config file (never an argument, so never in ps). Data and the append-only file
# are in /data. A pending import (/data/import.rdb, put there by redis:import) is loaded
# with append-only off, then the append-only file is rewritten from it, so the import is
# what the server has from then on, restarts included.
set -eu

if [ "${1:-}" != redis-server ]; then
    exec "$@"
fi
shift

if [ "$(id -u)" = 0 ]; then
    chown redis:redis /data
    exec setpriv --reuid=redis --regid=redis --init-groups "$0" redis-server "$@"
fi

case "${REDIS_PASSWORD:-}" in
    "") echo "error: REDIS_PASSWORD is not set" >&2; exit 1 ;;
    *[!A-Za-z0-9._~-]*) echo "error: REDIS_PASSWORD may hold only A-Z a-z 0-9 . _ ~ -" >&2; exit 1 ;;
esac

umask 077
conf="$(mktemp)"
{
    echo "# written by skiff's redis entrypoint"
    echo "bind * -::*"
    echo "protected-mode no"
    echo "port 6379"
    echo "dir /data"
    echo "appendonly yes"
    echo "appendfsync everysec"
    echo "requirepass $REDIS_PASSWORD"
} > "$conf"

if [ -f /data/import.rdb ]; then
    echo "loading the import (/data/import.rdb)"
    rm -rf /data/appendonlydir.old
    [ -d /data/appendonlydir ] && mv /data/appendonlydir /data/appendonlydir.old
    mv /data/import.rdb /data/dump.rdb
    sock=/tmp/skiff-import.sock
    redis-server "$conf" --appendonly no --port 0 --unixsocket "$sock" --unixsocketperm 700 &
    pid=$!
    export REDISCLI_AUTH="$REDIS_PASSWORD"
    cli() { redis-cli --no-auth-warning -s "$sock" "$@"; }
    tries=0
    until [ "$(cli ping 2>/dev/null)" = PONG ]; do
        tries=$((tries + 1)); [ "$tries" -lt 600 ] || { echo "error: the import did not load" >&2; exit 1; }
        kill -0 "$pid" 2>/dev/null || { echo "error: the import did not load" >&2; exit 1; }
        sleep 0.1
    done
    cli config set appendonly yes >/dev/null
    until cli info persistence | tr -d '\r' | grep -qx 'aof_rewrite_in_progress:0' \
        && cli info persistence | tr -d '\r' | grep -qx 'aof_rewrite_scheduled:0' \
        && cli info persistence | tr -d '\r' | grep -qx 'aof_enabled:1'; do
        sleep 0.1
    done
    cli info persistence | tr -d '\r' | grep -qx 'aof_last_bgrewrite_status:ok' \
        || { echo "error: rewriting the append-only file failed" >&2; exit 1; }
    cli shutdown save >/dev/null 2>&1 || true
    wait "$pid" || true
    unset REDISCLI_AUTH
    rm -rf /data/appendonlydir.old
    echo "import loaded"
fi

unset REDIS_PASSWORD
exec redis-server "$conf" "$@"
