"""Helpers shared by the CLI commands: consoles, time parsing and the one error handler."""

from __future__ import annotations

import functools
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderableType
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, Task, TaskID, TextColumn, TimeElapsedColumn
from rich.segment import Segment
from rich.text import Text

from nextmove._files import check_folder
from nextmove._words import plural as plural
from nextmove.book.parse import is_bare_date, parse_timestamp
from nextmove.errors import ConfigError, NextmoveError, NotInStoreError, Terminated, failure_text

if TYPE_CHECKING:
    import polars as pl

    from nextmove.store import Store

_COMMAND = re.compile(r"`[^`\n]+`")
_GLUE = "\ue000"  # a private-use character, one cell wide as the space it stands for while a line is wrapped


class MessageConsole(Console):
    """A console that keeps a `command` on one line and pads no left-justified line.

    A command to copy (`nextmove models promote run-…`) broken across two lines pastes as two
    commands, from a log as from a terminal: it moves whole to the next line instead. One wider
    than a line by itself is wrapped at its spaces, as any text. A left-justified line (a table's
    title) is not padded with spaces to the width: in a log, each ended in up to 140 of them (a
    table pads its own cells).
    """

    def render(self, renderable: RenderableType, options: ConsoleOptions | None = None) -> Iterable[Segment]:
        if not isinstance(renderable, Text):
            yield from super().render(renderable, options)
            return
        text = renderable
        width = (options or self.options).max_width
        if (text.justify or (options or self.options).justify) == "left":
            text = text.copy()
            text.justify = "default"  # left, without the spaces to the width
        plain = text.plain
        if "`" not in plain:
            yield from super().render(text, options)
            return

        def glue(command: re.Match[str]) -> str:
            whole = command.group()
            return whole.replace(" ", _GLUE) if cell_len(whole) < width else whole

        glued = text.copy()  # of the same length: its styles stay where they were
        glued.plain = _COMMAND.sub(glue, plain)
        for segment in super().render(glued, options):
            yield Segment(segment.text.replace(_GLUE, " "), segment.style, segment.control)


def _width(*, stderr: bool = False) -> int | None:
    """The width to write at: the terminal's, or ``COLUMNS`` when set (Rich's own, None); else 140.

    Piped to a file or a CI log, Rich would assume 80 columns: too narrow for the problem tables. An
    exported ``COLUMNS`` (``COLUMNS=80 nextmove validate … | less``) says how wide to write, as on a
    terminal.
    """
    if Console(stderr=stderr).is_terminal or os.environ.get("COLUMNS", "").isdigit():
        return None
    return 140


console = MessageConsole(highlight=False, width=_width())
"""Where a command writes its results (standard output)."""
err_console = MessageConsole(stderr=True, highlight=False, width=_width(stderr=True))
"""Where a command writes its progress, warnings and errors (standard error): a pipe of its results leaves them out."""

P = ParamSpec("P")
R = TypeVar("R")


# The invisible format characters a name may hide: the bidi controls (ALM, LRM, RLM, LRE … RLO, LRI … PDI), which
# reorder the text around them, and the zero-width space, word joiner and BOM. The zero-width joiner and
# non-joiner are left as they are: Persian and Indic names and emoji sequences need them. The bidi controls are
# nextmove.decide.phrases.BIDI_CONTROLS, written out here: importing the decide package would slow every command's
# start (a test checks the two agree).
_FORMATS = "\u061c\u200b\u200e\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff"
_CONTROLS = re.compile(f"[\x00-\x1f\x7f-\x9f{_FORMATS}]")
_CONTROLS_BUT_NEWLINE = re.compile(f"[\x00-\x09\x0b-\x1f\x7f-\x9f{_FORMATS}]")
_NAMED_ESCAPES = {"\n": r"\n", "\r": r"\r", "\t": r"\t"}


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    return _NAMED_ESCAPES.get(char, f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


def visible(text: object, *, lines: bool = False) -> str:
    r"""``text`` with each C0 and C1 control character written as a repr writes it (``\x1b``, ``\n``).

    A book's names (signals, actions, outcome kinds, owners …) reach the terminal: an escape
    sequence in one would retitle the window, clear the screen or recolour what follows. The
    invisible bidi controls and zero-width characters are written so too (``\u202e``): a right-to-left
    override in a name showed the rest of its line reversed, and a zero-width space made two
    names that differ look the same. With ``lines``, a newline is kept (a message of nextmove's
    own on several lines).

    Examples
    --------
    >>> print(visible("logins\x1b]0;TITLE\x07\x1b[2J"), visible("a\tb\nc"), visible("a\u009bb"))
    logins\x1b]0;TITLE\x07\x1b[2J a\tb\nc a\x9bb
    >>> print(visible("Acme\u202e tnuocca"), visible("\ufeffAc\u200bme\u2069"))
    Acme\u202e tnuocca \ufeffAc\u200bme\u2069
    >>> print(visible("one\ntwo\r", lines=True))
    one
    two\r
    """
    return (_CONTROLS_BUT_NEWLINE if lines else _CONTROLS).sub(_escaped, str(text))


def safe(text: object, *, lines: bool = False) -> str:
    r"""``text`` (a book's, a user's, the store's) as it can go into Rich markup: printed as it is, never as markup.

    Rich reads ``[…]`` as a tag: a signal named ``logins [/web]`` made the print raise, one named
    ``page views [web]`` printed as ``page views ``. Control characters are made :func:`visible`.

    Examples
    --------
    >>> print(safe("logins [/web]"), safe("[prod] crm sync"), safe("red\x1b[31m"), sep=" | ")
    logins \[/web] | \[prod] crm sync | red\x1b[31m
    >>> console.render_str(safe("page views [web] \x1b[2J")).plain
    'page views [web] \\x1b[2J'
    """
    return escape(visible(text, lines=lines))


def parse_as_of(text: str | None, option: str = "--as-of") -> datetime | None:
    """Parse an ``--as-of`` (or ``option``) value in the forms a book's timestamps take (naive means UTC).

    Examples
    --------
    >>> parse_as_of("2025-06-30").isoformat()
    '2025-06-30T00:00:00+00:00'
    >>> parse_as_of("2025-06-30 09:30:00 UTC").isoformat()
    '2025-06-30T09:30:00+00:00'
    """
    if text is None:
        return None
    try:
        return parse_timestamp(text)
    except ValueError as exc:
        if "no such" in str(exc):
            raise ConfigError(f"{option} {text!r}: {exc}") from None
        raise ConfigError(
            f"{option} {text!r} is not an ISO 8601 time; write e.g. 2025-06-30 or 2025-06-30T12:00:00Z"
        ) from None


TrainingDaysOpt = Annotated[
    int | None,
    typer.Option(
        "--training-days",
        help="Learn only from the decisions of this many days before --as-of (default: all); at least the "
        "horizon and a decision window, for any of them to be finished.",
        min=1,
    ),
]

OutcomesUntilOpt = Annotated[
    str | None,
    typer.Option(
        "--outcomes-until",
        metavar="DATE",
        help="The book's outcomes are complete through DATE (a date: that whole day; a time: up to it), at most "
        "--as-of: past decisions whose horizon ends by then are learned from as finished, with no outcome since "
        "counted as none. Default: where the outcomes end (a horizon running past the last outcome is not over). "
        "For a quiet spell, not an export that stopped.",
    ),
]


def _day_or_time(text: str, option: str) -> date | datetime:
    """A cut-off option's value: a bare date (``2026-03-31``) as a date, anything else as the time it is."""
    stamp = parse_as_of(text, option)
    assert stamp is not None
    return stamp.date() if is_bare_date(text) else stamp


def parse_outcomes_until(text: str | None, as_of: datetime | None = None) -> date | datetime | None:
    """An ``--outcomes-until`` value: a bare date (``2026-03-31``: that whole day) or a time; checked against ``as_of``.

    Examples
    --------
    >>> parse_outcomes_until("2026-03-31"), parse_outcomes_until("2026-03-31T12:00Z").isoformat()
    (datetime.date(2026, 3, 31), '2026-03-31T12:00:00+00:00')
    """
    if text is None:
        return None
    value = _day_or_time(text, "--outcomes-until")
    if as_of is not None:
        from nextmove.book.outcomes_until import checked_outcomes_until

        checked_outcomes_until(value, as_of)  # at once, before the book is read
    return value


def parse_until(text: str | None, option: str = "--until") -> datetime | None:
    """An ``--until`` value (``lift``, ``evaluate``) as the instant outcomes are known up to.

    A bare date is that whole day, as ``--outcomes-until`` reads one: the midnight (UTC) after it. A
    time is itself.

    Examples
    --------
    >>> parse_until("2026-01-14").isoformat(), parse_until("2026-01-14T12:00:00+02:00").isoformat()
    ('2026-01-15T00:00:00+00:00', '2026-01-14T10:00:00+00:00')
    """
    if text is None:
        return None
    from nextmove.book.outcomes_until import outcomes_until_instant

    return outcomes_until_instant(_day_or_time(text, option))


def output_folder(folder: Path, option: str = "--out") -> Path:
    """Check the output folder can be made and written, before any long work (it is made when written).

    A leading ``~`` is the home folder (the shell does not expand it in ``--out=~/…``).
    """
    return check_folder(folder.expanduser(), option)


def output_file(path: Path, option: str = "--out") -> Path:
    """Check a file can be written at ``path`` (its folder can be made and written), before any long work.

    Returns the path to write, a leading ``~`` made the home folder (``--out=~/…`` reaches nextmove unexpanded).
    """
    path = path.expanduser()
    if path.is_dir():
        raise ConfigError(f"{option} {path} is a folder: give the name of the file to write")
    check_folder(path.parent, f"the folder of {option}")
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"cannot overwrite {option} {path}: permission denied")
    return path


def read_table_file(path: Path, option: str, *, raw_csv: bool = False, **csv_options: Any) -> pl.DataFrame:
    """Read a CSV or Parquet file a user named with ``option``; a file Polars cannot read is a :class:`ConfigError`.

    CSVs are read as nextmove writes them (a cell escaped from a spreadsheet formula is read back
    raw) unless ``raw_csv``; ``csv_options`` go to Polars' ``read_csv``. The error names the file,
    what was wrong and what to do, rather than a Polars traceback.
    """
    import polars as pl

    from nextmove._csv import read_csv
    from nextmove.book.sources import scan_parquet_file

    if not path.is_file():
        raise ConfigError(f"{option} {path}: no such file" if not path.is_dir() else f"{option} {path} is a folder")
    if path.suffix not in (".csv", ".parquet"):
        raise ConfigError(f"{option} {path} must be a .csv or .parquet file")
    kind = "a CSV file" if path.suffix == ".csv" else "a Parquet file"
    try:
        if path.suffix == ".parquet":
            return scan_parquet_file(path).collect()  # its times in zones Polars does not know read as UTC
        return pl.read_csv(path, **csv_options) if raw_csv else read_csv(path, **csv_options)
    except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if "utf-8" in reason.lower() or isinstance(exc, UnicodeDecodeError):
            hint = "it is not UTF-8 text: save it again as UTF-8 CSV (comma-separated)"
        elif path.suffix == ".parquet":
            hint = "it is damaged or not Parquet: write it again, or give a .csv"
        else:
            hint = "check it is comma-separated UTF-8 text with one header row"
        raise ConfigError(f"{option} {path}: cannot be read as {kind} ({reason}); {hint}") from None


def check_number_column(frame: pl.DataFrame, column: str, option: str, path: Path) -> None:
    """Raise a :class:`ConfigError` naming the first row of ``column`` that is not a number (an empty cell is)."""
    import polars as pl

    if column not in frame.columns or frame.schema[column].is_numeric():
        return
    values = pl.col(column)
    bad = frame.with_row_index("_row", offset=1).filter(
        values.is_not_null() & values.cast(pl.Float64, strict=False).is_null()
    )
    if bad.height:
        row, value = bad.row(0)[0], bad.get_column(column)[0]
        raise ConfigError(
            f"{option} {path}: column {column} must hold numbers, but row {row} holds {value!r} "
            f"({bad.height:,} such row(s)); fix the file"
        )


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
            with sigterm_as_interrupt():
                return func(*args, **kwargs)
        except NextmoveError as exc:
            exc = _naming_the_playbook(exc, kwargs)
            err_console.print(f"[bold red]error:[/] {safe(cli_message(exc), lines=True)}")
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt as exc:
            # Ctrl-C, or SIGTERM raised as one by sigterm_as_interrupt(): the command's own cleanup has run.
            terminated = isinstance(exc, Terminated)
            err_console.print(stop_message(exc))
            raise typer.Exit(EXIT_TERMINATED if terminated else EXIT_INTERRUPTED) from None

    return wrapper


def _naming_the_playbook(exc: NextmoveError, options: Mapping[str, Any]) -> NextmoveError:
    """An eligibility error that does not say its playbook file, saying the one the command read (``options``:
    its ``--book`` and ``--playbook``); any other error as it is."""
    from nextmove.playbook.expr import ExpressionError  # here: the playbook's parser is not every command's

    if not isinstance(exc, ExpressionError) or exc.source is not None or "playbook" not in options:
        return exc
    from nextmove.cli.commands import playbook_label, resolve_playbook_path

    playbook, book = options.get("playbook"), options.get("book")
    try:
        path = resolve_playbook_path(book, playbook) if isinstance(book, str) else playbook
    except NextmoveError:
        return exc
    return exc.in_file(playbook_label(path if isinstance(path, Path) else None))


def stop_message(stop: KeyboardInterrupt) -> str:
    """The line a command stopped by Ctrl-C or SIGTERM prints (Rich markup): the stop, then what it left, if it says.

    Examples
    --------
    >>> print(stop_message(KeyboardInterrupt("interrupted by the user (Ctrl-C): out is left as it was")))
    [bold red]interrupted by the user (Ctrl-C)[/]: out is left as it was
    >>> print(stop_message(Terminated()))
    [bold red]stopped by SIGTERM (a timeout, or a service manager stopping it)[/]
    """
    text = failure_text(stop)
    cause = failure_text(Terminated(stop.signal_name) if isinstance(stop, Terminated) else KeyboardInterrupt())
    if not text.startswith(cause):
        cause = ""
    return f"[bold red]{safe(cause)}[/]{safe(text[len(cause) :], lines=True)}" if cause else safe(text, lines=True)


@contextmanager
def done_despite_stop(done: str, cut: str) -> Iterator[None]:
    """Within the block the command's work is done for good: a Ctrl-C or SIGTERM cuts short only ``cut``, and exits 0.

    Exit 130 or 143 tell a script (a scheduler) that the command failed, and it runs it again: after
    the work is done (``done`` says what, "run X had finished (…)"), a stop says so in a note
    instead, with what it cut short (``cut``: "the printing of its summary"), and the command exits 0.
    """
    try:
        yield
    except KeyboardInterrupt as stop:
        what = stop.signal_name if isinstance(stop, Terminated) else "Ctrl-C"
        line = f"a stop ({what}) came after {done}, so it cut short only {cut}"
        err_console.print(f"[yellow]note:[/] {safe(line, lines=True)}")
        raise typer.Exit(0) from None


STORE_DEFAULT = "default: NEXTMOVE_STORE_URL, else nextmove.db in the current folder (or in NEXTMOVE_WORKSPACE)"
"""Where a command's store is when ``--store`` is not given, for its help."""


EXIT_INTERRUPTED = 130
"""Exit code after Ctrl-C (128 + SIGINT), as shells report it."""

EXIT_TERMINATED = 143
"""Exit code after SIGTERM (128 + SIGTERM), as shells report it."""


def _raise_terminated(signum: int, _frame: object) -> None:
    # A second SIGTERM, during the cleanup, stops the process at once as the default would.
    signal.signal(signum, signal.SIG_DFL)
    raise Terminated(signal.Signals(signum).name)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (a KeyboardInterrupt), so the cleanup after Ctrl-C runs.

    A timeout, systemd, Docker or Kubernetes stop a command with SIGTERM, which by default ends the
    process at once: a run stayed ``running`` in the store and its staging folder was left behind.
    Only in the main thread, and only over the default handler (not one an embedding program set).
    """
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) not in (
        signal.SIG_DFL,
        None,
    ):
        yield
        return
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def open_store(url: str | None = None, *, existing: bool = False) -> Store:
    """:func:`nextmove.store.open_store`, imported when a command first needs it.

    The commands import their heavy parts (the store's SQLAlchemy, the models' LightGBM) inside
    their own bodies, so that ``nextmove --help`` and the light commands start at once. With
    ``existing`` (commands that only read a store), a SQLite file that does not exist is an error,
    not a new empty store left behind.
    """
    from nextmove.store import open_store as open_url

    return open_url(url, create=not existing)


def is_live(out: Console) -> bool:
    """Whether ``out`` can redraw a live display (a terminal, or Jupyter) rather than only append lines."""
    return out.is_jupyter or (out.is_terminal and not out.is_dumb_terminal)


def format_seconds(seconds: float) -> str:
    """A duration as a log line writes it.

    Examples
    --------
    >>> format_seconds(0.23), format_seconds(59.96), format_seconds(126.4), format_seconds(3_790)
    ('0.2 s', '1 min 00 s', '2 min 06 s', '1 h 03 min')
    """
    if seconds < 59.5:
        return f"{seconds:.1f} s" if seconds < 9.95 else f"{seconds:.0f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def _plain(out: Console, line: str) -> None:
    # Written and flushed at once, so a log being tailed shows the line as it happens.
    out.print(visible(line, lines=True), markup=False, highlight=False, soft_wrap=True)
    out.file.flush()


@contextmanager
def status(text: str, out: Console | None = None) -> Iterator[Callable[[str], None]]:
    """A spinner with ``text`` on a terminal; elsewhere (a file, CI, cron) one line, ``text``, printed at once.

    Rich's spinner is transient: redirected to a file it would print nothing at all. Yields a
    function that says what the work is doing now: the spinner's text, or one more line. On standard
    error by default: ``nextmove validate … | head`` reads the results alone.
    """
    out = out or err_console
    if is_live(out):
        with out.status(safe(text)) as spinner:
            yield lambda step: spinner.update(safe(step))
    else:
        _plain(out, text)
        yield lambda step: _plain(out, step)


class _StageSpinner(SpinnerColumn):
    """A spinner that turns into a red cross on the stage that failed, rather than freezing mid-turn."""

    def render(self, task: Task) -> RenderableType:
        if task.fields.get("failed"):
            return Text("✗", style="red")
        return super().render(task)


class StageProgress:
    """The stages of a long command as they start and end: live bars on a terminal, plain lines elsewhere.

    Use it as a context manager and pass :meth:`step` and :meth:`detail` as the engine's
    ``progress`` and ``detail`` callbacks. On a terminal each stage has a bar that spins while it
    runs. Redirected to a file (CI, cron, ``nohup``), Rich would draw those bars only when the
    command ends; there each stage instead gets one line as it starts, one with its duration as
    it ends (or fails) and one per detail, each flushed as it is written. ``out`` is standard error
    by default, as all progress is: standard output holds the command's results alone.

    Examples
    --------
    >>> import io
    >>> from rich.console import Console
    >>> log = io.StringIO()
    >>> ticks = iter([0.0, 1.5, 3.0, 70.0])
    >>> with StageProgress(["Load", "Fit"], Console(file=log), clock=lambda: next(ticks)) as stages:
    ...     stages.step("Load")
    ...     stages.step("Fit")
    ...     stages.detail("learning from 1,000 decisions")
    >>> print(log.getvalue(), end="")
    Load…
    Load: done in 1.5 s
    Fit…
    Fit: learning from 1,000 decisions
    Fit: done in 1 min 07 s
    """

    def __init__(
        self, stages: Sequence[str], out: Console | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.stages = list(stages)
        self.out = out or err_console
        self.clock = clock
        self.started: list[str] = []
        self._since = 0.0
        self._bars: Progress | None = None
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> StageProgress:
        if is_live(self.out):
            columns = (_StageSpinner(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
            self._bars = Progress(*columns, console=self.out, transient=False)
            self._bars.start()
            self._tasks = {stage: self._bars.add_task(stage, total=1, start=False) for stage in self.stages}
        return self

    def step(self, stage: str) -> None:
        """``stage`` starts (and the one before it is done)."""
        self._finish()
        self.started.append(stage)
        self._since = self.clock()
        if self._bars is None:
            _plain(self.out, f"{stage}…")
        elif stage in self._tasks:
            self._bars.start_task(self._tasks[stage])

    def detail(self, text: str) -> None:
        """What the current stage is doing within it ("learning from 4,558,168 decisions")."""
        if not self.started:
            return
        stage = self.started[-1]
        if self._bars is None:
            _plain(self.out, f"{stage}: {text}")
        elif stage in self._tasks:
            self._bars.update(self._tasks[stage], description=f"{safe(stage)}: {safe(text)}")

    def _finish(self, failed: bool = False) -> None:
        if not self.started:
            return
        stage = self.started[-1]
        if self._bars is None:
            took = format_seconds(self.clock() - self._since)
            _plain(self.out, f"{stage}: {'failed after' if failed else 'done in'} {took}")
        elif stage in self._tasks:
            task = self._tasks[stage]
            if failed:
                self._bars.stop_task(task)
                self._bars.update(task, description=f"[red]{safe(stage)}: failed[/]", failed=True)
            else:
                self._bars.update(task, completed=1)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # The stage that failed says so; the stages never reached are not left spinning.
        self._finish(failed=exc_type is not None)
        if self._bars is not None:
            if exc_type is not None:
                for stage, task in self._tasks.items():
                    if stage not in self.started:
                        self._bars.remove_task(task)
            self._bars.stop()
