"""A third-party Skiff plugin in one module: a command, a post-deploy hook and a setting.

Declaring ``greeting`` is all it takes to get ``hello:set [--global] [APP] greeting
TEXT`` and ``hello:report [APP] [--format json]``.
"""

import click

from skiff import hookimpl
from skiff.cli import pass_context
from skiff.settings import Namespace, Setting

SETTINGS = Namespace("hello", (Setting("greeting", default="Hello", scope="both", help="how hello greets"),))


@hookimpl
def skiff_settings():
    return [SETTINGS]


@hookimpl
def skiff_commands(cli: click.Group) -> None:
    @cli.command("hello")
    @click.argument("name", default="world")
    @pass_context
    def hello(context, name: str) -> None:
        """Say hello (an example plugin command)."""
        click.echo(f"{SETTINGS.get(context.state, 'greeting')}, {name}!")


@hookimpl
def skiff_post_deploy(deploy) -> None:
    greeting = SETTINGS.get(deploy.state, "greeting", app=deploy.app)
    deploy.output.step(f"hello-hook: {deploy.app} v{deploy.release.version} is live")
    deploy.output.info(f"{greeting}, {deploy.app}!")
