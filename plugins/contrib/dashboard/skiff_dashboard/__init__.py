"""The dashboard: a web view of the apps, behind skiff's nginx (contrib plugin ``dashboard``).

Modules: :mod:`.settings` (declared settings), :mod:`.store` (login links and sessions),
:mod:`.commands` (``dashboard:*``), :mod:`.web` (the Starlette app, imported only by
``dashboard:serve``), :mod:`.views` (what the pages show, read through the core's API),
:mod:`.actions` (changes, run as the session's key through ``skiff ssh-command``),
:mod:`.stats` (the CPU/memory sampler and its SVG chart), :mod:`.site` (the nginx site).
"""

PLUGIN = "dashboard"  # entry point, settings namespace and SKIFF_ROOT/dashboard
