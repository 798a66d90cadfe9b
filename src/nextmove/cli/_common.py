"""Helpers shared by the CLI commands: consoles, time parsing and the one error handler."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from nextmove._files import check_folder
from nextmove.errors import ConfigError, NextmoveError, NotInStoreError

if TYPE_CHECKING:
    from nextmove.store import Store

# Wide enough for problem tables when output is piped to a file or CI log (rich assumes 80 there).
console = Console(highlight=False, width=None if Console().is_terminal else 140)
err_console = Console(stderr=True, highlight=False, width=None if Console(stderr=True).is_terminal else 140)

P = ParamSpec("P")
R = TypeVar("R")


def parse_as_of(text: str | None, option: str = "--as-of") -> datetime | None:
    """Parse an ``--as-of`` (or ``option``) value (ISO 8601; naive means UTC).

    Examples
    --------
    >>> parse_as_of("2025-06-30").isoformat()
    '2025-06-30T00:00:00+00:00'
    """
    if text is None:
        return None
    try:
        ts = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"{option} {text!r} is not an ISO 8601 time; write e.g. 2025-06-30 or 2025-06-30T12:00:00Z"
        ) from None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def output_folder(folder: Path, option: str = "--out") -> Path:
    """Check the output folder can be made and written, before any long work (it is made when written)."""
    return check_folder(folder, option)


def output_file(path: Path, option: str = "--out") -> Path:
    """Check a file can be written at ``path`` (its folder can be made and written), before any long work."""
    if path.is_dir():
        raise ConfigError(f"{option} {path} is a folder: give the name of the file to write")
    check_folder(path.parent, f"the folder of {option}")
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"cannot overwrite {option} {path}: permission denied")
    return path


CLI_LISTERS: dict[str, str] = {
    "model": "`nextmove models list` lists them",
    "API key": "`nextmove keys list` lists them",
    "run": "`nextmove run` prints each run's id, `nextmove models list --kind policy` the promoted ones",
}
"""How a CLI user finds the records of a kind, by the ``what`` of :class:`NotInStoreError`."""


def cli_message(exc: NextmoveError) -> str:
    """The message of ``exc`` for the CLI: the command to run rather than a Python method.

    Examples
    --------
    >>> from nextmove.errors import NotInStoreError
    >>> cli_message(NotInStoreError("model", "m1", store_url="sqlite:///s.db", lister="list_models()"))
    "no model 'm1' in the store at sqlite:///s.db; `nextmove models list` lists them"
    """
    if isinstance(exc, NotInStoreError) and exc.what in CLI_LISTERS:
        return f"no {exc.what} {exc.key!r} in the store at {exc.store_url}; {CLI_LISTERS[exc.what]}"
    return str(exc)


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn nextmove's errors into a red message on stderr and the error's exit code."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except NextmoveError as exc:
            err_console.print(f"[bold red]error:[/] {escape(cli_message(exc))}")
            raise typer.Exit(exc.exit_code) from None

    return wrapper


def open_store(url: str | None = None, *, existing: bool = False) -> Store:
    """:func:`nextmove.store.open_store`, imported when a command first needs it.

    The commands import their heavy parts (the store's SQLAlchemy, the models' LightGBM) inside
    their own bodies, so that ``nextmove --help`` and the light commands start at once. With
    ``existing`` (commands that only read a store), a SQLite file that does not exist is an error,
    not a new empty store left behind.
    """
    from nextmove.store import open_store as open_url

    return open_url(url, create=not existing)
