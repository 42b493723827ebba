"""The nginx plugin's commands, one module per namespace.

``domains``: domains:*; ``ports``: ports:*; ``certs``: certs:*; ``nginx``: nginx:* and proxy:*.
"""

from __future__ import annotations

import click

from . import certs, domains, nginx, ports

COMMANDS: list[click.Command] = [*domains.COMMANDS, *ports.COMMANDS, *certs.COMMANDS, *nginx.COMMANDS]
