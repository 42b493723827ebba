"""A third-party Skiff plugin in one module: a command and a post-deploy hook."""

import click

from skiff import hookimpl


@hookimpl
def skiff_commands(cli: click.Group) -> None:
    @cli.command("hello")
    @click.argument("name", default="world")
    def hello(name: str) -> None:
        """Say hello (an example plugin command)."""
        click.echo(f"Hello, {name}!")


@hookimpl
def skiff_post_deploy(deploy) -> None:
    deploy.output.step(f"hello-hook: {deploy.app} v{deploy.release.version} is live")
