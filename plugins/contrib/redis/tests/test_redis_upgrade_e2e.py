"""End to end: ``redis:upgrade`` (the toolkit's KIND:upgrade) on a real redis-server.

The new image is this run's own tag of the local redis image (redis has one version per Debian
suite; the mechanism is what is tested: export, a new container, import, switch). An upgrade to
an image that cannot run the server stops before the switch, and the old container keeps
serving its keys; the real upgrade keeps them and runs the new image.
"""

from __future__ import annotations

import uuid

import pytest

from skiff_redis.kind import LOCAL_IMAGE

pytestmark = pytest.mark.e2e

CLI = 'REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli --no-auth-warning'


def redis_cli(container, *words: str) -> str:
    code, out = container.exec_run(["sh", "-c", f"{CLI} {' '.join(words)}"])
    assert code == 0, out
    return out.decode().strip()


@pytest.fixture
def own_tags(docker_client):
    tags: list[str] = []
    yield tags
    for tag in tags:  # only the tags this test made; the images stay for everyone else
        docker_client.images.remove(tag)


def test_upgrade_keeps_the_keys_and_a_failed_one_keeps_the_old_container_serving(
    skiff, redis_image, stack_image, redis_cleanup, docker_client, own_tags
):
    h = skiff(entry_points=True)
    name = "u" + uuid.uuid4().hex[:8]
    run_id = uuid.uuid4().hex[:8]
    assert h.invoke("redis:create", name).exit_code == 0
    container = docker_client.containers.get(f"skiff.redis.{name}")
    assert redis_cli(container, "SET", "greeting", "meow") == "OK"
    assert redis_cli(container, "RPUSH", "list", "a", "b", "c") == "3"

    bad, good = f"skiff/redis:bad-{run_id}", f"skiff/redis:up-{run_id}"
    docker_client.images.get(stack_image).tag(bad)  # no redis-server in it
    docker_client.images.get(LOCAL_IMAGE).tag(good)
    own_tags += [bad, good]

    failed = h.invoke("redis:upgrade", name, "--image", bad)
    assert failed.exit_code == 1
    assert "keeps serving on its old image" in failed.stderr
    assert failed.stderr.strip().splitlines()[-1].startswith("!     redis")
    still = docker_client.containers.get(f"skiff.redis.{name}")
    assert still.id == container.id and still.status == "running"
    assert redis_cli(still, "GET", "greeting") == "meow"
    assert h.invoke("redis:info", name, "--image").stdout.strip() == LOCAL_IMAGE
    assert not docker_client.containers.list(all=True, filters={"name": f"skiff.redis.{name}.upgrade"})
    assert not (h.root / "services" / "redis" / name / "upgrade").exists()

    same = h.invoke("redis:upgrade", name)
    assert same.exit_code == 1 and "already runs" in same.stderr

    upgraded = h.invoke("redis:upgrade", name, "--image", good)
    assert upgraded.exit_code == 0, upgraded.stderr
    assert f"Redis {name} upgraded" in upgraded.stdout
    new = docker_client.containers.get(f"skiff.redis.{name}")
    assert new.id != container.id and new.attrs["Config"]["Image"] == good
    assert redis_cli(new, "GET", "greeting") == "meow"
    assert redis_cli(new, "LRANGE", "list", "0", "-1").split() == ["a", "b", "c"]
    assert h.invoke("redis:info", name, "--image").stdout.strip() == good
    base = h.root / "services" / "redis" / name
    assert sorted(p.name for p in base.iterdir()) == ["data"]
    new.restart()  # the upgraded data is the server's own: it survives a restart
    assert h.invoke("redis:restart", name).exit_code == 0
    assert redis_cli(docker_client.containers.get(f"skiff.redis.{name}"), "GET", "greeting") == "meow"
    assert h.invoke("redis:destroy", name, "--force").exit_code == 0
