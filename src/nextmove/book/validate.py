"""Validation of a book against the data contract, streaming over large tables, and typed loading.

Every problem is collected (not only the first) and located by table, file, row and column.
Large tables are checked by Polars' streaming engine: the raw rows are never all in memory at
once, and never one Python object per row.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import polars as pl

from nextmove.book.contract import CONTRACT, NO_ACTION, ColumnSpec, ColumnType, TableSpec
from nextmove.book.database import discover_database
from nextmove.book.lifetime import gone_at_lazy, latest_start, stages_read_at, terminal_outcome_kinds
from nextmove.book.model import (
    Book,
    are_dates,
    as_of_of_reach,
    as_utc,
    bulk_end_of,
    data_reach,
    default_as_of,
    empty_table,
    extra_kind,
    is_backtest_at,
    reach_of,
)
from nextmove.book.nfc import nfc_clashes, nfc_text, nfc_twins, twin_note, twin_of
from nextmove.book.notes import (
    DUPLICATE_SHARE,
    FAR_LATEST_DAYS,
    FAR_LATEST_ROWS,
    TableSpan,
    duplicate_columns,
    duplicate_rows_note,
    far_days,
    far_latest_note,
    far_latest_rows,
    lagging_notes,
    mixed_times_note,
    row_hash,
    table_span,
    written_dates_note,
)
from nextmove.book.parse import (
    decimal_comma_hint,
    decimal_commas,
    epoch_number,
    infer_extra_column,
    is_category,
    is_missing_text,
    looks_like_thousands,
    no_such_date,
    non_finite_extra,
    non_numbers,
    parse_column,
    short_year,
    thousands_dot_flags,
    thousands_dot_hint,
    thousands_dots,
)
from nextmove.book.problems import Problem, Rule, TableSummary, ValidationReport
from nextmove.book.sources import (
    DiscoveredBook,
    ShortRows,
    TableSource,
    changed_message,
    csv_header,
    discover_folder,
    discover_frames,
    locate_csv_error,
    short_csv_rows,
    short_row_message,
)
from nextmove.errors import BookError, ConfigError
from nextmove.playbook.loader import toml_string
from nextmove.playbook.money import money_text
from nextmove.playbook.schema import Playbook, ValueBasis

BookSource = str | Path | Mapping[str, pl.DataFrame | pl.LazyFrame]
"""A folder path, a database URL (``sqlite:///book.db``, ``postgresql+psycopg://…``), or frames by table name."""

DEFAULT_MAX_EXAMPLES = 1000
STALE_AS_OF_DAYS = 28
"""A decision time this many days or more after a book's latest row gets a note: by then every account's
7- and 28-day feature windows (the 28-day one is the health scorecard's default) are empty, and two of the
playbook's default 14-day decision windows have passed without a row, so plays made meanwhile are unknown
to the cooldowns and the in-flight limit as well."""
_ROW = "__row"
_BLANK = "__blank_row"
_UNNAMED = "__unnamed_"
"""Prefix of a column whose header cell is empty, followed by its position (1 = the first column)."""
_PANDAS_INDEX = re.compile(r"__index_level_\d+__")


def _parsed(name: str) -> str:
    return f"__p_{name}"


@dataclass(frozen=True)
class _Check:
    rule: Rule
    column: str
    flag: pl.Expr
    expected: str


@dataclass
class _Context:
    as_of: datetime
    run_as_of: datetime | None
    given_as_of: bool
    """True when the caller gave ``as_of``: rows after it are errors. Else it is now, and later rows are noted."""
    playbook: Playbook | None
    max_examples: int
    account_ids: pl.Series | None = None
    touch_ids: pl.Series | None = None
    id_files: dict[str, str] = field(default_factory=dict)
    """The file (or table) each table of ids referred to was read from, to name it: ``accounts.csv``."""
    _twins: dict[str, dict[str, str]] = field(default_factory=dict)
    unreadable: set[str] = field(default_factory=set)
    present_tables: set[str] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)
    counts: dict[tuple[Rule, str, str | None], int] = field(default_factory=dict)
    summaries: dict[str, TableSummary] = field(default_factory=dict)
    group_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    owners: frozenset[str] | None = None
    """The accounts' owners, read only for a playbook with ``owner_hours`` (None: not read)."""
    notes: list[str] = field(default_factory=list)
    later_counts: dict[str, int] = field(default_factory=dict)
    spans: dict[str, TableSpan | None] = field(default_factory=dict)
    """Each table with times: its first time, how far it reaches, how many rows (:mod:`nextmove.book.notes`)."""
    account_ends: list[pl.DataFrame] = field(default_factory=list)
    """``account_id, ts``: each account's latest time in a table (read only with ``run_as_of``)."""
    latest_probes: dict[str, _LatestProbe] = field(default_factory=dict)

    @property
    def kept_until(self) -> datetime:
        """The latest time of a row :func:`load_book` keeps (:func:`kept_until`): the times' notes read only those."""
        return kept_until(self.as_of, self.run_as_of)

    def twin_note(self, table: str, value: str) -> str | None:
        """What to say of an unknown id ``value`` of ``table`` when a known one differs from it only by its form."""
        if table not in self._twins:
            ids = self.account_ids if table == "accounts" else self.touch_ids
            self._twins[table] = {} if ids is None else nfc_twins(ids)
        known = twin_of(value, self._twins[table])
        return None if known is None else twin_note(value, known, f"in {self.id_files.get(table, table)}")

    def add(self, problem: Problem, count: int = 1) -> None:
        self.problems.append(problem)
        key = (problem.rule, problem.table, problem.column)
        self.counts[key] = self.counts.get(key, 0) + count


def discover(source: BookSource | DiscoveredBook) -> DiscoveredBook:
    """Find the tables of ``source`` (folder, database URL, or frames by name); a book found already is itself."""
    if isinstance(source, DiscoveredBook):
        return source
    if isinstance(source, Mapping):
        return discover_frames(dict(source))
    text = str(source)
    if "://" in text:
        return discover_database(text)
    return discover_folder(Path(source))


def validate_book(
    source: BookSource,
    *,
    playbook: Playbook | None = None,
    as_of: datetime | date | None = None,
    run_as_of: datetime | date | None = None,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
) -> ValidationReport:
    """Check a book against the data contract and summarise it, without raising on bad data.

    A valid book can still be read wrong, and ``notes`` say where (:mod:`nextmove.book.notes`): rows
    that repeat another (a double export), a table's latest rows far after the rest of it (a year
    typed wrong), outcomes that are dates with a few times of day, touches or outcomes written as dates
    alone among times, and a touch log or outcomes that end well before the rest of the data.

    Parameters
    ----------
    source
        A folder of CSV/Parquet files, a database URL, or a mapping of table name to frame (a Polars
        frame, or a pandas one: converted by ``pl.from_pandas``).
    playbook
        When given, every ``touches.action_id`` must be in its catalog (or ``none``), and a valid
        book's ``notes`` end with what it lacks for the playbook (:func:`playbook_fit_notes`), as
        ``nextmove validate`` says. ``nextmove validate`` also notes what needs the features or the
        whole book loaded: ``[signal_roles]`` names that are no signal of the book and health
        measures left out (``nextmove.models.health``), and accounts active after their terminal
        outcome (:func:`returned_accounts_notes`).
    as_of
        The time the book is as of: no timestamp may lie after it (an ``after_as_of`` problem). Naive
        values are taken as UTC, a date as its midnight UTC. Default: now, and rows dated after now are
        no problem but a note per table (a scheduled touch, or local times written without an offset):
        :func:`load_book` leaves them out until their time comes.
    run_as_of
        The time a run will read the book as of (``nextmove validate --as-of``). Rows after it are no
        problem, since the run leaves them out (a backtest): a note counts them per table. A note
        also says when it lies :data:`STALE_AS_OF_DAYS` or more after the book's latest row (or where
        most of the data ends, :func:`stale_as_of_note`), and the notes on a touch log or outcomes
        that stop early are as of it.
    max_examples
        At most this many offending rows are listed per table; counts stay complete.

    Returns
    -------
    ValidationReport
        ``report.ok`` is True when there is no problem; ``report.problems`` lists them.

    Raises
    ------
    BookError
        Only when the source itself cannot be found or opened (no such folder, bad URL), or a frame
        is of no kind nextmove reads.
    ConfigError
        If ``as_of`` or ``run_as_of`` is neither a datetime nor a date.

    Examples
    --------
    >>> frames = {"accounts": pl.DataFrame({"account_id": ["a1", "a1"], "arr": ["10", "-3"]})}
    >>> report = validate_book(frames, as_of=datetime(2025, 1, 1))
    >>> [p.rule.value for p in report.problems]
    ['negative', 'duplicate_key']
    """
    return _validate(source, playbook=playbook, as_of=as_of, run_as_of=run_as_of, max_examples=max_examples)[0]


def validate_tables(
    source: BookSource,
    *,
    playbook: Playbook | None = None,
    as_of: datetime | date | None = None,
    run_as_of: datetime | date | None = None,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
) -> tuple[ValidationReport, DiscoveredBook]:
    """:func:`validate_book`, and the tables it read: to read the book again as it was validated.

    Pass the :class:`~nextmove.book.sources.DiscoveredBook` to :func:`load_table`, :func:`scan_table` or
    :func:`returned_accounts_notes` in an :func:`as_validated` block: a database's tables are not queried
    again, and a file that changed since validation first read it (an export moved into place) is
    refused, not read unchecked.
    """
    return _validate(source, playbook=playbook, as_of=as_of, run_as_of=run_as_of, max_examples=max_examples)


@contextmanager
def as_validated(found: DiscoveredBook) -> Iterator[None]:
    """A block that reads again the tables of ``found`` (:func:`validate_tables`): what it read is what was validated.

    At its end, a file no longer what it was when first read raises; so does a read that failed
    within it because its file changed (a file replaced by a malformed one), saying so rather than
    how reading failed.

    Raises
    ------
    BookError
        If a file changed while it was read: run again when the export has finished.
    """
    try:
        yield
    except (BookError, pl.exceptions.PolarsError):
        _refuse_changed(found)  # a file that changed is what to say, not what reading it met
        raise
    _refuse_changed(found)


def _validate(
    source: BookSource,
    *,
    playbook: Playbook | None,
    as_of: datetime | date | None,
    run_as_of: datetime | date | None,
    max_examples: int,
) -> tuple[ValidationReport, DiscoveredBook]:
    """:func:`validate_book`, and the tables it read: :func:`load_book` loads those, not others found anew."""
    run_utc = None if run_as_of is None else _as_utc(run_as_of, "run_as_of")
    as_of_utc = _as_utc(as_of)
    found = discover(source)
    ctx = _Context(
        as_of=as_of_utc, run_as_of=run_utc, given_as_of=as_of is not None, playbook=playbook, max_examples=max_examples
    )
    for problem in found.problems:
        ctx.add(problem)
        ctx.unreadable.add(problem.table)
    ctx.notes += found.notes
    ctx.present_tables = set(found.tables)
    for name in ("accounts", "touches", "signals", "outcomes"):
        src = found.tables.get(name)
        if src is not None:
            start = len(ctx.problems)
            _check_table(src, CONTRACT[name], ctx)
            # Within a table, list problems in file order, as a person fixing the file reads it.
            ctx.problems[start:] = sorted(ctx.problems[start:], key=lambda p: p.row or 0)
    _far_latest_notes(ctx)
    reached = [span.reach for span in ctx.spans.values() if span is not None]
    if reached:
        ctx.notes += lagging_notes(ctx.spans, run_utc if run_utc is not None else max(reached), _horizon(playbook))
    if run_utc is not None:
        ctx.notes += _run_as_of_notes(ctx, run_utc)
    # A file written to or replaced while it was read (an export still running) was read as two
    # versions, and what is said of it holds for neither.
    for src in found.changed():
        ctx.add(Problem(Rule.UNREADABLE_FILE, src.table, src.label, _CHANGED))
    report = ValidationReport(
        source=found.source,
        as_of=as_of_utc,
        problems=ctx.problems,
        problem_counts=ctx.counts,
        tables=ctx.summaries,
        signal_counts=ctx.group_counts.get("signals", {}),
        action_counts=ctx.group_counts.get("touches", {}),
        outcome_counts=ctx.group_counts.get("outcomes", {}),
        stage_counts=ctx.group_counts.get("accounts", {}),
        owners=ctx.owners,
        notes=ctx.notes,
    )
    if playbook is not None and report.ok:
        report.notes.extend(playbook_fit_notes(report, playbook))
    return report, found


_CHANGED = (
    "a file that stays as it is while it is read; it changed while it was read (an export still writing it, "
    "or another file moved into its place): run again when the export has finished"
)


def kept_until(as_of: datetime, run_as_of: datetime | None) -> datetime:
    """The latest time of a signal, touch or outcome a loaded book keeps: ``as_of`` (the book's, or now), or
    ``run_as_of`` when later (a run as of a later time reads the rows up to it).

    Rows after it have not happened yet (a scheduled touch): :func:`load_book` leaves them out, and
    ``validate`` reads the times of the rest alone (how far each table reaches, its latest rows, where
    each account ends), so the notes it gives on them are those a run gives. With ``as_of`` given, a
    row after it is an error, not left out.

    Examples
    --------
    >>> now = datetime(2025, 4, 1, tzinfo=UTC)
    >>> kept_until(now, None).date(), kept_until(now, datetime(2025, 6, 1, tzinfo=UTC)).date()
    (datetime.date(2025, 4, 1), datetime.date(2025, 6, 1))
    """
    return as_utc(as_of) if run_as_of is None else max(as_utc(as_of), as_utc(run_as_of))


def _future_note(label: str, count: int, first_row: int, first_ts: datetime, now: datetime) -> str:
    """The note on a table's rows dated after now: not errors, but not history yet either."""
    return (
        f"{label}: {count:,} row(s) are dated after now ({now:%Y-%m-%d %H:%M} UTC; the first: row {first_row}, "
        f"{as_utc(first_ts):%Y-%m-%d %H:%M} UTC): they have not happened yet (scheduled?), so a run leaves them "
        "out until their time; naive times are read as UTC, so local times written without an offset can "
        "look ahead: add the offset (+02:00) if so"
    )


def _run_as_of_notes(ctx: _Context, run_as_of: datetime) -> list[str]:
    """What a run as of ``run_as_of`` leaves out of the book, and whether the book ends long before it."""
    notes = []
    later = {name: n for name, n in ctx.later_counts.items() if n}
    if later:
        counted = ", ".join(f"{n:,} {name} row(s)" for name, n in later.items())
        notes.append(
            f"{counted} are after --as-of {run_as_of:%Y-%m-%d %H:%M} UTC: a run at that time ignores them "
            "(a backtest), so they are left out here too, not errors"
        )
    stamps = [as_utc(p.hi) for p in ctx.latest_probes.values() if p.hi is not None]  # of the rows a run keeps
    latest = max(stamps) if stamps else None
    if (note := stale_as_of_note(bulk_end_of(ctx.account_ends) or latest, run_as_of, latest=latest)) is not None:
        notes.append(note)
    return notes


def _horizon(playbook: Playbook | None) -> int | None:
    return None if playbook is None else playbook.horizon_days


def stale_as_of_note(end: datetime | None, as_of: datetime, *, latest: datetime | None = None) -> str | None:
    """A note when ``as_of`` lies :data:`STALE_AS_OF_DAYS` days or more after where a book's data ends (None if not).

    ``end`` is where most of the book's data ends (:func:`~nextmove.book.bulk_end`), ``latest`` its
    latest timestamp (:func:`~nextmove.book.latest_timestamp`; by default ``end``). Features count
    what happened in windows before ``as_of`` (the last 7, 28 and 90 days): after the data ends they
    empty, shortest first, and the scores, rules and effects rest on little; touches made since are
    unknown too. The gap is measured from the latest row, unless that lies :data:`STALE_AS_OF_DAYS`
    days or more after most of the data (a year typed wrong in one row): such a row moves the default
    as-of with it while every other account's data ends where it did, and measured from it, the note
    would never say so.

    Examples
    --------
    >>> print(stale_as_of_note(datetime(2025, 1, 31, tzinfo=UTC), datetime(2025, 3, 7, tzinfo=UTC)))
    ... # doctest: +NORMALIZE_WHITESPACE
    the decision time 2025-03-07 is 35 days after the book's latest row (2025-01-31): every account's 7- and
    28-day windows of recent activity are empty, and plays made since are unknown to the cooldowns; pass an
    --as-of near the book's end, or add the recent data
    >>> stale_as_of_note(datetime(2025, 1, 31, tzinfo=UTC), datetime(2025, 2, 27, tzinfo=UTC)) is None  # 27 days
    True
    >>> print(stale_as_of_note(datetime(2025, 3, 31, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC),
    ...                        latest=datetime(2026, 3, 1, 10, tzinfo=UTC)))  # doctest: +NORMALIZE_WHITESPACE
    the decision time 2026-03-02 is 336 days after most of the book's data ends (2025-03-31): nearly every
    account's 7-, 28- and 90-day windows of recent activity are empty, and plays made since are unknown to the
    cooldowns; the book's latest row, 2026-03-01, lies 335 days beyond the rest, and without --as-of the
    decision time follows it: check that row's date (nextmove validate names it), or pass an --as-of near
    the book's end
    """
    if end is None:
        return None
    last = as_utc(end if latest is None else latest)
    far = last - as_utc(end) >= timedelta(days=STALE_AS_OF_DAYS)
    gap = as_utc(as_of) - (as_utc(end) if far else last)
    if gap < timedelta(days=STALE_AS_OF_DAYS):
        return None
    empty = "7-, 28- and 90-day" if gap >= timedelta(days=90) else "7- and 28-day"
    if not far:
        return (
            f"the decision time {as_of:%Y-%m-%d} is {gap.days} days after the book's latest row ({last:%Y-%m-%d}): "
            f"every account's {empty} windows of recent activity are empty, and plays made since are unknown to "
            "the cooldowns; pass an --as-of near the book's end, or add the recent data"
        )
    return (
        f"the decision time {as_of:%Y-%m-%d} is {gap.days} days after most of the book's data ends ({end:%Y-%m-%d}): "
        f"nearly every account's {empty} windows of recent activity are empty, and plays made since are unknown "
        f"to the cooldowns; the book's latest row, {last:%Y-%m-%d}, lies {(last - as_utc(end)).days} days beyond "
        "the rest, and without --as-of the decision time follows it: check that row's date (nextmove validate "
        "names it), or pass an --as-of near the book's end"
    )


def playbook_fit_notes(report: ValidationReport, playbook: Playbook) -> list[str]:
    """What a valid book lacks for its playbook: no problem of the contract, but worth knowing first.

    An objective whose outcome kind no outcome row has learns nothing (often a kind spelt another
    way); an action no touch took gets the pooled effect of all actions, with a wide interval; an
    objective valued at ARR is worth $0 on accounts without an ``arr`` (no column, or an empty one);
    a ``default_for_stages`` stage no account has is no account's default.

    Examples
    --------
    >>> from nextmove.playbook.loader import load_playbook
    >>> frames = {"accounts": pl.DataFrame({"account_id": ["a1"], "arr": [10.0]}),
    ...           "outcomes": pl.DataFrame({"account_id": ["a1"], "ts": ["2025-01-02"], "kind": ["churned"]})}
    >>> notes = playbook_fit_notes(validate_book(frames, as_of=datetime(2025, 2, 1)), load_playbook())
    >>> print(notes[0])  # doctest: +NORMALIZE_WHITESPACE
    objective 'retention' is measured by outcome kind 'churn', which no outcome row has (the book's
    kinds: churned): its effects cannot be learned, and accounts that had it are not ended (they still
    get actions)
    """
    notes = _kind_notes(report.outcome_counts, playbook)
    untaken = [a for a in playbook.action_ids if a not in report.action_counts]
    if untaken and report.action_counts:
        notes.append(
            f"no touch took {', '.join(untaken)}: "
            + ("its" if len(untaken) == 1 else "their")
            + " effect is the pooled effect of all actions, with a wide interval, until the history has some"
        )
    accounts = report.tables.get("accounts")
    if accounts is not None and not accounts.filled.get("arr") and (note := _arr_note(playbook)) is not None:
        notes.append(note)
    if accounts is not None and report.stage_counts and (note := _stages_note(report.stage_counts, playbook)):
        notes.append(note)
    if accounts is not None and (note := _gone_stages_note(report.stage_counts, playbook)) is not None:
        notes.append(note)
    if accounts is not None and (note := _owners_note(report.owners or frozenset(), playbook)) is not None:
        notes.append(note)
    return notes


def unmatched_kinds_notes(book: Book, playbook: Playbook) -> list[str]:
    """For a run, the notes of :func:`playbook_fit_notes` on objectives whose outcome kind no outcome row has.

    Examples
    --------
    >>> from nextmove.playbook.loader import load_playbook
    >>> outcomes = pl.DataFrame({"account_id": ["a1"], "ts": [datetime(2025, 1, 2, tzinfo=UTC)], "kind": ["Churn"]})
    >>> book = Book(empty_table("accounts"), empty_table("signals"), empty_table("touches"), outcomes)
    >>> print(unmatched_kinds_notes(book, load_playbook())[0])  # doctest: +NORMALIZE_WHITESPACE
    objective 'retention' is measured by outcome kind 'churn', which no outcome row has (the book has
    'Churn': kinds are case-sensitive): its effects cannot be learned, and accounts that had it are not
    ended (they still get actions)
    """
    kinds = book.outcomes.get_column("kind").cast(pl.String).drop_nulls().unique().to_list()
    return _kind_notes(kinds, playbook)


def _kind_notes(kinds: Collection[str], playbook: Playbook) -> list[str]:
    """A note per objective whose outcome kind the book's ``kinds`` lack, naming a kind spelt in another case."""
    notes = []
    for key, objective in playbook.objectives.items():
        other_case = sorted(k for k in kinds if k != objective.outcome and k.casefold() == objective.outcome.casefold())
        if objective.outcome in kinds:
            if other_case:  # some rows of it spelt another way, as a second system exports them
                ended = " (not ended by them: they still get actions)" if objective.ends_accounts else ""
                notes.append(
                    f"objective {key!r} is measured by outcome kind {objective.outcome!r}; the book also has "
                    f"{', '.join(repr(k) for k in other_case)}, another kind (kinds are case-sensitive), whose "
                    f"rows do not count for it{ended}: spell them {objective.outcome!r} if they are the same"
                )
            continue
        if other_case:
            seen = f"the book has {', '.join(repr(k) for k in other_case)}: kinds are case-sensitive"
        else:
            seen = f"the book's kinds: {', '.join(sorted(kinds)) if kinds else 'none'}"
        # An outcome that ends accounts, never seen, ends none: those that had it stay active.
        ended = ", and accounts that had it are not ended (they still get actions)" if objective.ends_accounts else ""
        notes.append(
            f"objective {key!r} is measured by outcome kind {objective.outcome!r}, which no outcome row has "
            f"({seen}): its effects cannot be learned{ended}"
        )
    return notes


def unmatched_stages_note(book: Book, playbook: Playbook) -> str | None:
    """For a run, the note of :func:`playbook_fit_notes` when ``default_for_stages`` names stages no account has.

    Examples
    --------
    >>> from nextmove.playbook.loader import parse_playbook
    >>> pb = parse_playbook('''
    ... [objectives.retention]
    ... outcome = "churn"
    ... sense = "avoid"
    ... value = "arr"
    ... [[actions]]
    ... id = "qbr"
    ... name = "QBR"
    ... team = "cs"
    ... objective = "retention"
    ... default_for_stages = ["Renewal"]
    ... ''')
    >>> accounts = pl.DataFrame({"account_id": ["a1", "a2"], "lifecycle_stage": ["renewal", None]})
    >>> book = Book(accounts, empty_table("signals"), empty_table("touches"), empty_table("outcomes"))
    >>> print(unmatched_stages_note(book, pb))  # doctest: +NORMALIZE_WHITESPACE
    default_for_stages names 'Renewal', which no account's lifecycle_stage is (the book's stages: renewal;
    stages are case-sensitive): no account gets that default, which the control cohort follows and
    recommendations are compared with
    """
    if "lifecycle_stage" not in book.accounts.columns:
        return None
    stages = book.accounts.get_column("lifecycle_stage").cast(pl.String).drop_nulls().unique().to_list()
    return _stages_note(stages, playbook) if stages else None


def _stages_note(stages: Collection[str], playbook: Playbook) -> str | None:
    """A note when ``default_for_stages`` names lifecycle stages no account has (often spelt another way)."""
    named = [s for a in playbook.actions for s in a.default_for_stages]
    absent = [s for s in named if s not in stages]
    if not absent:
        return None
    return (
        f"default_for_stages names {', '.join(repr(s) for s in absent)}, which no account's lifecycle_stage is "
        f"(the book's stages: {', '.join(sorted(stages))}; stages are case-sensitive): no account gets "
        "that default, which the control cohort follows and recommendations are compared with"
    )


def unmatched_gone_stages_note(book: Book, playbook: Playbook) -> str | None:
    """For a run, the note of :func:`playbook_fit_notes` when ``gone_stages`` names stages no account has.

    Examples
    --------
    >>> from nextmove.playbook.loader import default_playbook_text, parse_playbook
    >>> pb = parse_playbook('gone_stages = ["Churned"]\\n' + default_playbook_text())
    >>> accounts = pl.DataFrame({"account_id": ["a1", "a2"], "lifecycle_stage": ["churned", "renewal"]})
    >>> book = Book(accounts, empty_table("signals"), empty_table("touches"), empty_table("outcomes"))
    >>> print(unmatched_gone_stages_note(book, pb))  # doctest: +NORMALIZE_WHITESPACE
    gone_stages names 'Churned', which no account's lifecycle_stage is (the book's stages: churned, renewal;
    stages are case-sensitive): no account is gone by it
    """
    if not playbook.gone_stages:
        return None
    stages: list[str] = []
    if "lifecycle_stage" in book.accounts.columns:
        stages = book.accounts.get_column("lifecycle_stage").cast(pl.String).drop_nulls().unique().to_list()
    return _gone_stages_note(stages, playbook)


def _gone_stages_note(stages: Collection[str], playbook: Playbook) -> str | None:
    """A note when ``gone_stages`` names lifecycle stages no account has (spelt another way, or no stage column)."""
    absent = [s for s in playbook.gone_stages if s not in stages]
    if not absent:
        return None
    seen = (
        f"the book's stages: {', '.join(sorted(stages))}; stages are case-sensitive"
        if stages
        else "no account has a stage"
    )
    return (
        f"gone_stages names {', '.join(repr(s) for s in absent)}, which no account's lifecycle_stage is ({seen}): "
        f"no account is gone by {'it' if len(absent) == 1 else 'them'}"
    )


def unmatched_owners_note(book: Book, playbook: Playbook) -> str | None:
    """For a run, the note of :func:`playbook_fit_notes` when ``owner_hours`` names owners no account has.

    Examples
    --------
    >>> from nextmove.playbook.loader import default_playbook_text, parse_playbook
    >>> pb = parse_playbook(default_playbook_text() + '[capacity.owner_hours]\\n"Ana Souza" = 16\\n"bo" = 0\\n')
    >>> accounts = pl.DataFrame({"account_id": ["a1", "a2"], "owner": ["ana souza", "bo"]})
    >>> book = Book(accounts, empty_table("signals"), empty_table("touches"), empty_table("outcomes"))
    >>> print(unmatched_owners_note(book, pb))  # doctest: +NORMALIZE_WHITESPACE
    owner_hours names 'Ana Souza' (the book has 'ana souza'; owners are case-sensitive), which no account's
    owner is: its hours apply to nobody
    """
    if not playbook.capacity.owner_hours:
        return None
    owners: frozenset[str] = frozenset()
    if "owner" in book.accounts.columns:
        owners = frozenset(book.accounts.get_column("owner").cast(pl.String).drop_nulls().unique().to_list())
    return _owners_note(owners, playbook)


def _owners_note(owners: frozenset[str], playbook: Playbook) -> str | None:
    """A note when ``owner_hours`` names owners no account has (spelt another way, or gone)."""
    absent = [o for o in playbook.capacity.owner_hours if o not in owners]
    if not absent:
        return None
    folded: dict[str, list[str]] = {}
    for owner in owners:
        folded.setdefault(owner.casefold(), []).append(owner)
    named = []
    for owner in absent:
        other = sorted(folded.get(owner.casefold(), []))
        seen = f" (the book has {', '.join(map(repr, other))}; owners are case-sensitive)" if other else ""
        named.append(repr(owner) + seen)
    shown = ", ".join(named[:10]) + (f" and {len(named) - 10} more" if len(named) > 10 else "")
    which = "no account's owner is" if owners else "no account has as owner"
    return f"owner_hours names {shown}, which {which}: {'its' if len(absent) == 1 else 'their'} hours apply to nobody"


def _arr_note(playbook: Playbook) -> str | None:
    """The note for accounts without ARR when the playbook values an objective at it (None if it values none)."""
    by_arr = [k for k, o in playbook.objectives.items() if o.value is ValueBasis.ARR]
    if not by_arr:
        return None
    names = ", ".join(repr(k) for k in by_arr)
    return (
        f'the playbook values {names} at each account\'s ARR (value = "arr"), but no account has an arr, so '
        f"its effects are worth {money_text(0.0, playbook.currency)}: add the ARR per account, or value it as "
        '"fixed" or "amount"'
    )


def missing_arr_note(book: Book, playbook: Playbook) -> str | None:
    """A note when the playbook values an objective at each account's ARR but no account has an ``arr``.

    Not a validation problem (ARR is optional in the contract), but every such objective is then
    worth $0, which a run should say rather than leave to be found.
    """
    accounts = book.accounts
    if accounts.height == 0 or (
        "arr" in accounts.columns and accounts.get_column("arr").null_count() < accounts.height
    ):
        return None
    return _arr_note(playbook)


RETURN_DAYS = 30
"""Signals or touches this many days or more after an account's terminal outcome (churn), with no start
after it, look like a customer that came back (a win-back) whose new start the book does not give; and a
start this long before the book's time with no signal or touch since looks like one that never came back."""


def returned_accounts_notes(
    book: Book | BookSource | DiscoveredBook, playbook: Playbook, as_of: datetime | None = None
) -> list[str]:
    """Notes on accounts whose start and terminal outcomes (churn) disagree with their activity.

    An account is gone after a terminal outcome unless its latest start (``contract_start``,
    ``customer_since``) comes after it (:func:`~nextmove.book.lifetime.gone_at`): a win-back. Two
    things the book may have wrong, each noted with how many accounts and a few ids, and never guessed:

    - gone accounts, with no start after their terminal outcome, that show signals or touches
      :data:`RETURN_DAYS` days or more after it: if they came back, their ``contract_start`` should
      say when (they are left out as gone until it does);
    - accounts back from a start after their terminal outcome, at least :data:`RETURN_DAYS` days
      before ``as_of``, with no signal or touch since that start: a start dated after the churn by
      mistake makes a lost customer active.

    Parameters
    ----------
    book
        A loaded :class:`~nextmove.book.Book`, or a source as :func:`validate_book` takes (read
        without being loaded; validate it first), or the tables :func:`validate_tables` read.
    playbook
        Says which outcome kinds end accounts.
    as_of
        The time the book is read as of: later rows are left out. Default: the book's ``as_of``, else now.

    Examples
    --------
    >>> from nextmove.playbook.loader import default_playbook_text, parse_playbook
    >>> frames = {"accounts": pl.DataFrame({"account_id": ["a1", "a2"]}),
    ...           "outcomes": pl.DataFrame({"account_id": ["a1"], "ts": ["2025-01-10"], "kind": ["churn"]}),
    ...           "signals": pl.DataFrame({"account_id": ["a1", "a2"], "ts": ["2025-05-01"] * 2,
    ...                                    "name": ["logins"] * 2, "value": [3.0, 4.0]})}
    >>> notes = returned_accounts_notes(frames, parse_playbook(default_playbook_text()), datetime(2025, 6, 1))
    >>> print(notes[0])  # doctest: +NORMALIZE_WHITESPACE
    1 account gone by its churn shows signals or touches 30 days or more after it (a1): it is left out as
    gone. If it came back (a win-back), set its contract_start to the day it re-signed, after the churn:
    it is then decided on and scored from that day, and the churn stays in its history
    """
    kinds = terminal_outcome_kinds(playbook)
    if not kinds:
        return []
    if isinstance(book, Book):
        when = as_utc(as_of) if as_of is not None else (book.as_of or _as_utc(None))
        tables = {n: book.table(n).lazy() for n in ("accounts", "signals", "touches", "outcomes")}
    else:
        when = _as_utc(as_of)
        found = discover(book)
        tables = {
            n: _typed_frame(found.tables[n], CONTRACT[n])[0] if n in found.tables else empty_table(n).lazy()
            for n in ("accounts", "signals", "touches", "outcomes")
        }
    return _returned_notes(tables, kinds, when)


def _returned_notes(tables: dict[str, pl.LazyFrame], kinds: list[str], when: datetime) -> list[str]:
    accounts = tables["accounts"]
    starts = accounts.select(
        pl.col("account_id").cast(pl.String), latest_start(accounts.collect_schema()).alias("_start")
    )
    outcomes = tables["outcomes"].filter(pl.col("ts") <= when)
    keys = starts.select("account_id", pl.lit(when, dtype=pl.Datetime("us", "UTC")).alias("_at"))
    ended = (
        gone_at_lazy(accounts, outcomes, kinds, keys, at="_at")
        .filter(pl.col("ended_ts").is_not_null())
        .join(starts, on="account_id", how="left")
        .drop("_at")
        .collect()
    )
    if ended.height == 0:
        return []
    activity = pl.concat(
        [tables[n].select(pl.col("account_id").cast(pl.String), pl.col("ts")) for n in ("signals", "touches")]
    ).filter(pl.col("ts") <= when)
    seen = (
        activity.join(ended.lazy(), on="account_id")
        .group_by("account_id")
        .agg(pl.col("ts").max().alias("_last"), (pl.col("ts") >= pl.col("_start")).any().alias("_since_start"))
        .collect()
    )
    state = ended.join(seen, on="account_id", how="left").sort("account_id")
    gap = pl.duration(days=RETURN_DAYS)
    unmarked = state.filter(
        pl.col("gone")
        & (pl.col("_start").is_null() | (pl.col("_start") <= pl.col("ended_ts")))
        & (pl.col("_last") >= pl.col("ended_ts") + gap)
    ).get_column("account_id")
    idle = state.filter(
        ~pl.col("gone") & (pl.col("_start") <= pl.lit(when) - gap) & ~pl.col("_since_start").fill_null(False)
    ).get_column("account_id")
    if seen.height == 0:  # no ended account shows a signal or touch at all: nothing to tell a return by
        idle = idle.clear()
    kind = " or ".join(kinds)
    notes = []
    if unmarked.len():
        n = unmarked.len()
        one = n == 1
        notes.append(
            f"{n:,} account{'' if one else 's'} gone by {'its' if one else 'their'} {kind} "
            f"show{'s' if one else ''} signals or touches {RETURN_DAYS} days or more after it "
            f"({_examples(unmarked)}): {'it is' if one else 'they are'} left out as gone. If "
            f"{'it' if one else 'one'} came back (a win-back), set its contract_start to the day it re-signed, "
            f"after the {kind}: it is then decided on and scored from that day, and the {kind} stays in its history"
        )
    if idle.len():
        n = idle.len()
        one = n == 1
        notes.append(
            f"{n:,} account{'' if one else 's'} count{'s' if one else ''} as won back: "
            f"{'its' if one else 'their'} latest start (contract_start, customer_since) comes after "
            f"{'its' if one else 'their'} {kind}, {RETURN_DAYS} days or more ago, yet "
            f"{'it shows' if one else 'they show'} no signal or touch since ({_examples(idle)}). "
            f"If {'it' if one else 'one'} did not come back, its start is dated after the {kind} by mistake and "
            f"makes it active: set it to the start of the contract the {kind} ended"
        )
    return notes


QUIET_DAYS = 90
"""Accounts that count as active at a stage, with no signal or touch (other than a logged ``none``) in this many
days before the as-of, look gone (:func:`gone_stage_notes`) when the stage holds the accounts gone by a churn."""
GONE_STAGE_SHARE = 0.9
"""A stage holding this share or more of the accounts gone by a terminal outcome (that have a stage) may mean gone."""
QUIET_SHARE = 0.8
"""The share of a stage's active accounts that must be quiet (:data:`QUIET_DAYS`) for it to look gone."""
MIN_GONE_FOR_STAGE = 20
"""The fewest accounts gone by a terminal outcome, with a stage, from which :func:`gone_stage_notes` learns a stage."""


def gone_stage_notes(
    book: Book | BookSource | DiscoveredBook, playbook: Playbook, as_of: datetime | date | None = None
) -> list[str]:
    """Notes on the lifecycle stages that mean gone (``gone_stages``): one the book suggests, and one not read.

    - A stage the playbook's ``gone_stages`` lacks although the book suggests it means gone: it holds
      :data:`GONE_STAGE_SHARE` or more of the accounts gone by a terminal outcome (at least
      :data:`MIN_GONE_FOR_STAGE` with a stage), and :data:`QUIET_SHARE` or more of the accounts at it
      that count as active show no signal or touch (other than a logged ``none``) in the
      :data:`QUIET_DAYS` days before ``as_of``, at most half the share of the active accounts at other
      stages. A book whose outcomes begin after some accounts left has their stage, not their churn:
      they count as active and get actions. Learned from the book, never from a stage's name.
    - ``gone_stages`` not read at ``as_of`` (a backtest: before the book's data end,
      :func:`~nextmove.book.stages_read_at`): how many accounts at them count as active then. No stage is
      suggested then: it would not be read.

    Parameters
    ----------
    book
        A loaded :class:`~nextmove.book.Book`, or a source as :func:`validate_book` takes (read
        without being loaded; validate it first), or the tables :func:`validate_tables` read.
    playbook
        Its terminal outcome kinds and ``gone_stages``.
    as_of
        The time a run reads the book as of. Default: as a run without one (``book.as_of``, else where
        the book's data reach, rounded up to a UTC midnight: :func:`~nextmove.book.default_as_of`).

    Examples
    --------
    >>> from nextmove.playbook.loader import default_playbook_text, parse_playbook
    >>> ids = [f"a{i}" for i in range(60)]
    >>> frames = {"accounts": pl.DataFrame({"account_id": ids,
    ...                                     "lifecycle_stage": ["lost"] * 30 + ["adoption"] * 30}),
    ...           "outcomes": pl.DataFrame({"account_id": ids[:20], "ts": ["2025-05-10"] * 20, "kind": ["churn"] * 20}),
    ...           "signals": pl.DataFrame({"account_id": ids[30:], "ts": ["2025-05-31"] * 30,
    ...                                    "name": ["logins"] * 30, "value": [3.0] * 30})}
    >>> print(gone_stage_notes(frames, parse_playbook(default_playbook_text()))[0])  # doctest: +NORMALIZE_WHITESPACE
    lifecycle stage 'lost' looks like it means gone: it holds 20 of the 20 accounts gone by their churn, and
    10 of the 10 accounts at it that count as active show no signal or touch in the 90 days before
    2025-06-01 (they may have left before the book's outcomes begin); they are scored and can get
    actions. If accounts at 'lost' have left, set gone_stages = ["lost"] at the top of the playbook:
    they are then left out, as accounts gone by their churn are
    """
    given = None if as_of is None else _as_utc(as_of, "as_of")
    if isinstance(book, Book):
        tables = {n: book.table(n).lazy() for n in ("accounts", "signals", "touches", "outcomes")}
        reach = data_reach(book)
        when = given if given is not None else default_as_of(book)
        read = when is not None and stages_read_at(book, when)  # as gone_accounts reads them
    else:
        found = discover(book)
        tables = {
            n: _typed_frame(found.tables[n], CONTRACT[n])[0] if n in found.tables else empty_table(n).lazy()
            for n in ("accounts", "signals", "touches", "outcomes")
        }
        # As load_book keeps them: rows after now (or after a later as-of) have not happened yet.
        until = kept_until(_as_utc(None), given)
        for n in ("signals", "touches", "outcomes"):
            tables[n] = tables[n].filter(pl.col("ts") <= until)
        reach = _lazy_reach([tables[n] for n in ("signals", "touches", "outcomes")])
        when = given if given is not None else None if reach is None else as_of_of_reach(reach)
        read = when is not None and not is_backtest_at(reach, when)  # as stages_read_at reads a loaded book
    if when is None or "lifecycle_stage" not in tables["accounts"].collect_schema():
        return []
    kinds = terminal_outcome_kinds(playbook)
    accounts = tables["accounts"].select(
        pl.col("account_id").cast(pl.String), pl.col("lifecycle_stage").cast(pl.String).alias("_stage")
    )
    keys = accounts.with_columns(pl.lit(when, dtype=pl.Datetime("us", "UTC")).alias("_at"))
    outcomes = tables["outcomes"].filter(pl.col("ts") <= when)
    state = gone_at_lazy(tables["accounts"], outcomes, kinds, keys, at="_at").collect()
    if read:
        note = _suspected_gone_stage(state, tables, kinds, playbook, when)
        return [] if note is None else [note]
    if not playbook.gone_stages or reach is None:
        return []
    # A backtest: today's stage cannot say who had left then, and suggesting a stage would change nothing.
    at = state.filter(~pl.col("gone") & pl.col("_stage").is_in(playbook.gone_stages)).height
    one = len(playbook.gone_stages) == 1
    stages = ", ".join(repr(s) for s in playbook.gone_stages)
    return [
        f"gone_stages ({stages}) {'is' if one else 'are'} not read as of {when:%Y-%m-%d %H:%M} UTC: that is before "
        f"the book's data end ({reach:%Y-%m-%d %H:%M} UTC), and the accounts table holds each account's stage at its "
        f"end, not then. The {at:,} account{'' if at == 1 else 's'} at {'it' if one else 'them'} that no terminal "
        f"outcome had ended by then count{'s' if at == 1 else ''} as active (a backtest reads terminal outcomes "
        "alone); at an as-of no more than a day before the data end, or after it, accounts at a gone stage are gone"
    ]


def _suspected_gone_stage(
    state: pl.DataFrame, tables: dict[str, pl.LazyFrame], kinds: list[str], playbook: Playbook, when: datetime
) -> str | None:
    """The note of :func:`gone_stage_notes` on a stage that looks gone; ``state`` is each account's ``_stage`` and
    whether a terminal outcome ended it at ``when`` (``gone``). The accounts at a stage of ``gone_stages`` are
    gone too (``when`` reads the stages)."""
    if not kinds:
        return None
    ended = state.filter(pl.col("gone") & pl.col("_stage").is_not_null())
    if ended.height < MIN_GONE_FOR_STAGE:
        return None
    top = ended.group_by("_stage").len().sort(["len", "_stage"], descending=[True, False]).row(0, named=True)
    stage, held = str(top["_stage"]), int(top["len"])
    if held < GONE_STAGE_SHARE * ended.height or stage in playbook.gone_stages:
        return None
    active = state.filter(~pl.col("gone") & ~pl.col("_stage").is_in(playbook.gone_stages).fill_null(False))
    since = when - timedelta(days=QUIET_DAYS)
    recent = (
        pl.concat(
            [
                tables["signals"].select(pl.col("account_id").cast(pl.String), "ts"),
                tables["touches"]
                .filter(pl.col("action_id").cast(pl.String) != NO_ACTION)
                .select(pl.col("account_id").cast(pl.String), "ts"),
            ]
        )
        .filter((pl.col("ts") > since) & (pl.col("ts") <= when))
        .select("account_id")
        .unique()
        .collect()
    )
    quiet = active.join(recent, on="account_id", how="anti")
    at_stage = pl.col("_stage") == stage
    n_at, n_other = active.filter(at_stage).height, active.filter(~at_stage.fill_null(False)).height
    quiet_at = quiet.filter(at_stage).height
    quiet_other = quiet.filter(~at_stage.fill_null(False)).height
    if n_at == 0 or n_other == 0 or quiet_at < QUIET_SHARE * n_at or quiet_other / n_other > quiet_at / n_at / 2:
        return None
    kind = " or ".join(kinds)
    key = "gone_stages = [" + ", ".join(toml_string(s) for s in [*playbook.gone_stages, stage]) + "]"
    return (
        f"lifecycle stage {stage!r} looks like it means gone: it holds {held:,} of the {ended.height:,} accounts gone "
        f"by their {kind}, and {quiet_at:,} of the {n_at:,} accounts at it that count as active show no signal or "
        f"touch in the {QUIET_DAYS} days before {when:%Y-%m-%d} (they may have left before the book's outcomes "
        f"begin); they are scored and can get actions. If accounts at {stage!r} have left, set {key} at the top of "
        f"the playbook: they are then left out, as accounts gone by their {kind} are"
    )


def _lazy_reach(frames: list[pl.LazyFrame]) -> datetime | None:
    """How far the tables reach (:func:`~nextmove.book.data_reach`), read from lazy frames."""
    ts = pl.col("ts").cast(pl.Datetime("us", "UTC"))
    reaches = []
    for frame in frames:
        row = frame.select(
            ts.max().alias("latest"),
            ts.is_not_null().sum().alias("rows"),
            (ts == ts.dt.truncate("1d")).sum().alias("mid"),
        ).collect()
        latest = row["latest"][0]
        if isinstance(latest, datetime):
            reaches.append(reach_of(latest, dates=are_dates(int(row["mid"][0]), int(row["rows"][0]))))
    return max(reaches) if reaches else None


def _examples(ids: pl.Series, shown: int = 3) -> str:
    """A few ids, and how many more."""
    first = ", ".join(str(v) for v in ids.head(shown).to_list())
    return first if ids.len() <= shown else f"{first} and {ids.len() - shown:,} more"


def load_book(
    source: BookSource,
    *,
    playbook: Playbook | None = None,
    as_of: datetime | date | None = None,
    run_as_of: datetime | date | None = None,
) -> Book:
    """Validate a book and load it as typed Polars frames.

    Accounts are sorted by ``account_id`` (:func:`canonical_accounts`), so the order of a file's rows
    changes nothing. With ``as_of`` no row may lie after it, and it becomes the book's ``as_of``: the
    time every command reads the book as of unless told otherwise (:func:`~nextmove.book.default_as_of`).
    Without it, signals, touches and outcomes dated after the current time are left out (they have
    not happened yet: a scheduled touch is no done one; ``notes`` counts them), and the book is read
    as of how far its data reaches, rounded up to a UTC midnight. ``run_as_of`` (the time a command will
    read the book as of, such as ``nextmove run --as-of``) keeps the rows up to it when it is later
    than now: a book whose history runs past today's clock (a simulated one) is read whole up to it.

    Raises
    ------
    BookValidationError
        If the book breaks the contract; its ``report`` lists every problem. Nothing is loaded. A
        file that changed while validation read it is such a problem.
    BookError
        If a file changed after it was validated, while it was loaded (an export moved into its place):
        what is loaded is only ever what was validated. Run again when the export has finished.
    ConfigError
        If ``as_of`` or ``run_as_of`` is neither a datetime nor a date (a date is its midnight UTC).

    Examples
    --------
    >>> book = load_book({"accounts": pl.DataFrame({"account_id": ["a1"], "seats": ["12"]})},
    ...                  as_of=datetime(2025, 1, 1))
    >>> book.accounts.schema["seats"], book.signals.height
    (Float64, 0)
    """
    # The tables validated are the tables loaded: a database's are read once, and a file that changed
    # since it was first read (another export moved into place) is refused, not loaded unchecked.
    report, found = _validate(
        source, playbook=playbook, as_of=as_of, run_as_of=run_as_of, max_examples=DEFAULT_MAX_EXAMPLES
    )
    report.raise_for_problems()
    fit = playbook_fit_notes(report, playbook) if playbook is not None else []
    with as_validated(found):
        frames = {name: _load_typed(found.tables[name], CONTRACT[name]) for name in found.tables}
    frames["accounts"] = canonical_accounts(frames["accounts"])
    if as_of is None:
        # Rows dated after now (noted by validation) have not happened yet: no command reads them as
        # history, unless the command reads the book as of a later time.
        keep_until = kept_until(report.as_of, None if run_as_of is None else _as_utc(run_as_of, "run_as_of"))
        for name in ("signals", "touches", "outcomes"):
            if name in frames:
                frames[name] = frames[name].filter(pl.col("ts") <= keep_until)
    return Book(
        accounts=frames["accounts"],
        signals=frames.get("signals", empty_table("signals")),
        touches=frames.get("touches", empty_table("touches")),
        outcomes=frames.get("outcomes", empty_table("outcomes")),
        source=found.source,
        as_of=report.as_of if as_of is not None else None,
        # What the book lacks for the playbook is validate's and a run's to say, not loading's.
        notes=tuple(n for n in report.notes if n not in fit),
    )


def _refuse_changed(found: DiscoveredBook) -> None:
    """Raise when a file of the book is no longer what it was when first read (:meth:`DiscoveredBook.changed`)."""
    changed = found.changed()
    if changed:
        raise BookError("; ".join(changed_message(src) for src in changed))


def load_table(source: BookSource | DiscoveredBook, table: str) -> pl.DataFrame:
    """Load one table of a book in contract dtypes, without validating it (an empty frame if absent).

    Meant for a table already validated, e.g. the accounts of a large book whose signals need
    not be loaded to check the playbook's eligibility expressions: pass the tables
    :func:`validate_tables` read, in an :func:`as_validated` block.
    """
    found = discover(source)
    src = found.tables.get(table)
    if src is None:
        return empty_table(table)
    frame = _load_typed(src, CONTRACT[table])
    return canonical_accounts(frame) if table == "accounts" else frame


def scan_table(source: BookSource | DiscoveredBook, table: str) -> pl.LazyFrame:
    """One table of a book in contract dtypes, unread (an empty frame if absent), without validating it.

    What :func:`load_table` loads, as a lazy frame: to aggregate a large table already validated
    (the touches of ``nextmove validate``'s attribution check) without holding it. Extra columns
    are as read, and the rows in the file's order.
    """
    found = discover(source)
    src = found.tables.get(table)
    if src is None:
        return empty_table(table).lazy()
    return _typed_frame(src, CONTRACT[table])[0]


def canonical_accounts(accounts: pl.DataFrame) -> pl.DataFrame:
    """The accounts in the order of their ``account_id``: the order a book is loaded in, whatever its file's.

    Models draw and split per row, so the same book with its accounts in another order would give
    other recommendations; in one canonical order it gives the same.
    """
    return accounts.sort("account_id", nulls_last=True, maintain_order=True)


def _as_utc(ts: datetime | date | None, what: str = "as_of") -> datetime:
    """``ts`` in UTC (naive is UTC, a date its midnight UTC, as a run reads it), or now when None."""
    if ts is None:
        return datetime.now(UTC).replace(microsecond=0)
    # pandas' NaT is a datetime that equals nothing, itself included.
    if isinstance(ts, datetime) and ts == ts:
        return as_utc(ts)
    if isinstance(ts, date) and not isinstance(ts, datetime):
        return datetime.combine(ts, time(), tzinfo=UTC)
    raise ConfigError(f"{what} must be a datetime or a date, got {type(ts).__name__}: {ts!r}")


def _raw_frame(src: TableSource) -> pl.LazyFrame:
    """The raw table with header names stripped of surrounding blanks, and columns without a name renamed.

    A column whose header cell is empty (a trailing comma in a spreadsheet's CSV export) is named
    ``__unnamed_<position>`` (1 = the first column), whatever name Polars gave it.
    """
    lf = src.scan()
    names = lf.collect_schema().names()
    header = csv_header(src.path) if src.kind == "csv" and src.path is not None else None
    if header is None or len(header) != len(names):
        header = names
    renames = {
        n: f"{_UNNAMED}{i}" for i, (n, h) in enumerate(zip(names, header, strict=True), start=1) if not h.strip()
    }
    renames |= {n: n.strip() for n in names if n not in renames and n != n.strip()}
    return lf.rename(renames) if renames else lf


def _pandas_index_columns(names: list[str]) -> list[str]:
    """The columns pandas writes for a frame's index (``__index_level_0__``, …): not data, so never features."""
    return [n for n in names if _PANDAS_INDEX.fullmatch(n)]


def _blank_row(schema: pl.Schema) -> pl.Expr:
    """True on a row whose every cell is empty (null, or empty text): a spreadsheet's ``,,,`` line.

    Cells of blanks are not looked for (stripping every cell of a large table costs a tenth of
    its validation): a row of them is not skipped, and its required cells are empty values.
    """
    cells = [
        (pl.col(n).is_null() | (pl.col(n).str.len_bytes() == 0)) if dtype == pl.String else pl.col(n).is_null()
        for n, dtype in schema.items()
    ]
    return pl.all_horizontal(cells)


def _unnamed_columns(lf: pl.LazyFrame, names: list[str], src: TableSource, spec: TableSpec, ctx: _Context) -> None:
    """Note the columns without a name that hold nothing (they are left out); refuse those that hold values."""
    schema = lf.collect_schema()
    filled = [~_blank_row(pl.Schema({n: schema[n]})) for n in names]
    found = (
        lf.with_row_index(_ROW, offset=1)
        .select(
            *[f.sum().alias(f"n{i}") for i, f in enumerate(filled)],
            *[pl.col(_ROW).filter(f).first().alias(f"r{i}") for i, f in enumerate(filled)],
            *[
                pl.col(n).filter(f).first().cast(pl.String).alias(f"v{i}")
                for i, (n, f) in enumerate(zip(names, filled, strict=True))
            ],
        )
        .collect(engine="streaming")
    )
    empty = []
    for i, name in enumerate(names):
        position = int(name.removeprefix(_UNNAMED))
        count = int(found[f"n{i}"][0])
        if not count:
            empty.append(str(position))
            continue
        hint = " (pandas' to_csv writes its index so: pass index=False)" if position == 1 else ""
        ctx.add(
            Problem(
                Rule.UNNAMED_COLUMN,
                spec.name,
                src.label,
                f"a name in the header for column {position}, which holds {count:,} value(s){hint}: "
                "name the column, or delete it",
                row=int(found[f"r{i}"][0]),
                value=found[f"v{i}"][0],
            )
        )
    if empty:
        which = f"column {empty[0]} has" if len(empty) == 1 else f"columns {', '.join(empty)} have"
        ctx.notes.append(f"{src.label}: {which} no name in the header and no values (a trailing comma?): left out")


_EXACT_NAMES = "column names are matched exactly: in lower case, with underscores"


def column_spelling(name: str) -> str:
    """``name`` as compared with the contract's column names to find one spelt another way: in lower case, with
    underscores for its spaces and hyphens (``Account ID`` is ``account_id``, ``Renewal-Date`` ``renewal_date``).

    Examples
    --------
    >>> column_spelling(" Account ID"), column_spelling("Renewal-Date"), column_spelling("ARR")
    ('account_id', 'renewal_date', 'arr')
    """
    return re.sub(r"[\s-]+", "_", name.strip()).casefold()


def _missing_columns(spec: TableSpec, schema: pl.Schema, src: TableSource, ctx: _Context) -> None:
    """Refuse a table without a required column, and one with a contract column spelt another way (``ARR``).

    An extra column is kept as a feature, so an optional contract column named ``ARR`` or ``Renewal Date``
    would be read as one, and the table as lacking ``arr``: no account worth its ARR, no renewal, no
    owner's capacity, with nothing said. A name that is the contract's but for its case, spaces or
    hyphens means that column: renaming it is the fix, and a feature meant to be called so is renamed
    as easily.
    """
    others = [n for n in schema.names() if n not in spec.column_names]
    for col in spec.columns:
        if col.name in schema:
            continue
        found = next((n for n in others if column_spelling(n) == col.name), None)
        if col.required:
            expected = f"a column {col.name!r} ({col.description})"
            if found is not None:
                expected += f"; found {found!r}: rename it {col.name!r} ({_EXACT_NAMES})"
            ctx.add(Problem(Rule.MISSING_COLUMN, spec.name, src.label, expected, column=col.name))
        elif found is not None:
            expected = (
                f"the column {col.name!r} ({col.description}) under that name; found {found!r}, which is read as an "
                f"extra column (a feature), not as {col.name}: rename it {col.name!r} ({_EXACT_NAMES})"
            )
            ctx.add(Problem(Rule.MISNAMED_COLUMN, spec.name, src.label, expected, column=col.name))


def _check_table(src: TableSource, spec: TableSpec, ctx: _Context) -> None:
    try:
        lf = _raw_frame(src)
        schema = lf.collect_schema()
    except pl.exceptions.PolarsError as exc:
        ctx.add(
            Problem(
                Rule.UNREADABLE_FILE,
                spec.name,
                src.label,
                f"a readable table; reading failed: {exc}",
            )
        )
        return
    # A row of a CSV file with fewer fields than the header names is read with nulls for those it
    # lacks: only where the last named column is empty can a row be cut short, and only then are
    # the file's fields counted (a pass over its raw lines).
    named = [i for i, n in enumerate(schema.names()) if not n.startswith(_UNNAMED)]
    needed = named[-1] + 1 if named else 0
    last_named = schema.names()[needed - 1] if needed else None
    count_fields = src.kind == "csv" and src.path is not None and needed > 1
    unnamed = [n for n in schema.names() if n.startswith(_UNNAMED)]
    if unnamed:
        try:
            _unnamed_columns(lf, unnamed, src, spec, ctx)
        except pl.exceptions.PolarsError as exc:
            ctx.unreadable.add(spec.name)
            ctx.add(_read_failure(src, spec, exc, len(schema)))
            return
        lf = lf.drop(unnamed)
        schema = lf.collect_schema()
    if index := _pandas_index_columns(schema.names()):
        ctx.notes.append(
            f"{src.label}: {', '.join(repr(n) for n in index)} "
            + ("is" if len(index) == 1 else "are")
            + " the index pandas writes beside the data (to_parquet after a filter or sort), not data: left out"
        )
        lf = lf.drop(index)
        schema = lf.collect_schema()
    present = [c for c in spec.columns if c.name in schema]
    _missing_columns(spec, schema, src, ctx)

    # Rows keep their number in the file; a row of empty cells is skipped, so no rule applies to it.
    lf = lf.with_row_index(_ROW, offset=1).with_columns(
        _blank_row(schema).alias(_BLANK),
        *[_read_column(c, schema[c.name]).alias(_parsed(c.name)) for c in present],
    )
    checks = [*_row_checks(spec, present, schema, ctx), *_extra_checks(spec, schema)]
    flags = [(c.flag.fill_null(False) & ~pl.col(_BLANK)).alias(f"__f{i}") for i, c in enumerate(checks)]
    # One aggregate pass gives the row count, every rule's count and the time range; the pass that
    # lists offending rows runs only when some rule is broken (a valid book is read fewer times).
    aggregates: list[pl.Expr] = [
        (pl.len() - pl.col(_BLANK).sum()).alias("rows"),
        pl.col(_BLANK).sum().alias("__blank"),
        *[f.sum() for f in flags],
    ]
    aggregates += [pl.col(_parsed(c.name)).is_not_null().sum().alias(f"__n_{c.name}") for c in present]
    has_time = spec.time_column is not None and spec.time_column in schema
    if has_time:
        tcol = _parsed(str(spec.time_column))
        aggregates += [pl.col(tcol).min().alias("__lo"), pl.col(tcol).max().alias("__hi")]
        # The times' notes read the rows a loaded book keeps (rows after now are left out until their
        # time), so that validate says what a run says: the table's span, which rows are dates or times.
        kept = (pl.col(tcol) <= pl.lit(ctx.kept_until)).fill_null(False)
        at_midnight = pl.col(tcol) == pl.col(tcol).dt.truncate("1d")
        timed = kept & ~at_midnight
        aggregates += [
            pl.col(tcol).filter(kept).min().alias("__kept_lo"),
            pl.col(tcol).filter(kept).max().alias("__kept_hi"),
            kept.sum().alias("__stamped"),
            (kept & at_midnight).sum().alias("__midnights"),
            pl.col(_ROW).filter(timed).first().alias("__timed_row"),
            pl.col(tcol).filter(timed).first().alias("__timed_ts"),
        ]
        if spec.name in ("touches", "outcomes") and schema[str(spec.time_column)] == pl.String:
            # A date written alone (2025-04-01, no time of day) is the shortest text a time is read from.
            # Signals mix daily readings (dates) with events (times) as a rule, and read either way alike.
            alone = kept & (pl.col(str(spec.time_column)).str.strip_chars().str.len_bytes() <= 10)
            aggregates += [
                alone.sum().alias("__alone"),
                pl.col(_ROW).filter(alone).first().alias("__alone_row"),
                pl.col(str(spec.time_column)).filter(alone).first().alias("__alone_text"),
            ]
        if ctx.run_as_of is not None:
            aggregates.append((pl.col(tcol) > pl.lit(ctx.run_as_of)).sum().alias("__later"))
        if not ctx.given_as_of:
            future = (pl.col(tcol) > pl.lit(ctx.as_of)) & ~pl.col(_BLANK)
            aggregates += [
                future.sum().alias("__future"),
                pl.col(_ROW).filter(future).first().alias("__future_row"),
                pl.col(tcol).filter(future).first().alias("__future_ts"),
            ]
    if count_fields and last_named in schema:
        aggregates.append((pl.col(str(last_named)).is_null() & ~pl.col(_BLANK)).sum().alias("__open_end"))
    queries: list[pl.LazyFrame] = [lf.select(aggregates)]
    dup_index = len(queries)
    if spec.key is not None and spec.key in schema:
        key = _parsed(spec.key)
        # Counts per key, not the rows of every key: those of the few shown are read after.
        queries.append(
            lf.filter(pl.col(key).is_not_null())
            .group_by(key)
            .agg(pl.len().alias("n"), pl.col(_ROW).min().alias("first"))
            .filter(pl.col("n") > 1)
            .sort(key)
        )
    group_col = {"accounts": "lifecycle_stage", "signals": "name", "touches": "action_id", "outcomes": "kind"}.get(
        spec.name
    )
    group_index = len(queries)
    if group_col is not None and group_col in schema:
        queries.append(lf.group_by(_parsed(group_col)).agg(pl.len().alias("n")).sort(_parsed(group_col)))
    owners_index = len(queries)
    # The owners, only for a playbook that names some (owner_hours): a name no account has is noted.
    read_owners = (
        spec.name == "accounts"
        and "owner" in schema
        and ctx.playbook is not None
        and bool(ctx.playbook.capacity.owner_hours)
    )
    if read_owners:
        queries.append(lf.select(pl.col(_parsed("owner")).drop_nulls().unique()))
    ids_index = len(queries)
    if spec.name in ("accounts", "touches") and spec.key is not None and spec.key in schema:
        queries.append(lf.select(pl.col(_parsed(spec.key)).drop_nulls().unique()))
    # Rows that repeat another (a double export, compared as written: no column is parsed for it),
    # and with a run's as-of each account's latest time (where most of the book ends).
    repeats_index = ends_index = days_index = None
    compared = duplicate_columns(spec.name, schema.names())
    if has_time:
        # The days with a row a run keeps (how a table is spaced, notes.wide_gap): grouped apart, a few hundred
        # groups; counted in the pass above, Polars held the whole column (+280 MiB at 5M rows).
        days_index = len(queries)
        queries.append(
            lf.filter(pl.col(tcol) <= pl.lit(ctx.kept_until))
            .group_by(pl.col(tcol).dt.truncate("1d").alias("__day"))
            .agg(pl.len())
        )
        repeats_index = len(queries)
        # The hashes of rows that repeat another: sorting one column of hashes takes less memory
        # than grouping the rows by them (a hash table as large as the table).
        hashes = lf.filter(~pl.col(_BLANK)).select(row_hash(compared).sort().alias("__hash"))
        queries.append(hashes.filter(pl.col("__hash") == pl.col("__hash").shift(1)))
        if ctx.run_as_of is not None and "account_id" in schema:
            ends_index = len(queries)
            queries.append(
                lf.filter(pl.col(tcol) <= pl.lit(ctx.kept_until))
                .group_by(pl.col(_parsed("account_id")).alias("account_id"))
                .agg(pl.col(tcol).max().alias("ts"))
            )

    # Without common-subplan elimination: with it, Polars caches the whole parsed table to share
    # it between these queries, and peak memory grows with the book (measured: 2.4 GiB vs 0.24
    # GiB for 20M signal rows).
    no_cache = pl.QueryOptFlags(comm_subplan_elim=False)
    try:
        results = pl.collect_all(queries, engine="streaming", optimizations=no_cache)
        summary = results[0]
        if count_fields and ("__open_end" not in summary.columns or int(summary["__open_end"][0])):
            assert src.path is not None
            if _cut_rows(short_csv_rows(src.path, needed, ctx.max_examples), needed, spec, src, ctx):
                return
        broken = any(int(summary[f"__f{i}"][0]) for i in range(len(checks)))
        examples = None
        if broken:
            value_cols = sorted({c.column for c in checks})
            examples = (
                lf.with_columns(flags)
                .filter(pl.any_horizontal(f"__f{i}" for i in range(len(checks))))
                .select(
                    _ROW,
                    *[pl.col(c).cast(pl.String) for c in value_cols],
                    *[f"__f{i}" for i in range(len(checks))],
                )
                .head(ctx.max_examples)
                .collect(engine="streaming", optimizations=no_cache)
            )
    except pl.exceptions.PolarsError as exc:
        ctx.unreadable.add(spec.name)
        ctx.add(_read_failure(src, spec, exc, len(schema)))
        return

    rows = int(summary["rows"][0])
    if blank := int(summary["__blank"][0]):
        ctx.notes.append(
            f"{src.label}: {blank:,} row(s) with every cell empty (as a spreadsheet writes below its data) are skipped"
        )
    if examples is not None:
        _collect_examples(examples, summary, checks, spec, src, ctx)
    if spec.key is not None and spec.key in schema and results[dup_index].height:
        try:
            _duplicate_keys(lf, results[dup_index], spec, src, ctx)
        except pl.exceptions.PolarsError as exc:
            ctx.unreadable.add(spec.name)
            ctx.add(_read_failure(src, spec, exc, len(schema)))
            return
    lo = hi = None
    if has_time:
        lo, hi = summary["__lo"][0], summary["__hi"][0]
        if ctx.run_as_of is not None:
            ctx.later_counts[spec.name] = int(summary["__later"][0])
        if not ctx.given_as_of and (ahead := int(summary["__future"][0])):
            ctx.notes.append(
                _future_note(src.label, ahead, int(summary["__future_row"][0]), summary["__future_ts"][0], ctx.as_of)
            )
    if has_time:
        assert repeats_index is not None
        assert days_index is not None
        days = results[days_index].get_column("__day").sort()
        _time_notes(lf, summary, results[repeats_index], spec, src, ctx, compared, days)
        if ends_index is not None:
            ctx.account_ends.append(results[ends_index].drop_nulls())
    filled = {c.name: int(summary[f"__n_{c.name}"][0]) for c in present}
    ctx.summaries[spec.name] = TableSummary(spec.name, src.label, rows, tuple(schema.names()), lo, hi, filled)
    if group_col is not None and group_col in schema:
        frame = results[group_index]
        ctx.group_counts[spec.name] = {str(k): int(n) for k, n in frame.iter_rows() if k is not None}
    if read_owners:
        ctx.owners = frozenset(results[owners_index].to_series().to_list())
    if spec.name == "accounts" and "account_id" in schema:
        ctx.account_ids = results[ids_index].to_series()
        _nfc_clashing_ids(lf, ctx.account_ids, spec, src, ctx)
    if spec.name == "accounts":
        ctx.notes += _text_number_notes(lf, schema, spec, src)
        ctx.notes += unused_column_notes(schema, spec, src.label)
    try:
        ctx.notes += _thousands_notes(lf, schema, spec, src)
    except pl.exceptions.PolarsError as exc:
        ctx.unreadable.add(spec.name)
        ctx.add(_read_failure(src, spec, exc, len(schema)))
    if spec.name == "touches" and "touch_id" in schema:
        ctx.touch_ids = results[ids_index].to_series()
    if spec.name in ("accounts", "touches"):
        ctx.id_files[spec.name] = src.path.name if src.path is not None else src.label


def duplicate_key_rows(lf: pl.LazyFrame, key: str, repeated: pl.DataFrame, limit: int) -> pl.DataFrame:
    """The rows :func:`validate_book` lists for keys that repeat: ``key``, ``first`` (its first row) and ``row``.

    ``repeated`` holds each repeated key with its count ``n`` and first row ``first``, sorted by key;
    ``lf`` the table with its rows' numbers (``__row``). A key's repeats are its rows after the first,
    in file order, listed key after key until ``limit`` rows are: only the keys listed are looked up
    in the table again, so a table exported twice whole is not read into memory.

    Examples
    --------
    >>> lf = pl.LazyFrame({"k": ["b", "a", "b", "a", "a", "c"]}).with_row_index("__row", offset=1)
    >>> repeated = pl.DataFrame({"k": ["a", "b"], "n": [3, 2], "first": [2, 1]})
    >>> duplicate_key_rows(lf, "k", repeated, limit=2).rows()
    [('a', 2, 4), ('a', 2, 5)]
    """
    # The keys whose repeats come before the limit.
    shown = repeated.filter((pl.col("n") - 1).cum_sum().shift(1, fill_value=0) < limit)
    if limit <= 0 or shown.height == 0:
        return pl.DataFrame(schema={key: repeated.schema[key], "first": repeated.schema["first"], "row": pl.UInt32})
    rows = (
        lf.filter(pl.col(key).is_in(shown.get_column(key).implode()))
        .select(key, pl.col(_ROW).alias("row"))
        .collect(engine="streaming", optimizations=pl.QueryOptFlags(comm_subplan_elim=False))
    )
    return (
        shown.select(key, "first")
        .join(rows, on=key, maintain_order="left")
        .filter(pl.col("row") != pl.col("first"))
        .sort(key, "row", maintain_order=True)
        .head(limit)
    )


def _duplicate_keys(lf: pl.LazyFrame, repeated: pl.DataFrame, spec: TableSpec, src: TableSource, ctx: _Context) -> None:
    """Count the rows whose key repeats an earlier row's (``repeated``: counts per key), and list the first of them."""
    assert spec.key is not None
    key = _parsed(spec.key)
    dup_key = (Rule.DUPLICATE_KEY, spec.name, spec.key)
    ctx.counts[dup_key] = ctx.counts.get(dup_key, 0) + int(repeated.get_column("n").sum()) - repeated.height
    for value, first, row in duplicate_key_rows(lf, key, repeated, ctx.max_examples).iter_rows():
        ctx.problems.append(
            Problem(
                Rule.DUPLICATE_KEY,
                spec.name,
                src.label,
                f"a unique {spec.key}; it repeats row {first}",
                row=row,
                column=spec.key,
                value=str(value),
            )
        )


def _nfc_clashing_ids(lf: pl.LazyFrame, ids: pl.Series, spec: TableSpec, src: TableSource, ctx: _Context) -> None:
    """Note the keys that differ from another only by their Unicode form (NFC vs NFD): two accounts that print alike.

    Ids are kept as written (:mod:`nextmove.book.nfc`), so such keys are two accounts, each with the rows
    that write its id its way, and nothing is read wrong. Not refused: a CRM may hold both, and joins
    back on each byte for byte, so no export could make them one. But every report names them alike,
    and if they are one customer exported by two systems, its history is split between them.
    """
    assert spec.key is not None
    clashes = nfc_clashes(ids)
    if not clashes:
        return
    key = _parsed(spec.key)
    values = [v for group in clashes for v in group]
    rows = (
        lf.filter(pl.col(key).is_in(values))
        .group_by(key)
        .agg(pl.col(_ROW).min())
        .collect(engine="streaming", optimizations=pl.QueryOptFlags(comm_subplan_elim=False))
    )
    first_row = dict(rows.iter_rows())
    shown = [
        " and ".join(f"{v!a} (row {first_row[v]})" for v in sorted(group, key=first_row.__getitem__))
        for group in clashes[:3]
    ]
    more = f" and {len(clashes) - 3:,} more" if len(clashes) > 3 else ""
    ctx.notes.append(
        f"{src.label}: {spec.key}s that differ only by Unicode normalisation (NFC vs NFD) print alike but are "
        f"different accounts: {'; '.join(shown)}{more}. If they are one account exported by two systems, write "
        "its id one way everywhere (ids are kept as written)"
    )


@dataclass(frozen=True)
class _LatestProbe:
    """What :func:`_far_latest_notes` needs of a table with times: its rows, time column and figures."""

    lf: pl.LazyFrame
    tcol: str
    label: str
    stamped: int
    midnights: int
    dated: int
    lo: datetime | None
    hi: datetime | None


def _far_latest_notes(ctx: _Context) -> None:
    """Note the latest rows of a table lying far after the rest of it (:func:`~nextmove.book.notes.far_latest_rows`).

    Only a table whose latest time lies that far after every other table's can have them (a table's
    rows end with the book's): its latest times are read then, and no other table is read again.
    """
    his = {name: as_utc(p.hi) for name, p in ctx.latest_probes.items() if p.hi is not None}
    gap = timedelta(days=FAR_LATEST_DAYS)
    no_cache = pl.QueryOptFlags(comm_subplan_elim=False)
    for name, probe in ctx.latest_probes.items():
        if name not in his or any(his[name] - hi < gap for other, hi in his.items() if other != name):
            continue
        tcol = pl.col(probe.tcol)
        latest = (
            probe.lf.select(tcol.drop_nulls().top_k(FAR_LATEST_ROWS + 1))
            .collect(engine="streaming", optimizations=no_cache)
            .to_series()
            .sort(descending=True)
            .to_list()
        )
        if not (far := far_latest_rows(latest, probe.dated, probe.lo)):
            continue
        found = (
            probe.lf.filter(tcol >= latest[far - 1])
            .select(_ROW, probe.tcol)
            .collect(engine="streaming", optimizations=no_cache)
            .sort([probe.tcol, _ROW], descending=[True, False])
            .head(far)
        )
        ctx.notes.append(far_latest_note(probe.label, [(int(r), t) for r, t in found.iter_rows()], latest[far]))
        dated = probe.dated - far_days(latest, far)
        longest = (  # between the days before them: the gap to them is no usual one
            probe.lf.filter(tcol <= latest[far])
            .select(tcol.dt.truncate("1d").unique().sort().diff().max())
            .collect(engine="streaming", optimizations=no_cache)
            .item()
        )
        ctx.spans[name] = table_span(probe.lo, latest[far], probe.stamped - far, probe.midnights, dated, longest)


def _time_notes(
    lf: pl.LazyFrame,
    summary: pl.DataFrame,
    repeated: pl.DataFrame,
    spec: TableSpec,
    src: TableSource,
    ctx: _Context,
    compared: list[str],
    days: pl.Series,
) -> None:
    """The notes on a table's times and rows (:mod:`nextmove.book.notes`), and how far it reaches.

    ``days`` are the days with a row a run keeps, in order.

    Rows that repeat another are looked up in the file only when the table has them; its latest rows
    only when its latest time lies far after the other tables' (:func:`_far_latest_notes`).
    """
    tcol = _parsed(str(spec.time_column))
    stamped, midnights = int(summary["__stamped"][0]), int(summary["__midnights"][0])
    gaps = days.diff().max()
    dated, longest = days.len(), gaps if isinstance(gaps, timedelta) else None
    lo, hi = summary["__kept_lo"][0], summary["__kept_hi"][0]
    ctx.spans[spec.name] = table_span(lo, hi, stamped, midnights, dated, longest)
    kept = lf.filter(pl.col(tcol) <= pl.lit(ctx.kept_until))
    ctx.latest_probes[spec.name] = _LatestProbe(kept, tcol, src.label, stamped, midnights, dated, lo, hi)

    row, ts = summary["__timed_row"][0], summary["__timed_ts"][0]
    # Only outcomes that are dates are read otherwise, each its whole day (labels, ends of accounts).
    if spec.name == "outcomes" and (
        mixed := mixed_times_note(src.label, stamped, midnights, None if row is None else (int(row), ts))
    ):
        ctx.notes.append(mixed)
    if "__alone" in summary.columns and (alone := int(summary["__alone"][0])):
        first = (int(summary["__alone_row"][0]), str(summary["__alone_text"][0]).strip())
        if (written := written_dates_note(src.label, stamped, midnights, alone, first)) is not None:
            ctx.notes.append(written)
    if repeated.height and repeated.height >= DUPLICATE_SHARE * stamped:
        # The first row that repeats an earlier one, found from the row numbers and hashes alone: a
        # table exported twice whole would otherwise be read into memory whole.
        no_cache = pl.QueryOptFlags(comm_subplan_elim=False)
        first = (
            lf.filter(~pl.col(_BLANK))
            .select(_ROW, row_hash(compared).alias("__hash"))
            .filter(pl.col("__hash").is_in(repeated.get_column("__hash").unique().implode()))
            .collect(engine="streaming", optimizations=no_cache)
            .sort(_ROW)
            .filter(~pl.col("__hash").is_first_distinct())
            .get_column(_ROW)[0]
        )
        shown = [c for c in ("account_id", "ts", "name", "action_id", "kind") if c in compared]
        example = (
            lf.filter(pl.col(_ROW) == first)
            .select(pl.col(_parsed(c)).alias(c) for c in shown)
            .collect(engine="streaming", optimizations=no_cache)
            .row(0, named=True)
        )
        ctx.notes.append(duplicate_rows_note(spec.name, repeated.height, example))


THOUSANDS_SAMPLE = 1000
"""The first rows of a number column written as text looked at for thousands separators, before the whole column."""


def _thousands_note(label: str, name: str, count: int, present: int, row: int, value: str) -> str:
    """The note on a column of numbers that look written with thousands separators '.' (:func:`thousands_dots`)."""
    try:
        read = f"which is read as {float(value.strip()):g}"
    except ValueError:  # 1.234.567: no number, refused already where a number is required
        read = "which is no number"
    return (
        f"{label}, column {name!r}: {count:,} of its {present:,} values are written like {value.strip()!r} (the first: "
        f"row {row}), {read}: if the '.' separates thousands (a German export), every such value "
        "is read 1,000 times too small or more: export numbers without thousands separators. If they are "
        "decimals with three places, nothing is wrong"
    )


def _thousands_notes(lf: pl.LazyFrame, schema: pl.Schema, spec: TableSpec, src: TableSource) -> list[str]:
    """Notes on the contract's number columns, written as text, that look written with thousands separators '.'.

    ``85.360`` reads as 85.36, a number: nothing is refused, since three decimals can be meant (a weight of
    ``1.250`` kg), but an ARR of 85,360 read so is a thousand times too small, so the note says it. Only
    the first :data:`THOUSANDS_SAMPLE` rows are read for it, unless those look so: then the whole column is.
    """
    # A propensity read a thousand times too large is outside [0, 1], an error already.
    names = [
        c.name
        for c in spec.columns
        if c.type is ColumnType.FLOAT and not c.unit_interval and schema.get(c.name) == pl.String
    ]
    if not names:
        return []
    no_cache = pl.QueryOptFlags(comm_subplan_elim=False)
    rows = lf.filter(~pl.col(_BLANK))
    sample = rows.select(names).head(THOUSANDS_SAMPLE).collect(engine="streaming", optimizations=no_cache)
    notes = []
    for name in names:
        if sample.height == 0 or not looks_like_thousands(*_thousands_counts(sample, name)):
            continue
        dotted, other = thousands_dot_flags(pl.col(name))
        found = rows.select(
            dotted.sum().alias("dotted"),
            other.sum().alias("other"),
            (~is_missing_text(pl.col(name))).sum().alias("present"),
            pl.col(_ROW).filter(dotted).first().alias("row"),
            pl.col(name).filter(dotted).first().alias("value"),
        ).collect(engine="streaming", optimizations=no_cache)
        count, present = int(found["dotted"][0]), int(found["present"][0])
        if looks_like_thousands(count, int(found["other"][0]), present):
            notes.append(_thousands_note(src.label, name, count, present, int(found["row"][0]), found["value"][0]))
    return notes


def _thousands_counts(frame: pl.DataFrame, name: str) -> tuple[int, int, int]:
    """How many values of text column ``name`` are written like ``85.360``, how many are other, how many present."""
    dotted, other = thousands_dot_flags(pl.col(name))
    found = frame.select(dotted.sum(), other.sum().alias("o"), (~is_missing_text(pl.col(name))).sum().alias("p"))
    return int(found[0, 0]), int(found[0, 1]), int(found[0, 2])


def _text_number_notes(lf: pl.LazyFrame, schema: pl.Schema, spec: TableSpec, src: TableSource) -> list[str]:
    """Notes on extra text columns that are mostly numbers: a few other values make the whole column text.

    Such a column is then compared as text (an eligibility ``seats > 10`` fails with a type
    mismatch), so the note names the values that keep it from being numbers.
    """
    extras = [n for n, dtype in schema.items() if n not in spec.column_names and dtype == pl.String]
    if not extras:
        return []
    frame = lf.select(extras).collect(engine="streaming")
    notes = []
    for name in extras:
        dots = thousands_dots(frame.get_column(name))
        if dots is not None:  # 85.360 loads as 85.36
            count, first, value = dots
            present = int(frame.select((~is_missing_text(pl.col(name))).sum()).item())
            notes.append(_thousands_note(src.label, name, count, present, first + 1, value))
            continue
        commas = decimal_commas(frame.get_column(name))
        if commas is not None:  # a German export: 1,5 and 1.234,56 (converting nothing)
            count, first, value = commas
            notes.append(
                f"{src.label}, column {name!r} is read as text, not numbers: {count:,} value(s) are not numbers "
                f"(the first: row {first + 1}, {value!r}, {decimal_comma_hint(value)})"
            )
            continue
        found = non_numbers(frame.get_column(name))
        if found is None:
            continue
        count, first, value = found
        notes.append(
            f"{src.label}, column {name!r} is read as text, not numbers: {count:,} value(s) are not numbers "
            f"(the first: row {first + 1}, {value!r}{_hint_of(value)}); fix them, or leave them empty (or NA) to "
            "make the column numbers"
        )
    return notes


_UNUSED_KINDS: tuple[tuple[type[pl.DataType], str, str], ...] = (
    (pl.List, "lists", "store each item it needs in a column of its own, or the list as text"),
    (pl.Array, "lists", "store each item it needs in a column of its own, or the list as text"),
    (
        pl.Struct,
        "records of fields (structs)",
        "store each field it needs in a column of its own, or the record as text",
    ),
    (pl.Duration, "durations", "store it as a number (of days, say)"),
    (pl.Time, "times of day", "store it as a number (the hour, say) or as text"),
    (pl.Binary, "binary data", "store it as text, if it is text"),
    (pl.Object, "Python objects", "give it one of those types"),
)


def unused_column_notes(schema: pl.Schema, spec: TableSpec, label: str) -> list[str]:
    """Notes on the extra columns of accounts that are not used as features, for their type (:func:`extra_kind`).

    A Parquet file, a database or a frame may hold columns of lists, structs or durations: they are
    kept in the book but make no feature, which nothing else says. A column of no type (only
    missing values, in a frame) says nothing either way, and gets no note.

    Examples
    --------
    >>> schema = pl.Schema({"account_id": pl.String(), "tags": pl.List(pl.String()), "seats": pl.Int64()})
    >>> notes = unused_column_notes(schema, CONTRACT["accounts"], "accounts.parquet")
    >>> print(notes[0])  # doctest: +NORMALIZE_WHITESPACE
    accounts.parquet, column 'tags' is not used as a feature: it holds lists, and an extra column of accounts is
    one when it holds numbers, true/false, text or times: store each item it needs in a column of its own, or
    the list as text
    """
    notes = []
    for name, dtype in schema.items():
        if name in spec.column_names or dtype == pl.Null or extra_kind(dtype) is not None:
            continue
        holds, advice = next(
            ((h, a) for kind, h, a in _UNUSED_KINDS if isinstance(dtype, kind)),
            (f"values of type {dtype}", "give it one of those types"),
        )
        notes.append(
            f"{label}, column {name!r} is not used as a feature: it holds {holds}, and an extra column of accounts "
            f"is one when it holds numbers, true/false, text or times: {advice}"
        )
    return notes


def _hint_of(value: str) -> str:
    """``, <hint>`` for a value that looks like a number with thousands separators (``1.234.567``), else nothing."""
    hint = thousands_dot_hint(value)
    return "" if hint is None else f", {hint}"


def _extra_checks(spec: TableSpec, schema: pl.Schema) -> list[_Check]:
    """Extra columns of numbers hold finite numbers: "inf is an error in any number column", not only the contract's."""
    checks = []
    for name, dtype in schema.items():
        if name in spec.column_names:
            continue
        flag = non_finite_extra(name, dtype)
        if flag is not None:
            expected = (
                "a finite number (not NaN or infinity)"
                if dtype.is_float()
                else "a finite number (not infinity), or NA to leave it missing"
            )
            checks.append(_Check(Rule.NOT_FINITE, name, flag, expected))
    return checks


_NUMBER_FOR_TIME = (
    "a timestamp; the column holds numbers (epoch seconds or milliseconds?), whose unit nextmove does not guess: "
    "store it as a timestamp type, or as ISO 8601 text such as 2024-05-01T09:30:00Z"
)


def _row_checks(spec: TableSpec, present: list[ColumnSpec], schema: pl.Schema, ctx: _Context) -> list[_Check]:
    """The per-row rules of the contract for the columns this table has."""
    checks: list[_Check] = []
    for col in present:
        raw, p = pl.col(col.name), pl.col(_parsed(col.name))
        is_text = schema[col.name] == pl.String
        text = is_text or is_category(schema[col.name])
        blank = (raw.is_null() | (raw.cast(pl.String).str.strip_chars() == "")) if text else raw.is_null()
        if col.type is ColumnType.STRING and schema[col.name].is_float():
            blank = blank | raw.is_nan()  # pandas' missing value in a column of floats (an id with a gap)
        expected = col.type.expected
        if col.type is ColumnType.TIMESTAMP and (schema[col.name].is_numeric() or schema[col.name] == pl.Boolean):
            # A Parquet or SQL column of numbers (epoch seconds or milliseconds) holds no ISO 8601 text to fix.
            expected = _NUMBER_FOR_TIME
        if col.required:
            checks.append(_Check(Rule.EMPTY_VALUE, col.name, blank, f"a value ({col.description})"))
        elif col.type is not ColumnType.STRING:
            # An optional number or timestamp may be left missing, and exports spell that NA, null, …
            if is_text:
                blank = is_missing_text(raw)
            expected += ", or an empty cell (NA, null) to leave it missing"
        checks.append(_Check(Rule.BAD_TYPE, col.name, ~blank & p.is_null(), expected))
        if col.type is ColumnType.FLOAT:
            checks.append(
                _Check(
                    Rule.NOT_FINITE,
                    col.name,
                    p.is_nan() | p.is_infinite(),
                    "a finite number (not NaN or infinity)",
                )
            )
        if col.nonnegative:
            checks.append(_Check(Rule.NEGATIVE, col.name, p.is_not_nan() & (p < 0), "a number ≥ 0"))
        if col.unit_interval:
            outside = p.is_not_nan() & ((p < 0) | (p > 1))
            checks.append(_Check(Rule.OUT_OF_RANGE, col.name, outside, "a probability between 0 and 1"))
        if col.allowed is not None:
            checks.append(
                _Check(
                    Rule.NOT_ALLOWED,
                    col.name,
                    p.is_not_null() & ~p.is_in(list(col.allowed)),
                    f"one of {', '.join(col.allowed)}",
                )
            )
        if spec.time_column == col.name and ctx.given_as_of:
            checks.append(
                _Check(
                    Rule.AFTER_AS_OF,
                    col.name,
                    p > pl.lit(ctx.as_of),
                    f"a time no later than the as_of the book was given, {ctx.as_of:%Y-%m-%d %H:%M:%S} UTC "
                    "(naive times are read as UTC): remove the later rows, or give a later as_of",
                )
            )
        if col.references is not None:
            ref_table, ref_col = col.references.split(".")
            ids = ctx.account_ids if ref_table == "accounts" else ctx.touch_ids
            if ids is not None:
                # An empty table makes every reference unknown: say why once, in what is expected.
                empty = f" (the {ref_table} table has no rows: fill it)" if ids.len() == 0 else ""
                checks.append(
                    _Check(
                        Rule.UNKNOWN_REFERENCE,
                        col.name,
                        p.is_not_null() & ~p.is_in(ids.implode()),
                        f"an id present in {ref_table}.{ref_col}{empty}",
                    )
                )
            elif ref_table == "touches" and ref_table not in ctx.unreadable:
                checks.append(
                    _Check(
                        Rule.UNKNOWN_REFERENCE,
                        col.name,
                        p.is_not_null(),
                        "no touch_id: there is no touches table with touch_id",
                    )
                )
        if spec.name == "touches" and col.name == "action_id" and ctx.playbook is not None:
            catalog = [*ctx.playbook.action_ids, NO_ACTION]
            checks.append(
                _Check(
                    Rule.UNKNOWN_ACTION,
                    col.name,
                    p.is_not_null() & ~p.is_in(catalog),
                    "an action id of the playbook's catalog, or 'none' (add the action to [[actions]] or fix the id; "
                    "an action renamed or no longer used keeps its old id in [[actions]], retired with "
                    'eligibility = "false": docs/decide.md, "Renaming an action")',
                )
            )
    names = {c.name for c in present}
    for earlier, later in spec.column_order_checks:
        if earlier in names and later in names:
            checks.append(
                _Check(
                    Rule.DATE_ORDER,
                    later,
                    pl.col(_parsed(later)) < pl.col(_parsed(earlier)),
                    f"a {later} not before {earlier}",
                )
            )
    return checks


def _is_time_type_check(check: _Check, spec: TableSpec) -> bool:
    return check.rule is Rule.BAD_TYPE and spec.column(check.column).type is ColumnType.TIMESTAMP


def _is_number_type_check(check: _Check, spec: TableSpec) -> bool:
    return check.rule is Rule.BAD_TYPE and spec.column(check.column).type is ColumnType.FLOAT


def _collect_examples(
    examples: pl.DataFrame,
    counts: pl.DataFrame,
    checks: list[_Check],
    spec: TableSpec,
    src: TableSource,
    ctx: _Context,
) -> None:
    listed: dict[int, int] = {}
    for record in examples.iter_rows(named=True):
        for i, check in enumerate(checks):
            if record[f"__f{i}"]:
                value = record[check.column]
                shown = None if value is None else (value if len(value) <= 80 else value[:77] + "…")
                expected = check.expected
                if value and _is_time_type_check(check, spec):
                    # 2026-02-29 is written right but names no day: say so rather than "not ISO 8601"; 24-01-06
                    # has a year of two digits, not the year 24.
                    if (reason := no_such_date(value)) is not None:
                        expected = f"a date and time that exist ({reason})"
                    elif (short := short_year(value)) is not None:
                        expected = f"{expected} ({short})"
                    elif (epoch := epoch_number(value)) is not None:
                        expected = f"{expected} ({epoch})"
                # 1,5 or 1.234,56 (a German export) is no number, nor 1.234.567: say why, converting nothing.
                hint = (decimal_comma_hint(value) or thousands_dot_hint(value)) if value else None
                if hint is not None and _is_number_type_check(check, spec):
                    expected = f"{expected} ({hint})"
                if value and check.rule is Rule.UNKNOWN_REFERENCE:
                    # An id written in another Unicode form than a known one prints as it: say why it is unknown.
                    ref_table = (spec.column(check.column).references or "").split(".")[0]
                    twin = ctx.twin_note(ref_table, value)
                    if twin is not None:
                        expected = f"{expected}; {twin}"
                ctx.problems.append(
                    Problem(
                        check.rule,
                        spec.name,
                        src.label,
                        expected,
                        row=record[_ROW],
                        column=check.column,
                        value=shown,
                    )
                )
                listed[i] = listed.get(i, 0) + 1
    for i, check in enumerate(checks):
        total = int(counts[f"__f{i}"][0])
        if total:
            key = (check.rule, spec.name, check.column)
            ctx.counts[key] = ctx.counts.get(key, 0) + total
            if not listed.get(i):
                # The example rows were used up by other checks; still say the rule was broken.
                ctx.problems.append(
                    Problem(
                        check.rule,
                        spec.name,
                        src.label,
                        f"{check.expected} ({total} rows)",
                        column=check.column,
                    )
                )


def _read_failure(src: TableSource, spec: TableSpec, exc: Exception, n_fields: int) -> Problem:
    if src.kind == "csv" and src.path is not None:
        row, expected = locate_csv_error(src.path, n_fields)
        if row is not None or "well-formed" not in expected:
            return Problem(Rule.UNREADABLE_FILE, spec.name, src.label, expected, row=row)
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return Problem(
        Rule.UNREADABLE_FILE,
        spec.name,
        src.label,
        f"a readable {src.kind} table; reading failed: {first_line}",
    )


def _cut_rows(short: ShortRows, needed: int, spec: TableSpec, src: TableSource, ctx: _Context) -> bool:
    """Refuse the rows of a CSV file with fewer fields than its header names (the table is then unreadable).

    Returns True when there are some: the table's other rules are not checked, as for a row with too many.
    """
    if not short.count:
        return False
    for row, fields, line in short.first:
        ctx.problems.append(
            Problem(Rule.UNREADABLE_FILE, spec.name, src.label, short_row_message(needed, fields, row, line), row=row)
        )
    key = (Rule.UNREADABLE_FILE, spec.name, None)
    ctx.counts[key] = ctx.counts.get(key, 0) + short.count
    ctx.unreadable.add(spec.name)
    return True


def _load_typed(src: TableSource, spec: TableSpec) -> pl.DataFrame:
    """The table in contract dtypes, optional columns it lacks added as nulls, extras kept."""
    lf, extras = _typed_frame(src, spec)
    try:
        frame = lf.select(*spec.column_names, *extras).collect(engine="streaming")
    except pl.exceptions.PolarsError as exc:
        raise BookError(f"{src.label}: could not be read: {exc}") from None
    if extras:
        frame = frame.with_columns(infer_extra_column(frame.get_column(n)) for n in extras)
    return frame


def _read_column(col: ColumnSpec, dtype: pl.DataType) -> pl.Expr:
    """Raw column ``col`` (of ``dtype``) in its contract type; a name in Unicode NFC, an id as written (:mod:`.nfc`)."""
    parsed = parse_column(col.name, col.type, dtype, tokens_missing=not col.required)
    return nfc_text(parsed) if col.type is ColumnType.STRING and not col.identifier else parsed


def _typed_frame(src: TableSource, spec: TableSpec) -> tuple[pl.LazyFrame, list[str]]:
    """The table's contract columns in contract dtypes (nulls where it lacks one) and extras as read, unread yet.

    Also the names of its extra columns.
    """
    lf = _raw_frame(src)
    # Validation refused unnamed columns holding values, and noted the empty ones and pandas' index.
    names = lf.collect_schema().names()
    lf = lf.drop([n for n in names if n.startswith(_UNNAMED)] + _pandas_index_columns(names))
    schema = lf.collect_schema()
    lf = lf.filter(~_blank_row(schema))
    contract_cols = [
        _read_column(c, schema[c.name]).alias(c.name) if c.name in schema else pl.lit(None, c.type.polars).alias(c.name)
        for c in spec.columns
    ]
    extras = [n for n in schema.names() if n not in spec.column_names]
    return lf.with_columns(contract_cols), extras
