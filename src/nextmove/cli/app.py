"""The Typer application: the root command, ``--version``, and the registered subcommands."""

from __future__ import annotations

import inspect

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


def unwrap_help(text: str) -> str:
    """A docstring as help: each paragraph on one line, so the terminal, not the source, wraps it.

    Typer keeps the single line breaks of every paragraph after the first, so a docstring wrapped
    at 100 columns came out ragged in a narrower terminal.
    """
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


def _unwrap_all(typer_app: typer.Typer) -> None:
    for command in typer_app.registered_commands:
        if command.help is None and command.callback is not None and command.callback.__doc__:
            command.help = unwrap_help(command.callback.__doc__)
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _unwrap_all(group.typer_instance)


_unwrap_all(app)


def main() -> None:
    """Entry point of the ``nextmove`` command."""
    app()
