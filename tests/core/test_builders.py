"""Builder choice: skiff_builders, the forced builder, detection order, deploy.builder."""

from __future__ import annotations

import pytest

from skiff import builders, hookimpl, lifecycle
from skiff.builders import BuilderInfo
from skiff.errors import DeployError, ValidationError
from skiff.testing import DirReceiver, StubScheduler, dir_source


class NamedBuilder:
    """A builder that detects a marker file and builds only when deploy.builder names it."""

    def __init__(self, name: str, order: int, marker: str | None = None):
        self.name, self.order, self.marker = name, order, marker
        self.seen: list = []

    @hookimpl
    def skiff_builders(self):
        detect = None if self.marker is None else (lambda deploy: (deploy.workdir / self.marker).exists())
        return [BuilderInfo(self.name, order=self.order, detect=detect, description=f"the {self.name} builder")]

    @hookimpl
    def skiff_pre_build(self, deploy):
        self.seen.append(deploy.builder)  # chosen before any pre_build implementation runs

    @hookimpl
    def skiff_build(self, deploy):
        return f"{self.name}:{deploy.app}" if deploy.builder == self.name else None


@pytest.fixture
def setup(skiff, tmp_path):
    early, late, manual = (
        NamedBuilder("early", 10, "EARLY"),
        NamedBuilder("late", 900, "LATE"),
        NamedBuilder("manual", 1),
    )
    h = skiff(
        ("receiver", DirReceiver()),
        ("late", late),
        ("manual", manual),
        ("early", early),
        ("scheduler", StubScheduler()),
    )
    h.create_app("web")
    src = tmp_path / "src"
    src.mkdir()
    return h, src, early


def deploy(h, src):
    return lifecycle.deploy(h.context, "web", dir_source(src))


def test_installed_builders_are_listed_in_detection_order(setup):
    h, _, _ = setup
    assert list(builders.installed(h.context)) == ["manual", "early", "late"]


def test_first_detecting_builder_by_order_builds_and_is_recorded(setup):
    h, src, early = setup
    (src / "LATE").write_text("")
    release = deploy(h, src)
    assert release.image == "late:web" and release.meta["builder"] == "late"
    (src / "EARLY").write_text("")
    release = deploy(h, src)
    assert release.image == "early:web" and release.meta["builder"] == "early"
    assert early.seen == ["late", "early"]


def test_forced_builder_wins_over_detection(setup):
    h, src, _ = setup
    (src / "EARLY").write_text("")
    h.state.set_property("builder", "selected", "manual", app="web")  # what builder:set stores
    release = deploy(h, src)
    assert release.image == "manual:web" and release.meta["builder"] == "manual"
    again = lifecycle.redeploy(h.context, "web", "Restart")
    assert again.image == "manual:web" and again.meta["builder"] == "manual"


def test_unknown_names_are_refused_listing_installed_ones(setup):
    h, _, _ = setup
    assert builders.validate_name(h.context, "late") == "late"
    with pytest.raises(ValidationError, match=r"^unknown builder 'Nope'; installed: manual, early, late$"):
        builders.validate_name(h.context, "Nope")


def test_a_forced_builder_that_is_no_longer_installed_fails_the_deploy(setup):
    h, src, _ = setup
    h.state.set_property("builder", "selected", "gone", app="web")
    with pytest.raises(
        DeployError, match="pre-build failed: builder 'gone' is selected for web .* installed: manual, early, late"
    ):
        deploy(h, src)


def test_nothing_detected_means_no_builder(setup):
    h, src, _ = setup
    with pytest.raises(DeployError, match="no builder could build this app"):
        deploy(h, src)


def test_a_chosen_builder_that_returns_nothing_is_named(skiff, tmp_path):
    class Lazy(NamedBuilder):
        @hookimpl
        def skiff_build(self, deploy):
            return None

    h = skiff(("receiver", DirReceiver()), ("lazy", Lazy("lazy", 1, "")), ("scheduler", StubScheduler()))
    h.create_app("web")
    src = tmp_path / "src"
    src.mkdir()
    with pytest.raises(DeployError, match="the lazy builder returned no image"):
        lifecycle.deploy(h.context, "web", dir_source(src))


def test_duplicate_names_first_implementation_wins(skiff):
    class Builtin:
        @hookimpl(trylast=True)
        def skiff_builders(self):
            return [BuilderInfo("same", order=1, description="builtin")]

    class Installed:
        @hookimpl
        def skiff_builders(self):
            return [BuilderInfo("same", order=2, description="installed")]

    h = skiff(("installed", Installed()), ("builtin", Builtin()))
    assert builders.installed(h.context)["same"].description == "installed"


@pytest.mark.parametrize("name", ["", "Tiny", "a b", "-x", "x" * 41])
def test_builder_names_are_validated(name):
    with pytest.raises(ValueError, match="invalid builder name"):
        BuilderInfo(name)
