"""When an account is gone: its terminal outcomes (churn), and a later start that brings it back (a win-back);
and, where the book's data end, a lifecycle stage the playbook names gone (``gone_stages``).

One rule for every job that asks whether an account was a customer at a time: the run and health
(the accounts decided on and scored), the training set (the past decisions kept), lift (the accounts
measured), segments, and the notes of ``nextmove validate``. The stage is today's (the accounts table
has no history), so only the accounts at a time no more than a day before the book's data end, or after it, read it
(:func:`gone_accounts`); past decisions (:func:`gone_at`: the training set, lift) never do.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from nextmove.book.model import Book, is_backtest, of_dates
from nextmove.playbook.schema import Playbook

START_COLUMNS = ("contract_start", "customer_since")
"""The accounts' columns that say when a relationship began; the later of the two began the current one."""

_TS = pl.Datetime("us", "UTC")


def terminal_outcome_kinds(playbook: Playbook) -> list[str]:
    """Outcome kinds after which an account is gone: those of objectives that end accounts (``ends_account``).

    Unless the playbook says otherwise, an objective ends accounts when its sense is ``avoid`` and it
    is valued at ``arr``.

    Examples
    --------
    >>> from nextmove.playbook.loader import default_playbook_text, parse_playbook
    >>> terminal_outcome_kinds(parse_playbook(default_playbook_text()))
    ['churn']
    """
    kinds = {o.outcome for o in playbook.objectives.values() if o.ends_accounts}
    return sorted(kinds)


def latest_start(schema: pl.Schema) -> pl.Expr:
    """The start of an account's current relationship: the later of ``contract_start`` and ``customer_since``.

    Only those of :data:`START_COLUMNS` that ``schema`` (the accounts') holds as times count; null
    where the account has neither. ``contract_start`` is not before ``customer_since`` (a rule of the
    contract), so it is the start wherever it is given; a book that writes a win-back's re-signing
    in ``customer_since`` alone is read the same way.

    Examples
    --------
    >>> accounts = pl.DataFrame({"account_id": ["a", "b"], "customer_since": [datetime(2020, 1, 1), None],
    ...                          "contract_start": [datetime(2025, 6, 1), None]})
    >>> accounts.select(latest_start(accounts.schema).alias("start")).get_column("start").to_list()
    [datetime.datetime(2025, 6, 1, 0, 0, tzinfo=zoneinfo.ZoneInfo(key='UTC')), None]
    """
    columns = [c for c in START_COLUMNS if c in schema and _is_time(schema[c])]
    if not columns:
        return pl.lit(None, dtype=_TS)
    return pl.max_horizontal([pl.col(c).cast(_TS) for c in columns])


def gone_at(
    book: Book, playbook: Playbook, keys: pl.DataFrame, *, at: str = "decision_ts", whole_days: bool | None = None
) -> pl.DataFrame:
    """``keys`` (``account_id`` and a time column ``at``) with whether each account is gone at that time.

    An account is gone at a time ``t`` after an outcome of a terminal kind
    (:func:`terminal_outcome_kinds`: churn) at or before ``t``, unless it started again since: its
    latest start (:func:`latest_start`) lies after its last terminal outcome up to ``t`` and at or
    before ``t``. A customer that churned and re-signed (a win-back, its ``contract_start`` the new
    contract's) is active again from that start; its churn stays in the history, the outcome of the
    decisions before it. The book keeps one start per account, so only the latest relationship's
    start is known: before it, an account is gone from its first terminal outcome on.

    With ``whole_days`` (outcomes that are dates; by default when every outcome of the book is at a
    UTC midnight, :func:`~nextmove.book.of_dates`, as the training set decides) a terminal outcome at
    ``t`` happens during its day, after that day's decisions: the account is gone after ``t``.

    Adds ``ended_ts``, the last terminal outcome up to ``t`` (before ``t`` with ``whole_days``; null
    if none), and ``gone`` (Boolean). Rows keep the order of ``keys``.

    Examples
    --------
    >>> from datetime import UTC
    >>> from nextmove.book import empty_table
    >>> from nextmove.playbook.loader import default_playbook_text, parse_playbook
    >>> accounts = pl.DataFrame({"account_id": ["back", "lost"],
    ...                          "contract_start": [datetime(2025, 6, 1, tzinfo=UTC), None]})
    >>> outcomes = pl.DataFrame({"account_id": ["back", "lost"], "kind": ["churn", "churn"],
    ...                          "ts": [datetime(2024, 5, 1, tzinfo=UTC)] * 2})
    >>> book = Book(accounts, empty_table("signals"), empty_table("touches"), outcomes)
    >>> keys = pl.DataFrame({"account_id": ["back", "back", "back", "lost"],
    ...                      "decision_ts": [datetime(y, 1, 1, tzinfo=UTC) for y in (2024, 2025, 2026, 2026)]})
    >>> gone_at(book, parse_playbook(default_playbook_text()), keys).get_column("gone").to_list()
    [False, True, False, True]
    """
    kinds = terminal_outcome_kinds(playbook)
    lazy = gone_at_lazy(book.accounts.lazy(), book.outcomes.lazy(), kinds, keys.lazy(), at=at, whole_days=whole_days)
    return lazy.collect()


def gone_accounts(book: Book, playbook: Playbook, when: datetime) -> pl.DataFrame:
    """``account_id, ended_ts`` of the accounts gone at ``when``: by a terminal outcome (:func:`gone_at`, dates
    read as it reads them), or at a stage of the playbook's ``gone_stages`` (:func:`gone_stage_accounts`, read
    at a ``when`` no more than a day before the book's data end, or after it; ``ended_ts`` null: the book
    does not say when they left).

    Examples
    --------
    >>> from datetime import UTC
    >>> from nextmove.book import empty_table
    >>> from nextmove.playbook.loader import default_playbook_text, parse_playbook
    >>> pb = parse_playbook('gone_stages = ["churned"]\\n' + default_playbook_text())
    >>> accounts = pl.DataFrame({"account_id": ["a", "b", "c"], "lifecycle_stage": ["churned", "adoption", "growth"]})
    >>> outcomes = pl.DataFrame({"account_id": ["b"], "kind": ["churn"], "ts": [datetime(2025, 5, 1, tzinfo=UTC)]})
    >>> book = Book(accounts, empty_table("signals"), empty_table("touches"), outcomes)
    >>> gone_accounts(book, pb, datetime(2025, 6, 1, tzinfo=UTC)).get_column("account_id").to_list()
    ['a', 'b']
    >>> gone_accounts(book, pb, datetime(2025, 4, 1, tzinfo=UTC)).height  # before the data end: no stage read
    0
    """
    keys = book.accounts.select("account_id", pl.lit(when, dtype=_TS).alias("_at"))
    ended = gone_at(book, playbook, keys, at="_at").filter(pl.col("gone")).select("account_id", "ended_ts")
    staged = gone_stage_accounts(book, playbook, when).join(ended, on="account_id", how="anti")
    if staged.height == 0:
        return ended
    at_stage = staged.select(pl.col("account_id"), pl.lit(None, dtype=_TS).alias("ended_ts"))
    gone = pl.concat([ended, at_stage], how="vertical_relaxed")
    # In the accounts table's order, as the outcomes' alone were.
    return book.accounts.select("account_id").join(gone, on="account_id", how="inner", maintain_order="left")


def stages_read_at(book: Book, when: datetime) -> bool:
    """Whether the accounts table's ``lifecycle_stage`` tells the stage at ``when``: ``when`` is no backtest
    (:func:`~nextmove.book.is_backtest`: not more than a day before how far the book's data reach; a book
    without dated rows: always).

    The accounts table has no history: its stage is the one where the book's data end (today's, for a
    fresh export). At the default as-of that is the stage then; at an earlier one (a backtest), accounts
    at ``churned`` today may have been customers, so a gone stage is not read there.

    Examples
    --------
    >>> from datetime import UTC
    >>> from nextmove.book import empty_table
    >>> outcomes = pl.DataFrame({"account_id": ["a"], "kind": ["churn"], "ts": [datetime(2025, 5, 1, 12, tzinfo=UTC)]})
    >>> book = Book(empty_table("accounts"), empty_table("signals"), empty_table("touches"), outcomes)
    >>> stages_read_at(book, datetime(2025, 5, 1, tzinfo=UTC)), stages_read_at(book, datetime(2025, 4, 20, tzinfo=UTC))
    (True, False)
    """
    return not is_backtest(book, when)


def gone_stage_accounts(book: Book, playbook: Playbook, when: datetime) -> pl.DataFrame:
    """``account_id, lifecycle_stage`` of the accounts at a stage of the playbook's ``gone_stages``, when ``when``
    reads the stages (:func:`stages_read_at`); none otherwise, nor without ``gone_stages`` or a ``lifecycle_stage``.

    Whatever their outcomes: one at a gone stage that had a churn and a later start is gone by its stage.
    """
    empty = pl.DataFrame(schema={"account_id": pl.String, "lifecycle_stage": pl.String})
    accounts = book.accounts
    if not playbook.gone_stages or "lifecycle_stage" not in accounts.columns or not stages_read_at(book, when):
        return empty
    stage = pl.col("lifecycle_stage").cast(pl.String)
    return accounts.filter(stage.is_in(playbook.gone_stages)).select(
        pl.col("account_id").cast(pl.String), stage.alias("lifecycle_stage")
    )


def gone_at_lazy(
    accounts: pl.LazyFrame,
    outcomes: pl.LazyFrame,
    kinds: list[str],
    keys: pl.LazyFrame,
    *,
    at: str = "decision_ts",
    whole_days: bool | None = None,
) -> pl.LazyFrame:
    """:func:`gone_at` on lazy frames: the accounts and outcomes tables, the terminal kinds and the keys.

    ``nextmove validate`` reads a book's files this way, without loading them. Without
    ``whole_days``, it is whether ``outcomes`` are dates (:func:`~nextmove.book.of_dates`).
    """
    if whole_days is None:
        whole_days = of_dates(outcomes.select("ts").collect())
    ends = (
        outcomes.filter(pl.col("kind").is_in(kinds))
        .select(pl.col("account_id").cast(pl.String), pl.col("ts").cast(_TS).alias("ended_ts"))
        .drop_nulls()
        .sort("ended_ts")
    )
    starts = accounts.select(
        pl.col("account_id").cast(pl.String), latest_start(accounts.collect_schema()).alias("_start")
    )
    rows = (
        keys.with_row_index("_row")
        .with_columns(pl.col("account_id").cast(pl.String).alias("_id"), pl.col(at).cast(_TS).alias("_t"))
        .sort("_t")
        .join_asof(
            ends.rename({"account_id": "_id"}),
            left_on="_t",
            right_on="ended_ts",
            by="_id",
            strategy="backward",
            allow_exact_matches=not whole_days,
            check_sortedness=False,
        )
        .join(starts.rename({"account_id": "_id"}), on="_id", how="left")
    )
    back = pl.col("_start").is_not_null() & (pl.col("_start") > pl.col("ended_ts")) & (pl.col("_start") <= pl.col("_t"))
    return (
        rows.with_columns((pl.col("ended_ts").is_not_null() & ~back).alias("gone"))
        .sort("_row")
        .drop("_row", "_id", "_t", "_start")
    )


def _is_time(dtype: pl.DataType) -> bool:
    return dtype == pl.Date or isinstance(dtype, pl.Datetime)
