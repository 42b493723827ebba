"""The docker plugin's commands, one module per group.

``ps``: ps:*, releases, releases:rollback; ``run``: logs, run, run:detached, run:list, run:stop, enter;
``process_settings``: checks:*, resource:*, docker-options:*, ps:set; ``cleanup``: cleanup.
"""

from __future__ import annotations

import click

from . import cleanup, process_settings, ps, run

COMMANDS: list[click.Command] = [*ps.COMMANDS, *run.COMMANDS, *process_settings.COMMANDS, *cleanup.COMMANDS]
