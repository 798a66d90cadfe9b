"""The health job: scores, trends, movers, learned weights and calibrated outcome probabilities per active account."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

import polars as pl

from nextmove.book import NO_ACTION, Book, gone_accounts, of_dates, table_reach
from nextmove.book.notes import lagging_book_notes, last_day
from nextmove.book.outcomes_until import checked_outcomes_until, outcomes_until_notes
from nextmove.book.validate import gone_stage_notes, returned_accounts_notes, unmatched_gone_stages_note
from nextmove.engine.model_store import load_outcome_models, save_outcome_models
from nextmove.errors import ConfigError
from nextmove.features import (
    FeatureVocabulary,
    build_training_set,
    compute_features,
    outcomes_seen_until,
    terminal_outcome_kinds,
)
from nextmove.features.history import DECISION_TS, resolve_as_of
from nextmove.features.training import decision_rows
from nextmove.measure.accuracy import ProbabilityAccuracy, evaluate_probabilities
from nextmove.models.health import (
    BANDS,
    HealthBands,
    HealthScorecard,
    Mover,
    ScorecardComponent,
    band_expr,
    health_trend,
    left_out_measures_note,
    silent_usage_note,
    top_movers,
    trend_noise_note,
    unknown_signals_note,
    unscored_signals_note,
)
from nextmove.models.health_bands import BandOutcome, HealthBandCalibrator, HealthBandReport
from nextmove.models.health_optimizer import HealthOptimizer, HealthOptimizerReport
from nextmove.models.leaks import guard_leaks
from nextmove.models.outcome import OutcomeModel, OutcomeModels, OutcomePredictions
from nextmove.playbook import Playbook
from nextmove.playbook.schema import Sense
from nextmove.store import Store

Progress = Callable[[str], None]
"""Called with a short description as each long step starts (e.g. to update a spinner)."""


@dataclass(frozen=True)
class BandSummary:
    """Accounts and ARR in one health band, its score range, and how the outcome went in it on the later window."""

    band: str
    accounts: int
    arr_usd: float
    arr_share: float
    """Share of the scored accounts' total ARR (0–1)."""
    span: tuple[int, int] | None = None
    """The band's range of rounded scores (None for ``no score`` and for an empty band)."""
    later: BandOutcome | None = None
    """The terminal outcome's rate in this band on the history's later window, when the bands were learned."""


@dataclass(frozen=True)
class HealthResult:
    """What :func:`score_health` found, per account and for the book.

    ``accounts`` has one row per active account at ``as_of`` (book order): ``account_id``,
    ``arr`` (and ``segment``, ``owner`` when the book has them), ``health_score`` (0–100),
    ``health_band``, ``health_trend`` (improving / stable / declining / new),
    ``health_change`` (points since ``before``), one ``health_<component>`` column per
    component, ``top_movers`` (plain words, ``; ``-separated), then per outcome kind with a
    model ``p_<kind>``, ``expected_<kind>_amount`` (amount outcomes) and ``drivers_<kind>``.
    """

    as_of: datetime
    before: datetime
    trend_weeks: int
    accounts: pl.DataFrame = field(repr=False)
    components: list[ScorecardComponent]
    scorecard: HealthScorecard = field(repr=False)
    movers: dict[str, list[Mover]] = field(repr=False)
    optimizer: HealthOptimizerReport | None
    outcome_models: OutcomeModels | None = field(repr=False)
    predictions: OutcomePredictions | None = field(repr=False)
    bands_report: HealthBandReport | None
    """How the bands were learned from the terminal outcome and how they separated it on the later window;
    None when the bands are fixed (the playbook's ``band_cutoffs``, or the 30/70 fallback with a note)."""
    accuracy: dict[str, ProbabilityAccuracy] = field(repr=False)
    """Per outcome kind: accuracy on the later (validation) window, from out-of-fold calibrated
    probabilities. Empty when the models were loaded from the store rather than trained."""
    risk_kind: str | None
    """The terminal outcome kind (e.g. churn) whose probability ranks ARR at risk, if it has a model."""
    model_id: str | None
    """The stored model version used or saved, if any."""
    left_out: int
    """Accounts of the book not scored: gone by a terminal outcome (not won back) or at a stage of ``gone_stages``,
    or not started yet at ``as_of``."""
    notes: list[str]

    @property
    def has_arr(self) -> bool:
        """Whether the book has ARR: any scored account's ``arr`` non-null and non-zero (a consumer book has none)."""
        arr = pl.col("arr").cast(pl.Float64).fill_null(0.0)
        return bool(self.accounts.select((arr != 0).any()).item()) if "arr" in self.accounts.columns else False

    @property
    def health_bands(self) -> HealthBands:
        """The score cut-offs of the bands and where they come from (history, playbook or fixed)."""
        return self.scorecard.bands

    def bands(self) -> list[BandSummary]:
        """Accounts and ARR per band, Healthy first (accounts without a score last, as ``no score``)."""
        frame = self.accounts.select(
            pl.col("health_band").fill_null("no score"), pl.col("arr").cast(pl.Float64).fill_null(0.0)
        )
        total = float(frame.get_column("arr").sum()) or 1.0
        spans = self.health_bands.ranges()
        later = {b.band: b for b in self.bands_report.later} if self.bands_report is not None else {}
        out = []
        for band in [b for b, _ in reversed(BANDS)] + ["no score"]:
            rows = frame.filter(pl.col("health_band") == band)
            if band == "no score" and rows.height == 0:
                continue
            arr = float(rows.get_column("arr").sum())
            out.append(BandSummary(band, rows.height, arr, arr / total, spans.get(band), later.get(band)))
        return out

    def top_at_risk(self, n: int = 10) -> pl.DataFrame:
        """The ``n`` accounts with the most ARR at risk, most first (column ``arr_at_risk`` added).

        With a model of the terminal outcome (``risk_kind``), ``arr_at_risk`` is ARR × its
        probability; without one, it is the ARR of accounts banded At risk or Critical.
        """
        frame = self.accounts
        column = self.probability_column(self.risk_kind) if self.risk_kind is not None else None
        if column is not None and column in frame.columns:
            risk = pl.col("arr").fill_null(0.0) * pl.col(column)
        else:
            risk = (
                pl.when(pl.col("health_band").is_in(["At risk", "Critical"]))
                .then(pl.col("arr").fill_null(0.0))
                .otherwise(0.0)
            )
        return (
            frame.with_columns(risk.alias("arr_at_risk"))
            .filter(pl.col("arr_at_risk") > 0)
            .sort(["arr_at_risk", "account_id"], descending=[True, False])
            .head(n)
        )

    def probability_column(self, kind: str) -> str | None:
        """The ``accounts`` column holding ``kind``'s probability (``p_<stem>``), or None without a model of it."""
        if self.predictions is None or kind not in self.predictions.probability:
            return None
        stem = next(t.stem for t in self.predictions.targets if t.kind == kind)
        return f"p_{stem}"

    def to_frame(self) -> pl.DataFrame:
        """The per-account table, ready to write as CSV (text columns only, no nested values)."""
        return self.accounts


def score_health(
    book: Book,
    playbook: Playbook,
    as_of: datetime | date | None = None,
    *,
    store: Store | None = None,
    reuse_model: bool = False,
    model_id: str | None = None,
    template: OutcomeModel | None = None,
    top_k: int = 3,
    progress: Progress | None = None,
    outcomes_until: datetime | date | None = None,
    training_days: int | None = None,
) -> HealthResult:
    """Score every active account's health and outcome probabilities at ``as_of``.

    Steps: features at ``as_of`` and ``as_of − playbook.health.trend_weeks`` weeks (one
    vocabulary, so both have the same columns); the playbook's scorecard fitted on the
    ``as_of`` snapshot; the trend and the three measures that moved each score most; the
    training set of past decisions (a note names each outcome kind it labels by window although the
    outcomes credit it to touches, as a run's notes do); the optimizer's learned weights and report when the
    history holds the terminal outcome (else a note); the bands' score cut-offs, learned from
    that outcome's history (:class:`~nextmove.models.health_bands.HealthBandCalibrator`) unless
    the playbook sets ``band_cutoffs`` (the fixed 30/70, with a note, when the history cannot
    anchor them); one calibrated outcome model per
    objective's outcome kind (validated on the later window; rare or absent kinds are skipped
    with a note), with each account's probability and top drivers; their accuracy on the later
    window. Accounts gone at ``as_of`` (a terminal outcome, and no win-back's start after it, or a stage of the
    playbook's ``gone_stages`` where the book's data end: :func:`~nextmove.book.gone_accounts`), and accounts
    not started yet, are left out.

    Parameters
    ----------
    book
        The book of business.
    playbook
        Scorecard, trend weeks, objectives (outcome kinds) and the hash stored with the models.
    as_of
        The scoring time (default: :func:`~nextmove.book.default_as_of`: ``book.as_of`` if given,
        else how far the book's data reaches, rounded up to a UTC midnight).
    store
        When given, the trained outcome models are saved as a new version (kind ``outcome``)
        and activated.
    reuse_model
        Score with the store's model (``model_id``, default the active one) instead of training;
        it must fit this playbook and these features.
    model_id
        The version to reuse (with ``reuse_model``).
    template
        Settings of the outcome models (an unfitted :class:`OutcomeModel`).
    top_k
        Drivers per account and outcome.
    progress
        Called with a description as each long step starts.
    outcomes_until
        How far the outcomes are complete, at most ``as_of`` (a date: that whole day), as a run's
        (:attr:`~nextmove.engine.run.RunOptions.outcomes_until`); default: where the outcomes end.
    training_days
        Learn (the optimizer, the bands, the outcome models) only from the decisions of this many days
        before ``as_of``, as a run's ``training_days`` (``--training-days``): the training set is built
        from then on, which bounds a large book's time and memory. Default: the whole history.

    Returns
    -------
    HealthResult

    Raises
    ------
    ConfigError
        If ``as_of`` cannot be told, no health measure exists among the features,
        ``reuse_model`` is given without a store, ``outcomes_until`` is after ``as_of``, or
        ``training_days`` is not a positive whole number or keeps no decision whose horizon is over.
    IncompatibleModelError
        With ``reuse_model``, if the stored model does not fit the playbook or the features.
    """
    say = progress or (lambda _: None)
    if reuse_model and store is None:
        raise ConfigError("reuse_model needs a store to load the model from")
    if training_days is not None and (
        isinstance(training_days, bool) or not isinstance(training_days, int) or training_days < 1
    ):
        raise ConfigError(f"training_days must be a positive whole number or None, got {training_days!r}")
    when = resolve_as_of(book, as_of)
    until = checked_outcomes_until(outcomes_until, when)
    weeks = playbook.health.trend_weeks
    before = when - timedelta(weeks=weeks)
    notes: list[str] = []

    say(f"Computing features as of {when:%Y-%m-%d} and {weeks} weeks earlier…")
    vocab = _vocabulary(book, playbook, when)
    guard = guard_leaks(book, playbook, when, vocab)  # accounts columns written as accounts leave: not learned from
    snapshot = compute_features(book, when, playbook=playbook, vocabulary=vocab)
    active_ids = active_accounts(book, playbook, when)
    left_out = book.accounts.height - active_ids.height
    now = snapshot.join(active_ids, on="account_id", how="semi", maintain_order="left")
    # Only accounts that existed then get an earlier score: one not started yet would be scored on
    # the accounts table alone (ARR, a negative tenure) and read as a change; it is new instead. So
    # is one gone then and won back since: its score then would read the months it was away.
    earlier = (
        compute_features(book, before, playbook=playbook, vocabulary=vocab)
        .join(active_ids, on="account_id", how="semi", maintain_order="left")
        .join(existing_accounts(book, before), on="account_id", how="semi", maintain_order="left")
        .join(gone_accounts(book, playbook, before), on="account_id", how="anti", maintain_order="left")
    )
    if now.height == 0:
        raise ConfigError(f"no active account at {when:%Y-%m-%d %H:%M} UTC: nothing to score")

    say("Fitting the health scorecard and scoring each account…")
    card = HealthScorecard.from_playbook(playbook, now, vocab).fit(now)
    for note in (
        unscored_signals_note(playbook, vocab.signals),
        unknown_signals_note(playbook, vocab.signals),
        left_out_measures_note(playbook, now, vocab),
        unended_outcome_note(book, playbook, when),
        unmatched_gone_stages_note(book, playbook),
    ):
        if note is not None:
            notes.append(note)
    scores_now = card.score(now)
    trend = health_trend(scores_now, card.score(earlier), weeks=weeks, stable_points=playbook.health.stable_points)
    movers = top_movers(card, now, earlier, weeks=weeks, n=3)
    for note in (silent_usage_note(card, now), trend_noise_note(trend, playbook.health.stable_points, weeks)):
        if note is not None:
            notes.append(note)
    notes.extend(returned_accounts_notes(book, playbook, when))  # as validate and run: who counts as won back
    notes.extend(gone_stage_notes(book, playbook, when))  # and who is gone by a stage, or looks it
    lagging = lagging_book_notes(book, when, playbook.horizon_days)
    lagging = outcomes_until_notes(lagging, until, table_reach(book.outcomes))
    notes.extend(n for n in lagging if n not in book.notes)

    say("Building the training set of past decisions…")
    training = build_training_set(
        book,
        playbook,
        as_of=when,
        notes=notes,
        outcomes_until=until,
        decisions_from=None if training_days is None else when - timedelta(days=training_days),
    )
    if training_days is not None and not training.filter(~pl.col("censored")).height:
        _, latest, seen = finished_decisions(book, playbook, when, until if isinstance(until, datetime) else None)
        raise training_days_error(training_days, playbook, when, latest, seen)
    optimizer = _optimize(card, training, playbook, vocab, notes)
    bands_report: HealthBandReport | None = None
    if playbook.health.band_cutoffs is None:
        say("Learning the health bands from the outcome history…")
        card, bands_report = _learn_bands(card, training, scores_now, playbook, vocab, notes)
        scores_now = scores_now.with_columns(band_expr(pl.col("health_score"), card.bands))
    if (bare := no_signal_note(book, card, now, scores_now, when)) is not None:
        notes.append(bare)

    models: OutcomeModels | None = None
    accuracy: dict[str, ProbabilityAccuracy] = {}
    used_model_id: str | None = None
    if reuse_model:
        assert store is not None
        say("Loading the outcome models from the store…")
        models = load_outcome_models(store, playbook, model_id=model_id, features=now)
        used_model_id = model_id or _active_id(store)
        notes.extend(models.notes_)
        notes.extend(guard.reused_notes(models.matrix_.columns_))
    else:
        say("Training the outcome models (validated on the later window)…")
        try:
            notes.extend(guard.notes())
            models = OutcomeModels(playbook, template=guard.outcome_template(template), vocabulary=vocab).fit(training)
        except ConfigError as exc:
            notes.append(f"no outcome models: {exc}")
            models = None
        if models is not None:
            # The snapshot and the training set share one vocabulary; a mismatch must fail loudly,
            # not score accounts with silently missing features.
            models.check_compatible(features=now)
            notes.extend(models.notes_)
            for kind in models.kinds:
                v = models[kind].validation_
                if v is not None:
                    accuracy[kind] = evaluate_probabilities(v.y, v.probability)
            if store is not None and models.kinds:
                say("Saving the outcome models to the store…")
                record = save_outcome_models(store, models, metrics=_accuracy_metrics(accuracy))
                used_model_id = record.model_id

    predictions: OutcomePredictions | None = None
    table = _account_columns(now).join(scores_now, on="account_id", how="left", maintain_order="left")
    table = table.join(
        trend.select("account_id", "health_trend", "health_change"), on="account_id", how="left", maintain_order="left"
    )
    component_columns = [c for c in scores_now.columns if c.startswith("health_") and c not in _SCORE_COLUMNS]
    table = table.select(
        *[c for c in table.columns if c not in component_columns and c != "health_trend" and c != "health_change"],
        "health_trend",
        "health_change",
        *component_columns,
    )
    table = table.with_columns(
        pl.Series("top_movers", ["; ".join(m.text for m in movers.get(a, [])) for a in table["account_id"]], pl.String)
    )
    if models is not None and models.kinds:
        say("Predicting outcome probabilities and their drivers…")
        predictions = models.predict(now, top_k=top_k, vocabulary=vocab)
        table = table.join(predictions.to_frame(), on="account_id", how="left", maintain_order="left")

    terminal = terminal_outcome_kinds(playbook)
    risk_kind = next((k for k in terminal if models is not None and k in models.kinds), None)
    return HealthResult(
        as_of=when,
        before=before,
        trend_weeks=weeks,
        accounts=table,
        components=list(card.components),
        scorecard=card,
        movers=movers,
        optimizer=optimizer,
        outcome_models=models,
        predictions=predictions,
        bands_report=bands_report,
        accuracy=accuracy,
        risk_kind=risk_kind,
        model_id=used_model_id,
        left_out=left_out,
        notes=notes,
    )


def save_health_models(store: Store, result: HealthResult) -> HealthResult:
    """Save the outcome models ``result`` trained as a new active version (kind ``outcome``); ``result`` naming it.

    What :func:`score_health` does when given a ``store`` (without ``reuse_model``), before it
    predicts. ``nextmove health`` scores without a store and saves here once its CSV is written: a
    CSV that cannot be written (a full disk) leaves the store's active outcome models as they were.
    Nothing is saved for models reused from the store, nor when none were trained.
    """
    models = result.outcome_models
    if result.model_id is not None or models is None or not models.kinds:
        return result
    record = save_outcome_models(store, models, metrics=_accuracy_metrics(result.accuracy))
    return replace(result, model_id=record.model_id)


def training_days_error(
    training_days: int, playbook: Playbook, when: datetime, latest_finished: datetime | None, seen: datetime
) -> ConfigError:
    """The error of a ``--training-days`` that keeps no decision whose horizon is over by ``when``, naming enough
    days (``run`` and ``health`` alike): the horizon, a decision window and the days since the outcomes are
    ``seen`` to, and at least back to ``latest_finished``, the latest finished decision of the whole history
    (:func:`finished_decisions`).

    Examples
    --------
    >>> from nextmove.playbook.loader import load_playbook
    >>> print(training_days_error(30, load_playbook(), datetime(2025, 4, 1), None, datetime(2025, 4, 1)))
    ... # doctest: +ELLIPSIS
    no past decision's outcomes ... --training-days 30 keeps only ... Pass --training-days 104 or more ...
    """
    window = playbook.contact_policy.window_days
    unseen = _whole_days(when - seen)
    # The horizon, a decision window (a regular date lies in each) and the days the outcomes are not
    # seen; at least as far back as the latest finished decision.
    back = 0 if latest_finished is None else _whole_days(when - latest_finished)
    enough = max(playbook.horizon_days + window + unseen, back)
    since = "" if unseen == 0 else f" and the outcomes seen up to {last_day(seen)}"
    return ConfigError(
        f"no past decision's outcomes can be learned from: --training-days {training_days} keeps only the "
        f"decisions of the {training_days} days before {when:%Y-%m-%d}, and with the playbook's "
        f"{playbook.horizon_days}-day horizon{since} none of them is finished by then. Pass --training-days "
        f"{enough} or more (the horizon, a {window}-day decision window"
        + ("" if unseen == 0 else f" and the {_days_text(unseen)} since the outcomes are seen")
        + "), or leave it out to learn from the whole history"
    )


def _days_text(n: int) -> str:
    return f"{n:,} day" if n == 1 else f"{n:,} days"


def _whole_days(span: timedelta) -> int:
    """``span`` in days, a part of a day counting as one (0 for none)."""
    return max(0, -(-span // timedelta(days=1)))


def finished_decisions(
    book: Book, playbook: Playbook, when: datetime, outcomes_until: datetime | None = None
) -> tuple[datetime | None, datetime | None, datetime]:
    """The earliest decision of the whole history as of ``when``, the latest whose horizon is over by then
    (None: none), and how far the outcomes are seen (:func:`~nextmove.features.outcomes_seen_until`).

    The decisions and the rule are the training set's (:func:`~nextmove.features.build_training_set`):
    a decision is finished when its horizon ends by the time the outcomes are seen to.
    """
    signals, touches, outcomes = (b.filter(pl.col("ts") <= when) for b in (book.signals, book.touches, book.outcomes))
    known = Book(book.accounts, signals, touches, outcomes, source=book.source, as_of=when)
    days = of_dates(book.outcomes)
    untouched = not known.touches.get_column("action_id").eq(NO_ACTION).any()
    decided = decision_rows(
        known,
        playbook,
        end=when,
        every_days=playbook.contact_policy.window_days,
        untouched=untouched,
        whole_days=days,
    ).get_column(DECISION_TS)
    # As the training set reads them: complete to --outcomes-until when given, else where they are seen to.
    seen = outcomes_seen_until(known, when, whole_days=days) if outcomes_until is None else min(outcomes_until, when)
    horizon = timedelta(days=playbook.horizon_days)
    finished = decided.filter(decided + horizon <= seen)
    earliest, latest = decided.min(), finished.max()
    return (
        earliest if isinstance(earliest, datetime) else None,
        latest if isinstance(latest, datetime) else None,
        seen,
    )


_SCORE_COLUMNS = ("health_score", "health_band", "health_trend", "health_change", "health_trend_weeks")


def _vocabulary(book: Book, playbook: Playbook, when: datetime) -> FeatureVocabulary:
    """The vocabulary ``build_training_set(as_of=when)`` uses: names seen up to ``when``, plus the playbook's."""

    def names(frame: pl.DataFrame, column: str) -> list[str]:
        known = frame.filter(pl.col("ts") <= when)
        return [str(v) for v in known.get_column(column).drop_nulls().unique().to_list()]

    return FeatureVocabulary.build(
        accounts_schema=book.accounts.schema,
        signal_names=names(book.signals, "name"),
        action_ids=names(book.touches, "action_id"),
        outcome_kinds=names(book.outcomes, "kind"),
        playbook=playbook,
    )


def active_accounts(book: Book, playbook: Playbook, when: datetime) -> pl.DataFrame:
    """``account_id`` of accounts that exist at ``when`` and are not gone (:func:`~nextmove.book.gone_accounts`).

    Gone: a terminal outcome at or before ``when``, with no start after it (a win-back) by then; or, at a
    ``when`` no more than a day before the book's data end, or after it (:func:`~nextmove.book.stages_read_at`),
    a ``lifecycle_stage`` of the playbook's ``gone_stages``. One definition for every job that speaks of
    "the accounts at ``when``": the run, health, segments, the API's decisions (from the run's accounts).
    """
    gone = gone_accounts(book, playbook, when)
    accounts = book.accounts.select("account_id").join(gone, on="account_id", how="anti", maintain_order="left")
    starts = [c for c in ("customer_since", "contract_start") if c in book.accounts.columns]
    if not starts:
        return accounts
    seen = pl.concat(
        [f.filter(pl.col("ts") < when).select("account_id") for f in (book.signals, book.touches, book.outcomes)]
    ).unique()
    dated = book.accounts.select(
        "account_id",
        pl.min_horizontal(
            [pl.col(c).cast(pl.Datetime("us", "UTC")) for c in starts if _is_time(book.accounts.schema[c])]
            or [pl.lit(None, dtype=pl.Datetime("us", "UTC"))]
        ).alias("_start"),
    )
    later = dated.filter(pl.col("_start") > when).join(seen, on="account_id", how="anti")
    return accounts.join(later.select("account_id"), on="account_id", how="anti", maintain_order="left")


def existing_accounts(book: Book, when: datetime) -> pl.DataFrame:
    """``account_id`` of accounts that existed at ``when``: started by then and with a row in the book before it.

    Started means the earlier of ``customer_since`` and ``contract_start`` (those the book has, as
    dates; unknown counts as started) is not after ``when``; a row is a signal, touch or outcome
    with ``ts < when``. The trend calls an account without both ``new``: its score then would rest
    on the accounts table alone.
    """
    seen = pl.concat(
        [f.filter(pl.col("ts") < when).select("account_id") for f in (book.signals, book.touches, book.outcomes)]
    ).unique()
    accounts = book.accounts.select("account_id").join(seen, on="account_id", how="semi", maintain_order="left")
    starts = [c for c in ("customer_since", "contract_start") if c in book.accounts.columns]
    starts = [c for c in starts if _is_time(book.accounts.schema[c])]
    if not starts:
        return accounts
    # The earlier of the two: a long-standing customer whose current contract began lately had started.
    later = book.accounts.filter(
        pl.min_horizontal([pl.col(c).cast(pl.Datetime("us", "UTC")) for c in starts]) > when
    ).select("account_id")
    return accounts.join(later, on="account_id", how="anti", maintain_order="left")


def unended_outcome_note(book: Book, playbook: Playbook, when: datetime) -> str | None:
    """A note when an ``avoid`` objective's outcome looks like it ends accounts but the playbook does not say so.

    Such an outcome (a cancellation valued at a fixed amount, say) leaves its accounts active, so the
    run keeps recommending actions to customers who have left. The sign: most accounts that had it
    (at least 20) show no signal or touch after it.
    """
    for objective_id, objective in playbook.objectives.items():
        if objective.ends_accounts or objective.sense is not Sense.AVOID:
            continue
        first = (
            book.outcomes.filter((pl.col("kind") == objective.outcome) & (pl.col("ts") <= when))
            .group_by("account_id")
            .agg(pl.col("ts").min().alias("_at"))
        )
        if first.height < _MIN_ENDED:
            continue
        later = pl.concat(
            [
                f.join(first, on="account_id", how="inner")
                .filter((pl.col("ts") > pl.col("_at")) & (pl.col("ts") <= when))
                .select("account_id")
                for f in (book.signals, book.touches)
            ]
        ).unique()
        silent = first.height - later.height
        if silent >= _ENDED_SHARE * first.height:
            return (
                f"outcome {objective.outcome!r} of objective {objective_id!r} looks like it ends accounts: "
                f"{silent:,} of the {first.height:,} accounts that had it show no signal or touch after it, yet "
                f"they count as active and can get actions; if it ends the relationship, set ends_account = true "
                f"under [objectives.{objective_id}]"
            )
    return None


_MIN_ENDED = 20
_ENDED_SHARE = 0.8


def no_signal_note(
    book: Book,
    card: HealthScorecard,
    snapshot: pl.DataFrame,
    scores: pl.DataFrame,
    when: datetime,
    *,
    shown: int = 3,
) -> str | None:
    """A note counting the scored accounts with no signal row before ``when``, whose score rests on the accounts table.

    Such an account has no usage, survey or support data: the components it lacks drop out and the
    others are re-weighted (docs/models.md), so its score and band are those of the accounts
    table's measures (ARR, tenure …) alone, which say nothing of how it uses the product.
    ``scores`` has ``account_id, health_score, health_band`` (banded as shown) for the accounts of
    ``snapshot``; the note names the ``shown`` highest scored. None when every scored account has
    a signal row.
    """
    seen = book.signals.filter(pl.col("ts") < when).select("account_id").unique()
    scored = scores.filter(pl.col("health_score").is_not_null())
    bare = scored.join(seen, on="account_id", how="anti").sort(["health_score", "account_id"], descending=[True, False])
    if bare.height == 0:
        return None
    values = card.measure_values(snapshot.join(bare.select("account_id"), on="account_id", how="semi"))
    used = list(
        dict.fromkeys(m.text for m in card.measures if values.get_column(m.feature).null_count() < values.height)
    )
    healthy = bare.filter(pl.col("health_band") == "Healthy").height
    top = ", ".join(
        f"{r['account_id']} ({r['health_score']:.0f}, {r['health_band']})"
        for r in bare.head(shown).iter_rows(named=True)
    )
    subject = (
        f"none of the {scored.height:,} scored accounts has a signal row"
        if bare.height == scored.height
        else f"{bare.height:,} of the {scored.height:,} scored accounts {'has' if bare.height == 1 else 'have'} no "
        "signal row"
    )
    measures = " and ".join([", ".join(used[:-1]), used[-1]] if len(used) > 1 else used) or "the accounts table"
    return (
        f"{subject} before {when:%Y-%m-%d} (no usage, survey or support data): their health score rests on "
        f"{measures} alone (the components they lack drop out, the others are re-weighted), so it says nothing of "
        f"how they use the product; {healthy:,} of them are banded Healthy. Highest scored: {top}"
        + (f" and {bare.height - shown:,} more" if bare.height > shown else "")
        + ". Read their bands with care, or add their signals to the book"
    )


def _is_time(dtype: pl.DataType) -> bool:
    return dtype == pl.Date or isinstance(dtype, pl.Datetime)


def _account_columns(now: pl.DataFrame) -> pl.DataFrame:
    keep = ["account_id"] + [c for c in ("segment", "owner") if c in now.columns]
    arr = pl.col("arr").cast(pl.Float64) if "arr" in now.columns else pl.lit(None, dtype=pl.Float64).alias("arr")
    return now.select(*keep, arr)


def _terminal_label(playbook: Playbook, vocab: FeatureVocabulary) -> str | None:
    """The training set's label column of the terminal outcome (e.g. ``y_churn``), None without one."""
    terminal = terminal_outcome_kinds(playbook)
    if not terminal:
        return None
    kind = terminal[0]
    return f"y_{vocab.outcome_stem(kind)}"


_NO_TERMINAL = "the playbook has no objective that ends accounts (such as churn) to learn them from"


def _optimize(
    card: HealthScorecard,
    training: pl.DataFrame,
    playbook: Playbook,
    vocab: FeatureVocabulary,
    notes: list[str],
) -> HealthOptimizerReport | None:
    """The optimizer's report on the terminal outcome, or None with a note saying why not (a note too when
    it learned no weight: its measures' power on the later window still reads)."""
    label = _terminal_label(playbook, vocab)
    if label is None:
        notes.append(f"health weights stay hand-set: {_NO_TERMINAL}")
        return None
    try:
        report = HealthOptimizer(label=label).fit(card, training).report
        # Named as the book writes the kind: the label's stem is no name of the book's.
        report = dataclasses.replace(report, outcome=terminal_outcome_kinds(playbook)[0])
    except ConfigError as exc:
        notes.append(f"health weights stay hand-set: {exc}")
        return None
    if report.not_learned is not None:
        notes.append(f"health weights stay hand-set: {report.not_learned}")
    return report


def _learn_bands(
    card: HealthScorecard,
    training: pl.DataFrame,
    scores_now: pl.DataFrame,
    playbook: Playbook,
    vocab: FeatureVocabulary,
    notes: list[str],
) -> tuple[HealthScorecard, HealthBandReport | None]:
    """The scorecard with bands learned from the terminal outcome's history, or as it was with a note saying why not."""
    fixed = f"health bands use the fixed cut-offs ({card.bands.describe()})"
    label = _terminal_label(playbook, vocab)
    if label is None:
        notes.append(f"{fixed}: {_NO_TERMINAL}")
        return card, None
    keep = ["decision_ts", "account_id", label] + (["censored"] if "censored" in training.columns else [])
    history = training.select(keep).with_columns(card.score(training).get_column("health_score"))
    kind = terminal_outcome_kinds(playbook)[0]  # as the book writes it: the label's stem is no name of the book's
    calibrator = HealthBandCalibrator(
        label=label, risk_ratios=playbook.health.band_risk_ratios, horizon_days=playbook.horizon_days, outcome=kind
    )
    try:
        calibrator.fit(history, scores_now.get_column("health_score"))
    except ConfigError as exc:
        notes.append(f"{fixed}: {exc}")
        return card, None
    assert calibrator.bands_ is not None
    report = calibrator.report
    if not report.monotone:
        notes.append(
            f"the health bands did not rank {kind!r} in order on the later window "
            "(see the band table's rates): read them with care"
        )
    return card.with_bands(calibrator.bands_), report


def learned_bands(
    card: HealthScorecard,
    training: pl.DataFrame,
    scores_now: pl.DataFrame,
    book: Book,
    playbook: Playbook,
    when: datetime,
    notes: list[str],
) -> HealthScorecard:
    """``card`` with bands learned from ``training``'s terminal outcomes, as ``nextmove health`` learns them.

    What the run calls with its own training set, so its bands are the health job's when both read the
    same history (a run with ``training_days`` learns them from its shorter one). The card as it
    was when the playbook sets ``band_cutoffs`` (explicit cut-offs win), or, with a note, when they
    cannot be learned (no outcome that ends accounts, too few of them, a score that does not rank them).
    """
    if playbook.health.band_cutoffs is not None:
        return card
    learned, _ = _learn_bands(card, training, scores_now, playbook, _vocabulary(book, playbook, when), notes)
    return learned


def _active_id(store: Store) -> str | None:
    record = store.active_model("outcome")
    return None if record is None else record.model_id


def _accuracy_metrics(accuracy: dict[str, ProbabilityAccuracy]) -> dict[str, object]:
    return {
        "later_window": {
            kind: {
                "rows": a.rows,
                "events": a.events,
                "auc": a.auc,
                "average_precision": a.average_precision,
                "brier": a.brier,
                "log_loss": a.log_loss,
                "ece": a.ece,
                "ece_binning": a.binning,
            }
            for kind, a in accuracy.items()
        }
    }
