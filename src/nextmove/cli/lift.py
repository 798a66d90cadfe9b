"""``nextmove lift``: the lift of a run's recommended cohort over its control cohort, once the horizon passed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import polars as pl
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from nextmove.cli._common import (
    STORE_DEFAULT,
    console,
    err_console,
    handle_errors,
    open_store,
    output_file,
    parse_until,
    status,
)
from nextmove.cli.commands import BookOpt, PlaybookOpt, load_inputs, resolve_playbook_path
from nextmove.cli.evaluate import write_json
from nextmove.errors import ConfigError, NotFoundError
from nextmove.playbook import Playbook
from nextmove.playbook.loader import load_playbook
from nextmove.playbook.money import DEFAULT_CURRENCY, currency_unit, money_text

if TYPE_CHECKING:
    from nextmove.measure.completion import Completion
    from nextmove.measure.lift import ActionAccuracy, HorizonNotOverError, LiftReport
    from nextmove.store import RunRecord, Store

LiftUntilOpt = Annotated[
    str | None,
    typer.Option(
        "--until",
        help="How far the outcomes are known (ISO 8601): outcomes up to then count; a date is that whole day, as "
        "in run's --outcomes-until. Default: the midnight (UTC) after the book's latest data (for a table of "
        "dates, after its last date), as a run on the book reads it.",
    ),
]


def register(app: typer.Typer) -> None:
    """Add ``lift`` to ``app``."""
    app.command("lift")(lift_cmd)


@handle_errors
def lift_cmd(
    book: BookOpt,
    playbook: PlaybookOpt = None,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            help=f"Store URL to read the run from; {STORE_DEFAULT}.",
        ),
    ] = None,
    run: Annotated[
        str | None,
        typer.Option("--run", help="The run to measure; default: the latest succeeded run of this book."),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="JSON file to write with every figure.")] = None,
    until: LiftUntilOpt = None,
    partial: Annotated[
        bool, typer.Option("--partial", help="Measure before the horizon has passed (what has been seen so far).")
    ] = False,
    level: Annotated[float, typer.Option(help="Confidence level of the intervals.")] = 0.95,
) -> None:
    """Measure a run: lift of the recommended cohort over control per objective, dollars, and per-action accuracy.

    Reads the run's recommendations (with their arms and evidence) from the store and the outcomes
    that followed the run's as-of within the playbook's horizon from the book. Per objective: the
    recommended (model and explore arms) and control cohorts' outcome rates, the lift with its
    interval and its dollars (intention to treat: every account counts, its play done or not);
    then each action's realised effect against the effect projected for it; then completion: per
    arm and recommended action, how many plays were done (a touch of the action in the book, or
    done feedback), dismissed, snoozed or neither in the horizon, and the median days to done.
    """
    from nextmove.book import as_of_of_reach
    from nextmove.book.notes import is_lagging_outcomes_note
    from nextmove.engine.holds import completion_feedback
    from nextmove.measure.lift import (
        HorizonNotOverError,
        account_overlap,
        check_horizon,
        estimate_lift,
        known_until,
        stored_recommendations_frame,
        with_overlap_note,
        with_playbook_note,
    )

    if out is not None and out.suffix != ".json":
        raise ConfigError(f"--out {out} must end in .json")
    if out is not None:
        out = output_file(out)
    observed = parse_until(until)
    # The playbook first: a weekly export in a sibling folder is the same book under the same playbook.
    read = load_playbook(resolve_playbook_path(book, playbook))
    playbook_hash = read.content_hash()
    with open_store(store, existing=True) as opened:
        record = find_run(opened, run, book=book, playbook_hash=playbook_hash)
        stored = opened.list_runs(limit=_RUNS_SEARCHED, status="succeeded")
        # Before the run's recommendations are read and the book loaded (8 s and 49 s for 300,000
        # subscribers): a run whose horizon has not passed where the book's times end is said at once.
        latest = None if observed is not None else book_times_reach(book)
        reach = observed if observed is not None else None if latest is None else as_of_of_reach(latest)
        if reach is not None:
            try:
                check_horizon(
                    record.as_of or _no_as_of(record),
                    reach,
                    read.horizon_days,
                    allow_partial=partial,
                    who=f"run {record.run_id}",
                    given=observed is not None,
                    latest=latest,
                )
            except HorizonNotOverError as exc:
                raise _not_over(exc, run, stored, book, read.horizon_days, reach, playbook_hash) from None
        # What lift reads of each recommendation, never its whole receipt (signals, comparables, runner-ups).
        frame = stored_recommendations_frame(opened, record.run_id)
        decided = record.as_of or _no_as_of(record)
        feedback = completion_feedback(opened, decided, decided + timedelta(days=read.horizon_days))
        overlap = account_overlap(opened, record, stored, read.horizon_days)
    if frame.is_empty():
        raise NotFoundError(f"run {record.run_id} has no recommendations to measure")
    # Loading's note on outcomes that lag is about learning; the lift says it for a measure (its notes).
    pb, loaded, _ = load_inputs(book, playbook, None, hide=is_lagging_outcomes_note)
    if not _same_book(record.book_source, book):
        warn_other_accounts(record, book, frame, loaded.accounts.get_column("account_id"))
    with status(f"Measuring run {escape(record.run_id)}…"):
        try:
            report = estimate_lift(
                frame,
                loaded,
                pb,
                as_of=record.as_of or _no_as_of(record),
                observed_until=observed,
                level=level,
                allow_partial=partial,
                run_id=record.run_id,
                feedback=feedback,
            )
        except HorizonNotOverError as exc:
            reach = observed if observed is not None else known_until(loaded)
            raise _not_over(exc, run, stored, book, pb.horizon_days, reach, playbook_hash) from None
    # Notes, not warnings: the JSON file and GET /v1/lift carry them too.
    report = with_playbook_note(report, record, pb, frame.get_column("action_id").unique().to_list())
    report = with_overlap_note(report, record, stored, overlap)
    render_lift(report, console, pb)
    if out is not None:
        write_json(out, report.to_dict())
        console.print(f"Wrote [bold]{escape(str(out))}[/].")


def _not_over(
    exc: HorizonNotOverError,
    run: str | None,
    stored: Sequence[RunRecord],
    book: str,
    horizon_days: int,
    reach: datetime,
    playbook_hash: str,
) -> HorizonNotOverError:
    """The refusal to measure a run whose horizon has not passed, in the command's words.

    Without --run (the book's latest run), it names the newest run of the book that can be measured, if any.
    """
    from nextmove.measure.lift import HorizonNotOverError

    words = cli_words(str(exc))
    if run is None:
        found = measurable_run_words(stored, book, horizon_days, reach, playbook_hash=playbook_hash)
        words = f"{words.rstrip('.')}. {found}"
    return HorizonNotOverError(words, days_left=exc.days_left, ends_at=exc.ends_at)


def book_times_reach(book: str) -> datetime | None:
    """How far a book folder's data reaches (:func:`~nextmove.book.data_reach`), from its tables' times alone.

    What loading the book and :func:`~nextmove.measure.lift.latest_data_time` give, in a fraction of
    the time: only the ``ts`` column of the signals, touches and outcomes is read, each distinct text
    parsed once, as loading parses it; rows after now are left out, as loading leaves them out; a
    table of dates reaches the midnight after its last date. None for a database, or when the times
    cannot be read so (the book's validation then says why, as it loads it).
    """
    from nextmove.book import CONTRACT, are_dates, reach_of
    from nextmove.book.parse import parse_column
    from nextmove.book.validate import discover
    from nextmove.errors import NextmoveError

    if "://" in book:
        return None  # a database is read whole, whatever is asked of it: loading it once is enough
    now = datetime.now(UTC)
    reaches = []
    try:
        found = discover(book)
        for name in ("signals", "touches", "outcomes"):
            src = found.tables.get(name)
            if src is None:
                continue
            raw = src.scan()
            schema = raw.collect_schema()
            column = next((c for c in schema.names() if c.strip() == "ts"), None)
            if column is None:
                return None
            spec = CONTRACT[name].column("ts")
            ts = parse_column(column, spec.type, schema[column], tokens_missing=not spec.required)
            times = (
                raw.group_by(pl.col(column))
                .len()
                .select(ts.alias("ts"), pl.col("len"))
                .filter(pl.col("ts") <= now)
                .collect(engine="streaming")
            )
            latest = times.get_column("ts").max()
            if not isinstance(latest, datetime):
                continue
            midnight = pl.col("ts") == pl.col("ts").dt.truncate("1d")
            midnights = int(times.filter(midnight).get_column("len").sum())
            reaches.append(reach_of(latest, dates=are_dates(midnights, int(times.get_column("len").sum()))))
    except (NextmoveError, OSError, pl.exceptions.PolarsError):
        return None
    return max(reaches) if reaches else None


_PYTHON_NAMES = {"observed_until (--until)": "--until", "allow_partial (--partial)": "--partial"}


def cli_words(text: str) -> str:
    """``text`` (a lift note or error, which names both spellings) with the command's options alone.

    Examples
    --------
    >>> cli_words("pass observed_until (--until) 2026-01-12 with allow_partial (--partial)")
    'pass --until 2026-01-12 with --partial'
    """
    for python, option in _PYTHON_NAMES.items():
        text = text.replace(python, option)
    return text


def warn_other_accounts(record: RunRecord, book: str, recs: pl.DataFrame, accounts: pl.Series) -> None:
    """Warn that ``record``, made on another book than ``book``, has accounts this book lacks; nothing if it has none.

    A weekly export in a new folder holds the same accounts: measuring last week's run on it is
    what lift is for. Only accounts of both are measured, so a run of another book is worth a
    warning when some of its accounts are not in this one.
    """
    ids = recs.get_column("account_id")
    missing = int((~ids.is_in(accounts.implode())).sum())
    if missing:
        err_console.print(
            f"[yellow]warning:[/] run {escape(record.run_id)} was made on the book {escape(record.book_source)}, "
            f"not {escape(_book_shown(book))}: {missing:,} of its {ids.len():,} accounts are not in this book; "
            "only the accounts of both are measured."
        )


def find_run(
    store: Store, run_id: str | None, *, book: str | None = None, playbook_hash: str | None = None
) -> RunRecord:
    """The run to measure: ``run_id``, else the latest succeeded run (of ``book``, when given), with an ``as_of``.

    A store may hold the runs of several books; measuring one book's run against another's
    outcomes finds no account in common, so without ``run_id`` only the runs of ``book`` count:
    the same folder or source, or with ``playbook_hash`` (the playbook ``book`` is read under)
    a weekly export in a sibling folder under the same playbook of its own
    (:func:`~nextmove.store.same_book`).

    Raises
    ------
    NotFoundError
        If there is no such run, or the store holds no succeeded run (of the book).
    RunNotSucceededError
        If the run has not succeeded: its status and why (a ``running`` run whose process has ended
        will never finish).
    ConfigError
        If the run has no ``as_of``.
    """
    from nextmove.engine.run_process import require_succeeded

    if run_id is None:
        runs = store.list_runs(limit=_RUNS_SEARCHED, status="succeeded")
        if not runs:
            raise NotFoundError(
                f"the store {store.url} holds no succeeded run to measure; make one with `nextmove run` "
                "(or point --store at the store that holds it)"
            )
        found = next((r for r in runs if book is None or _of_book(r, book, playbook_hash)), None)
        if found is None:
            others = "; ".join(f"{r.run_id} (book {r.book_source})" for r in runs[:3])
            raise NotFoundError(
                f"no succeeded run of the book {_book_shown(book or '')} among the store's latest runs ({others}); "
                "give --run to measure one of them, or run `nextmove run` on this book"
            )
    else:
        try:
            found = store.get_run(run_id)
        except NotFoundError:
            recent = ", ".join(r.run_id for r in store.list_runs(limit=5)) or "none"
            raise NotFoundError(f"no run {run_id!r} in the store {store.url}; latest runs: {recent}") from None
        require_succeeded(found, "only a succeeded run's decisions can be measured")
    if found.as_of is None:
        _no_as_of(found)
    return found


_RUNS_SEARCHED = 200
"""How many of the latest succeeded runs ``find_run`` looks through for the book's own."""


def measurable_run_words(
    stored: Sequence[RunRecord], book: str, horizon_days: int, reach: datetime, *, playbook_hash: str | None = None
) -> str:
    """Which run of ``book`` to measure instead of its latest: the newest whose horizon ends by ``reach``.

    ``stored`` are the store's succeeded runs, newest first; ``reach`` is how far the outcomes are
    known (the book's data, or ``--until``); the runs of ``book`` are those :func:`find_run` takes.
    The newest is the one decided last (of those decided together, the one made last): a backtest
    made today of an old date is not the newest.

    Examples
    --------
    >>> from datetime import UTC
    >>> from nextmove.store import RunRecord
    >>> def made(run_id, day):
    ...     return RunRecord(run_id=run_id, book_source="crm", playbook_hash="h", status="succeeded",
    ...                      as_of=datetime(2025, 5, day, tzinfo=UTC))
    >>> runs = [made("w02", 19), made("w01", 12), made("w00", 5)]
    >>> measurable_run_words(runs, "crm", 14, datetime(2025, 5, 27, tzinfo=UTC))
    'The newest run of this book whose horizon has passed is w01 (decided 2025-05-12): measure it with --run w01.'
    >>> measurable_run_words(runs, "crm", 28, datetime(2025, 5, 27, tzinfo=UTC))
    'No run of this book in the store has its horizon passed yet.'
    """
    over = [
        r
        for r in stored
        if r.as_of is not None and r.as_of + timedelta(days=horizon_days) <= reach and _of_book(r, book, playbook_hash)
    ]
    if not over:
        return "No run of this book in the store has its horizon passed yet."
    found = max(over, key=lambda r: r.as_of or reach)  # the latest decided; of those, the newest made (first)
    return (
        f"The newest run of this book whose horizon has passed is {found.run_id} "
        f"(decided {found.as_of or reach:%Y-%m-%d}): measure it with --run {found.run_id}."
    )


def _book_shown(book: str) -> str:
    """``--book`` as a run records its source: a database URL with its passwords hidden, else as given."""
    from nextmove._urls import mask_url

    return mask_url(book)


def _same_book(source: str, book: str) -> bool:
    """Whether a run's ``book_source`` is ``book``: the same text (a URL's password hidden, as the run
    records it), or the same folder or file on this machine."""
    if source in (book, _book_shown(book)):
        return True
    try:
        return Path(source).resolve() == Path(book).resolve()
    except (OSError, ValueError):
        return False


def _of_book(run: RunRecord, book: str, playbook_hash: str | None) -> bool:
    """Whether ``run`` is of ``book``: its source (:func:`_same_book`), or, with the hash of the playbook
    ``book`` is read under, a weekly export of the same book in a sibling folder (:func:`~nextmove.store.same_book`)."""
    if _same_book(run.book_source, book):
        return True
    if playbook_hash is None:
        return False
    from nextmove.store import RunRecord, recorded_source, same_book

    return same_book(run, RunRecord(run_id="", book_source=recorded_source(book), playbook_hash=playbook_hash))


def _no_as_of(record: RunRecord) -> datetime:
    raise ConfigError(f"run {record.run_id} has no as_of: its decision time is unknown, so its horizon is too")


def _pct(x: float | None) -> str:
    return "—" if x is None or x != x else f"{x:.1%}"


def _points(x: float | None) -> str:
    return "—" if x is None or x != x else f"{x * 100:+.2f} pts"


def _money(x: float | None, currency: str, *, signed: bool = False) -> str:
    """An amount as the receipts write it (:func:`~nextmove.playbook.money.money_text`), or a dash when missing."""
    return "—" if x is None or x != x else money_text(x, currency, signed=signed)


def _effect(x: float | None, unit: str, currency: str) -> str:
    return _points(x) if unit == "probability" else _money(x, currency, signed=True)


def _interval(low: float | None, high: float | None, unit: str, currency: str) -> str:
    if low is None or high is None:
        return "—"
    return f"[{_effect(low, unit, currency)}, {_effect(high, unit, currency)}]"


def _impact(x: float, low: float | None, high: float | None, currency: str) -> str:
    """The impact with its interval, or saying there is none (the report's notes say why).

    A difference, signed as every difference of the tables is (the lift, its interval, the amount per
    account): ``+$12,303,517 [-$39,401,533, +$64,008,567]``; only levels (a cohort's mean) go unsigned.
    """
    if low is None or high is None:
        return f"{_money(x, currency, signed=True)} (no interval)"
    signed = partial(_money, currency=currency, signed=True)
    return f"{signed(x)} [{signed(low)}, {signed(high)}]"


def _through(end: datetime) -> str:
    """The last day (or time) a window ending at ``end`` counts: a window ending at a midnight ends the day before.

    Examples
    --------
    >>> from datetime import UTC
    >>> _through(datetime(2025, 5, 31, tzinfo=UTC)), _through(datetime(2025, 5, 20, 14, 5, tzinfo=UTC))
    ('through 2025-05-30', 'to 2025-05-20 14:05 UTC')
    """
    if end == end.replace(hour=0, minute=0, second=0, microsecond=0):
        return f"through {end - timedelta(days=1):%Y-%m-%d}"
    return f"to {end:%Y-%m-%d %H:%M} UTC"


def render_lift(report: LiftReport, out: Console, playbook: Playbook | None = None) -> None:
    """Print the cohorts, the lift per objective, the dollar impact and the per-action accuracy.

    With ``playbook``, the per-action table shows each action's own objective (and any other it was
    projected to move), and amounts are in its ``currency`` (else USD); the JSON report keeps every
    action and objective.
    """
    currency = playbook.currency if playbook is not None else DEFAULT_CURRENCY
    arms = ", ".join(f"{escape(arm)} {n:,}" for arm, n in report.arms.items())
    seen = "" if report.complete else f" [yellow](partial: {report.observed_days:.0f} days seen)[/]"
    end = min(report.observed_until, report.as_of + timedelta(days=report.horizon_days))
    out.print(
        f"Run [bold]{escape(report.run_id or '')}[/] decided {report.as_of:%Y-%m-%d}; outcomes over "
        f"{report.horizon_days} days {_through(end)}{seen}. Accounts: {arms}."
    )
    for reason, n in report.left_out.items():
        out.print(f"  {n:,} recommendation(s) not measured: {escape(reason)}")
    for note in report.notes:
        out.print(f"  [yellow]note:[/] {escape(cli_words(note))}")
    table = Table(
        title=f"Lift of the recommended cohort over control ({report.level:.0%} intervals; {report.estimand})",
        title_justify="left",
        caption=_itt_caption(report),
        caption_justify="left",
    )
    per_account = f"{currency_unit(currency)} / account"
    for name in ("objective", "outcome", "recommended", "control", "lift", "interval", per_account, "impact"):
        table.add_column(name, justify="left" if name in ("objective", "outcome") else "right")
    for o in report.objectives:
        rate = _pct if o.unit == "probability" else partial(_money, currency=currency)
        table.add_row(
            escape(o.objective),
            escape(o.outcome),
            rate(o.treated_mean),
            rate(o.control_mean),
            _effect(o.lift, o.unit, currency),
            _interval(o.low, o.high, o.unit, currency),
            _money(o.lift_usd, currency, signed=True),
            _impact(o.impact_usd, o.impact_low_usd, o.impact_high_usd, currency),
        )
    v = report.value
    table.add_row(
        "[bold]total value[/]",
        "net of cost",
        _money(v.treated_mean_usd, currency),
        _money(v.control_mean_usd, currency),
        _effect(v.lift_usd, "usd", currency),
        _interval(v.low, v.high, "usd", currency),
        _money(v.lift_usd, currency, signed=True),
        _impact(v.impact_usd, v.impact_low_usd, v.impact_high_usd, currency),
    )
    out.print(table)
    own = {a.id: a.objective for a in playbook.actions} if playbook is not None else {}
    if any(_shown(a, own) for a in report.actions):
        out.print(_actions_table(report.actions, own, currency))
    if report.completion is not None and any(c.recommended for c in report.completion.arms):
        out.print(_completion_table(report.completion))
        for note in report.completion.notes:
            out.print(f"  [yellow]note:[/] {escape(note)}")


def _itt_caption(report: LiftReport) -> str | None:
    """What the lift compares, and how many of the plays were done (the completion rate beside the lift)."""
    c = report.completion
    if c is None:
        return None
    done = (
        f"plays done: recommended {_pct(c.recommended.completion_rate)} ({c.recommended.done:,} of "
        f"{c.recommended.recommended:,}), control {_pct(c.control.completion_rate)} ({c.control.done:,} of "
        f"{c.control.recommended:,})"
    )
    return f"{report.estimand}: every account counts, its recommended play done or not; {done}"


def _completion_table(completion: Completion) -> Table:
    sources = "touches in the book and feedback" if completion.feedback_read else "touches in the book"
    end = _through(completion.window_end)
    table = Table(
        title=f"Completion of the recommended plays ({sources}, {completion.window_start:%Y-%m-%d} {end})",
        title_justify="left",
        caption="done: a touch of the action (any status) or done feedback; each recommendation counted once, "
        "done before dismissed before snoozed"
        + (
            "; recommendations of none (no play) not counted: "
            + ", ".join(f"{escape(arm)} {n:,}" for arm, n in completion.no_play.items())
            if completion.no_play
            else ""
        ),
        caption_justify="left",
    )
    columns = ("arm", "action", "recommended", "done", "rate", "median days", "dismissed", "snoozed", "neither")
    for name in columns:
        table.add_column(name, justify="left" if name in ("arm", "action") else "right")
    for c in completion.arms:
        whole = c.action_id is None
        table.add_row(
            f"[bold]{escape(c.arm)}[/]" if whole else "",
            "all" if whole else escape(c.action_id or ""),
            f"{c.recommended:,}",
            f"{c.done:,}",
            _pct(c.completion_rate),
            "—" if c.median_days_to_done is None else f"{c.median_days_to_done:.1f}",
            f"{c.dismissed:,}",
            f"{c.snoozed:,}",
            f"{c.neither:,}",
        )
    return table


def _shown(a: ActionAccuracy, own: Mapping[str, str]) -> bool:
    """Rows worth a line: both groups measured, on the action's own objective or one it was projected to move."""
    if not a.treated_accounts or not a.control_accounts:
        return False
    return own.get(a.action_id) == a.objective or bool(a.projected_effect)


def _actions_table(actions: list[ActionAccuracy], own: Mapping[str, str], currency: str = DEFAULT_CURRENCY) -> Table:
    table = Table(
        title="Per action: realised effect (against what control got) vs projected (against doing nothing)",
        title_justify="left",
        caption="treated: recommended the action; control: the model chose it for them; "
        "left alone: share of control that got nothing (a default of none, or a default the rules or "
        "capacity did not allow); where it is 100%, realised and projected are both against doing nothing",
        caption_justify="left",
    )
    columns = ("action", "objective", "treated", "control", "left alone", "realised", "interval", "projected", "in")
    for name in columns:
        table.add_column(name, justify="left" if name in ("action", "objective") else "right")
    for a in actions:
        if not _shown(a, own):
            continue
        table.add_row(
            escape(a.action_id),
            escape(a.objective),
            f"{a.treated_accounts:,}",
            f"{a.control_accounts:,}",
            _pct(a.control_none_share),
            _effect(a.realised_effect, a.unit, currency),
            _interval(a.low, a.high, a.unit, currency),
            _effect(a.projected_effect, a.unit, currency),
            "—" if a.within_interval is None else ("yes" if a.within_interval else "[red]no[/]"),
        )
    return table
