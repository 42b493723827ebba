"""The dashboard's web application (Starlette; imported only by ``dashboard:serve`` and tests).

Every page needs a session (a cookie from ``GET /login/TOKEN``); every POST needs the
session's CSRF token (``csrf_token`` field, compared in constant time). Pages read through
:mod:`.views` with the session's key, so a deployer sees only its apps; every change is
an SSH command run as that key (:mod:`.actions`), so it is authorized and logged as one.
Errors are one ``p.error`` on a page with the status: 400 bad input, 401 no session, 403
bad link or CSRF token, 404 an app the key may not see, 503 the engine is down.
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from skiff import access, builds
from skiff.context import Context
from skiff.errors import SkiffError

from . import actions, stats, store, views
from .settings import SETTINGS

COOKIE = "skiff_session"
APP = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
NOTICES = {
    "scale": "Scaled: the new processes run.",
    "rollback": "Rolled back: a new release with the old image and config runs.",
}
MAX_FORM = 64 * 1024
ROW_WORKERS = 4  # apps whose rows of the list are read at once


class PageError(SkiffError):
    """A page that is one error message with an HTTP status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def engine_check() -> None:
    """:class:`views.EngineDown` unless the local engine answers a ping."""
    from skiff import dockerclient

    try:
        dockerclient.client(10).close()
    except Exception as exc:
        raise views.EngineDown(f"the container engine does not answer ({exc}); nothing was changed") from exc


def log_event(context: Context, key: str, what: str) -> None:
    """One finished row of the event log, kind ``dashboard``, with the key's name."""
    from skiff import events

    context.ssh_key_name = key
    events.finish(context, events.start(context, "dashboard", what), 0)


@dataclass
class Dashboard:
    """What the routes share: the root, contexts, the command runner, the engine check, the sampler."""

    root: Path
    new_context: Callable[[], Context]
    run: Callable[[Path, str, list[str]], actions.Outcome] = actions.command
    check_engine: Callable[[], None] = engine_check
    sampler: stats.Sampler | None = None

    def __post_init__(self) -> None:
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("skiff_dashboard", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )

    @contextmanager
    def context(self) -> Iterator[Context]:
        context = self.new_context()
        try:
            yield context
        finally:
            context.close()

    def page(self, request: Request, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        session = getattr(request.state, "session", None)
        identity = getattr(request.state, "identity", "")
        html = self.templates.get_template(template).render(
            session=session, identity=identity, csrf=session.csrf if session else "", **values
        )
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)

    def error(self, request: Request, status: int, message: str) -> HTMLResponse:
        return self.page(request, "error.html", status=status, message=message)


SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
}


def _secure(request: Request) -> bool:
    return request.headers.get("x-forwarded-proto", request.url.scheme) == "https"


def _session(dash: Dashboard, request: Request) -> store.Session:
    """The request's session, with ``request.state.identity`` set; 401 without one."""
    sid = request.cookies.get(COOKIE, "")
    session = store.get_session(dash.root, sid) if sid else None
    if session is None:
        raise PageError(401, "you are not logged in: open a link from 'ssh skiff@HOST dashboard:login'")
    with dash.context() as context:
        if not access.key_exists(context, session.key):  # removed since the login: the session ends
            store.end_sessions_of(dash.root, session.key)
            raise PageError(401, f"the key {session.key!r} of this session was removed: you are logged out")
        request.state.session = session
        request.state.identity = f"{session.key} ({views.role(context, session.key)})"
    return session


async def _form(request: Request, session: store.Session) -> dict[str, str]:
    """The POSTed form, after the CSRF check (403 when the token is missing or wrong)."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        raise PageError(400, "expected a form (application/x-www-form-urlencoded)")
    body = b""
    async for chunk in request.stream():  # read no more than MAX_FORM, whatever Content-Length says
        body += chunk
        if len(body) > MAX_FORM:
            raise PageError(400, "the form is too large")
    values = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
    token = values.get("csrf_token", "")
    if not token or not hmac.compare_digest(token.encode(), session.csrf.encode()):
        raise PageError(403, "the form's security token is missing or wrong: reload the page and try again")
    return values


def _app_name(request: Request) -> str:
    app = str(request.path_params.get("app", ""))
    if not APP.fullmatch(app):
        raise views.NotVisible("no such app")
    return app


def build(dash: Dashboard) -> Starlette:
    """The Starlette application of ``dash``."""

    def guarded(handler: Callable[..., Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            try:
                result: Response = await handler(request)
                return result
            except PageError as exc:
                return dash.error(request, exc.status, str(exc))
            except views.NotVisible as exc:
                return dash.error(request, 404, f"{exc}: it does not exist, or this key may not see it")
            except views.EngineDown as exc:
                return dash.error(request, 503, str(exc))
            except actions.BadInput as exc:
                return dash.error(request, 400, f"{exc}; nothing was changed")

        return endpoint

    from starlette.concurrency import run_in_threadpool

    async def login(request: Request) -> Response:
        token = str(request.path_params["token"])
        key = await run_in_threadpool(store.redeem_link, dash.root, token) if len(token) < 200 else None
        if key is None:
            raise PageError(403, "this login link has expired or was already used")
        with dash.context() as context:
            ttl = int(SETTINGS.get(context.state, "session-ttl"))
            log_event(context, key, "login (a session started)")
        sid, _ = await run_in_threadpool(store.create_session, dash.root, key, ttl)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            COOKIE, sid, max_age=ttl, path="/", httponly=True, samesite="strict", secure=_secure(request)
        )
        return response

    async def logout(request: Request) -> Response:
        session = _session(dash, request)
        await _form(request, session)
        store.end_session(dash.root, request.cookies.get(COOKIE, ""))
        with dash.context() as context:
            log_event(context, session.key, "logout")
        response = RedirectResponse("/logged-out", status_code=303)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=_secure(request))
        return response

    async def logged_out(request: Request) -> Response:
        return dash.page(request, "logged_out.html")

    async def apps_list(request: Request) -> Response:
        session = _session(dash, request)

        def row(app: str) -> views.AppRow:
            with dash.context() as context:
                return views.app_row(context, app)

        def read() -> list[views.AppRow]:
            with dash.context() as context:
                names = views.visible(context, session.key)
            # each app's report waits on the engine: a few at once, each with its own store connection
            with ThreadPoolExecutor(max_workers=ROW_WORKERS) as pool:
                return list(pool.map(row, names))

        return dash.page(request, "apps.html", apps=await run_in_threadpool(read))

    def app_values(app: str, session: store.Session) -> dict[str, Any]:
        with dash.context() as context:
            page = views.app_page(context, session.key, app)
        charts = {}
        if dash.sampler is not None:
            for process in sorted(set(page.row.processes) | set(page.row.running)):
                charts[process] = stats.svg(dash.sampler.series(app, process))
        return {"app": page, "charts": charts, "revealed": {}, "notice": ""}

    async def app_page(request: Request) -> Response:
        session = _session(dash, request)
        app = _app_name(request)
        values = await run_in_threadpool(app_values, app, session)
        values["notice"] = NOTICES.get(request.query_params.get("done", ""), "")
        return dash.page(request, "app.html", **values)

    async def act(
        request: Request, make_args: Callable[[views.AppPage, dict[str, str]], list[str]], done: str
    ) -> Response:
        session = _session(dash, request)
        form = await _form(request, session)
        app = _app_name(request)

        def run() -> actions.Outcome:
            with dash.context() as context:
                page = views.app_page(context, session.key, app)  # 404 before anything else
            args = make_args(page, form)
            dash.check_engine()
            return dash.run(dash.root, session.key, args)

        outcome = await run_in_threadpool(run)
        if outcome.status != 0:
            raise PageError(400, outcome.message)
        return RedirectResponse(f"/apps/{app}?done={done}", status_code=303)

    async def scale(request: Request) -> Response:
        def args(page: views.AppPage, form: dict[str, str]) -> list[str]:
            return actions.scale_args(page.row.name, sorted(page.row.processes), form)

        return await act(request, args, "scale")

    async def rollback(request: Request) -> Response:
        def args(page: views.AppPage, form: dict[str, str]) -> list[str]:
            versions = [r.version for r in page.releases if not r.current]
            return actions.rollback_args(page.row.name, versions, form.get("version", ""))

        return await act(request, args, "rollback")

    async def reveal(request: Request) -> Response:
        session = _session(dash, request)
        form = await _form(request, session)
        app = _app_name(request)

        def run() -> dict[str, Any]:
            values = app_values(app, session)
            key = form.get("key", "")
            args = actions.reveal_args(app, values["app"].config_keys, key)
            outcome = dash.run(dash.root, session.key, args)  # config:get: logged with the key's name
            if outcome.status != 0:
                raise PageError(400, outcome.message)
            values["revealed"] = {key: outcome.stdout.removesuffix("\n")}
            return values

        return dash.page(request, "app.html", **await run_in_threadpool(run))

    async def logs_page(request: Request) -> Response:
        session = _session(dash, request)
        app = _app_name(request)
        with dash.context() as context:
            views.require_visible(context, session.key, app)
        return dash.page(request, "logs.html", app=app)

    async def logs_stream(request: Request) -> Response:
        session = _session(dash, request)
        app = _app_name(request)
        with dash.context() as context:
            views.require_visible(context, session.key, app)
        num = request.query_params.get("num", "100")
        lines = int(num) if num.isascii() and num.isdigit() and int(num) <= 1000 else 100

        async def events() -> AsyncIterator[str]:
            async for line in actions.stream(dash.root, session.key, ["logs", app, "-t", "-n", str(lines)]):
                if time.time() > session.expires:
                    return  # the session ended while the page was open: so does its stream
                if line is None:
                    yield ": keep-alive\n\n"
                else:
                    yield "".join(f"data: {part}\n" for part in line.split("\r")) + "\n"

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)

    async def builds_list(request: Request) -> Response:
        session = _session(dash, request)
        app = _app_name(request)

        def read() -> list[Any]:
            with dash.context() as context:
                views.require_visible(context, session.key, app)
            return list(builds.list_builds(dash.root, app))

        return dash.page(request, "builds.html", app=app, builds=await run_in_threadpool(read))

    async def build_page(request: Request) -> Response:
        session = _session(dash, request)
        app = _app_name(request)
        ident = str(request.path_params.get("build", ""))
        if not (ident.isascii() and ident.isdigit()) or len(ident) > 9:
            raise PageError(404, f"no build {ident!r} of {app}")

        def read() -> tuple[Any, str]:
            with dash.context() as context:
                views.require_visible(context, session.key, app)
            try:
                return builds.get_build(dash.root, app, int(ident)), builds.read_output(dash.root, app, int(ident))
            except SkiffError as exc:
                raise PageError(404, str(exc)) from exc

        found, output = await run_in_threadpool(read)
        return dash.page(request, "build.html", app=app, build=found, output=output)

    routes = [
        Route("/login/{token}", guarded(login), methods=["GET"]),
        Route("/logout", guarded(logout), methods=["POST"]),
        Route("/logged-out", guarded(logged_out), methods=["GET"]),
        Route("/", guarded(apps_list), methods=["GET"]),
        Route("/apps/{app}", guarded(app_page), methods=["GET"]),
        Route("/apps/{app}/scale", guarded(scale), methods=["POST"]),
        Route("/apps/{app}/rollback", guarded(rollback), methods=["POST"]),
        Route("/apps/{app}/config/reveal", guarded(reveal), methods=["POST"]),
        Route("/apps/{app}/logs", guarded(logs_page), methods=["GET"]),
        Route("/apps/{app}/logs/stream", guarded(logs_stream), methods=["GET"]),
        Route("/apps/{app}/builds", guarded(builds_list), methods=["GET"]),
        Route("/apps/{app}/builds/{build}", guarded(build_page), methods=["GET"]),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        return dash.error(request, 404, "no such page")

    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})
