"""Prestart: a push's new containers start while its code layer is built.

A code-only push runs the same image below its code layer as the release it replaces. When the
push's build begins (``skiff_pre_build``), :func:`begin` predicts the rollout from the current
release (processes, formation, settings, the app's config with the push's ``GIT_REV``, the next
version) and a thread creates and starts its containers from the image the current release's
code layer was laid on (``code_base`` in its meta), with the create arguments the rollout will
use and a small waiting command (:data:`WAITER`) instead of the Procfile's. The container start
(network namespace, veth, runc) then overlaps the checkout and the build.

When the release is deployed, :func:`adopt` takes them only if every guarantee holds: the
builder handed over the code layer (:data:`skiff.contracts.CODE_LAYER`), the new image is that
base plus exactly that layer (layer ids and the tar's digest compared), its run-time config
(env, user, workdir, entrypoint, ...) is the one the containers were given, and the rollout's
create arguments (name, labels, env, ports, networks, options, limits) are those predicted. Then
each container gets the code (``put_archive`` of the layer's tar: its ``/app`` is the image's),
its restart policy, and last the Procfile line in :data:`COMMAND_FILE`, which the waiter execs
under ``/bin/sh -c`` as a normal container runs it. A restart (crash, engine restart) finds the
file and runs the command at once. Anything else (dependencies changed, another Procfile, a
config:set meanwhile, a failed prestart, a prestart still running after :data:`JOIN_SECONDS`)
removes them in the background and the rollout starts containers of the image as before.
``ps:set APP prestart false`` turns it off.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from skiff import background, timeline
from skiff.contracts import CODE_LAYER, CODE_LAYER_WANTED, CodeLayer, StashKey
from skiff.deploy import Deploy

from . import engine, settings
from . import rollout as rollouts
from .scheduler import (
    PRESTARTED,
    SCRATCH,
    app_json_script,
    container_options,
    create_container,
    process_table,
    stray_containers,
)

if TYPE_CHECKING:  # pragma: no cover
    from .rollout import Instance, Rollout

COMMAND_FILE = "/.skiff-command"
WAIT_SECONDS = 600  # a waiter with no command after this exits (its restart policy is "no" until the hand-off)
POLL = "0.02"
#: the waiting command: until the hand-off writes the Procfile line, then that line under /bin/sh -c
WAITER = (
    f"i=0; while [ ! -s {COMMAND_FILE} ]; do i=$((i+1)); "
    f'if [ "$i" -gt {int(WAIT_SECONDS / float(POLL))} ]; then echo "skiff: no command came" >&2; exit 75; fi; '
    f"sleep {POLL}; done; "
    f'exec /bin/sh -c "$(cat {COMMAND_FILE})"'
)
#: the image config a container's processes see; the new image must have the values the containers got
RUNTIME_KEYS = ("Env", "User", "WorkingDir", "Entrypoint", "Volumes", "StopSignal", "Healthcheck", "Shell")
#: of those, what a container takes from the image it is created from (the base must match the release's)
INHERITED = ("Entrypoint", "Volumes", "StopSignal", "Healthcheck", "Shell")
#: how long the rollout waits for a prestart still starting its containers
JOIN_SECONDS = 30.0
#: create arguments a prestarted container has of its own (:func:`waiting_kwargs` sets the others it differs in)
OWN_KWARGS = ("image", "command")


@dataclass
class Prestart:
    """The containers a push started ahead, and what they were started for."""

    predicted: Rollout  # the rollout as predicted from the current release
    base: str  # the image id the containers run (the current release's code_base)
    old_image: str  # the current release's image
    kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)  # temporary name -> predicted create arguments
    base_layers: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)  # RUNTIME_KEYS of the current release's image
    future: Future[None] | None = None
    error: str = ""
    handed: Future[None] | None = None  # the early hand-off (:func:`on_code_layer`)
    early_digest: str = ""  # the layer id of the tar handed over early

    @property
    def instances(self) -> list[Instance]:
        return self.predicted.instances

    @property
    def ids(self) -> list[str]:
        return [inst.id for inst in self.instances if inst.id]


PRESTART: StashKey[Prestart] = StashKey(SCRATCH, "prestart")


# -- begin (skiff_pre_build) ------------------------------------------------------------


def begin(d: Deploy) -> Prestart | None:
    """Predict the rollout of a push and start its containers in a thread; None when it cannot apply."""
    predicted = predict(d)
    if predicted is None:
        return None
    previous = d.previous
    assert previous is not None and previous.image
    pre = Prestart(predicted, base=str(previous.meta.get("code_base") or ""), old_image=previous.image)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="skiff-prestart")
    pre.future = pool.submit(run, pre)
    pool.shutdown(wait=False)
    d.stash[PRESTART] = pre
    if not release_tasks(d):  # release tasks run before any new process: the code waits for them
        d.stash[CODE_LAYER_WANTED] = lambda code: on_code_layer(pre, code)
    return pre


def release_tasks(d: Deploy) -> bool:
    """Whether the push runs release tasks (app.json ``predeploy``, the Procfile's ``release:``)."""
    return bool(d.release_command or app_json_script(d.app_json, "predeploy"))


def on_code_layer(pre: Prestart, code: CodeLayer) -> None:
    """The builder wrote the code layer's tar (``CODE_LAYER_WANTED``): hand it over while the image loads."""
    if code.base != pre.base or pre.handed is not None:
        code.archive.close()
        return
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="skiff-prestart")
    pre.handed = pool.submit(hand_off_early, pre, code.archive)
    pool.shutdown(wait=False)


def hand_off_early(pre: Prestart, archive: IO[bytes]) -> None:
    """In a thread: once the containers run, give each the code and its command (checked at adoption)."""
    try:
        if pre.future is not None:
            pre.future.result()
        if pre.error:
            raise PrestartError(pre.error)
        pre.early_digest = digest(archive)
        c = engine.client()
        for inst in pre.instances:
            if early(inst):
                hand_off(c, archive, pre.predicted.table[inst.process], inst)
                timeline.mark(f"docker.handed-off.{inst.process}")
    finally:
        archive.close()


def early(inst: Instance) -> bool:
    """Web processes get the code while the image loads; others (workers, which act on their own)
    only once the build succeeded, in the deploy phase, as every process did before."""
    return inst.process == "web"


def predict(d: Deploy) -> Rollout | None:
    """The rollout this push will run if only its code changes (read in the deploy's thread)."""
    state, previous = d.context.state, d.previous
    if d.kind != "deploy" or previous is None or not previous.image or not previous.meta.get("code_base"):
        return None
    if not settings.prestart(state, d.app) or settings.other_scheduler(state, d.app):
        return None
    table = process_table(previous.processes)
    app_json = dict(previous.meta.get("app_json") or {})
    found = rollouts.read_settings(state, d.app, table, app_json, previous.meta, lambda _line: None)
    if any(found.check_mode(process) == "disabled" for process in found.formation):
        return None  # the old containers must stop first: no new one may start ahead
    if any(not (table.get(process) or "").strip() for process, n in found.formation.items() if n):
        return None  # the image's own CMD: not known before the build
    versions = [r.version for r in state.releases(d.app)]
    predicted = rollouts.Rollout(
        app=d.app,
        version=max(versions, default=0) + 1,
        image="",
        table=table,
        config={**state.effective_config(d.app), **d.config},  # as the release phase makes it
        revision=d.revision,
        app_json=app_json,
        settings=found,
    )
    predicted.container_options = {p: container_options(d.context, d.app, p, "process") for p in table}
    rollouts.plan_instances(predicted)
    for inst in predicted.instances:  # its own name: a fallback's containers can start while it goes
        inst.name += PRESTARTED
    return predicted if predicted.instances else None


def run(pre: Prestart) -> None:
    """In the prestart's thread: check the base, then create and start every container (waiting)."""
    try:
        c = engine.client()
        old = c.api.inspect_image(pre.old_image)
        base = c.api.inspect_image(pre.base)
        old_layers = list((old.get("RootFS") or {}).get("Layers") or [])
        pre.base_layers = list((base.get("RootFS") or {}).get("Layers") or [])
        if not pre.base_layers or old_layers[:-1] != pre.base_layers:
            raise PrestartError("the current image is not its code base plus one layer")
        pre.config = runtime_config(old)
        if runtime_config(base, INHERITED) != runtime_config(old, INHERITED):
            raise PrestartError("the code base's entrypoint, volumes or signals differ from the image's")
        engine.ensure_app_network(c, pre.predicted.app)
        for entry in stray_containers(c, pre.predicted.app):  # a killed deploy's (the app's lock is held)
            engine.remove_container(c, entry["Id"])
        web = pre.predicted.web
        for inst, port in zip(web, engine.allocate_ports(c, len(web)) if web else []):
            inst.host_port = port
        for inst in pre.instances:
            start_waiting(c, pre, inst)
    except Exception as exc:
        pre.error = str(exc) or type(exc).__name__


class PrestartError(Exception):
    pass


def runtime_config(image: dict[str, Any], keys: tuple[str, ...] = RUNTIME_KEYS) -> dict[str, Any]:
    config = image.get("Config") or {}
    return {key: config.get(key) or None for key in keys}


def env_dict(entries: list[str] | None) -> dict[str, str]:
    found: dict[str, str] = {}
    for entry in entries or []:
        key, _, value = entry.partition("=")
        found[key] = value
    return found


def waiting_kwargs(pre: Prestart, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The predicted create arguments, made to run the waiter on the code base.

    The environment is the release image's ``Env`` under the release's (as a container of the
    release image gets it), user and workdir the image's unless the app's options set them."""
    own = dict(kwargs)
    own.update(
        image=pre.base,
        command=["/bin/sh", "-c", WAITER],
        environment={**env_dict(pre.config.get("Env")), **kwargs.get("environment", {})},
        restart_policy={"Name": "no"},
    )
    if not own.get("user") and pre.config.get("User"):
        own["user"] = pre.config["User"]
    if not own.get("working_dir") and pre.config.get("WorkingDir"):
        own["working_dir"] = pre.config["WorkingDir"]
    return own


def start_waiting(c: Any, pre: Prestart, inst: Instance) -> None:
    kwargs = pre.predicted.create_kwargs(c, inst)
    pre.kwargs[inst.name] = comparable(kwargs)
    inst.id = create_container(c, waiting_kwargs(pre, kwargs)).id
    pre.predicted.created.append(inst.id)
    c.api.start(inst.id)
    timeline.mark(f"docker.prestarted.{inst.process}")


def comparable(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Create arguments without those a prestarted container has of its own (:data:`OWN_KWARGS`)."""
    return {k: v for k, v in kwargs.items() if k not in OWN_KWARGS}


# -- adopt (skiff_deploy) -------------------------------------------------------------------


def take(d: Deploy) -> Prestart | None:
    """The deploy's prestart, its thread finished (None if there is none or it is still starting)."""
    pre = d.stash.get(PRESTART)
    if pre is None or pre.future is None:
        return None
    try:
        pre.future.result(timeout=JOIN_SECONDS)
    except Exception as exc:  # the thread records its errors; a timeout lands here
        pre.error = pre.error or f"still starting after {JOIN_SECONDS:g}s ({type(exc).__name__})"
    return pre


def adopt(c: Any, d: Deploy, pre: Prestart, rollout: Rollout) -> bool:
    """Give ``rollout`` the prestarted containers when they are what it would start; else discard them."""
    reason = mismatch(c, d, pre, rollout)
    if reason:
        timeline.mark(f"docker.prestart-unused: {reason}")
        d.output.info(f"prestart not used ({reason}): starting containers of the new image")
        discard(d)
        return False
    code = d.stash[CODE_LAYER]
    rollout.instances = pre.instances
    for inst in rollout.instances:
        inst.prestarted = True
        inst.handed = pre.handed is not None and early(inst)
    rollout.created += pre.ids
    rollout.code = code.archive
    del d.stash[CODE_LAYER]
    del d.stash[PRESTART]
    return True


def mismatch(c: Any, d: Deploy, pre: Prestart, rollout: Rollout) -> str:
    """Why the prestarted containers are not what ``rollout`` would start (``""``: they are)."""
    if pre.error:
        return pre.error
    code = d.stash.get(CODE_LAYER)
    if code is None:
        return "the build made no single code layer"
    if code.base != pre.base:
        return "the dependencies or the base image changed"
    new = c.api.inspect_image(rollout.image)
    layers = list((new.get("RootFS") or {}).get("Layers") or [])
    if layers[:-1] != pre.base_layers or not layers or layers[-1] != digest(code.archive):
        return "the image is not the code base plus the code layer"
    if runtime_config(new) != pre.config:
        return "the image's environment, user or workdir changed"
    if pre.handed is not None:
        try:
            pre.handed.result(timeout=JOIN_SECONDS)
        except Exception as exc:
            return f"the early hand-off failed ({exc or type(exc).__name__})"
        if pre.early_digest != layers[-1]:
            return "the code handed over early is not the image's layer"
        if any(rollout.table.get(i.process) != pre.predicted.table.get(i.process) for i in pre.instances if early(i)):
            return "a Procfile command changed"
    if rollouts.instance_keys(rollout.settings.formation) != [(i.process, i.index) for i in pre.instances]:
        return "the formation changed"
    for inst in pre.instances:
        if not (rollout.table.get(inst.process) or "").strip():
            return f"{inst.process} has no Procfile command"
        if comparable(rollout.create_kwargs(c, inst)) != pre.kwargs.get(inst.name):
            return f"{inst.dyno}'s container settings changed"
    return ""


def digest(archive: IO[bytes]) -> str:
    """The layer id (sha256 of the tar) of ``archive``."""
    archive.seek(0)
    sha = hashlib.sha256()
    for chunk in iter(lambda: archive.read(1 << 20), b""):
        sha.update(chunk)
    archive.seek(0)
    return "sha256:" + sha.hexdigest()


def discard(d: Deploy) -> None:
    """Remove the deploy's prestarted containers (in the background: the rollout does not wait)."""
    pre = d.stash.get(PRESTART)
    if pre is None:
        return
    del d.stash[PRESTART]

    def remove() -> None:
        for future in (pre.future, pre.handed):  # wait until they did what they will (errors do not matter)
            if future is not None:
                try:
                    future.result()
                except Exception:
                    pass
        rollouts.remove_created(engine.client(), pre.predicted)

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="skiff-prestart")
    background.track(pool.submit(remove))
    pool.shutdown(wait=False)


def close_code(d: Deploy) -> None:
    """Close the code layer's tar a builder handed over when nothing took it."""
    code = d.stash.get(CODE_LAYER)
    if code is not None:
        del d.stash[CODE_LAYER]
        code.archive.close()


# -- the hand-off (in the rollout's threads) -----------------------------------------------------

_code_lock = threading.Lock()


def hand_off(c: Any, archive: IO[bytes], line: str, inst: Instance) -> None:
    """Give the waiting container its restart policy, then the code and its command ``line`` in one
    ``put_archive``: the command file is the archive's last entry, so the waiter sees it once every
    file of the code is in place (the engine extracts in order)."""
    c.api.update_container(inst.id, restart_policy={"Name": "unless-stopped"})
    with _code_lock, with_command(archive, line) as both:  # one file, one reader at a time
        if not c.api.put_archive(inst.id, "/", both):
            raise PrestartError("the engine refused the code")


def with_command(archive: IO[bytes], line: str) -> IO[bytes]:
    """A temporary tar of ``archive``'s entries, byte for byte, then :data:`COMMAND_FILE` (``line``)."""
    archive.seek(0)
    with tarfile.open(fileobj=archive, mode="r:") as tf:
        for _member in tf:
            pass
        end = tf.offset  # where the end-of-archive blocks begin
    archive.seek(0)
    out = tempfile.TemporaryFile(prefix="skiff-handoff-", suffix=".tar")
    try:
        left = end
        while left:
            chunk = archive.read(min(left, 1 << 20))
            if not chunk:
                raise PrestartError("the code archive ended early")
            out.write(chunk)
            left -= len(chunk)
        member = command_tar(line)
        blocks = 1 + -(-len(line.strip().encode()) // tarfile.BLOCKSIZE)  # its header and data blocks
        out.write(member[: blocks * tarfile.BLOCKSIZE])
        out.write(b"\0" * (2 * tarfile.BLOCKSIZE))
        out.seek(0)
    except BaseException:
        out.close()
        raise
    return out


def command_tar(line: str) -> bytes:
    """A tar of :data:`COMMAND_FILE` holding ``line`` (readable by the container's user)."""
    data = line.strip().encode()
    info = tarfile.TarInfo(COMMAND_FILE.lstrip("/"))
    info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tf:
        tf.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
