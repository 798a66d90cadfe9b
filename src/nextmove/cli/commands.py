"""The subcommands of ``nextmove``: each is a few lines over the Python API."""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from collections.abc import Callable, Sequence
from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated

import polars as pl
import typer

from nextmove._csv import write_csv
from nextmove._files import check_folder
from nextmove.book import Book, empty_table
from nextmove.book.problems import ValidationReport
from nextmove.book.sources import DiscoveredBook
from nextmove.book.validate import (
    STALE_AS_OF_DAYS,
    as_validated,
    gone_stage_notes,
    load_book,
    load_table,
    returned_accounts_notes,
    scan_table,
    validate_tables,
)
from nextmove.cli._common import (
    OutcomesUntilOpt,
    console,
    err_console,
    handle_errors,
    output_file,
    parse_as_of,
    parse_outcomes_until,
    plural,
    safe,
    status,
)
from nextmove.cli.render import render_problems, render_summary
from nextmove.errors import ConfigError
from nextmove.features import FeatureVocabulary, compute_features, feature_schema
from nextmove.features.history import resolve_as_of
from nextmove.features.leaks import leaking_columns
from nextmove.features.training import window_fallbacks_lazy
from nextmove.models.health import left_out_measures_note, unknown_signals_note
from nextmove.playbook import Playbook
from nextmove.playbook.expr import ExpressionError, check_playbook_expressions
from nextmove.playbook.loader import default_playbook_text, load_playbook

BookOpt = Annotated[
    str,
    typer.Option(
        "--book",
        "-b",
        help="Folder of CSV/Parquet tables, or a database URL (sqlite:///…, postgresql+psycopg://…).",
    ),
]
PlaybookOpt = Annotated[
    Path | None,
    typer.Option(
        "--playbook",
        "-p",
        help="playbook.toml; default: BOOK/playbook.toml if present, else the built-in default.",
    ),
]
AsOfOpt = Annotated[
    str | None,
    typer.Option(
        "--as-of",
        help="Decision time, ISO 8601 (naive = UTC); later rows are ignored. Default: how far the book's data "
        "reaches (each table's latest time; for a table of dates, the midnight after its last date), rounded up "
        "to a UTC midnight.",
    ),
]


def register(app: typer.Typer) -> None:
    """Add every subcommand to ``app``."""
    app.command("init")(init)
    app.command("validate")(validate)
    app.command("simulate")(simulate_cmd)
    app.command("features")(features_cmd)
    from nextmove.cli import health as health_cli

    health_cli.register(app)
    from nextmove.cli import segment as segment_cli

    segment_cli.register(app)
    from nextmove.cli import evaluate as evaluate_cli

    evaluate_cli.register(app)
    from nextmove.cli import run as run_cli

    run_cli.register(app)
    from nextmove.cli import keys as keys_cli
    from nextmove.cli import models as models_cli
    from nextmove.cli import serve as serve_cli

    serve_cli.register(app)
    keys_cli.register(app)
    models_cli.register(app)
    from nextmove.cli import lift as lift_cli

    lift_cli.register(app)
    from nextmove.cli import store as store_cli

    store_cli.register(app)
    from nextmove.cli import report as report_cli

    report_cli.register(app)


def playbook_label(path: Path | None) -> str:
    """How a message names the playbook read from ``path`` (None: the built-in default)."""
    return str(path) if path is not None else "the built-in default playbook"


def resolve_playbook_path(book: str, playbook: Path | None) -> Path | None:
    """The playbook to use: the one given, else ``playbook.toml`` inside a book folder, else None (default)."""
    if playbook is not None:
        return playbook
    if "://" not in book:
        candidate = Path(book) / "playbook.toml"
        if candidate.is_file():
            return candidate
        if Path(book).is_dir():
            # A playbook in another format (or spelt otherwise) would be passed over for the built-in default.
            other = sorted(
                p.name
                for p in Path(book).iterdir()
                if p.is_file() and p.stem.lower() == "playbook" and p.name != "playbook.toml"
            )
            if other:
                raise ConfigError(
                    f"{Path(book) / other[0]}: nextmove reads its playbook from a TOML file named playbook.toml "
                    "(see docs/playbook.md); rename or convert it, or pass --playbook FILE"
                )
    return None


DEFAULT_PLAYBOOK_NOTE = (
    "no --playbook was given and the book folder has no playbook.toml: this is checked against nextmove's "
    "built-in default playbook (14 B2B actions), which may not be yours"
)


def book_features(book: str | DiscoveredBook, report: ValidationReport, playbook: Playbook) -> pl.DataFrame:
    """The features this book will have, as a snapshot without rows.

    The feature names come from the names the validation saw (signals, actions, outcome kinds)
    and the accounts table, so they cost a snapshot of an empty book, not of the whole book.
    ``book``: the book, or the tables its validation read (:func:`~nextmove.book.validate.validate_tables`).
    """
    accounts = load_table(book, "accounts")
    vocab = _book_vocabulary(accounts, report, playbook)
    empty = Book(accounts.head(0), empty_table("signals"), empty_table("touches"), empty_table("outcomes"))
    return compute_features(empty, report.as_of, playbook=playbook, vocabulary=vocab)


def _book_vocabulary(accounts: pl.DataFrame, report: ValidationReport, playbook: Playbook) -> FeatureVocabulary:
    """The vocabulary of the names the validation saw (signals, actions, outcome kinds) and the accounts table."""
    return FeatureVocabulary.build(
        accounts_schema=accounts.schema,
        signal_names=report.signal_counts,
        action_ids=report.action_counts,
        outcome_kinds=report.outcome_counts,
        playbook=playbook,
    )


def leak_notes(
    book: str | DiscoveredBook, report: ValidationReport, playbook: Playbook, as_of: datetime | None
) -> list[str]:
    """The accounts columns whose values today tell the gone accounts from the others, which models leave out,
    and the playbook's ``keep_columns`` the accounts table does not have.

    Read from the accounts and outcomes alone (:func:`~nextmove.features.leaks.leaking_columns`), as
    of ``as_of`` or else the book's; outcomes after it are left out as a run leaves them out.
    """
    accounts = load_table(book, "accounts")
    until = report.as_of if as_of is None else max(report.as_of, as_of)
    outcomes = load_table(book, "outcomes").filter(pl.col("ts") <= until)
    vocab = _book_vocabulary(accounts, report, playbook)
    notes = [leak.note() for leak in leaking_columns(accounts, outcomes, playbook, until, vocabulary=vocab)]
    missing = [c for c in playbook.features.keep_columns if c not in accounts.columns]
    if missing:
        names = ", ".join(repr(c) for c in missing)
        notes.append(
            f"[features] keep_columns names {names}, which the accounts table does not have: nothing to keep "
            "there (a name is matched exactly, as the table spells its column)"
        )
    return notes


def attribution_notes(
    book: str | DiscoveredBook, report: ValidationReport, playbook: Playbook, as_of: datetime | None
) -> list[str]:
    """What a run's training set labels by window although the outcomes name touches (:func:`window_fallbacks`).

    Read from the accounts, touches and outcomes alone (the signals, often most of a book, are not
    needed), as of ``as_of`` or else the end of the touches and outcomes; rows after now are left out
    as a run leaves them out.
    """
    outcomes = load_table(book, "outcomes")
    if "touch_id" not in outcomes.columns or outcomes.get_column("touch_id").is_null().all():
        return []
    until = report.as_of if as_of is None else max(report.as_of, as_of)
    # The touches, often millions of rows, are aggregated as they are read, never loaded.
    touches = scan_table(book, "touches").filter(pl.col("ts") <= until)
    known = outcomes.filter(pl.col("ts") <= until)
    return [
        f.note() for f in window_fallbacks_lazy(scan_table(book, "accounts"), touches, known, playbook, as_of=as_of)
    ]


def eligibility_errors(features: pl.DataFrame, playbook: Playbook) -> list[ExpressionError]:
    """Check the playbook's eligibility expressions against the features (:func:`book_features`) of a book."""
    return check_playbook_expressions([(a.id, a.eligibility) for a in playbook.actions], feature_schema(features))


INIT_MANIFEST = ".nextmove-init.json"
"""What ``nextmove init`` wrote in its workspace (path → SHA-256), so ``--force`` replaces only those files."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _init_leftovers(directory: Path) -> list[str]:
    """The files of ``directory/book`` and ``directory/README.md`` that ``init --force`` may not replace.

    A file may be replaced when the workspace's manifest says init wrote it and it is unchanged
    since; a ``book/playbook.toml`` equal to the built-in default may be replaced too. Anything
    else (the user's own tables, an edited playbook or README) is theirs.
    """
    try:
        manifest: dict[str, str] = json.loads((directory / INIT_MANIFEST).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        manifest = {}
    book_dir = directory / "book"
    if book_dir.exists() and not book_dir.is_dir():
        return ["book"]
    paths = [directory / "README.md"] if (directory / "README.md").exists() else []
    if book_dir.is_dir():
        # A folder in the book other than truth/ (a run's outputs, BOOK/run by default) is left as it
        # is by the new book, so nothing in it needs protecting.
        def kept(p: Path) -> bool:
            top = p.relative_to(book_dir).parts[0]
            return (book_dir / top).is_dir() and top != "truth"

        paths += sorted(p for p in book_dir.rglob("*") if not kept(p) and (not p.is_dir() or not any(p.iterdir())))
    theirs = []
    for path in paths:
        name = path.relative_to(directory).as_posix()
        if path.is_file() and not path.is_symlink():
            digest = _sha256(path)
            if manifest.get(name) == digest:
                continue
            if name == "book/playbook.toml" and path.read_text(encoding="utf-8", errors="replace") == (
                default_playbook_text()
            ):
                continue
            if name == "README.md" and _is_workspace_readme(path.read_text(encoding="utf-8", errors="replace")):
                continue
        theirs.append(name)
    return theirs


def _is_workspace_readme(text: str) -> bool:
    """Whether ``text`` is the README init writes, unedited (for a workspace older than its manifest)."""
    pattern = re.escape(_WORKSPACE_README).replace(re.escape("{as_of}"), r"\d{4}-\d{2}-\d{2}")
    return re.fullmatch(pattern, text) is not None


@handle_errors
def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create the workspace in.")],
    accounts: Annotated[
        int, typer.Option(min=10, max=1_000_000, help="Accounts in the example book (10 to 1,000,000).")
    ] = 300,
    months: Annotated[int, typer.Option(min=1, max=120, help="Months of history in the example book (1 to 120).")] = 12,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Write into a folder that is not empty, replacing the example book and README.md an earlier "
            "init wrote there. Nothing else is replaced: if DIR/book holds other files (your own tables, an "
            "edited playbook.toml) or README.md was edited, init names them and stops.",
        ),
    ] = False,
) -> None:
    """Create a workspace: an example book (from the lab) in DIR/book, its playbook, and a README.

    The playbook is DIR/book/playbook.toml, the built-in default: every command given --book
    DIR/book reads it unless --playbook names another file. Edit it to fit your teams.
    """
    from nextmove.sim import SimConfig, simulate, write_book

    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"{directory}: exists and is not a folder; choose another folder")
    check_folder(directory, "the workspace folder")  # under a file, or not writable
    if directory.is_dir() and any(directory.iterdir()):
        if not force:
            raise ConfigError(
                f"{directory}: folder is not empty; pass --force to replace the example book an earlier "
                "init wrote there, or choose another folder"
            )
        theirs = _init_leftovers(directory)
        if theirs:
            listed = ", ".join(theirs[:8]) + (f" and {len(theirs) - 8} more" if len(theirs) > 8 else "")
            raise ConfigError(
                f"{directory}: --force replaces only the files an earlier init wrote, and these are not (or were "
                f"changed since): {listed}; move them out of {directory} (your playbook or tables elsewhere) "
                "or choose another folder"
            )
    book_dir = directory / "book"
    with status("Simulating an example book of business…"):
        result = simulate(SimConfig(accounts=accounts, months=months, seed=0))
        write_book(result, book_dir, overwrite=True)
    # The built-in default, as the docs promise, whatever the lab simulated under.
    (book_dir / "playbook.toml").write_text(default_playbook_text(), encoding="utf-8")
    (directory / "README.md").write_text(_WORKSPACE_README.format(as_of=f"{result.as_of:%Y-%m-%d}"), encoding="utf-8")
    written = [directory / "README.md", *(p for p in sorted(book_dir.rglob("*")) if p.is_file())]
    manifest = {p.relative_to(directory).as_posix(): _sha256(p) for p in written}
    (directory / INIT_MANIFEST).write_text(json.dumps({"files": manifest}, indent=1) + "\n", encoding="utf-8")
    console.print(f"Created workspace [bold]{safe(directory)}[/]:")
    console.print(f"  {safe(book_dir)}/  an example book of {accounts:,} accounts and {months} months of history")
    console.print(f"  {safe(book_dir / 'playbook.toml')}  the playbook that commands given this book read: edit it")
    # From inside the workspace, as its README says: the store (nextmove.db) is made where a command runs.
    # On one line whatever the width, to be copied whole.
    next_command = f"cd {shlex.quote(str(directory))} && nextmove validate --book book"
    console.print(f"Next: [bold]{safe(next_command)}[/]", soft_wrap=True)
    console.print("The store (nextmove.db) is made in the folder a command runs from: run them all from the workspace.")


@handle_errors
def validate(
    book: BookOpt,
    playbook: PlaybookOpt = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="ISO 8601 (naive = UTC): check the book as a run at this time reads it: later rows are noted "
            f"and left out, as the run ignores them, and a time {STALE_AS_OF_DAYS} days or more after the book's "
            "data ends is noted. Rows after now are noted too: a run leaves them out until their time. Default: as "
            "a run without --as-of reads it, deciding where the book's data ends: how old the data is goes unsaid "
            "(give today's date to hear it).",
        ),
    ] = None,
    max_examples: Annotated[
        int, typer.Option(min=0, help="Offending rows listed per table (counts stay complete).")
    ] = 1000,
    outcomes_until: OutcomesUntilOpt = None,
) -> None:
    """Check a book of business against the data contract.

    Exit 0 with a summary (counts, date ranges, signals seen) when valid; exit 2 with a table of
    every problem (file, row, column, value, what was expected) when not.
    """
    complete = parse_outcomes_until(outcomes_until, parse_as_of(as_of))
    pb_path = resolve_playbook_path(book, playbook)
    pb = load_playbook(pb_path)
    with status("Validating the book…"):
        report, found = validate_tables(book, playbook=pb, run_as_of=parse_as_of(as_of), max_examples=max_examples)
    notes = _validated_outcome_notes(report, complete)
    if pb_path is None:
        err_console.print(f"[yellow]note:[/] {DEFAULT_PLAYBOOK_NOTE}")
    if not report.ok:
        render_problems(report, err_console)
        for note in notes:
            err_console.print(f"[yellow]note:[/] {safe(note, lines=True)}")
        err_console.print(
            f"[bold red]invalid:[/] {plural(report.total_problems, 'problem')} in {safe(report.source)}; "
            "nothing was loaded."
        )
        raise typer.Exit(2)
    render_summary(report, console, parse_as_of(as_of))
    # Read again as validated: a file that changed since (an export moved into place) is refused, not read unchecked.
    with as_validated(found):
        features = book_features(found, report, pb)
    errors = eligibility_errors(features, pb)
    if errors:
        for exc in errors:
            err_console.print(f"[bold red]playbook:[/] {safe(str(exc.in_file(playbook_label(pb_path))), lines=True)}")
        err_console.print(
            f"[bold red]invalid:[/] {plural(len(errors), 'eligibility expression')} of the playbook "
            f"{safe(playbook_label(pb_path))} {'does' if len(errors) == 1 else 'do'} not fit this book's features"
        )
        raise typer.Exit(2)
    # report.notes holds what the book lacks for the playbook (validate_book adds its fit notes)
    health_notes = (unknown_signals_note(pb, report.signal_counts), left_out_measures_note(pb, features))
    # They read the book again (tens of seconds on a large one): say what is going on after the table.
    with status("Checking won-back accounts, gone stages, touch attribution and leaking columns…"), as_validated(found):
        returned = returned_accounts_notes(found, pb, parse_as_of(as_of))
        returned += gone_stage_notes(found, pb, parse_as_of(as_of))
        credit = attribution_notes(found, report, pb, parse_as_of(as_of))
        leaks = leak_notes(found, report, pb, parse_as_of(as_of))
    for note in [*notes, *(n for n in health_notes if n is not None), *returned, *credit, *leaks]:
        console.print(f"[yellow]note:[/] {safe(note, lines=True)}")
    console.print(
        f"[bold green]valid:[/] the book meets the data contract"
        f" (playbook: {safe(pb_path) if pb_path else 'built-in default'}, {plural(len(pb.actions), 'action')})."
    )


@handle_errors
def simulate_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the book, its playbook and truth/ into.")],
    accounts: Annotated[
        int, typer.Option(min=10, max=1_000_000, help="Active accounts at the end of the history (10 to 1,000,000).")
    ] = 4200,
    months: Annotated[int, typer.Option(min=1, max=120, help="Months of history (1 to 120).")] = 18,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same book, byte for byte.")] = 0,
    signals_format: Annotated[
        str, typer.Option("--format", help="File format of signals and truth: parquet or csv.")
    ] = "parquet",
    no_propensities: Annotated[
        bool, typer.Option("--no-propensities", help="Leave propensities out of touches (to test estimating them).")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replace the book in OUT if it is not empty: its own files only (accounts.csv, signals, "
            "touches.csv, outcomes.csv, playbook.toml, truth/). A folder that holds any other file is refused, "
            "naming them; nothing else is ever deleted, and folders such as a run's (OUT/run) are left as they are. A "
            "book without truth/values (an export of your own) is refused.",
        ),
    ] = False,
) -> None:
    """Simulate a B2B SaaS book of business with ground truth (the lab).

    Writes accounts, signals, touches and outcomes in the data contract, the playbook it was
    simulated with, and truth/: each account's true value under every action, the oracle action,
    hidden states and behavioral groups.
    """
    from nextmove.sim import SimConfig, check_out_dir, simulate, write_book

    if signals_format not in ("parquet", "csv"):
        raise ConfigError(f"--format must be parquet or csv, got {signals_format!r}")
    # Before simulating, which can take minutes, and in the command line's words.
    check_out_dir(out, overwrite=force, how_to_overwrite="pass --force")
    config = SimConfig(
        accounts=accounts,
        months=months,
        seed=seed,
        signals_format=signals_format,
        with_propensities=not no_propensities,
    )
    with status(f"Simulating {accounts:,} accounts over {months} months…"):
        result = simulate(config)
        write_book(result, out, overwrite=force)
    book = result.book
    summary = result.summary
    console.print(
        f"Wrote [bold]{safe(out)}[/]: {book.accounts.height:,} accounts ({summary.active_accounts:,} active), "
        f"{book.signals.height:,} signal rows, {book.touches.height:,} touches, {book.outcomes.height:,} outcomes; "
        f"as of {result.as_of:%Y-%m-%d}."
    )
    # The lab's world is in dollars (the playbook it writes names no other currency).
    console.print(
        f"Truth at as-of: oracle value ${summary.oracle_value_usd:,.0f} vs lifecycle default "
        f"${summary.default_value_usd:,.0f}; doing nothing is best for {summary.do_nothing_best_share:.0%} of accounts."
    )


@handle_errors
def features_cmd(
    book: BookOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="File to write: .parquet or .csv.")],
    as_of: AsOfOpt = None,
    playbook: PlaybookOpt = None,
) -> None:
    """Compute the point-in-time feature snapshot of every account at --as-of.

    Only data dated before --as-of is used (later rows are ignored, so a past --as-of
    reproduces what was known then). One row per account; see docs/features.md for the
    columns. Default --as-of: how far the book's data reaches, rounded up to a UTC midnight.
    """
    if out.suffix not in (".parquet", ".csv"):
        raise ConfigError(f"--out {out} must end in .parquet or .csv")
    out = output_file(out)  # before the work: a folder, a path under a file, a folder that cannot be written
    pb, loaded, t = load_inputs(book, playbook, as_of)
    with status(f"Computing features as of {t:%Y-%m-%d %H:%M} UTC…"):
        frame = compute_features(loaded, t, playbook=pb)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        if out.suffix == ".parquet":
            frame.write_parquet(tmp)
        else:
            write_csv(frame, tmp)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    console.print(
        f"Wrote [bold]{safe(out)}[/]: {frame.height:,} accounts × {frame.width - 1:,} features "
        f"as of {t:%Y-%m-%d %H:%M} UTC."
    )


def load_inputs(
    book: str,
    playbook: Path | None,
    as_of: str | None,
    *,
    outcomes_until: date | datetime | None = None,
    has_outcomes_until: bool = False,
    hide: Callable[[str], bool] | None = None,
) -> tuple[Playbook, Book, datetime]:
    """The playbook, the validated book and the decision time shared by the commands that read a book.

    The book is validated as of now, not as of ``--as-of``: a past ``--as-of`` replays what was
    known then, and later rows are ignored rather than rejected; rows after now are left out (and
    noted). What loading noted is printed (for a command with ``--outcomes-until``, as
    :func:`outcome_notes` words it), but for the notes ``hide`` is True of (the command says them in
    its own words).
    """
    pb = load_playbook(resolve_playbook_path(book, playbook))
    when = parse_as_of(as_of)
    with status("Loading and validating the book…"):
        loaded = load_book(book, playbook=pb, run_as_of=when)
    print_book_notes(loaded, outcome_notes(loaded, outcomes_until) if has_outcomes_until else None, hide=hide)
    return pb, loaded, resolve_as_of(loaded, when)


def print_book_notes(
    book: Book, notes: Sequence[str] | None = None, *, hide: Callable[[str], bool] | None = None
) -> None:
    """Print what loading ``book`` noted without refusing it (rows after now left out, columns dropped …).

    ``notes``: those to print instead of the book's own (:func:`outcome_notes`); ``hide``: True of the notes
    the command says in its own words.
    """
    for note in book.notes if notes is None else notes:
        if hide is None or not hide(note):
            err_console.print(f"[yellow]note:[/] {safe(note, lines=True)}")


def _validated_outcome_notes(report: ValidationReport, outcomes_until: date | datetime | None) -> list[str]:
    """The validation's notes as a command with ``--outcomes-until`` says them (:func:`outcome_notes`)."""
    from nextmove.book import reach_of
    from nextmove.book.outcomes_until import outcomes_until_notes

    summary = report.tables.get("outcomes")
    latest = None if summary is None else summary.ts_max
    # A latest outcome at a midnight is a date: the outcomes reach the midnight after it, as a run reads them.
    reach = None if latest is None else reach_of(latest, dates=latest.time() == time())
    return outcomes_until_notes(report.notes, outcomes_until, reach)


def outcome_notes(book: Book, outcomes_until: date | datetime | None) -> list[str]:
    """The book's notes as a command with ``--outcomes-until`` says them (:func:`outcomes_until_notes`)."""
    from nextmove.book import table_reach
    from nextmove.book.outcomes_until import outcomes_until_notes

    return outcomes_until_notes(book.notes, outcomes_until, table_reach(book.outcomes))


_WORKSPACE_README = """# nextmove workspace

- `book/`: an example book of business generated by nextmove's lab, as of {as_of}. Replace its
  tables with your own exports: `accounts`, `signals`, `touches`, `outcomes`, each one file, `.csv`
  or `.parquet` (the example's signals are `signals.parquet`: remove it when you add a
  `signals.csv`); see the data contract in nextmove's docs. `book/truth/` is the lab's hidden truth
  of the example (what each action really did), which nextmove never reads: delete it with the
  example's tables.
- Run the commands from this folder: the store (`nextmove.db`, the runs, models and API keys) is
  made in the folder a command runs from, unless `NEXTMOVE_STORE_URL` or `--store` names another.
- `book/playbook.toml`: what nextmove optimises (objectives), what your teams may do (the action
  catalog), and the limits (contact policy, capacities, control cohort). Edit it to fit: every
  command given `--book book` reads it unless `--playbook` names another file. Keep it when you
  replace the tables (or copy it into your own book's folder).

Check the book:

    nextmove validate --book book --as-of {as_of}
"""
