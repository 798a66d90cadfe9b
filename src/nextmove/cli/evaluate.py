"""``nextmove evaluate``: off-policy value of the learned, logged, default, do-nothing and external policies."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import polars as pl
import typer
from rich.console import Console
from rich.table import Table

from nextmove._files import writing
from nextmove.cli._common import (
    STORE_DEFAULT,
    check_number_column,
    console,
    handle_errors,
    open_store,
    output_file,
    parse_as_of,
    parse_until,
    read_table_file,
    safe,
    status,
)
from nextmove.cli.commands import BookOpt, PlaybookOpt, load_inputs
from nextmove.errors import ConfigError
from nextmove.playbook.money import DEFAULT_CURRENCY, currency_unit, has_cents

if TYPE_CHECKING:
    from nextmove.book import Book
    from nextmove.measure.ope import OfflineEvaluation, PolicyValue
    from nextmove.playbook import Playbook
    from nextmove.store import Store

UntilOpt = Annotated[
    str | None,
    typer.Option(
        "--until",
        help="How far the book's data reaches (ISO 8601): outcomes up to then count; a date is that whole day, as "
        "in run's --outcomes-until. Default: its tables' latest time (for a table of dates, the midnight after "
        "its last date).",
    ),
]


def register(app: typer.Typer) -> None:
    """Add ``evaluate`` to ``app``."""
    app.command("evaluate")(evaluate_cmd)


@handle_errors
def evaluate_cmd(
    book: BookOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="JSON file to write with every estimate and diagnostic.")],
    playbook: PlaybookOpt = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Split time (ISO 8601): fit on the decisions whose horizon closed by then, evaluate on those "
            "taken from then on. Default: the time that leaves the last third of the usable decision span (the "
            "span of decision times less two horizons) to evaluation (none with --holdout-fraction).",
        ),
    ] = None,
    policy: Annotated[
        Path | None,
        typer.Option(
            "--policy",
            help="An external policy to evaluate too: CSV or Parquet with account_id, action_id, probability "
            "(optionally decision_ts).",
        ),
    ] = None,
    holdout_fraction: Annotated[
        float | None,
        typer.Option(
            "--holdout-fraction",
            help="Hold out this share of accounts (stable hash of the id) and evaluate on their decisions only.",
        ),
    ] = None,
    until: UntilOpt = None,
    level: Annotated[float, typer.Option(help="Confidence level of the intervals.")] = 0.95,
    seed: Annotated[int, typer.Option(help="Seed of the hold-out split and the models.")] = 0,
    folds: Annotated[int, typer.Option(help="Cross-fitting folds of the effect model.", min=2)] = 5,
    trees: Annotated[int | None, typer.Option(help="Trees of the effect model's outcome models.", min=1)] = None,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            help="Store URL whose runs of this book made the logged decisions: the lifecycle default each run "
            "recorded is the default at the decisions that followed it (not a backtest's, run --as-of a past day: "
            f"it read today's stages); {STORE_DEFAULT}, if there is one.",
        ),
    ] = None,
) -> None:
    """Estimate, on held-out logged decisions, what each policy would have been worth: IPS, SNIPS and DR.

    The models are fitted on the decisions whose horizon closed by --as-of (or on the accounts not
    held out); every estimate is made on the later decisions (or the held-out accounts') whose
    horizon is over. Policies: learned (the effect model's best eligible action), logged (what the
    history did), lifecycle_default, do_nothing, and --policy if given; plus the learned policy's
    paired difference against the default and doing nothing. OUT gets every estimate with its
    interval, the overlap diagnostics and the outcome models' accuracy on the evaluation decisions.
    A policy that takes actions the history never took, on more than 5% of the decisions, has no
    IPS or SNIPS value and no DR interval: the notes under each table say why.

    The accounts table holds each account's stage today. At decisions of accounts that left (churned)
    since, that stage was written after the decision: there lifecycle_default is the default a run in
    the store recorded then (a backtest, which read today's stages, does not count), or, with none,
    not known; on more than 5% of the decisions it then has no value. Give it with --policy FILE
    (account_id, decision_ts, action_id: the default of the stage at each decision; docs/measure.md).
    """
    from nextmove.book.notes import is_lagging_outcomes_note
    from nextmove.measure.ope import evaluate_offline

    if out.suffix != ".json":
        raise ConfigError(f"--out {out} must end in .json")
    out = output_file(out)
    split_at = parse_as_of(as_of)
    observed = parse_until(until)
    external = read_policy(policy) if policy is not None else None
    # With --until, loading's note on outcomes that lag ("not learned from as finished") is not so:
    # the evaluation says what --until does with them instead.
    pb, loaded, _ = load_inputs(book, playbook, None, hide=is_lagging_outcomes_note if observed is not None else None)
    params: dict[str, int] = {"n_folds": folds, **({"n_estimators": trees} if trees is not None else {})}
    with _runs_store(store) as opened, status("Evaluating…") as step:
        result = evaluate_offline(
            loaded,
            pb,
            as_of=split_at,
            holdout_fraction=holdout_fraction,
            observed_until=observed,
            policy=external,
            policy_name=_policy_name(policy),
            level=level,
            seed=seed,
            effect_params=params,
            progress=step,
            recorded_defaults=_recorded_defaults(opened, loaded, pb) if opened is not None else None,
        )
    write_json(out, result.to_dict())
    render_evaluation(result, console, currency=pb.currency)
    console.print(f"Wrote [bold]{safe(str(out))}[/].")


_RUNS_READ = 1000
"""How many of the store's latest succeeded runs are looked through for the runs of the evaluated book."""


@contextmanager
def _runs_store(url: str | None) -> Iterator[Store | None]:
    """The store given (it must exist), or the default one if there is one (None if not)."""
    from nextmove.errors import NotFoundError

    try:
        opened = open_store(url, existing=True)
    except NotFoundError:
        if url is not None:
            raise
        yield None
        return
    with opened:
        yield opened


def _recorded_defaults(
    store: Store, book: Book, playbook: Playbook
) -> Callable[[datetime, datetime], pl.DataFrame] | None:
    """What the store's runs of ``book`` recorded as each account's default, for the times asked (backtests'
    skipped: :func:`~nextmove.measure.ope.stored_defaults`); None without runs."""
    from nextmove.measure.ope import stored_defaults
    from nextmove.store import RunRecord, recorded_source, same_book

    this = RunRecord(run_id="", book_source=recorded_source(book.source), playbook_hash=playbook.content_hash())
    runs = [
        r for r in store.list_runs(limit=_RUNS_READ, status="succeeded") if r.as_of is not None and same_book(r, this)
    ]
    return partial(stored_defaults, store, runs) if runs else None


def _policy_name(path: Path | None) -> str:
    """The external policy's name in the results: the file's stem, unless a built-in policy has it."""
    from nextmove.measure.ope import BUILT_IN_POLICIES

    if path is None:
        return "external"
    return path.stem if path.stem not in BUILT_IN_POLICIES else f"{path.stem}_file"


def read_policy(path: Path) -> pl.DataFrame:
    """An external policy file (CSV or Parquet), with ``decision_ts`` parsed when it is text."""
    # As nextmove writes CSVs (recommendations.csv): a cell escaped from a spreadsheet formula is read back raw.
    frame = read_table_file(path, "--policy", schema_overrides={"account_id": pl.String, "action_id": pl.String})
    check_number_column(frame, "probability", "--policy", path)
    if "decision_ts" in frame.columns and frame.schema["decision_ts"] == pl.String:
        try:
            frame = frame.with_columns(pl.col("decision_ts").str.to_datetime(time_zone="UTC"))
        except pl.exceptions.PolarsError:
            raise ConfigError(f"--policy {path}: decision_ts must hold ISO 8601 times") from None
    return frame


def write_json(out: Path, payload: object) -> None:
    """Write ``payload`` as JSON to ``out`` whole or not at all (a failed write: :class:`WriteError`)."""
    kept = f"{out} is left as it was" if out.exists() else "no file was written"
    with writing(f"--out {out}", kept):
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        try:
            tmp.write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")
            tmp.replace(out)
        finally:
            tmp.unlink(missing_ok=True)


def _money(x: float | None, currency: str) -> str:
    """A value per decision without its unit (the header names it): cents below 1,000, never for a currency without."""
    if x is None or x != x:
        return "—"
    return f"{x:,.2f}" if abs(x) < 1000 and has_cents(currency) else f"{x:,.0f}"


def _values_table(title: str, values: list[PolicyValue], currency: str) -> Table:
    table = Table(title=title, title_justify="left")
    for name in ("policy", "method", f"{currency_unit(currency)} per decision", "interval", "eff. sample", "matched"):
        table.add_column(name, justify="left" if name in ("policy", "method") else "right")
    for v in values:
        table.add_row(
            safe(v.policy),
            v.method.upper(),
            _money(v.estimate, currency),
            f"[{_money(v.low, currency)}, {_money(v.high, currency)}]",
            f"{v.effective_sample_size:,.0f}",
            f"{v.matched_share:.0%}",
        )
    return table


def render_evaluation(result: OfflineEvaluation, out: Console, *, currency: str = DEFAULT_CURRENCY) -> None:
    """Print the policies' values, their differences, the overlap and the outcome models' accuracy.

    Values are in ``currency``, the playbook's.
    """
    from nextmove.cli.lift import cli_words  # here: nextmove.cli.lift imports this module
    from nextmove.measure.ope import grouped_notes

    split = {
        "time": f"fitted on decisions whose horizon closed by {result.as_of:%Y-%m-%d}" if result.as_of else "",
        "accounts": f"fitted on the accounts not held out ({1 - (result.holdout_fraction or 0):.0%})",
    }
    how = (
        split["time"]
        if result.split == "time"
        else split["accounts"]
        if result.split == "accounts"
        else f"{split['time']}, of the accounts not held out"
    )
    out.print(
        f"{how}: {result.training_rows:,} decisions of {result.training_accounts:,} accounts. Evaluated on "
        f"{result.evaluation_rows:,} decisions of {result.evaluation_accounts:,} accounts "
        f"({result.evaluation_from:%Y-%m-%d} – {result.evaluation_to:%Y-%m-%d}), {result.level:.0%} intervals."
    )
    out.print(_values_table("Policy value (off-policy estimates)", result.policies, currency))
    for note in grouped_notes(result.policies):
        out.print(f"  note on {safe(note, lines=True)}")
    if result.differences:
        out.print(_values_table("Paired differences", result.differences, currency))
        for note in grouped_notes(result.differences):
            out.print(f"  note on {safe(note, lines=True)}")
    flagged = result.evaluation_overlap.flagged_arms
    if flagged:
        out.print(f"Arms the evaluation decisions (almost) never took: {safe(', '.join(flagged))}.")
    if result.outcome_accuracy:
        table = Table(title="Outcome models on the evaluation decisions", title_justify="left")
        for name in ("outcome", "rows", "events", "AUC", "avg precision", "Brier", "ECE"):
            table.add_column(name, justify="left" if name == "outcome" else "right")
        for kind, acc in result.outcome_accuracy.items():
            table.add_row(
                safe(kind),
                f"{acc.rows:,}",
                f"{acc.events:,}",
                "—" if acc.auc is None else f"{acc.auc:.3f}",
                "—" if acc.average_precision is None else f"{acc.average_precision:.3f}",
                f"{acc.brier:.4f}",
                f"{acc.ece:.4f}",
            )
        out.print(table)
    for kind, why in result.skipped.items():
        out.print(f"  no model for {safe(kind)}: {safe(why, lines=True)}")
    for note in result.notes:
        out.print(f"  note: {safe(cli_words(note), lines=True)}")
