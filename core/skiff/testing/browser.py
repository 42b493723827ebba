"""pytest fixtures: a headless Debian Chromium driven with selenium, for browser end-to-end tests.

``browser``
    a fresh headless Chromium WebDriver (``selenium.webdriver.Chrome``) on Debian's
    ``/usr/bin/chromium`` and ``/usr/bin/chromedriver``, with its own ``--user-data-dir`` in the
    test's temp dir; quit after the test. It talks only to what the test points it at: no
    background networking, component updates, sync, QUIC or first-run requests.
``browser_factory``
    ``browser_factory(host_rules={"dashboard.test": "127.0.0.1"}, window=(1280, 900))`` starts
    another one (several per test, e.g. one per key); ``host_rules`` become
    ``--host-resolver-rules`` so names resolve to loopback without DNS. Every browser it started
    quits after the test.

When the binaries are missing the fixtures skip with the reason (``make test`` installs them:
``scripts/system-deps.sh --test``); under CI (``CI=true``) a missing binary fails the test instead.
Helpers: :func:`wait_for` (poll a condition), :func:`chromium_options` (the argument list).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

if TYPE_CHECKING:  # pragma: no cover
    from selenium.webdriver import Chrome

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

#: Flags of every test browser: headless, as root in a container, and quiet on the network.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-features=Translate,MediaRouter,OptimizationHints",
    "--metrics-recording-only",
)

T = TypeVar("T")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing_binaries() -> list[str]:
    return [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]


def require_chromium() -> None:
    """Skip (or, under CI, fail) the calling test when Chromium or its driver is missing."""
    missing = missing_binaries()
    if not missing:
        return
    reason = f"{' and '.join(missing)} missing: install chromium and chromium-driver (scripts/system-deps.sh --test)"
    if in_ci():
        pytest.fail(reason)
    pytest.skip(reason)


def chromium_options(
    user_data_dir: Path, host_rules: Mapping[str, str] | None = None, window: tuple[int, int] = (1280, 900)
) -> list[str]:
    """The command-line arguments of one test browser."""
    args = [*CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}", f"--window-size={window[0]},{window[1]}"]
    if host_rules:
        rules = ", ".join(f"MAP {name} {address}" for name, address in host_rules.items())
        args.append(f"--host-resolver-rules={rules}")
    return args


def start_chromium(
    user_data_dir: Path, host_rules: Mapping[str, str] | None = None, window: tuple[int, int] = (1280, 900)
) -> Chrome:
    """A new headless Chromium WebDriver (the caller quits it)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    require_chromium()
    user_data_dir.mkdir(parents=True, exist_ok=True)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in chromium_options(user_data_dir, host_rules, window):
        options.add_argument(arg)
    service = Service(executable_path=CHROMEDRIVER, log_output=str(user_data_dir.parent / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(30)
    return driver


def wait_for(condition: Callable[[], T | None], timeout: float = 10, interval: float = 0.1, what: str = "") -> T:
    """Poll ``condition`` until it returns something truthy (returned); AssertionError on timeout.

    Exceptions the condition raises count as "not yet" (an element not there yet); the last one
    is in the message.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            value = condition()
            if value:
                return value
            last = value
        except Exception as exc:  # selenium's NoSuchElement, StaleElementReference, ...
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}: {last!r}")
        time.sleep(interval)


@pytest.fixture
def browser_factory(tmp_path: Path) -> Iterator[Callable[..., Chrome]]:
    require_chromium()
    started: list[Chrome] = []

    def factory(host_rules: Mapping[str, str] | None = None, window: Sequence[int] = (1280, 900)) -> Chrome:
        profile = tmp_path / f"chromium-{len(started)}" / "profile"
        driver = start_chromium(profile, host_rules, (window[0], window[1]))
        started.append(driver)
        return driver

    yield factory
    for driver in started:
        try:
            driver.quit()
        except Exception:  # a crashed browser: chromedriver is gone already
            pass


@pytest.fixture
def browser(browser_factory: Callable[..., Chrome]) -> Chrome:
    return browser_factory()
