"""The pack plan merges the packs' hook results in pack order."""

from skiff_buildpacks.plan import PackPlan

PIP = {
    "files": ["requirements.txt"],
    "generated": {".skiff/a": b"1"},
    "steps": [{"run": [["pip"]]}],
    "env": {"A": "1", "SHARED": "python"},
    "runtime_env": {"R": "1"},
    "path": ["/app/.venv/bin"],
    "exclude": [".venv"],
    "additive_lines": ["flask"],
}
NPM = {
    "files": ["package.json", "requirements.txt"],
    "steps": [{"run": [["npm", "ci"]]}],
    "env": {"SHARED": "node"},
    "path": ["/app/node_modules/.bin", "/app/.venv/bin"],
    "exclude": ["node_modules"],
}


def test_dependencies_merge_in_pack_order_without_duplicates():
    plan = PackPlan(packs=["python", "node"])
    plan.add_dependencies("python", PIP)
    plan.add_dependencies("node", NPM)
    assert plan.files == ["requirements.txt", "package.json"]
    assert plan.steps == [{"run": [["pip"]]}, {"run": [["npm", "ci"]]}]
    assert plan.path_prefix == ["/app/.venv/bin", "/app/node_modules/.bin"]
    assert plan.exclude == [".venv", "node_modules"]
    assert plan.build_env == {"A": "1", "SHARED": "node"}  # a later pack's value wins
    assert plan.generated == {".skiff/a": b"1"}
    assert plan.env("/usr/bin") == {
        "PATH": "/app/.venv/bin:/app/node_modules/.bin:/usr/bin",
        "A": "1",
        "SHARED": "node",
    }
    assert plan.image_env("/usr/bin") == {**plan.env("/usr/bin"), "R": "1", "PORT": "5000"}


def test_additive_lines_only_while_every_installing_pack_is_additive():
    plan = PackPlan(packs=["python", "static"])
    plan.add_dependencies("python", PIP)
    plan.add_dependencies("static", {"additive_lines": ["ignored: no steps"]})
    assert plan.additive_lines == {"python": ["flask"]}
    plan.add_dependencies("node", NPM)  # installs, not additive
    assert plan.additive_lines is None
    plan.add_dependencies("python", PIP)
    assert plan.additive_lines is None


def test_compile_results_and_default_processes():
    plan = PackPlan(packs=["node", "static"])
    plan.add_compile({"steps": [{"run": [["npm", "run", "build"]]}], "files": {"a": b"1"}})
    plan.add_compile({})
    plan.add_processes({"web": "npm start"})
    plan.add_processes({"web": "python3 server.py", "worker": "w"})
    assert plan.compile_steps == [{"run": [["npm", "run", "build"]]}] and plan.compile_files == {"a": b"1"}
    assert plan.processes == {"web": "npm start", "worker": "w"}  # the first pack's type wins
