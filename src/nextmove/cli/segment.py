"""``nextmove segment``: behavioral segments and how each responds, as CSV assignments and a JSON summary."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import polars as pl
import typer
from rich.console import Console
from rich.table import Table

from nextmove._csv import read_csv, write_csv
from nextmove._files import writing
from nextmove._signals import signals_held
from nextmove.book import Book
from nextmove.cli._common import console, handle_errors, output_folder, safe, status
from nextmove.cli.commands import AsOfOpt, BookOpt, PlaybookOpt, load_inputs
from nextmove.errors import ConfigError
from nextmove.features import (
    FeatureVocabulary,
    build_training_set,
    compute_features,
    point_in_time,
    training_vocabulary,
)
from nextmove.features.snapshot import vocabulary_of
from nextmove.playbook import Playbook
from nextmove.playbook.money import DEFAULT_CURRENCY, money_text

if TYPE_CHECKING:
    from nextmove.models.effect import EffectProjection
    from nextmove.segment import SegmentReport
    from nextmove.segment.response import FamilyKind, SpendEfficiency

FAMILIES = ("team", "objective", "action")


def register(app: typer.Typer) -> None:
    """Add ``segment`` to ``app``."""
    app.command("segment")(segment_cmd)


@handle_errors
def segment_cmd(
    book: BookOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for segments.csv and segments.json.")],
    as_of: AsOfOpt = None,
    playbook: PlaybookOpt = None,
    seed: Annotated[int, typer.Option(help="Seed of the clustering (same data and seed: same segments).")] = 0,
    response: Annotated[
        bool,
        typer.Option(
            "--response/--no-response",
            help="Fit the effect model on the history and rank segments by how they respond (takes minutes on "
            "large books).",
        ),
    ] = True,
    families: Annotated[str, typer.Option(help="What an action family is: team, objective or action.")] = "team",
    previous: Annotated[
        Path | None,
        typer.Option(
            "--previous",
            help="A previous run's segments.csv, to count the accounts that moved; default OUT/segments.csv if "
            "it exists.",
        ),
    ] = None,
    trees: Annotated[int | None, typer.Option(help="Trees of the effect model's outcome models.", min=1)] = None,
    folds: Annotated[int, typer.Option(help="Cross-fitting folds of the effect model.", min=2)] = 5,
) -> None:
    """Cluster active accounts by a year of behavior (usage, engagement, support), and show how each responds.

    The number of segments is the largest between 2 and 8 whose clustering is about as
    reproducible from random halves of the book as the most reproducible one. With --response
    (the default), an effect model fitted on the book's history projects every action for every
    account; each segment gets its response (the value of its best single action for the segment
    as a whole, with an interval) per action family, its ratio to the book's and its rank, and the
    share of the last 90 days' touches spent on below-average segments with the value of moving
    them. A best family is named only when its interval is above $0. Writes OUT/segments.csv
    (account_id, segment_id, segment) and OUT/segments.json (every figure; see docs/segments.md).
    The effect model is this command's own fit: a run's segments (its summary.json, report,
    GET /v1/segments) use the run's model, so their response figures can differ a little.
    """
    from nextmove.measure.policy import eligible_actions
    from nextmove.segment import behavior_snapshot, segment_book, signal_labels

    if families not in FAMILIES:
        raise ConfigError(f"--families must be one of {', '.join(FAMILIES)}, got {families!r}")
    out = output_folder(out)
    pb, loaded, t = load_inputs(book, playbook, as_of)
    before_path = previous if previous is not None else out / "segments.csv"
    if previous is not None and not previous.is_file():
        raise ConfigError(f"--previous {previous} is not a file")
    before = _read_previous(before_path) if before_path.is_file() else None
    with status("Computing a year of behavior and the segments…"):
        behavior = behavior_snapshot(loaded, t, playbook=pb)
        from nextmove.engine.health import active_accounts

        active = active_accounts(loaded, pb, t)
        vocab = vocabulary_of(loaded.accounts.schema, point_in_time(loaded, t), playbook=pb)
        run_snapshot = compute_features(loaded, t, playbook=pb, vocabulary=vocab).join(
            active, on="account_id", how="semi"
        )
        health = _health(pb, run_snapshot, vocab)
    projection, eligible = None, None
    notes: list[str] = []
    if response and not loaded.touches.height:
        console.print("[dim]The book has no touches: no effect model, so no response by segment.[/]")
    elif response:
        with status("Fitting the effect model on the book's history…"):
            projection = _project(loaded, pb, t, run_snapshot, seed=seed, trees=trees, folds=folds, notes=notes)
            eligible = eligible_actions(run_snapshot, pb)
    with status("Describing the segments…"):
        report = segment_book(
            behavior,
            projection=projection,
            playbook=pb,
            outcomes=loaded.outcomes,
            touches=loaded.touches,
            accounts=loaded.accounts,
            health=health,
            previous=before,
            eligible=eligible,
            as_of=t,
            families=cast("FamilyKind", families),
            seed=seed,
            notes=notes,
            labels=signal_labels(loaded, t, playbook=pb),
            active=active,
        )
    _write(out, report)
    render_segments(report, console, currency=pb.currency)
    console.print(f"Wrote [bold]{safe(out / 'segments.csv')}[/] and [bold]{safe(out / 'segments.json')}[/].")


def _read_previous(path: Path) -> pl.DataFrame:
    try:
        frame = read_csv(path, schema_overrides={"account_id": pl.String})
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise ConfigError(f"cannot read the previous segments {path}: {exc}") from None
    for column in ("account_id", "segment_id"):
        if column not in frame.columns:
            raise ConfigError(f"the previous segments {path} lack the column {column!r}")
    return frame


def _health(playbook: Playbook, snapshot: pl.DataFrame, vocab: FeatureVocabulary) -> pl.DataFrame | None:
    from nextmove.models.health import HealthScorecard

    try:
        return HealthScorecard.from_playbook(playbook, snapshot, vocab).fit(snapshot).score(snapshot)
    except ConfigError:
        # A book without the signals of any health measure: the segments go without health.
        return None


def _project(
    book: Book,
    playbook: Playbook,
    t: datetime,
    snapshot: pl.DataFrame,
    *,
    seed: int,
    trees: int | None,
    folds: int,
    notes: list[str],
) -> EffectProjection:
    """Every action's projection for the snapshot's accounts, by an effect model fitted on the book's history.

    The training set's notes (an outcome kind labelled by window although the outcomes credit it to
    touches) go to ``notes``.
    """
    from nextmove.models.effect import EffectModel
    from nextmove.models.leaks import guard_leaks

    training = build_training_set(book, playbook, as_of=t, notes=notes)
    # The training set's vocabulary: each objective reads the labels of its own outcome kind.
    params: dict[str, Any] = {
        "random_state": seed,
        "n_folds": folds,
        "variants": False,
        "vocabulary": training_vocabulary(book, playbook, as_of=t),
    }
    if trees is not None:
        params["n_estimators"] = trees
    guard = guard_leaks(book, playbook, t, params["vocabulary"])  # columns written as accounts leave: not learned
    notes.extend(guard.notes())
    return EffectModel(playbook, **guard.effect_params(params)).fit(training).project(snapshot)


def _write(out: Path, report: SegmentReport) -> None:
    """``segments.csv`` and ``segments.json`` into ``out``, both or neither (through temporary files, never left)."""
    csv_tmp = out / ".segments.csv.tmp"
    json_tmp = out / ".segments.json.tmp"
    earlier = [name for name in ("segments.csv", "segments.json") if (out / name).exists()]
    were = "is left as it was" if len(earlier) == 1 else "are left as they were"
    kept = f"{' and '.join(earlier)} in {out} {were}" if earlier else "no file was written"
    with writing(f"the segments into {out}", kept):
        out.mkdir(parents=True, exist_ok=True)
        try:
            write_csv(report.assignments.sort("account_id"), csv_tmp)
            json_tmp.write_text(json.dumps(report.to_dict(), indent=2, allow_nan=False), encoding="utf-8")
            with signals_held():  # both, a Ctrl-C or SIGTERM waiting: never a new CSV beside the old JSON
                csv_tmp.replace(out / "segments.csv")
                json_tmp.replace(out / "segments.json")
        finally:
            csv_tmp.unlink(missing_ok=True)
            json_tmp.unlink(missing_ok=True)


def response_legend(currency: str) -> str:
    """What the segment table's response columns are, with ``currency``'s zero (no dollar sign in a euro book)."""
    zero = _money(0.0, currency)
    return (
        "response: the value per account of the segment's best single action for the segment as a whole (the mean "
        f"of its projected value over the segment's accounts; {zero} when no action gains on average), with its "
        f"interval; × book: against the book's, – when the book's interval reaches {zero}; best family: named only "
        f"when its interval is above {zero} (none: no action pays reliably there)."
    )


def _book_sentence(report: SegmentReport, currency: str) -> str:
    """What the book's response is: its best single action and that action's value, or that none gains."""
    value = report.book_response_usd
    if value is None:
        return ""
    if report.book_best_action is None or value <= 0:
        return f"Book: no action gains on average over the book ({_money(0.0, currency)} per account)."
    reliable = "" if (report.book_response_low or 0.0) > 0 else ", not reliably above " + _money(0.0, currency)
    return (
        f"Book: its best single action, {safe(report.book_best_action)}, is worth {_money(value, currency)} "
        f"[{_money(report.book_response_low, currency)}, {_money(report.book_response_high, currency)}] "
        f"per account{reliable}."
    )


def spend_sentence(spend: SpendEfficiency, currency: str = DEFAULT_CURRENCY) -> str:
    """The spend efficiency in one sentence: the share of effort on below-average segments, and what moving it gains.

    A gain whose interval reaches $0 is said to be not reliable, and a move is made only to segments
    whose best action pays reliably (docs/segments.md).
    """
    text = (
        f"Last {spend.days} days: {spend.share_below_average:.0%} of {spend.touches:,} touches went to segments "
        "that respond below the book"
    )
    if spend.touches_below_average == 0:
        return text + "."
    if spend.moved_touches == 0:
        return (
            f"{text}; none is moved: no untouched account of a segment whose best action pays reliably would "
            "gain from one."
        )
    gain = f"{_money(spend.recoverable_usd, currency)} [{_money(spend.low, currency)}, {_money(spend.high, currency)}]"
    if spend.material:
        return f"{text}; moving {spend.moved_touches:,} of them would recover {gain}."
    return (
        f"{text}; moving {spend.moved_touches:,} of them is projected at {gain}, not reliably above "
        f"{_money(0.0, currency)}."
    )


def _money(x: float | None, currency: str) -> str:
    return "–" if x is None else money_text(x, currency)


def render_segments(report: SegmentReport, out: Console, *, currency: str = DEFAULT_CURRENCY) -> None:
    """Print the segments (best response first), the spend efficiency, the moves and the notes (amounts in
    ``currency``, the playbook's)."""
    out.print(
        f"{report.k} segments of {report.accounts:,} active accounts "
        f"(k by {report.criterion}: {report.stabilities.get(report.k, float('nan')):.2f})"
    )
    table = Table(show_edge=False, pad_edge=False)
    for column in ("rank", "id", "segment", "accounts", "ARR", "health", "response / acct", "× book", "best family"):
        table.add_column(column, justify="left" if column in ("segment", "best family") else "right")
    for s in report.segments:
        r = s.response
        best = r.best_family if r is not None else None
        table.add_row(
            str(r.rank) if r is not None else "",
            str(s.id),
            safe(s.name),
            f"{s.accounts:,}",
            _money(s.arr_usd, currency),
            f"{s.health:.0f}" if s.health is not None else "–",
            f"{_money(r.value_usd, currency)} [{_money(r.low, currency)}, {_money(r.high, currency)}]"
            if r is not None
            else "–",
            f"{r.ratio:.2f}" if r is not None and r.ratio is not None else "–",
            safe(f"{best.family} ({best.ratio:.1f}×)" if best.ratio is not None else best.family)
            if best is not None
            else ("none" if r is not None and r.families else "–"),  # none: no family pays reliably here
        )
    out.print(table)
    if any(s.response is not None for s in report.segments):
        out.print(f"[dim]{_book_sentence(report, currency)} {response_legend(currency)}[/]")
    if report.spend is not None:
        out.print(spend_sentence(report.spend, currency))
    if report.moves is not None and report.moves.reformed:
        m = report.moves
        out.print(
            f"Since the previous segments: the segments were re-formed ({m.segments_before} → {m.segments_after} "
            f"segments), so moves between segments are not comparable; {m.new:,} new, {m.gone:,} gone."
        )
    elif report.moves is not None:
        m = report.moves
        out.print(
            f"Since the previous segments: {m.moved:,} of {m.accounts:,} accounts moved ({m.moved_share:.1%}); "
            f"{m.new:,} new, {m.gone:,} gone."
        )
    for note in report.notes:
        out.print(f"[yellow]note:[/] {safe(note, lines=True)}")
