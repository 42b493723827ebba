"""The core hooks: Skiff's public plugin API.

Every hook is documented in ``docs/hooks.md``. Lifecycle hooks run in this
order for one deploy, all receiving the same :class:`skiff.deploy.Deploy`::

    skiff_receive -> skiff_pre_build -> skiff_build -> skiff_release
        -> skiff_deploy -> skiff_post_deploy
    (any exception: skiff_deploy_failed(deploy, phase, error))

A redeploy (config change, scale, restart, rollback) runs from
``skiff_release`` on with the image of an existing release. The core
chooses ``deploy.builder`` (see :func:`skiff_builders`) at the start of the
``pre_build`` phase. Each docstring says when the hook is called, what it
receives and returns, and whether the first non-``None`` result wins.

Builtin default implementations are marked ``trylast=True`` so any plugin
can override them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import hookspec

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable
    from pathlib import Path

    import click
    import pluggy

    from .builders import BuilderInfo
    from .context import Context
    from .contracts import BackupPart, ContainerOptions, OneOff, PeriodicTask, ProxySite
    from .deploy import Deploy
    from .settings import Namespace


# -- lifecycle -------------------------------------------------------------


@hookspec(firstresult=True)
def skiff_receive(deploy: Deploy) -> bool | None:
    """Put the source tree of ``deploy.source`` into ``deploy.workdir``.

    Called first in a full deploy, under the app's lock. ``deploy.workdir`` is
    an empty directory created by the core. The plugin that owns
    ``deploy.source.kind`` copies or checks the source out there, sets
    ``deploy.revision`` where the source has one, and returns ``True``.
    Plugins that do not own the kind return ``None``.

    First result wins. If no plugin returns a result, the deploy fails with
    "no plugin can receive ... sources".
    """


@hookspec
def skiff_pre_build(deploy: Deploy) -> None:
    """Inspect and validate the received source before the build.

    Called for every plugin (not first-result) after ``skiff_receive``, once
    the core has set ``deploy.builder``, so a builder can check here that the
    source suits it. Plugins read files such
    as the Procfile or app.json, validate them (raise :class:`SkiffError` with
    a clear message to stop the deploy), and fill ``deploy.processes``,
    ``deploy.app_json`` and ``deploy.meta``. Return value ignored.
    """


@hookspec(firstresult=True)
def skiff_build(deploy: Deploy) -> str | None:
    """Build the image for ``deploy`` and return its reference (tag or id).

    Called after ``skiff_pre_build``, only in full deploys. ``deploy.builder``
    names the builder the core chose (see :func:`skiff_builders`); the plugin
    whose builder it names builds from ``deploy.workdir`` and returns the
    image, every other implementation returns ``None``. First result wins;
    the core stores it in ``deploy.image`` and ``deploy.meta["builder"]``. If
    no plugin returns an image, the deploy fails ("no builder could build
    this app").
    """


@hookspec
def skiff_builders() -> list[BuilderInfo] | None:
    """Declare the builders this plugin provides: a list of :class:`skiff.builders.BuilderInfo`.

    Called for every plugin (not first-result; the lists are merged) whenever
    the core needs the installed builders: at the start of the ``pre_build``
    phase of every full deploy, to choose ``deploy.builder``, and by
    ``builder:set`` / ``builder:report``. ``BuilderInfo(name, order, detect,
    description)``: the forced builder (``builder:set APP selected NAME``)
    wins, else the first by ascending ``order`` whose ``detect(deploy)``
    returns true (dockerfile 100, buildpacks 1000). ``detect`` sees
    ``deploy.workdir`` after ``skiff_receive`` and before any
    ``skiff_pre_build``; it must be cheap and side-effect free. Return
    ``None`` or ``[]`` to declare nothing. When two plugins declare one name,
    the implementation pluggy calls first wins (builtins are ``trylast``).
    """


@hookspec
def skiff_release(deploy: Deploy) -> None:
    """Run release tasks for a new release.

    Called for every plugin (not first-result), in a deploy and in every
    redeploy, after the core recorded
    ``deploy.release`` (status ``pending``: image, config, processes, meta).
    Plugins run release tasks (Procfile ``release:``, app.json
    ``predeploy``) before any new process starts; raising stops the deploy
    and the current release keeps serving. Return value ignored.
    """


@hookspec(firstresult=True)
def skiff_deploy(deploy: Deploy) -> bool | None:
    """Start the processes of ``deploy.release`` and check they are healthy.

    Called after ``skiff_release``. The scheduler (docker, ...) starts new
    processes next to the old ones, waits for their checks and returns
    ``True``; it must not stop the old processes yet (that happens in its
    ``skiff_post_deploy``). First result wins; if no plugin answers, the
    deploy fails with "no scheduler".
    """


@hookspec
def skiff_post_deploy(deploy: Deploy) -> None:
    """Switch traffic to the new release and retire the old one.

    Called for every plugin after ``skiff_deploy`` succeeded. The proxy
    switches first (``tryfirst=True``), the scheduler retires old processes
    last (``trylast=True``); other plugins run post-deploy scripts or notify.
    Plugins may append to ``deploy.urls``, which the core prints. Raising
    fails the deploy. Return value ignored.
    """


@hookspec
def skiff_deploy_failed(deploy: Deploy, phase: str, error: BaseException) -> None:
    """Undo the partial work of a failed deploy.

    Called for every plugin when any phase raised, with the name of the phase
    (``receive``, ``pre_build``, ``build``, ``release``, ``deploy``,
    ``post_deploy``) and the exception. Plugins remove what they started
    (new containers, temp images) so the previous release keeps serving.
    Exceptions raised here are reported as warnings and do not stop other
    implementations. Return value ignored.
    """


# -- plugin manager and CLI ------------------------------------------------


@hookspec(historic=True)
def skiff_addhooks(pm: pluggy.PluginManager) -> None:
    """Add a plugin's own hookspecs with ``pm.add_hookspecs(module)``.

    Historic: called for every plugin as it is registered, even after the
    call was made, so a plugin that declares an extension point (e.g. the
    buildpacks plugin's language-pack hooks) may load in any order relative
    to the plugins that implement it. Return value ignored.
    """


@hookspec
def skiff_commands(cli: click.Group) -> None:
    """Add click commands to the ``skiff`` command group ``cli``.

    Called for every plugin (not first-result), once when the CLI is built,
    after every plugin is registered; with the command cache
    (:mod:`skiff.commandcache`) one plugin's implementation is called alone,
    with a scratch group, when one of its commands is asked for, so add the same
    commands every time.
    Command names follow Dokku's (``apps:create``, ``config:set``); the
    command reads the :class:`skiff.context.Context` from ``click``'s
    ``ctx.obj``. Keep this cheap: import heavy libraries inside commands,
    not here, so ``skiff --help`` stays fast. Return value ignored.
    """


@hookspec
def skiff_settings() -> list[Namespace] | None:
    """Declare this plugin's settings: a list of :class:`skiff.settings.Namespace`.

    Called for every plugin (not first-result; the lists are merged) when the
    CLI is built, after ``skiff_commands``, and whenever
    :func:`skiff.settings.namespaces` is asked. For each namespace the core
    adds ``NS:set [--global] [APP] KEY [VALUE]`` and ``NS:report [APP]
    [--format text|json]`` (those in ``Namespace.commands``; a command a plugin
    added itself under that name wins), checks each change against the
    setting's parser, ``validate`` and ``level``, and stores it as a property of
    ``Namespace.store``. The plugin reads values with ``Namespace.get(state,
    name, app=APP)``. Must be cheap and side-effect free. Return ``None`` or
    ``[]`` to declare nothing; when two plugins declare one namespace name, the
    implementation pluggy calls first wins.
    """


@hookspec
def skiff_container_options(context: Context, app: str, process: str, role: str) -> ContainerOptions | None:
    """Return what this plugin adds to a container of ``app``: mounts, networks, log options.

    Called for every plugin (not first-result; the answers are merged by
    :func:`skiff.contracts.merge_container_options`) by the scheduler before it
    creates a container: ``role`` is ``"process"`` (a Procfile process; ``process``
    is its name, e.g. ``web``), ``"release"`` (a release task or app.json script;
    ``process`` is ``release``, ``predeploy`` or ``postdeploy``), ``"run"`` (a
    one-off ``run`` container) or ``"scheduler"`` (a scheduled job). Called once per
    process of a rollout, with the state of the store when the rollout began.
    Return ``None`` to add nothing. The values are trusted: validate what a user
    gave you (paths, names) before you return it. The container's primary network
    is the answer's ``network``, else the app's own
    (:func:`skiff.contracts.app_network`); it joins the app's own network and every
    one of ``networks`` as well, so name networks that exist.
    """


@hookspec(firstresult=True)
def skiff_run_oneoff(context: Context, oneoff: OneOff, write: Callable[[str], None]) -> int | None:
    """Run ``oneoff`` (a :class:`skiff.contracts.OneOff`) to completion; return its exit status.

    Called by plugins that run commands in an app's container without importing
    the scheduler (the cron plugin's jobs). The scheduler runs ``oneoff.command``
    in a one-off container of the app's current release with its config (``DYNO``
    ``<role>.<n>``) and ``skiff_container_options`` for ``oneoff.role``, passes each
    line of its output to ``write`` as it comes, and returns the exit status. It
    raises :class:`SkiffError` when the app has no release, or when a container
    named ``oneoff.name`` is still running. First result wins; the docker plugin
    answers (trylast). ``None``: no scheduler.
    """


@hookspec(firstresult=True)
def skiff_app_logs(
    context: Context, app: str, process: str | None, num: int, follow: bool, write: Callable[[str], None]
) -> bool | None:
    """Show the logs of ``app`` when it runs somewhere the docker scheduler does not look.

    Called by the ``logs`` command (docker plugin) before it reads the local containers:
    a scheduler that runs ``app`` itself (swarm, for apps with ``scheduler:set APP selected
    swarm``) passes the last ``num`` lines of each of its processes (only ``process``, a
    type or ``TYPE.N``, when given) to ``write``, one line at a time, as
    ``TIMESTAMP APP[TYPE.N]: TEXT``, follows them while ``follow``, and returns ``True``.
    Every other implementation returns ``None``. First result wins; no answer: the docker
    plugin shows the local containers' logs.
    """


@hookspec(firstresult=True)
def skiff_app_stop(context: Context, app: str) -> int | None:
    """Stop the processes of ``app`` when another scheduler than docker runs it; how many stopped.

    Called by ``ps:stop`` (docker plugin) under the app's lock before it looks at the local
    containers. A scheduler that runs ``app`` itself (swarm, for apps with ``scheduler:set APP
    selected swarm``) stops every process of it (swarm: its services go to 0 replicas, kept
    for ``ps:start``) and returns the number of processes (tasks) it stopped; ``ps:stop``
    records the app as stopped either way. First result wins; ``None``: the docker plugin
    stops the local containers.
    """


@hookspec(firstresult=True)
def skiff_app_start(context: Context, app: str) -> str | None:
    """Start the processes of ``app`` that ``ps:stop`` stopped, when another scheduler runs it.

    Called by ``ps:start`` (docker plugin), not under the app's lock: the scheduler takes it
    while it changes what runs and releases it before the proxy rebuilds (which takes it). A
    scheduler that runs ``app`` and still holds its current release's processes (swarm:
    services at 0 replicas) starts them with the release's formation, waits until they run,
    points the proxy at them, and returns what it did in a few words. ``None``: nothing of the release is left to start
    (or the app is not this scheduler's): ``ps:start`` redeploys the current release, which
    goes to the app's scheduler through ``skiff_deploy``. First result wins.
    """


@hookspec(firstresult=True)
def skiff_app_status(context: Context, app: str) -> list[dict[str, Any]] | None:
    """The processes of ``app`` when another scheduler than docker runs it: one row each.

    Called by ``ps:report`` and ``apps:report`` (docker plugin). A scheduler that runs ``app``
    returns a row per process that should run, across every node: ``name`` (``APP.TYPE.N``),
    ``process``, ``release`` (its version), ``status`` (``running``, ``starting``,
    ``failed`` ...), ``restarts`` (replaced tasks of that slot), ``node`` (where it runs),
    ``address`` (``HOST:PORT`` the proxy reaches it at, or ``None``) and ``id``. First result
    wins; ``None``: the docker plugin reports the local containers.
    """


@hookspec(firstresult=True)
def skiff_app_enter(
    context: Context, app: str, target: str | None, command: list[str], write: Callable[[str], None]
) -> int | None:
    """Run ``command`` in a running process of ``app`` another scheduler runs; its exit status.

    Called by ``enter APP [TYPE.N] [COMMAND...]`` (docker plugin) before it looks at local
    containers. ``target`` is ``TYPE.N`` (``TYPE`` alone means ``TYPE.1``; ``None``: the first
    running process); ``command`` the argv (a shell when the user gave none). A scheduler that
    runs ``app`` (swarm) runs it in that process's container through an engine it reaches,
    passes the output to ``write`` as it comes (chunks, not lines) and returns the exit status, or raises
    :class:`~skiff.errors.SkiffError` (one line) when the process is not there or runs where it
    cannot reach it. First result wins; ``None``: the docker plugin enters a local container.
    """


# -- periodic work ----------------------------------------------------------


@hookspec
def skiff_periodic_tasks(context: Context) -> list[PeriodicTask] | None:
    """Declare periodic work: a list of :class:`skiff.contracts.PeriodicTask`.

    Called for every plugin (not first-result; the lists are merged) by the cron
    runner (``skiff cron:runner``) about once a minute, and by ``cron:report``, as the
    service account. Read what is stored (app.json jobs of current releases,
    certificates to renew, backup schedules): the runner starts each task's ``argv``
    as a ``skiff`` command when its ``schedule`` says so, one run at a time per
    ``name``. Must be cheap and side-effect free; return ``None`` or ``[]`` for none.
    A task whose schedule does not parse is reported and skipped.
    """


@hookspec
def skiff_boot(context: Context) -> list[str] | None:
    """Bring back what this plugin runs itself, outside the apps' containers, after a reboot.

    Called for every plugin (not first-result) by ``ps:restore`` (which
    ``skiff-restore.service`` runs at boot, after the Docker engine, and ``make install``
    on an update), as the service account, before any app is started: the registry plugin
    starts the registry ``registry:serve`` ran (same address, certificate and account), so
    that the apps' tasks can pull from it. Must be idempotent (something already running is
    left as it is). Return one line per thing started, or per thing that could not start
    (``ps:restore`` prints them; do not raise: the apps are restored all the same), or
    ``None`` when there was nothing to do.
    """


# -- whole-server backup -------------------------------------------------------


@hookspec
def skiff_backup_parts(context: Context) -> list[BackupPart] | None:
    """Declare what this plugin holds on the server: a list of :class:`skiff.contracts.BackupPart`.

    Called for every plugin (not first-result; the lists are merged) by ``state:backup``,
    as root, to gather the archive: each part's ``paths`` under ``SKIFF_ROOT`` are archived
    and its ``dump`` is written (a service's export); and again by ``state:restore``, once
    the state store and every part's files are back, for the ``restore`` steps (by
    ascending ``order``) of the parts the archive holds. Read what is stored; do not change
    it. Return ``None`` or ``[]`` for nothing. Two parts of one name fail the backup.
    """


# -- domains and certificates (answered by the proxy) -------------------------


@hookspec(firstresult=True)
def skiff_app_domains(context: Context, app: str) -> list[str] | None:
    """Return the domain names ``app`` answers to on the proxy.

    Called by plugins that need the app's names (the letsencrypt plugin, for
    the names of a certificate). The proxy plugin (nginx) answers with the
    app's own domains and ``APP.GLOBAL`` for each global domain, in that order
    (an empty list when it has none, or vhosts are off). First result wins;
    ``None``: no proxy plugin is installed.
    """


@hookspec(firstresult=True)
def skiff_app_certificate(context: Context, app: str) -> bytes | None:
    """Return the PEM certificate (chain) the proxy serves for ``app`` now.

    Called by plugins that install certificates (letsencrypt), to tell theirs
    from one added by hand. The proxy plugin (nginx) answers with the bytes
    ``certs:add`` stored (never the key). First result wins; ``None``: no
    certificate, or no proxy plugin.
    """


@hookspec(firstresult=True)
def skiff_certificate_install(context: Context, app: str, certificate: bytes | None, key: bytes | None) -> bool | None:
    """Install ``certificate`` (PEM, leaf first, chain after) and ``key`` (PEM) for ``app``.

    Called by plugins that obtain certificates (letsencrypt) to install them
    the way ``certs:add`` does: the proxy plugin (nginx) checks that the key
    matches, stores the pair (the key 0600), serves HTTPS with it, redirects
    HTTP to HTTPS, reloads, and returns ``True``. ``certificate=None`` removes
    the app's certificate (``certs:remove``). When the proxy refuses the pair
    it raises :class:`SkiffError` (one line) and the certificate served before
    stays. First result wins; ``None``: no proxy plugin installed.
    """


@hookspec(firstresult=True)
def skiff_global_domains(context: Context) -> list[str] | None:
    """Return the server's global domains (``domains:set-global``), in their order.

    Called by plugins that serve a site of their own under a global domain (the
    dashboard: ``dashboard.GLOBAL``). The proxy plugin (nginx) answers (trylast);
    an empty list when none is set. First result wins; ``None``: no proxy plugin.
    """


@hookspec(firstresult=True)
def skiff_proxy_site(context: Context, site: ProxySite, remove: bool) -> bool | None:
    """Serve ``site`` (a server of a plugin's own, not an app) behind the proxy, or remove it.

    Called by a plugin that runs a web server on a loopback port (the dashboard's
    ``dashboard:enable`` / ``dashboard:disable``). The proxy plugin (nginx) checks every
    field (:class:`skiff.contracts.ProxySite`), writes one server block per scheme for
    ``site.domain`` proxying to ``site.upstream`` (HTTPS with ``site.certificate`` when
    given, HTTP then redirecting to it; no response buffering on ``site.stream_paths``),
    tests and reloads, and returns ``True``; with ``remove`` it deletes that config. A
    config nginx refuses raises :class:`SkiffError` (one line) and the old one stays.
    First result wins; ``None``: no proxy plugin installed.
    """


@hookspec(firstresult=True)
def skiff_site_certificate(context: Context, site: str, domains: list[str]) -> tuple[Path, Path] | None:
    """Get a certificate for ``domains`` of ``site`` (a plugin's own site, not an app); return its files.

    Called by a plugin that serves a site through ``skiff_proxy_site`` and wants HTTPS
    from a certificate authority (``dashboard:letsencrypt``). ``site`` is the site's name
    (:data:`skiff.contracts.PROXY_SITE_NAME`), ``domains`` the plain DNS names it must
    cover, served by the proxy with the ACME challenge location. The letsencrypt plugin
    orders one (HTTP-01) when the site has none, it is due or the names changed, keeps
    it and renews it from then on (``letsencrypt:auto-renew``, calling
    ``skiff_site_certificate_renewed``), and returns ``(fullchain, key)``: PEM files the
    caller copies (it installs nothing itself). A failure raises
    :class:`~skiff.errors.SkiffError` (one line) and nothing changes. First result
    wins; ``None``: no plugin issues certificates for sites.
    """


@hookspec
def skiff_site_certificate_renewed(context: Context, site: str, certificate: Path, key: Path) -> bool | None:
    """Tell the plugin whose site it is that its certificate was renewed: install the new files.

    Called for every plugin (not first-result) by the plugin that answered
    ``skiff_site_certificate`` (letsencrypt's ``letsencrypt:auto-renew``, as the service
    account) after it renewed ``site``'s certificate; ``certificate`` and ``key`` are its
    PEM files. The owner of ``site`` (the dashboard) installs them the way it installed the
    first ones and returns ``True``; every other plugin returns ``None``. When no plugin
    returns ``True`` (the site went, or serves another certificate now) the caller stops
    renewing it. Raise :class:`~skiff.errors.SkiffError` (one line) when the install was
    refused: the old certificate keeps serving and the renewal is reported as failed.
    """


# -- app events -------------------------------------------------------------


@hookspec
def skiff_app_created(context: Context, app: str) -> None:
    """Called for every plugin after ``app`` was created in the state store.

    Plugins create per-app resources (a repository, a network alias, default
    settings). Return value ignored.
    """


@hookspec
def skiff_app_destroyed(context: Context, app: str) -> None:
    """Called for every plugin while ``app`` is being destroyed.

    Called under the app's lock, before the core deletes the app's state
    (config, properties, releases), so plugins can still read their
    properties and remove containers, images, repositories and links.
    Return value ignored.
    """


@hookspec
def skiff_app_renamed(context: Context, old: str, new: str) -> None:
    """Called for every plugin after app ``old`` was renamed to ``new``.

    The state store already holds the app, its config, properties and
    releases under ``new``. Plugins move their own resources (repository,
    containers, links). Return value ignored.
    """


@hookspec
def skiff_upgrade(context: Context) -> list[str] | None:
    """Bring forward what this plugin stored under an earlier version.

    Called for every plugin by ``state:migrate`` (which ``make install`` runs on
    every install and update), as the service account, after the state store's
    schema migrations. Must be idempotent: a second call changes nothing. Return
    one line per change made (``state:migrate`` prints them), or ``None``.
    """


@hookspec
def skiff_report(context: Context, app: str) -> dict[str, dict[str, Any]] | None:
    """Return report sections for ``apps:report APP``: ``{section: {field: value}}``.

    Called for every plugin (not first-result) with the context and the app
    name; the results are merged in plugin order. Values
    must be JSON-serialisable and must not contain secrets. Return ``None``
    to add nothing.
    """


# -- access control (see skiff.access and docs/security.md) -------------------------


@hookspec(firstresult=True)
def skiff_key_role(context: Context, key: str) -> str | None:
    """Return the role of the SSH key named ``key``: ``"admin"`` or ``"deployer"``.

    Called by ``skiff ssh-command`` for every SSH command of a key (the name
    comes from ``SKIFF_KEY_NAME`` in the key's forced command), before the
    command runs. The plugin that manages keys (ssh-keys) answers; keys added
    before roles existed are ``"admin"``. First result wins; if no plugin
    answers, or the answer is not a role, the key is a deployer (fail closed).
    """


@hookspec(firstresult=True)
def skiff_key_exists(context: Context, key: str) -> bool | None:
    """Return whether an SSH key named ``key`` is installed now.

    Called by what holds a key's identity longer than one SSH command (a dashboard
    session, :func:`skiff.access.key_exists`), to end it when the key was removed: over
    SSH a removed key cannot log in at all. The plugin that manages keys (ssh-keys)
    answers from authorized_keys. First result wins; no answer counts as no key (fail
    closed).
    """


@hookspec(firstresult=True)
def skiff_app_access(context: Context, key: str, app: str, creating: bool) -> bool | None:
    """Return whether the deployer key ``key`` may act on ``app``.

    Called by ``skiff ssh-command`` for an app-level command of a deployer key
    (admin keys are not asked about). ``creating`` is ``True`` when the command
    would create ``app`` (a first push, ``apps:create``): the answer then says
    whether deployers may create apps at all. The access-list plugin (acl)
    answers. First result wins; no answer (or ``None``/``False``) refuses.
    """


@hookspec(firstresult=True)
def skiff_service_apps(context: Context, kind: str, service: str) -> list[str] | None:
    """Return the apps the service ``service`` of ``kind`` (e.g. ``"postgres"``) is linked to.

    Called by ``skiff ssh-command`` for a service command of a deployer key
    (declared with ``access.service_command``): the deployer may run it only
    if the service is linked to at least one app and every one of them is in
    its access list. The plugin that owns ``kind`` answers; ``None`` (no such
    service, or not my kind) refuses. First result wins.
    """


# -- beyond one host ---------------------------------------------------------


@hookspec(firstresult=True)
def skiff_image_for_nodes(context: Context, app: str, image: str) -> str | None:
    """Make the local release image ``image`` of ``app`` pullable by other nodes.

    Called by a multi-node scheduler (swarm) before it creates or updates the
    services of a release: ``image`` is the local reference the build returned
    (``skiff/APP:TAG`` or an image id). The registry plugin tags it
    ``SERVER/IMAGE-REPO:TAG``, pushes it to the configured registry with the
    stored credentials and returns that reference, which nodes pull (the
    credentials are in the docker config directory
    :func:`skiff.contracts.registry_config_dir`). A push the registry refuses
    raises a one-line :class:`~skiff.errors.SkiffError`; the running release is
    untouched.

    Returns ``None`` when no registry is configured for ``app`` (a single-host
    deploy needs none). First result wins; the registry plugin answers.
    """


@hookspec(firstresult=True)
def skiff_link_network(context: Context, app: str) -> str | None:
    """Return the network a service linked to ``app`` joins to be reached by its processes.

    Called by the service plugins (postgres, redis: the services toolkit) whenever they put a
    linked service on an app's network (``KIND:link``, a deploy's
    ``skiff_container_options``, a restart of the service), and when they take it off. A
    scheduler that runs ``app`` on other nodes (swarm, for apps with ``scheduler:set APP
    selected swarm``) makes sure an attachable network reaching every node exists on the
    engine the services run on (the swarm manager) and returns its name; the service joins
    it with its usual alias, which the app's tasks on every node resolve. Raise
    :class:`~skiff.errors.SkiffError` (one line) when the service cannot reach the app's
    nodes from here. First result wins; ``None``: the app's own network on this engine
    (:func:`skiff.contracts.app_network`).
    """
