"""What plugins share (skiff.contracts) matches docs/contracts.md, and plugins write only that."""

from __future__ import annotations

import ast
import re
import subprocess
import tokenize
from pathlib import Path

import pytest

import skiff_apps.plugin as apps_plugin
import skiff_git.plugin as git_plugin
import skiff_procfile.plugin as procfile_plugin
from skiff import contracts, lifecycle
from skiff.contracts import META_KEYS, MetaFields, ReleaseMeta, Stash, StashKey
from skiff.deploy import Deploy
from skiff.output import Output
from skiff.state import Release
from skiff.testing import MetaRecorder, StubBuilder, StubScheduler
from skiff.testing.sshd import commit_files, init_repo
from skiff_git import repo as repos

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "contracts.md"
#: where plugins and the core write release meta (tests may write anything)
SCANNED = [ROOT / "core", ROOT / "plugins", ROOT / "examples"]


def documented_meta_keys() -> set[str]:
    """The keys in the first column of the table under "## `deploy.meta` keys"."""
    text = DOC.read_text()
    section = text.split("## `deploy.meta` keys", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    keys: set[str] = set()
    for row in rows:
        keys.update(re.findall(r"`([a-z_]+)`", row.split("|")[1]))
    return keys


def test_release_meta_and_the_contracts_table_name_the_same_keys() -> None:
    documented = documented_meta_keys()
    assert documented, "no meta table found in docs/contracts.md"
    assert sorted(META_KEYS - documented) == [], "ReleaseMeta keys missing from docs/contracts.md"
    assert sorted(documented - META_KEYS) == [], "docs/contracts.md keys missing from skiff.contracts.ReleaseMeta"


def test_typed_properties_are_release_meta_keys() -> None:
    properties = {name for name, value in vars(MetaFields).items() if isinstance(value, property)}
    assert properties == {
        "container_port",
        "exposed_ports",
        "upstreams",
        "formation",
        "release_command",
        "release_env",
        "image_id",
    }
    assert properties <= META_KEYS
    text = DOC.read_text()
    for name in properties:
        assert f"`deploy.{name}`" in text, f"docs/contracts.md does not mention deploy.{name}"


def _meta_target(node: ast.expr) -> bool:
    """``meta`` or ``anything.meta``."""
    return (isinstance(node, ast.Name) and node.id == "meta") or (
        isinstance(node, ast.Attribute) and node.attr == "meta"
    )


def meta_writes(tree: ast.AST) -> list[tuple[int, str | None]]:
    """``(line, key)`` of each ``meta[KEY] = ...``, ``meta.update({...})`` and ``meta.setdefault(KEY, ...)``;
    ``key`` is ``None`` when it is not a string literal."""
    found: list[tuple[int, str | None]] = []

    def literal(node: ast.expr | None) -> str | None:
        return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None

    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        for target in targets:
            if isinstance(target, ast.Subscript) and _meta_target(target.value):
                found.append((node.lineno, literal(target.slice)))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and _meta_target(node.func.value):
            if node.func.attr == "setdefault":
                found.append((node.lineno, literal(node.args[0]) if node.args else None))
            elif node.func.attr == "update":
                for arg in node.args:
                    if isinstance(arg, ast.Dict):
                        found.extend((node.lineno, literal(k)) for k in arg.keys)
                    else:
                        found.append((node.lineno, None))
                found.extend((node.lineno, kw.arg) for kw in node.keywords)
    return found


def test_the_scanner_finds_every_form_of_write() -> None:
    source = (
        "deploy.meta['a'] = 1\nmeta['b'] = 2\nd.meta.update({'c': 3}, e=4)\n"
        "x.meta.setdefault('f', 5)\nmeta[key] = 6\nother['g'] = 7\nx.meta.get('h')\n"
    )
    found = sorted(meta_writes(ast.parse(source)), key=lambda item: (item[0], str(item[1])))
    assert found == [(1, "a"), (2, "b"), (3, "c"), (3, "e"), (4, "f"), (5, None)]


def test_plugins_and_the_core_write_only_documented_meta_keys() -> None:
    files = [
        path
        for base in SCANNED
        for path in base.rglob("*.py")
        if "tests" not in path.relative_to(ROOT).parts and ".venv" not in path.parts and "build" not in path.parts
    ]
    assert len(files) > 50
    problems = []
    for path in files:
        for line, key in meta_writes(ast.parse(path.read_text(), str(path))):
            where = f"{path.relative_to(ROOT)}:{line}"
            if key is None:
                problems.append(f"{where}: a meta key that is not a string literal")
            elif key not in META_KEYS:
                problems.append(f"{where}: meta[{key!r}] is not in ReleaseMeta / docs/contracts.md")
    assert problems == []


def test_a_deploy_and_a_redeploy_write_only_documented_keys(skiff, tmp_path) -> None:
    recorder = MetaRecorder()
    h = skiff(
        ("git", git_plugin),
        ("apps", apps_plugin),
        ("procfile", procfile_plugin),
        StubBuilder(),
        StubScheduler(),
        recorder,
    )
    work = init_repo(tmp_path / "w", {"app.py": "1"})
    commit_files(work, {"Procfile": "web: python app.py\nrelease: python migrate.py\n", "app.json": "{}"})
    h.create_app("web")
    bare = repos.ensure_repo(h.context, "web")
    subprocess.run(["git", f"--git-dir={bare}", "fetch", "-q", str(work), "main:main"], check=True)
    assert h.invoke("deploy", "web").exit_code == 0
    assert {"git", "release_command", "app_json", "release_env"} <= recorder.written
    lifecycle.redeploy(h.context, "web", "Restart")
    assert recorder.undocumented == set()
    release = h.state.current_release("web")
    assert release is not None and release.release_command == "python migrate.py"
    assert release.release_env["GIT_REV"] == release.meta["git"]["revision"]


def test_the_recorder_catches_an_undocumented_key(skiff, tmp_path) -> None:
    from skiff import hookimpl
    from skiff.testing import DirReceiver, dir_source

    class Sloppy:
        @hookimpl
        def skiff_pre_build(self, deploy: Deploy) -> None:
            deploy.meta["my_private_thing"] = 1  # type: ignore[typeddict-unknown-key]

    recorder = MetaRecorder()
    h = skiff(DirReceiver(), StubBuilder(), StubScheduler(), Sloppy(), recorder)
    h.create_app("web")
    (tmp_path / "src").mkdir()
    lifecycle.deploy(h.context, "web", dir_source(tmp_path / "src"))
    assert recorder.undocumented == {"my_private_thing"}


def test_container_port_rule() -> None:
    assert contracts.container_port(None) == contracts.DEFAULT_PORT == 5000
    assert contracts.container_port([]) == 5000
    assert contracts.container_port([8080]) == 8080
    assert contracts.container_port([8080, 3000]) == 3000  # the lowest, whatever the order
    assert contracts.container_port([8080, 3000], 9000) == 9000  # the release's port wins
    assert contracts.container_port([8080], 0) == 8080 and contracts.container_port([8080], None) == 8080
    assert contracts.container_port(["80", True, 70000, 4000]) == 4000  # only port numbers count


def test_the_scheduler_and_the_proxy_pick_the_same_port() -> None:
    import skiff_docker.scheduler as scheduler
    import skiff_nginx.proxy as proxy

    for exposed in ([], [8080], [8080, 3000], [3000, 8080]):
        meta = ReleaseMeta(exposed_ports=exposed)
        chosen = scheduler.container_port(meta)
        assert chosen == proxy.container_port(meta) == contracts.container_port(exposed)
        assert proxy.container_port(ReleaseMeta(exposed_ports=exposed, container_port=chosen)) == chosen


def test_one_stack_image_default(skiff) -> None:
    import skiff_buildpacks.stacks as stacks
    import skiff_stack.build as stack_build
    import skiff_stack.plugin as stack_plugin

    assert contracts.DEFAULT_STACK_IMAGE == "skiff/stack:trixie"
    assert stacks.DEFAULT_IMAGE == stack_plugin.DEFAULT_IMAGE == stack_build.DEFAULT_IMAGE
    assert stacks.DEFAULT_IMAGE is contracts.DEFAULT_STACK_IMAGE
    h = skiff()
    assert contracts.stack_image(h.state) == "skiff/stack:trixie" == stacks.configured_image(h.context)
    h.state.set_property("stack", "image", "registry.example.com/stack:1")
    assert contracts.stack_image(h.state) == "registry.example.com/stack:1" == stacks.configured_image(h.context)


def _literals(path: Path) -> set[str]:
    """The number and string tokens of a file that are exactly a default (not docstrings' examples)."""
    found = set()
    with path.open("rb") as f:
        for token in tokenize.tokenize(f.readline):
            if token.type == tokenize.NUMBER and token.string == "5000":
                found.add("port 5000")
            elif token.type == tokenize.STRING:
                try:
                    value = ast.literal_eval(token.string)
                except (ValueError, SyntaxError):
                    continue
                if value == "5000":
                    found.add("port 5000")
                elif value == "skiff/stack:trixie":
                    found.add("the stack image")
    return found


def test_literal_defaults_live_only_in_the_core() -> None:
    offenders = []
    for base in (ROOT / "plugins", ROOT / "core", ROOT / "examples"):
        for path in sorted(base.rglob("*.py")):
            rel = path.relative_to(ROOT)
            if "tests" in rel.parts or "build" in rel.parts or path.name == "contracts.py":
                continue
            offenders += [f"{rel}: {what}" for what in sorted(_literals(path))]
    # the static file server runs inside app images (no skiff there): it reads $PORT, default 5000
    assert offenders == ["plugins/builtin/buildpacks/skiff_buildpacks/static_server.py: port 5000"]


def test_meta_properties_read_and_write_the_json_keys(skiff) -> None:
    d = Deploy(context=skiff().context, app="a", kind="deploy", description="", output=Output(quiet=True))
    assert d.container_port is None and d.exposed_ports == [] and d.upstreams == [] and d.formation == {}
    assert d.release_command is None and d.release_env == {} and d.image_id is None
    d.container_port = 8080
    d.exposed_ports = [9000, 8080]
    d.upstreams = ["127.0.0.1:20001"]
    d.formation = {"web": 2}
    d.release_command = "migrate"
    d.release_env = {"GIT_REV": "abc"}
    d.image_id = "sha256:1"
    assert dict(d.meta) == {
        "container_port": 8080,
        "exposed_ports": [8080, 9000],
        "upstreams": ["127.0.0.1:20001"],
        "formation": {"web": 2},
        "release_command": "migrate",
        "release_env": {"GIT_REV": "abc"},
        "image_id": "sha256:1",
    }
    d.release_command = None
    d.container_port = None
    assert "release_command" not in d.meta and "container_port" not in d.meta
    stored = Release("a", 1, "succeeded", "", None, None, {}, {}, meta=ReleaseMeta(upstreams=["127.0.0.1:1"]))
    assert stored.upstreams == ["127.0.0.1:1"] and stored.container_port is None


def test_stash_typed_keys_back_scratch(skiff) -> None:
    d = Deploy(context=skiff().context, app="a", kind="deploy", description="", output=Output(quiet=True))
    count: StashKey[int] = StashKey("myplugin", "count")
    other: StashKey[str] = StashKey("other", "count")
    assert count not in d.stash and d.stash.get(count) is None and d.stash.get(count, 7) == 7
    d.stash[count] = 1
    assert d.stash[count] == 1 and d.scratch_for("myplugin") == {"count": 1}  # the same space
    assert d.stash.setdefault(count, 5) == 1 and d.stash.setdefault(other, "x") == "x"
    assert count == StashKey("myplugin", "count") and count != other and len(d.stash) == 2
    assert set(d.stash) == {count, other}
    del d.stash[count]
    assert count not in d.stash
    with pytest.raises(KeyError):
        d.stash[count]
    assert isinstance(Stash(), Stash) and len(Stash()) == 0


def test_image_exposed_ports_are_the_tcp_ones_sorted():
    attrs = {"Config": {"ExposedPorts": {"8080/tcp": {}, "53/udp": {}, "3000": {}}}}
    assert contracts.image_exposed_ports(attrs) == [3000, 8080]
    assert contracts.image_exposed_ports({"Config": {}}) == []
