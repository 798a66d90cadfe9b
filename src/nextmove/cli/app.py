"""The Typer application: the root command, ``--version``, and the registered subcommands."""

from __future__ import annotations

import typer

from nextmove._version import __version__
from nextmove.cli import commands

app = typer.Typer(
    name="nextmove",
    help="The single best next move for every customer, with the evidence attached.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"nextmove {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """nextmove: recommend one best action per account, and measure whether it worked."""


commands.register(app)


def main() -> None:
    """Entry point of the ``nextmove`` command."""
    app()
