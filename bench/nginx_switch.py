"""The nginx switch of a deploy at 1 app and at 50 apps on the same nginx (issue 18).

What a deploy's proxy switch runs: the nginx plugin renders the app's config
(``render.render``) and applies it through ``control.apply`` (write the file,
``nginx -t`` on the whole config, ``nginx -s reload``, wait until the new workers
run and every old one stopped accepting). Two private nginx instances run side by
side, one whose config directory holds only the switched app, one that also holds
49 other apps' configs as the plugin renders them (own domain, upstream, access
and error logs each). Each round switches the app's upstream once on each (the
file changes every time, so every switch reloads), interleaved.

``nginx -t`` alone is timed too, on both, to show what the 49 other files cost.

Target: the switch at 50 apps at most 1.5x the switch at 1 app.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import interleave, report, runs  # noqa: E402

OTHERS = 49
DOMAIN = "skiff.bench"


class Switch:
    def __init__(self, work: Path, others: int):
        from skiff.output import Output
        from skiff.testing.nginx import start_nginx
        from skiff_nginx import control, render
        from skiff_nginx.settings import Settings

        self.control, self.render = control, render
        self.root = work / f"root-{others}"
        self.root.mkdir()
        self.nginx = start_nginx(self.root)
        s = self.nginx.settings
        self.settings = Settings(
            root=self.root / "nginx",
            bin=s["bin"],
            conf=s["conf"],
            prefix=s["prefix"],
            pid_file=s["pid-file"],
            sudo="never",
            http_port=self.nginx.http_port,
            https_port=self.nginx.https_port,
            listen_address="127.0.0.1",
            public_host="localhost",
        )
        self.output = Output(quiet=True)
        control.ensure_layout(self.settings)
        for i in range(others):
            app = f"other{i:02d}"
            self.settings.app_file(app).write_text(self.text(app, 20000 + i))
        self.flip = 0
        self.switch()  # the first reload includes the others' configs

    def text(self, app: str, upstream_port: int) -> str:
        render = self.render
        return render.render(
            render.AppProxy(
                app=app,
                domains=[f"{app}.{DOMAIN}"],
                mappings=[render.Mapping("http", self.nginx.http_port, 5000)],
                upstreams=[f"127.0.0.1:{upstream_port}"],
                listen_addresses=self.settings.listen_addresses,
                access_log=self.settings.log_file(app, "access"),
                error_log=self.settings.log_file(app, "error"),
            )
        )

    def switch(self) -> float:
        self.flip ^= 1
        files: dict[Path, str | None] = {self.settings.app_file("bench"): self.text("bench", 30000 + self.flip)}
        start = time.perf_counter()
        reloaded = self.control.apply(self.settings, files, self.output, "bench")
        took = time.perf_counter() - start
        if not reloaded:
            raise RuntimeError("nginx was not running")
        return took

    def test(self) -> float:
        """``nginx -t`` of the whole config alone (the part of the switch that reads every file)."""
        start = time.perf_counter()
        ok, message = self.control.test(self.settings)
        took = time.perf_counter() - start
        if not ok:
            raise RuntimeError(message)
        return took

    def stop(self) -> None:
        self.nginx.stop()
        shutil.rmtree(self.nginx.prefix, ignore_errors=True)


def main() -> None:
    n = runs(15)
    work = Path(tempfile.mkdtemp(prefix="bench-nginx-switch-"))
    switches: list[Switch] = []
    try:
        one = Switch(work, 0)
        switches.append(one)
        fifty = Switch(work, OTHERS)
        switches.append(fifty)
        many = f"{OTHERS + 1} apps"
        cases = {
            "switch, 1 app": one.switch,
            f"switch, {many}": fifty.switch,
            "nginx -t alone, 1 app": one.test,
            f"nginx -t alone, {many}": fifty.test,
        }
        table = report("nginx switch", interleave(cases, n), baseline="switch, 1 app")
        print(f"  switch, {many} / 1 app: {table[f'switch, {many}']['ratio']:.2f}x (target <= 1.5x)")
        tests = table[f"nginx -t alone, {many}"]["median"] / table["nginx -t alone, 1 app"]["median"]
        print(f"  nginx -t alone, {many} / 1 app: {tests:.2f}x")
    finally:
        for s in switches:
            s.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
