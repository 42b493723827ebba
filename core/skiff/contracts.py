"""What plugins share: the typed release meta, the defaults, the port rule, the stash.

Plugins never import each other (docs/plugins.md); whatever more than one of
them reads is named here, in the core, and listed in docs/contracts.md (a test
compares the two):

- :class:`ReleaseMeta`: the keys of ``deploy.meta`` / ``release.meta`` (stored
  with the release as JSON, exactly as written). :class:`MetaFields` gives
  :class:`~skiff.deploy.Deploy` and :class:`~skiff.state.Release` typed
  properties over the most shared ones (``deploy.container_port``, ...);
- :data:`DEFAULT_PORT`, :data:`DEFAULT_STACK_IMAGE` and :data:`APP_UID`, and
  :func:`stack_image` (the configured stack image);
- :func:`container_port`: the one rule for the web process's port;
- :class:`BuildOptions`: the docker build options a builder may apply
  (``deploy.build_options``, published by the docker plugin);
- :func:`app_network`: the docker network of an app's own (isolation), which
  the scheduler puts every container of the app on and a service joins when linked;
- :class:`StashKey` / :class:`Stash`: typed per-plugin data of one deploy, not
  stored and not shared (``deploy.stash[KEY]``);
- :class:`PeriodicTask`: periodic work a plugin registers with the cron runner
  (``skiff_periodic_tasks``); :class:`OneOff`: a one-off container of an app's
  current release (``skiff_run_oneoff``, answered by the scheduler).
- :data:`ACME_CHALLENGE_PATH` and :func:`acme_challenge_dir`: where the proxy
  serves HTTP-01 challenge files from, for every app (the letsencrypt plugin
  writes them).
- :func:`registry_config_dir`: the docker config directory (``config.json``,
  0600) holding the registry credentials ``registry:login`` stored; a
  scheduler that creates services on other nodes sends them from there.
- :class:`BackupPart`: what a plugin puts in a whole-server backup
  (``skiff_backup_parts``) and how it comes back (``state:restore``).
- :class:`ProxySite`: a web server of a plugin's own (the dashboard) that the
  proxy serves under a domain (``skiff_proxy_site``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Generic, TypedDict, TypeVar, cast, overload

if TYPE_CHECKING:  # pragma: no cover
    from .state import State

#: The port a web process listens on (``$PORT``) when its image exposes none (Dokku's 5000).
DEFAULT_PORT = 5000
#: The stack image builds and apps run on, unless the ``stack`` plugin's ``image`` says otherwise.
DEFAULT_STACK_IMAGE = "skiff/stack:trixie"
#: The uid (and gid) of the stack's non-root user ``app``: builds and app processes run as it.
APP_UID = 1000
#: The one network every app and service shared before apps were isolated (upgrades move them off it).
LEGACY_NETWORK = "skiff"
#: Label of an app's own network: its value is the app.
APP_NETWORK_LABEL = "skiff.network.app"
APP_NETWORK_PREFIX = "skiff-app-"


def app_network(app: str) -> str:
    """The docker network of ``app``'s own: ``skiff-app-APP``.

    Every container the scheduler creates for the app joins it (with the alias
    ``APP.PROCESS``), and only those: apps are isolated from each other by
    default. A service linked to the app joins it too (postgres does on
    ``postgres:link``); ``network:*`` networks are shared on purpose.
    """
    return APP_NETWORK_PREFIX + app


class GitMeta(TypedDict):
    """``meta["git"]``: where a release made from git came from."""

    ref: str | None  # "refs/heads/main"
    revision: str  # the commit's full SHA


class ImageSourceMeta(TypedDict):
    """``meta["image_source"]``: the image a release made by ``git:load-image`` / ``git:from-image`` runs."""

    image: str  # the name given (or the image id when none was)
    id: str  # the image id it was built FROM
    how: str  # "load-image" or "from-image"


class ReleaseMeta(TypedDict, total=False):
    """Every ``deploy.meta`` key more than one plugin reads (docs/contracts.md, "deploy.meta keys").

    Stored with the release as JSON, so values are JSON values. A key not named
    here is private to its plugin and belongs in its stash or its properties.
    """

    app_json: dict[str, Any]  # core: the parsed app.json (scripts, healthchecks, formation, env, cron)
    release_env: dict[str, str]  # core: variables plugins set before the release (GIT_REV), kept for redeploys
    release_command: str  # procfile: the Procfile's `release:` line
    builder: str  # core: the builder that made the image (deploy.builder after the build)
    buildpacks: list[str]  # buildpacks: the packs used
    stack: str  # buildpacks: the stack image built on
    deps_key: str  # buildpacks: the dependency layer's key (16 hex digits)
    deps_image: str  # buildpacks: the dependency layer's image id
    run_image: str  # buildpacks: the run image the app image is based on ("": the build image, ``stack``)
    image_id: str  # builders: the image id behind deploy.image
    code_base: str  # builders: the id of the image the code layer was laid on (see :class:`CodeLayer`)
    dockerfile: str  # dockerfile: the Dockerfile's path in the source
    exposed_ports: list[int]  # dockerfile: the image's EXPOSEd TCP ports, ascending
    container_port: int  # docker: the port the web process listens on in its container
    upstreams: list[str]  # docker: "127.0.0.1:HOSTPORT" of each healthy new web container
    formation: dict[str, int]  # docker: {process: quantity} the release runs with
    git: GitMeta  # git: ref and revision of a release made from git
    image_source: ImageSourceMeta  # git: the image a release made from a prebuilt image runs


#: The keys of :class:`ReleaseMeta`, for checks.
META_KEYS = frozenset(ReleaseMeta.__annotations__)


def image_exposed_ports(image_attrs: Mapping[str, Any]) -> list[int]:
    """The TCP ports an image exposes (``docker image inspect``'s ``Config.ExposedPorts``), sorted.

    What a builder that makes an image from a Dockerfile or a loaded image records as
    ``meta["exposed_ports"]``.
    """
    ports = []
    for spec in (image_attrs.get("Config") or {}).get("ExposedPorts") or {}:
        number, _, proto = str(spec).partition("/")
        if proto in ("", "tcp") and number.isdigit():
            ports.append(int(number))
    return sorted(ports)


def container_port(exposed_ports: Iterable[Any] | None, configured: Any = None) -> int:
    """The port the web process listens on inside its container.

    The one rule of the scheduler and the proxy: the port already chosen for the
    release (``configured``: ``meta["container_port"]``) when there is one, else
    the lowest TCP port the image exposes, else :data:`DEFAULT_PORT`. Dokku takes
    the first ``EXPOSE``; image metadata does not keep the Dockerfile's order, so
    Skiff takes the lowest, which is the same port for the usual single ``EXPOSE``.
    """
    if isinstance(configured, int) and not isinstance(configured, bool) and 0 < configured < 65536:
        return configured
    ports = sorted(
        int(p) for p in exposed_ports or () if isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536
    )
    return ports[0] if ports else DEFAULT_PORT


def stack_image(state: State) -> str:
    """The stack image: the ``stack`` plugin's global property ``image``, else :data:`DEFAULT_STACK_IMAGE`."""
    value = state.get_property("stack", "image", default=None)
    return value if isinstance(value, str) and value else DEFAULT_STACK_IMAGE


#: The URL path under which every app's proxy serves ACME HTTP-01 challenge files, always over HTTP.
ACME_CHALLENGE_PATH = "/.well-known/acme-challenge/"


def acme_challenge_dir(root: Path) -> Path:
    """The directory of ACME HTTP-01 challenge files under ``SKIFF_ROOT`` (``root``).

    The proxy serves ``ACME_CHALLENGE_PATH + TOKEN`` from ``DIR/TOKEN`` on every
    server block of every app (never from the app), also when HTTP redirects to
    HTTPS; an ACME client writes ``DIR/TOKEN`` (world-readable: nginx's workers
    read it) while the challenge is pending, and removes it afterwards.
    """
    return Path(root) / "acme-challenge"


def registry_config_dir(root: Path) -> Path:
    """The docker config directory of Skiff's registry credentials under ``SKIFF_ROOT`` (``root``).

    ``DIR/config.json`` (0600, the directory 0700) has docker's format
    (``{"auths": {"HOST[:PORT]": {"auth": base64("USER:PASSWORD")}}}``); the
    registry plugin writes it (``registry:login``). A docker SDK client made
    with ``DOCKER_CONFIG=DIR`` (or ``docker.auth.load_config(DIR/"config.json")``)
    sends these credentials, e.g. with a swarm service's image. The host's own
    ``/root/.docker`` is never read or written.
    """
    return Path(root) / "registry" / "docker"


class BuildOptions(TypedDict, total=False):
    """``deploy.build_options``: the ``build`` phase docker options, validated, as docker SDK arguments.

    Published by the docker plugin (from ``docker-options:add APP build ...``) in
    ``skiff_pre_build``; a builder that runs ``docker build`` applies what it can.
    Nothing here reaches the host.
    """

    buildargs: dict[str, str]  # --build-arg KEY=VALUE
    labels: dict[str, str]  # --label KEY=VALUE
    extra_hosts: dict[str, str]  # --add-host HOST:ADDRESS
    shmsize: int  # --shm-size, in bytes
    ulimits: dict[str, tuple[int, int]]  # --ulimit NAME=SOFT[:HARD]: {name: (soft, hard)}


class ContainerOptions(TypedDict, total=False):
    """What a plugin adds to a container Skiff creates for an app (``skiff_container_options``).

    The scheduler merges the answers of every plugin, in plugin order, and applies
    them to process containers, release tasks, ``run`` containers and scheduled
    jobs alike. Plugins validate what they return: these values are trusted (they
    are not checked against the host-reaching rules of ``docker-options``).
    """

    binds: list[str]  # "HOST_PATH:CONTAINER_PATH[:ro]", as docker run -v takes them
    networks: list[str]  # networks to join besides the primary one, with the alias APP.PROCESS
    network: str  # the primary network instead of the app's own (the last plugin that says wins)
    log_config: dict[str, Any]  # {"type": "json-file", "config": {"max-size": "10m"}}
    labels: dict[str, str]


CONTAINER_ROLES = ("process", "release", "run", "scheduler")


def merge_container_options(answers: Iterable[ContainerOptions | None]) -> ContainerOptions:
    """One :class:`ContainerOptions` of several plugins' answers: lists joined (without
    repeats), dicts updated, ``network`` and ``log_config`` from the last answer that has them."""
    merged: ContainerOptions = {}
    for answer in answers:
        answer = answer or {}
        unknown = set(answer) - set(ContainerOptions.__annotations__)
        if unknown:
            raise ValueError(f"unknown container option {sorted(unknown)[0]!r}")
        for name in ("binds", "networks"):
            seen = cast("list[str]", merged.setdefault(name, []))  # type: ignore[misc]
            seen.extend(item for item in cast("list[str]", answer.get(name, [])) if item not in seen)
        if "labels" in answer:
            merged.setdefault("labels", {}).update(answer["labels"])
        if "network" in answer:
            merged["network"] = answer["network"]
        if "log_config" in answer:
            merged["log_config"] = answer["log_config"]
    for name in ("binds", "networks"):
        if not merged.get(name):
            merged.pop(name, None)  # type: ignore[misc]
    return merged


@dataclass(frozen=True)
class PeriodicTask:
    """Work the cron runner (``skiff cron:runner``) starts on a schedule (``skiff_periodic_tasks``).

    ``name``: unique across plugins (``PLUGIN:WHAT``, e.g. ``docker:cleanup``);
    ``schedule``: a cron expression (five fields or an @-macro, checked with
    :func:`skiff.validate.cron_schedule`); ``argv``: the arguments of a ``skiff``
    command the runner runs as the service account (``("cleanup",)``), never a
    shell line. The runner never starts a task while its previous run is still
    going.
    """

    name: str
    schedule: str
    argv: tuple[str, ...]


@dataclass(frozen=True)
class OneOff:
    """A one-off container of ``app``'s current release, with its config (``skiff_run_oneoff``).

    ``command``: the argv in the container (``("/bin/sh", "-c", LINE)`` runs a line like a
    Procfile command); ``role``: a :data:`CONTAINER_ROLES` entry (``run`` or ``scheduler``),
    passed to ``skiff_container_options``; ``name``: the container's name, when it must be
    unique (a second one of that name is refused while the first runs); ``tag``: keep the
    exited container until the next one of that name, so that ``logs APP`` shows its output
    as ``APP[ROLE.TAG]`` (a scheduled job's last run); ``detach``: start it in the background
    (``run:detached``): its name (``APP.run.N``) is written once, and the status is 0 once it
    started.
    """

    app: str
    command: tuple[str, ...]
    role: str = "run"
    name: str | None = None
    tag: str | None = None
    detach: bool = False


#: A backup part's name: ``PLUGIN:WHAT`` (the archive member of its dump is ``dumps/NAME``).
BACKUP_PART_NAME = r"[a-z][a-z0-9-]{0,39}:[a-z0-9][a-z0-9._-]{0,79}"


@dataclass(frozen=True)
class BackupPart:
    """One part of a whole-server backup (``skiff_backup_parts``; ``state:backup`` / ``state:restore``).

    ``name``: unique, ``PLUGIN:WHAT`` (:data:`BACKUP_PART_NAME`, e.g. ``git:repos``,
    ``redis:cache``); ``description``: one line for the manifest and the progress output.
    ``paths``: files or directories relative to ``SKIFF_ROOT`` (``("repos",)``) archived
    as they are (owners, modes, relative symlinks that stay inside) and put back before any
    ``restore`` runs; a path that does not exist is skipped. ``dump``: writes this part's
    stream (a service's export) to the binary file it is given; it raises
    :class:`~skiff.errors.SkiffError` to stop the backup (nothing is written).
    ``restore``: called by ``state:restore`` on the restored store, files and certificates,
    with the dump (a binary file, or ``None`` when the part has no dump): recreate what
    the dump holds (a service from its export, the apps' containers). ``order``: restore
    steps run by ascending order (keys 100, services 200, apps 900).
    """

    name: str
    description: str
    paths: tuple[str, ...] = ()
    dump: Callable[[IO[bytes]], None] | None = None
    restore: Callable[[IO[bytes] | None], None] | None = None
    order: int = 500


#: A proxy site's name: the proxy's file of it is ``site-NAME.conf``.
PROXY_SITE_NAME = r"[a-z][a-z0-9-]{0,39}"
#: A path regex a proxy site streams on (nginx ``location ~ PATTERN``): a limited alphabet.
PROXY_STREAM_PATH = r"\^/[A-Za-z0-9_/.\[\]^+*-]{0,200}\$"


@dataclass(frozen=True)
class ProxySite:
    """A web server of a plugin's own that the proxy serves (``skiff_proxy_site``).

    ``name``: the plugin's name (:data:`PROXY_SITE_NAME`); ``domain``: the one host name
    it answers to; ``upstream``: ``127.0.0.1:PORT`` (loopback only); ``certificate``:
    ``(certificate file, key file)`` paths (absolute, the key 0600) to serve HTTPS with,
    or ``None`` for HTTP only; ``stream_paths``: path regexes (:data:`PROXY_STREAM_PATH`,
    e.g. ``^/apps/[^/]+/logs/stream$``) whose responses are streamed unbuffered
    (Server-Sent Events). The proxy adds ``X-Forwarded-Proto`` and ``X-Forwarded-For``.
    """

    name: str
    domain: str
    upstream: str
    certificate: tuple[Path, Path] | None = None
    stream_paths: tuple[str, ...] = ()


class MetaFields:
    """Typed properties over ``self.meta`` (a :class:`ReleaseMeta`), for Deploy and Release.

    Reading a key that is not there gives its empty value; setting ``None``
    (or an empty value where empty means unset) removes the key, so the stored
    JSON is exactly what plugins wrote with string keys before.
    """

    meta: ReleaseMeta

    @property
    def container_port(self) -> int | None:
        """The port the web process listens on in its container (docker writes it in ``skiff_deploy``)."""
        value = self.meta.get("container_port")
        return int(value) if value else None

    @container_port.setter
    def container_port(self, value: int | None) -> None:
        _put(self.meta, "container_port", value)

    @property
    def exposed_ports(self) -> list[int]:
        """The image's exposed TCP ports (dockerfile); empty for buildpack images (they use $PORT)."""
        return [int(p) for p in self.meta.get("exposed_ports") or []]

    @exposed_ports.setter
    def exposed_ports(self, value: list[int]) -> None:
        self.meta["exposed_ports"] = sorted(int(p) for p in value)

    @property
    def upstreams(self) -> list[str]:
        """``127.0.0.1:HOSTPORT`` of each healthy new web container (docker, for the proxy)."""
        return list(self.meta.get("upstreams") or [])

    @upstreams.setter
    def upstreams(self, value: list[str]) -> None:
        self.meta["upstreams"] = list(value)

    @property
    def formation(self) -> dict[str, int]:
        """``{process: quantity}`` the release runs with (docker)."""
        return dict(self.meta.get("formation") or {})

    @formation.setter
    def formation(self, value: dict[str, int]) -> None:
        self.meta["formation"] = dict(value)

    @property
    def release_command(self) -> str | None:
        """The Procfile's ``release:`` command (procfile), run before new processes start."""
        value = self.meta.get("release_command")
        return value if isinstance(value, str) and value.strip() else None

    @release_command.setter
    def release_command(self, value: str | None) -> None:
        _put(self.meta, "release_command", value)

    @property
    def release_env(self) -> dict[str, str]:
        """Variables set by plugins before the release (``GIT_REV``), kept for redeploys of the image."""
        return dict(self.meta.get("release_env") or {})

    @release_env.setter
    def release_env(self, value: dict[str, str]) -> None:
        self.meta["release_env"] = dict(value)

    @property
    def image_id(self) -> str | None:
        """The id of the image the builder made."""
        return self.meta.get("image_id") or None

    @image_id.setter
    def image_id(self, value: str | None) -> None:
        _put(self.meta, "image_id", value)


def _put(meta: ReleaseMeta, key: str, value: Any) -> None:
    raw = cast(dict[str, Any], meta)
    if value is None:
        raw.pop(key, None)
    else:
        raw[key] = value


T = TypeVar("T")
D = TypeVar("D")


class StashKey(Generic[T]):
    """The key of one typed value in a deploy's :class:`Stash`, owned by one plugin.

    ``ROLLOUT = StashKey[Rollout]("docker", "rollout")`` at module level, then
    ``deploy.stash[ROLLOUT] = rollout`` and ``deploy.stash[ROLLOUT]`` (typed
    ``Rollout``). The value lives in ``deploy.scratch[plugin][name]``, where
    ``deploy.scratch_for(plugin)`` finds it too.
    """

    __slots__ = ("plugin", "name")

    def __init__(self, plugin: str, name: str) -> None:
        self.plugin = plugin
        self.name = name

    def __repr__(self) -> str:
        return f"StashKey({self.plugin!r}, {self.name!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StashKey) and (other.plugin, other.name) == (self.plugin, self.name)

    def __hash__(self) -> int:
        return hash((self.plugin, self.name))


@dataclass
class CodeLayer:
    """What a builder hands the scheduler when the image is its ``base`` plus one layer of files.

    ``archive`` is the layer's tar (entries as ``put_archive`` at ``/`` takes them), open for
    reading; ``base`` is the id of the image below it. The docker scheduler's prestart puts it
    into containers started from ``base`` while the build ran (docs/performance.md) after
    checking that the image's last layer is this tar; it closes the file. Kept under
    :data:`CODE_LAYER` in the deploy's stash, with ``code_base`` in ``deploy.meta``.
    """

    base: str
    archive: IO[bytes]


class Stash:
    """Per-deploy, per-plugin values under typed keys; not stored with the release.

    In the spirit of pytest's ``Stash``. It is a view of ``scratch``
    (``{plugin: {name: value}}``), the untyped form older plugins use.
    """

    __slots__ = ("_scratch",)

    def __init__(self, scratch: dict[str, dict[str, Any]] | None = None) -> None:
        self._scratch = scratch if scratch is not None else {}

    def __setitem__(self, key: StashKey[T], value: T) -> None:
        self._scratch.setdefault(key.plugin, {})[key.name] = value

    def __getitem__(self, key: StashKey[T]) -> T:
        return cast(T, self._scratch[key.plugin][key.name])

    @overload
    def get(self, key: StashKey[T]) -> T | None: ...
    @overload
    def get(self, key: StashKey[T], default: D) -> T | D: ...
    def get(self, key: StashKey[T], default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def setdefault(self, key: StashKey[T], default: T) -> T:
        try:
            return self[key]
        except KeyError:
            self[key] = default
            return default

    def __delitem__(self, key: StashKey[T]) -> None:
        del self._scratch[key.plugin][key.name]

    def __contains__(self, key: StashKey[T]) -> bool:
        return key.name in self._scratch.get(key.plugin, {})

    def __iter__(self) -> Iterator[StashKey[Any]]:
        return iter([StashKey(plugin, name) for plugin, values in self._scratch.items() for name in values])

    def __len__(self) -> int:
        return sum(len(values) for values in self._scratch.values())


#: the builder's hand-off of the code layer to the scheduler (``deploy.stash[CODE_LAYER]``)
CODE_LAYER: StashKey[CodeLayer] = StashKey("build", "code-layer")
#: a scheduler that can use the code layer before the image is loaded sets this; a builder calls it
#: with a :class:`CodeLayer` of its own (the callee closes it) as soon as the tar is written
CODE_LAYER_WANTED: StashKey[Callable[[CodeLayer], None]] = StashKey("build", "code-layer-wanted")
