"""Accounts columns that leak how an account ended: today's values that tell the gone accounts from the active ones."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

from nextmove.book.lifetime import gone_at_lazy, terminal_outcome_kinds
from nextmove.book.model import ExtraKind
from nextmove.features.names import FeatureVocabulary
from nextmove.playbook import Playbook
from nextmove.playbook.loader import toml_string

LEAK_AUC = 0.95
"""Separation (AUC, either way) of the gone accounts from the others at which a column is taken for a leak.

A column that tells them apart this well from today's values alone is almost certainly written as
accounts leave; honest columns measure far below it. On the lab's books (seeds 0 to 2) the highest
were ``seats`` and ``arr`` at 0.59, then ``owner`` at 0.56 and ``segment`` at 0.56; on a tester's
construction book (1,947 of 8,000 accounts gone) 0.51, and 0.54 on the subscription and meal-kit
books of the tests; the dates, read by their missing values alone, 0.50. An offboarding survey's
score, missing for every active account, read 1.00.
"""

MIN_GONE_ACCOUNTS = 20
"""Gone accounts (and as many others) needed to judge a column: with fewer, a chance pattern can look perfect."""

MIN_CATEGORY_ACCOUNTS = 20
"""Accounts a text value needs to be judged on its own; rarer values are judged together, so an id-like column
(a value per account) is not read as telling each account's end."""

START_FEATURES: dict[str, tuple[str, ...]] = {
    "customer_since": ("tenure_days",),
    "contract_start": ("tenure_days", "days_to_renewal"),
    "renewal_date": ("days_to_renewal",),
}
"""The contract's dates and the features computed from them."""

CONTRACT_FEATURES: dict[str, tuple[ExtraKind, tuple[str, ...]]] = {
    "arr": ("number", ("arr",)),
    "segment": ("text", ("segment",)),
    "industry": ("text", ("industry",)),
    "region": ("text", ("region",)),
    "owner": ("text", ("owner",)),
    **{c: ("time", f) for c, f in START_FEATURES.items()},
}
"""The contract's accounts columns that are features, by kind, with the features each makes.

``lifecycle_stage`` is not here: the models leave it out whatever it shows (it says ``churned``)."""


@dataclass(frozen=True)
class LeakingColumn:
    """An accounts column whose values today tell the gone accounts from the others almost perfectly."""

    column: str
    """The column's name in the accounts table."""
    features: tuple[str, ...]
    """The feature columns it makes, which the models leave out."""
    auc: float
    """How well it tells the gone accounts from the others (AUC, 0.5 to 1, either way)."""
    gone: int
    """Accounts gone by a terminal outcome (a churn)."""
    others: int
    """The other accounts."""
    missing_gone: float
    """Share of the gone accounts without a value."""
    missing_others: float
    """Share of the other accounts without a value."""
    kinds: tuple[str, ...]
    """The terminal outcome kinds (``churn``)."""

    def note(self) -> str:
        """What the column shows, what nextmove does about it, and how to keep it anyway."""
        missing = ""
        if self.missing_gone != self.missing_others:
            missing = (
                f"; it is missing for {self.missing_others:.0%} of the others and {self.missing_gone:.0%} of the gone"
            )
        kinds = " or ".join(f"a {k}" for k in self.kinds) + (" outcome" if len(self.kinds) == 1 else " outcomes")
        named = "" if self.features == (self.column,) else f" ({', '.join(self.features)})"
        return (
            f"the accounts column {self.column!r} tells the {self.gone:,} accounts gone by {kinds} from the "
            f"{self.others:,} others almost perfectly (AUC {self.auc:.2f}{missing}): the accounts table holds "
            "today's values, so at a past decision it tells how the account ended. The models of health, run, "
            f"segment and evaluate leave it out of their features{named}; if its values were known before each "
            f"decision, keep it with [features] keep_columns = [{toml_string(self.column)}] in the playbook"
        )


def leaking_columns(
    accounts: pl.DataFrame,
    outcomes: pl.DataFrame,
    playbook: Playbook,
    when: datetime,
    *,
    vocabulary: FeatureVocabulary | None = None,
) -> list[LeakingColumn]:
    """The accounts columns (features of the models) whose values today tell the gone accounts from the others.

    The accounts table holds each account's values as of the book's end, at every past decision a
    training set reads it. A column written when an account leaves (an offboarding survey's score, a
    cancellation reason), missing or different for the accounts still there, then tells the models
    which past decisions ended in a churn: held-out figures look perfect and every active account
    gets a probability near zero. Such a column separates the accounts gone by a terminal outcome
    (:func:`~nextmove.book.gone_at`, at the later of ``when`` and the last outcome, as the accounts
    table is the book's end's) from the others with an AUC of at least :data:`LEAK_AUC`, given at
    least :data:`MIN_GONE_ACCOUNTS` of each. How a column is read, by its kind:

    - a number by its values, missing ones ranked below or above all others (whichever tells more);
    - text by the share of gone accounts with each value (missing is a value; values of fewer than
      :data:`MIN_CATEGORY_ACCOUNTS` accounts are pooled);
    - a time by whether it is missing alone: a gone account's renewal date or contract start lies
      further back by nature, and the features read them relative to each decision.

    Candidates are the extra columns the vocabulary uses as features and the contract's (``arr``,
    ``segment``, ``industry``, ``region``, ``owner``, the dates); columns the playbook's
    ``[features] keep_columns`` names are kept and not reported.

    Parameters
    ----------
    accounts, outcomes
        The book's tables.
    playbook
        Says which outcome kinds end accounts, and which columns to keep.
    when
        The decision time.
    vocabulary
        The features' vocabulary (default: the accounts table's alone), which names the extra columns' features.

    Examples
    --------
    >>> from datetime import UTC
    >>> from nextmove.playbook.loader import default_playbook_text, parse_playbook
    >>> ids = [f"a{i}" for i in range(100)]
    >>> accounts = pl.DataFrame({"account_id": ids, "arr": [1000.0 + 10 * (i % 7) for i in range(100)],
    ...                          "exit_score": [float(i % 5) if i < 30 else None for i in range(100)]})
    >>> outcomes = pl.DataFrame({"account_id": ids[:30], "kind": ["churn"] * 30,
    ...                          "ts": [datetime(2025, 1, 1, tzinfo=UTC)] * 30})
    >>> playbook = parse_playbook(default_playbook_text())
    >>> leaks = leaking_columns(accounts, outcomes, playbook, datetime(2025, 3, 1, tzinfo=UTC))
    >>> [(c.column, c.features, c.auc, c.gone, c.others) for c in leaks]
    [('exit_score', ('exit_score',), 1.0, 30, 70)]
    """
    kinds = terminal_outcome_kinds(playbook)
    candidates = _candidates(accounts.schema, vocabulary, set(playbook.features.keep_columns))
    if not kinds or not candidates or accounts.height < 2 * MIN_GONE_ACCOUNTS:
        return []
    gone = _gone(accounts, outcomes, kinds, when)
    n_gone = int(gone.sum())
    n_others = gone.len() - n_gone
    if min(n_gone, n_others) < MIN_GONE_ACCOUNTS:
        return []
    found = []
    for column, (kind, features) in candidates.items():
        values = accounts.get_column(column)
        if values.dtype == pl.Null:
            continue
        missing = _missing(values)
        auc = _separation(values, missing, kind, gone)
        if auc >= LEAK_AUC:
            found.append(
                LeakingColumn(
                    column=column,
                    features=features,
                    auc=round(auc, 4),
                    gone=n_gone,
                    others=n_others,
                    missing_gone=_share(missing.filter(gone)),
                    missing_others=_share(missing.filter(~gone)),
                    kinds=tuple(kinds),
                )
            )
    return found


def left_out_features(leaks: Sequence[LeakingColumn]) -> tuple[str, ...]:
    """The feature columns the models leave out for ``leaks``, each once, in order."""
    return tuple(dict.fromkeys(f for leak in leaks for f in leak.features))


def _candidates(
    schema: pl.Schema, vocabulary: FeatureVocabulary | None, keep: set[str]
) -> dict[str, tuple[ExtraKind, tuple[str, ...]]]:
    """Accounts column → its kind and the features it makes, for the columns the models read."""
    vocab = vocabulary if vocabulary is not None else FeatureVocabulary.build(accounts_schema=schema)
    out: dict[str, tuple[ExtraKind, tuple[str, ...]]] = {
        c: spec for c, spec in CONTRACT_FEATURES.items() if c in schema
    }
    for extra in vocab.extras:
        if extra.source in schema:
            out[extra.source] = (extra.kind, (extra.feature,))
    return {c: spec for c, spec in out.items() if c not in keep}


def _gone(accounts: pl.DataFrame, outcomes: pl.DataFrame, kinds: list[str], when: datetime) -> pl.Series:
    """Whether each account is gone at the later of ``when`` and the last outcome, in the accounts' order."""
    ts = pl.Datetime("us", "UTC")
    last = outcomes.select(pl.col("ts").cast(ts).max()).item() if outcomes.height else None
    # Just after the last outcome: a churn dated to a day is gone after that day's decisions.
    at = when if last is None or last < when else last + timedelta(microseconds=1)
    keys = accounts.select("account_id", pl.lit(at, dtype=ts).alias("_at"))
    return gone_at_lazy(accounts.lazy(), outcomes.lazy(), kinds, keys.lazy(), at="_at").collect().get_column("gone")


def _missing(values: pl.Series) -> pl.Series:
    """Missing values: null, NaN, and text that is blank."""
    if values.dtype.is_float():
        return values.is_null() | values.is_nan()
    if values.dtype in (pl.String, pl.Categorical) or isinstance(values.dtype, pl.Enum):
        return values.cast(pl.String).str.strip_chars().fill_null("").eq("")
    return values.is_null()


def _share(flags: pl.Series) -> float:
    """The share of ``flags`` that are true (0 for none)."""
    return int(flags.sum()) / flags.len() if flags.len() else 0.0


def _separation(values: pl.Series, missing: pl.Series, kind: ExtraKind, gone: pl.Series) -> float:
    """How well the column tells ``gone`` from the rest (AUC, either way), read as :func:`leaking_columns` says."""
    if kind == "time":
        return _auc(missing.cast(pl.Float64), gone)
    if kind == "number":
        numbers = pl.select(pl.when(missing).then(None).otherwise(values.cast(pl.Float64))).to_series()
        low, high = numbers.min(), numbers.max()
        if not isinstance(low, float) or not isinstance(high, float):
            return _auc(missing.cast(pl.Float64), gone)
        below, above = numbers.fill_null(low - 1.0), numbers.fill_null(high + 1.0)
        return max(_auc(below, gone), _auc(above, gone))
    frame = pl.DataFrame({"v": values.cast(pl.String), "m": missing, "g": gone})
    common = frame.filter(~pl.col("m")).group_by("v").len().filter(pl.col("len") >= MIN_CATEGORY_ACCOUNTS)
    # Missing is a value of its own; rare values are pooled, under keys no value has.
    pooled = frame.with_columns(
        pl.when(pl.col("m"))
        .then(pl.lit("\x00missing"))
        .when(pl.col("v").is_in(common.get_column("v").implode()))
        .then(pl.lit("=") + pl.col("v"))
        .otherwise(pl.lit("\x00rare"))
        .alias("v")
    )
    share = pooled.with_columns(pl.col("g").cast(pl.Float64).mean().over("v").alias("share")).get_column("share")
    return _auc(share, gone)


def _auc(score: pl.Series, positive: pl.Series) -> float:
    """The AUC of ``score`` for ``positive`` (ties count half), folded to at least 0.5: how well it separates."""
    ranks = score.rank("average")
    n1 = int(positive.sum())
    n0 = positive.len() - n1
    if not n1 or not n0:
        return 0.5
    auc = (float(ranks.filter(positive).sum()) - n1 * (n1 + 1) / 2) / (n1 * n0)
    return max(auc, 1.0 - auc)
