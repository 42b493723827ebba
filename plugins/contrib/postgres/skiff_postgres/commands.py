"""The ``postgres:*`` commands (Dokku's postgres plugin names), made by the service toolkit."""

from __future__ import annotations

import click

from skiff_services.commandset import command_set, holder

from .kind import KIND

COMMANDS: list[click.Command] = command_set(KIND, __name__)
globals().update({holder(command): command for command in COMMANDS})  # postgres:create -> postgres_create
