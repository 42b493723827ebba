"""The parts the installed plugins put in a whole-server backup (skiff_backup_parts), without an engine."""

from __future__ import annotations

import io
import subprocess

from skiff import backup
from skiff_redis.kind import KIND as REDIS
from skiff_services.record import Store


def test_the_installed_plugins_declare_what_the_server_holds(skiff, tmp_path, monkeypatch) -> None:
    keys_file = tmp_path / "authorized_keys"
    monkeypatch.setenv("SKIFF_AUTHORIZED_KEYS", str(keys_file))
    h = skiff(entry_points=True)
    h.create_app("cat")
    Store(REDIS).save(h.context, Store(REDIS).make(name="cache", image=REDIS.local_image, password="p" * 32))
    answers = h.pm.hook.skiff_backup_parts(context=h.context)
    parts = {part.name: part for answer in answers for part in answer or []}
    assert {
        "git:repos",
        "nginx:certs",
        "storage:directories",
        "letsencrypt:store",
        "ssh-keys:keys",
        "redis:cache",
        "docker:apps",
        "registry:credentials",
    } <= set(parts)
    assert parts["git:repos"].paths == ("repos",)
    assert parts["nginx:certs"].paths == ("nginx/certs",)
    assert parts["registry:credentials"].paths == ("registry/docker",)
    served = h.context.root / "registry" / "serve"
    (served / "data").mkdir(parents=True)
    (served / "ca.crt").write_text("ca")
    (served / "htpasswd").write_text("skiff:x")
    answers = h.pm.hook.skiff_backup_parts(context=h.context)
    registry = next(p for answer in answers for p in answer or [] if p.name == "registry:credentials")
    # the served registry's CA and account, never its image storage
    assert registry.paths == ("registry/docker", "registry/serve/ca.crt", "registry/serve/htpasswd")
    assert parts["redis:cache"].dump is not None and parts["redis:cache"].restore is not None
    ordered = [p.name for p in backup.collect_parts(h.context)]
    assert ordered.index("ssh-keys:keys") < ordered.index("redis:cache") < ordered.index("docker:apps")

    # the keys: dumped from authorized_keys, added back to a fresh file (and only once)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "alice")], check=True)
    added = h.invoke("ssh-keys:add", "alice", str(tmp_path / "alice.pub"))
    assert added.exit_code == 0, added.stderr
    dump = io.BytesIO()
    parts["ssh-keys:keys"].dump(dump)  # type: ignore[misc]
    line = keys_file.read_text()
    keys_file.unlink()
    for _ in range(2):
        dump.seek(0)
        parts["ssh-keys:keys"].restore(dump)  # type: ignore[misc]
    assert keys_file.read_text() == line
    assert oct(keys_file.stat().st_mode & 0o777) == "0o600"
