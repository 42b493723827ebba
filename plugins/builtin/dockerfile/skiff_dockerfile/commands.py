"""The dockerfile plugin's commands: builder:set, builder:report."""

from __future__ import annotations

import click

from skiff import access, builders, validate
from skiff.cli import pass_context
from skiff.context import Context
from skiff.errors import SkiffError, ValidationError

from .plugin import PROPS, skiff_report, validate_path

KEYS = ("selected", "dockerfile-path", "build-args")


@access.app_command()
@click.command("builder:set")
@click.argument("app")
@click.argument("key")
@click.argument("value", required=False)
@pass_context
def builder_set(context: Context, app: str, key: str, value: str | None) -> None:
    """Set a builder property of APP: selected NAME (any installed builder), dockerfile-path PATH,
    build-args KEY[,KEY] (config keys passed as docker build args). No VALUE resets it."""
    context.state.require_app(app)
    if key not in KEYS:
        raise ValidationError(f"unknown builder property {key!r}; known: {', '.join(KEYS)}")
    if key == "build-args" and context.via_ssh:
        raise SkiffError("build-args is an operator setting: set it on the server, not over SSH")
    if not value:
        context.state.delete_property(PROPS, key, app=app)
        context.output.step(f"Reset {key} of {app}")
        return
    if key == "selected":
        value = builders.validate_name(context, value)
    if key == "dockerfile-path":
        value = validate_path(value)
    if key == "build-args":
        keys = [k.strip() for k in value.split(",") if k.strip()]
        for k in keys:
            validate.config_key(k)
        value = ",".join(keys)
    context.state.set_property(PROPS, key, value, app=app)
    context.output.step(f"Set {key} of {app} to {value}")


@access.app_command()
@click.command("builder:report")
@click.argument("app")
@pass_context
def builder_report(context: Context, app: str) -> None:
    """Show APP's builder settings."""
    context.state.require_app(app)
    context.output.fields(f"{app} builder information", skiff_report(context, app)["builder"])


COMMANDS: list[click.Command] = [builder_set, builder_report]
