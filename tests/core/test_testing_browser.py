"""skiff.testing.browser without a browser: missing binaries skip outside CI and fail under CI."""

from __future__ import annotations

import pytest

from skiff.testing import browser


@pytest.fixture
def no_chromium(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(browser, "CHROMIUM", str(tmp_path / "chromium"))
    monkeypatch.setattr(browser, "CHROMEDRIVER", str(tmp_path / "chromedriver"))


def test_missing_binaries_skip_with_the_reason_outside_ci(no_chromium, monkeypatch, tmp_path):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception) as caught:
        browser.require_chromium()
    reason = str(caught.value)
    assert f"{tmp_path / 'chromium'} and {tmp_path / 'chromedriver'} missing" in reason
    assert "chromium-driver" in reason and "system-deps.sh --test" in reason


@pytest.mark.parametrize("value", ["true", "1"])
def test_missing_binaries_fail_under_ci(no_chromium, monkeypatch, value):
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match="missing: install chromium"):
        browser.require_chromium()


def test_present_binaries_pass(monkeypatch, tmp_path):
    for name in ("chromium", "chromedriver"):
        (tmp_path / name).write_text("#!/bin/sh\n")
        (tmp_path / name).chmod(0o755)
    monkeypatch.setattr(browser, "CHROMIUM", str(tmp_path / "chromium"))
    monkeypatch.setattr(browser, "CHROMEDRIVER", str(tmp_path / "chromedriver"))
    monkeypatch.setenv("CI", "true")
    browser.require_chromium()
    assert browser.missing_binaries() == []


def test_wait_for_returns_the_value_and_times_out_with_the_last_error():
    calls = iter([None, ValueError("not yet"), "there"])

    def condition():
        value = next(calls)
        if isinstance(value, Exception):
            raise value
        return value

    assert browser.wait_for(condition, timeout=5, interval=0.01) == "there"
    with pytest.raises(AssertionError, match="waiting for nothing.*ValueError"):
        browser.wait_for(lambda: (_ for _ in ()).throw(ValueError("x")), timeout=0.05, interval=0.01, what="nothing")
