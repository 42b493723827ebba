"""What redis is to the service toolkit: one ServiceKind."""

from __future__ import annotations

from importlib import resources

from skiff_services.kind import Option, ServiceKind
from skiff_services.record import Service

from . import PLUGIN

PORT = 6379
LOCAL_IMAGE = "skiff/redis:trixie"
DATA_MOUNT = "/data"
# redis-cli reads the password from REDISCLI_AUTH; the container's environment has it
CLI = 'REDISCLI_AUTH="$REDIS_PASSWORD" exec redis-cli --no-auth-warning'
EXPORT = (
    'export REDISCLI_AUTH="$REDIS_PASSWORD"; '
    '[ "$(redis-cli --no-auth-warning save)" = OK ] || { echo "error: SAVE failed" >&2; exit 1; }; '
    "exec cat /data/dump.rdb"
)
# the dump is checked before it replaces anything: a bad one leaves the data as it was
IMPORT = (
    'part=/data/.import.part; trap \'rm -f "$part"\' EXIT; cat > "$part"; '
    'redis-check-rdb "$part" > /tmp/check.log 2>&1 || '
    '{ why=$(grep -A1 "ERROR DETECTED" /tmp/check.log | tail -n 1 | cut -c 1-100); '
    'echo "error: not a valid RDB dump ($why)" >&2; exit 1; }; '
    'mv "$part" /data/import.rdb'
)
AS_REDIS = ["setpriv", "--reuid=redis", "--regid=redis", "--init-groups"]
POLICIES = "noeviction|allkeys-lru|allkeys-lfu|allkeys-random|volatile-lru|volatile-lfu|volatile-random|volatile-ttl"


def image_files() -> dict[str, bytes]:
    image = resources.files("skiff_redis").joinpath("image")
    return {name: image.joinpath(name).read_bytes() for name in ("Dockerfile", "entrypoint.sh")}


def url(service: Service, password: str) -> str:
    return f"redis://:{password}@{KIND.hostname(service.name)}:{PORT}"


def command(service: Service) -> list[str]:
    args = ["redis-server"]
    for key in sorted(service.options):
        args += [f"--{key}", service.options[key]]
    return args


KIND = ServiceKind(
    name=PLUGIN,
    title="Redis",
    port=PORT,
    data_mount=DATA_MOUNT,
    local_image=LOCAL_IMAGE,
    image_files=image_files,
    packages="Debian's redis-server",
    url=url,
    url_key="REDIS_URL",
    environment=lambda service: {"REDIS_PASSWORD": service.password},
    ready=["sh", "-c", '[ "$(REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli --no-auth-warning ping)" = PONG ]'],
    connect=["sh", "-c", CLI],
    export=["sh", "-c", EXPORT],
    import_=[*AS_REDIS, "sh", "-c", IMPORT],
    version=["sh", "-c", "redis-server --version | sed -n 's/.* v=\\([^ ]*\\).*/\\1/p'"],
    restart_after_import=True,
    dump_magic=b"REDIS",
    dump_suffix="rdb",
    options={
        "maxmemory": Option(r"[0-9]{1,12}(kb|mb|gb)?", "a size: bytes, or a number with kb, mb or gb"),
        "maxmemory-policy": Option(POLICIES, f"one of {POLICIES.replace('|', ', ')}"),
    },
    command=command,
)
