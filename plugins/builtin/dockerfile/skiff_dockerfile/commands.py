"""The dockerfile plugin's commands: builder:report (builder:set is generated from its settings)."""

from __future__ import annotations

import click

from skiff import access, settings
from skiff.cli import pass_context
from skiff.context import Context

from .plugin import skiff_report


@access.app_command()
@click.command("builder:report")
@click.argument("app")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@pass_context
def builder_report(context: Context, app: str, fmt: str) -> None:
    """Show APP's builder settings, the installed builders and the last build's."""
    context.state.require_app(app)
    settings.print_report(context, f"{app} builder information", skiff_report(context, app)["builder"], fmt)


COMMANDS: list[click.Command] = [builder_report]
