"""The run: a book and a playbook in, one recommended action per account out, with evidence, files and a store record.

:func:`run` does, in order (each step reports to ``progress`` as it starts, see :data:`RUN_STAGES`):

1. **features**: the point-in-time snapshot of every account at ``as_of`` (and one 28 days
   earlier, for "down from 63%" in the evidence); accounts gone by a terminal outcome, or not
   started yet, are left out; the health scorecard scores the rest;
2. **models**: the training set of past decisions and the action-effect model fitted on it, or
   the store's saved effect model when ``reuse_model`` and it fits this playbook;
3. **projection**: every account's projected value of every action, with intervals;
4. **decisions**: rules (with the snoozes and dismissals stored by then, when there is a store:
   :func:`nextmove.engine.holds.read_holds`), allocation under capacity, control and exploration
   (:func:`nextmove.decide.policy.decide`);
5. **evidence**: the decision receipt of every account (:func:`nextmove.decide.explain.explain_decisions`);
   with a reused model, the logged past decisions are built here (without a fit) for the comparable accounts;
6. **evaluation**: off-policy value of the learned, lifecycle-default and do-nothing policies on
   the latest logged decisions whose horizon is over, and, when the truth is given (the lab),
   the regret against the oracle;
7. **outputs**: the run with all its recommendations in the store, in one transaction, and
   ``recommendations.csv`` / ``.parquet`` and ``summary.json`` in ``out_dir``. The files are
   written into a hidden temporary folder inside ``out_dir`` and moved into it only once the
   whole run has succeeded (saved in the store, and promoted): a run that fails leaves
   ``out_dir`` exactly as it was (:class:`~nextmove._files.StagedFiles`).
"""

from __future__ import annotations

import contextlib
import json
import pickle
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from nextmove._csv import write_csv
from nextmove._files import StagedFiles, check_folder, write_failure, writing
from nextmove._signals import clean_up, signals_held
from nextmove.book import NO_ACTION, Book, bulk_end, gone_accounts, is_backtest, latest_timestamp, of_dates, table_reach
from nextmove.book.notes import lagging_book_notes, last_day
from nextmove.book.outcomes_until import checked_outcomes_until, outcomes_until_notes
from nextmove.book.validate import (
    canonical_accounts,
    gone_stage_notes,
    missing_arr_note,
    returned_accounts_notes,
    stale_as_of_note,
    unmatched_gone_stages_note,
    unmatched_kinds_notes,
    unmatched_owners_note,
    unmatched_stages_note,
)
from nextmove.decide.allocate import Allocation, Resource, allocate
from nextmove.decide.explain import explain_decisions
from nextmove.decide.policy import CapacityLedger, DecisionOptions, Decisions, decide, exploration_capacity_note
from nextmove.decide.rules import Candidate, RuleCheck, Why, check_rules
from nextmove.engine.health import (
    HealthResult,
    active_accounts,
    existing_accounts,
    finished_decisions,
    learned_bands,
    no_signal_note,
    training_days_error,
    unended_outcome_note,
)
from nextmove.engine.holds import read_holds, with_done_plays
from nextmove.engine.online import promote_run, served_run
from nextmove.engine.run_facts import (
    ACCOUNT_FIELDS,
    action_families,
    action_labels,
    arr_at_risk,
    health_bands,
    impact_by_objective,
    late_as_of_note,
    repeated_as_of_note,
)
from nextmove.engine.run_facts import metrics as run_metrics
from nextmove.engine.run_process import run_process
from nextmove.errors import (
    ConfigError,
    NextmoveError,
    NothingToLearnError,
    RunFilesError,
    WriteError,
    failure_text,
)
from nextmove.features import (
    FeatureVocabulary,
    build_training_set,
    compute_features,
    feature_schema,
    outcomes_seen_until,
    training_vocabulary,
)
from nextmove.features.history import point_in_time, resolve_as_of, to_utc
from nextmove.features.snapshot import vocabulary_of
from nextmove.measure.ope import (
    default_values,
    evaluate_policy,
    lifecycle_default_at,
    logging_propensities,
    policy_difference,
    stored_defaults,
)
from nextmove.measure.policy import do_nothing_policy, eligible_actions, learned_policy
from nextmove.models.effect import EffectModel, EffectProjection, objective_specs
from nextmove.models.health import (
    HealthBands,
    HealthScorecard,
    band_expr,
    left_out_measures_note,
    silent_usage_note,
    unknown_signals_note,
    unscored_signals_note,
)
from nextmove.models.leaks import guard_leaks
from nextmove.playbook import Playbook
from nextmove.playbook.expr import check_playbook_expressions
from nextmove.playbook.money import DEFAULT_CURRENCY, money_text
from nextmove.segment import SegmentReport, behavior_snapshot, segment_book, signal_labels
from nextmove.store import ModelVersionRecord, RecommendationRecord, RunRecord, Store, recorded_source, same_book
from nextmove.store.records import utcnow

Progress = Callable[[str], None]
"""Called with a short description as each stage starts (e.g. to advance a progress bar)."""

ExtraFiles = Callable[["RunResult", Path], object]
"""Writes more files of a succeeded run into the folder it is given (``nextmove run``: ``report.html``)."""

RUN_STAGES = (
    "Computing features",
    "Fitting the effect models",
    "Projecting every action",
    "Deciding under capacity",
    "Writing the evidence",
    "Evaluating the policies",
    "Saving the run",
)
"""The stages of a run, in order: ``progress`` is called once with each (the CLI draws a bar per stage).

With ``reuse_model``, the second is :data:`REUSED_MODEL_STAGE` (:func:`run_stages`)."""

REUSED_MODEL_STAGE = "Loading the effect models"
"""The second stage of a run with ``reuse_model``: the store's effect models are loaded, not fitted."""


def run_stages(*, reuse_model: bool = False) -> tuple[str, ...]:
    """The stages ``progress`` is called with, in order: :data:`RUN_STAGES`, the second loading with ``reuse_model``.

    Examples
    --------
    >>> run_stages(reuse_model=True)[:2]
    ('Computing features', 'Loading the effect models')
    """
    return (RUN_STAGES[0], REUSED_MODEL_STAGE, *RUN_STAGES[2:]) if reuse_model else RUN_STAGES


EFFECT_MODEL_KIND = "effect"
"""The ``kind`` of effect-model versions in the store."""

PREVIOUS_DAYS = 28
"""The evidence compares each signal with its value this many days before the decision."""


@dataclass(frozen=True)
class RunOptions:
    """Settings of a run beyond the playbook; every field can be passed to :func:`run` by name.

    Examples
    --------
    >>> RunOptions(reuse_model=True).allocation
    'auto'
    """

    run_id: str | None = None
    """Id of the run (default: ``run-<UTC time>-<random>``)."""
    reuse_model: bool = False
    """Project with the store's active effect model (if it was fitted under this playbook) instead of fitting."""
    save_model: bool = True
    """Save a newly fitted effect model in the store (made the active version once the run has succeeded
    and is promoted, unless ``promote`` is False)."""
    promote: bool = True
    """Serve the run once it has succeeded, as ``nextmove models promote RUN_ID`` does (and ``POST /v1/runs``
    with ``promote: true``): a new ``policy`` version naming it is saved and made active (servers switch
    to it within ``--refresh-s``; ``nextmove models rollback`` goes back), and the effect model it used
    becomes the active one, so the served run's model and the active model agree. Never before the run
    has landed, nor if it fails or is interrupted: the previous run and model stay.
    False (``POST /v1/runs`` with ``promote: false``, ``nextmove run --no-promote``): the run and its
    model are stored, and nothing serves them until ``nextmove models promote RUN_ID``."""
    allocation: str = "auto"
    """Allocation method: ``auto``, ``exact`` or ``lagrangian``."""
    exact_time_limit_s: float = 10.0
    """Seconds the exact allocation (HiGHS) may take (``nextmove run --exact-time-limit``): it keeps its best
    solution by then, and when it has none the Lagrangian allocates instead, which the run's notes say."""
    capacity: bool = True
    """Apply the playbook's capacities."""
    risk_aversion: float = 0.0
    """The allocation ranks ``value − risk_aversion × sd`` (:class:`~nextmove.decide.policy.DecisionOptions`):
    above 0 it prefers sure gains and acts on fewer accounts. In the closed-loop lab 0.5 raised what a
    loop delivers over 26 weeks by a third, while one decision's regret on the lab's book rose from 20.5 %
    to 22.1 % (docs/learning.md); the default stays 0."""
    effect_params: Mapping[str, Any] = field(default_factory=dict)
    """Settings of the :class:`~nextmove.models.effect.EffectModel` (default: :data:`FAST_EFFECT_PARAMS`)."""
    training_days: int | None = None
    """Learn only from the decisions of this many days before ``as_of`` (None, the default: the whole history;
    on the lab, a year instead of 18 months fitted in 40 % less time and cost 4 points of regret)."""
    outcomes_until: datetime | date | None = None
    """How far the book's outcomes are complete (``--outcomes-until``): a date is that whole day, a datetime the
    instant. Default (None): where the outcomes table ends, so that a horizon running past the last outcome is
    not taken as over (an export that stopped looks like a quiet spell). Give it when none happened since:
    decisions whose horizon ends by then are learned from as finished. At most the decision time."""
    evidence: bool = True
    """Write the decision receipts (evidence and alternatives)."""
    csv_evidence: bool = True
    """Write the receipts' JSON columns (``evidence``, ``alternatives``) into ``recommendations.csv`` too.
    False (``nextmove run --no-csv-evidence``): the CSV leaves them out, most of its bytes (about 3.1 of
    3.4 KB per account on a B2C book: 84 MB instead of 1 GB at 300,000 subscribers);
    ``recommendations.parquet``, the store and the API keep them whole."""
    evaluate: bool = True
    """Estimate the off-policy value of the learned, default and do-nothing policies."""
    segments: bool = True
    """Segment the book by behavior and estimate each segment's response (kept in the summary and the report)."""
    truth: pl.DataFrame | None = None
    """The lab's true values (``truth/values``: ``account_id, action_id, eligible, value_usd``) to measure regret."""
    jobs: int = 2
    """Threads the models train with: 2, as ``nextmove run --jobs`` (the effect model uses at most one per
    fold, 3 in a run: the run's timings in ``docs/benchmarks.md`` are on two cores). 1 leaves a core free,
    e.g. for a server that decides online while it runs (``POST /v1/runs`` passes 1)."""


FAST_EFFECT_PARAMS: Mapping[str, Any] = {"n_folds": 3, "n_estimators": 60, "max_rows_per_tree": 30_000}
"""Effect-model settings of a run: fewer folds and trees than the model's defaults, so that a book of a
few thousand accounts runs in under a minute on two cores (the default lab book: 35 s end to end, in
``docs/benchmarks.md``)."""


@dataclass(frozen=True)
class RunResult:
    """What a run made: one recommendation per account, a summary, and what it was computed from."""

    run_id: str
    as_of: datetime
    recommendations: pl.DataFrame = field(repr=False)
    """One row per account: see :data:`RECOMMENDATION_COLUMNS` (plus one ``projected_<objective>`` per objective)."""
    summary: dict[str, Any]
    """JSON-ready: accounts, actions, assigned per objective, do_nothing, differs_from_default_share,
    projected_impact_usd (the recommended cohort's), projected_impact_by_cohort, by_action, arms, allocation,
    capacity, timings, notes; on the lab ``regret``."""
    health: HealthResult | None = field(repr=False)
    """The full health job's result, when it was run (None: the run scores health with the scorecard only)."""
    projection: EffectProjection = field(repr=False)
    policy_values: list[dict[str, Any]] = field(repr=False)
    """Off-policy estimates (learned / default / nothing) on recent logged decisions; may be empty."""
    files: dict[str, Path] = field(default_factory=dict)
    """What was written in ``out_dir``, by name: ``recommendations.csv``, ``recommendations.parquet``,
    ``summary.json``, and any file ``extra_files`` wrote (empty without ``out_dir``)."""
    decisions: Decisions | None = field(default=None, repr=False)
    """The decisions with their propensity matrices and allocation (for analysis and tests)."""
    policy_version: str | None = None
    """The ``policy`` model version that now serves this run (None: not promoted, or no store)."""


class RunStoppedComplete(KeyboardInterrupt):
    """Ctrl-C or SIGTERM came while a run's files moved into ``out_dir``, too late to stop the run: it is complete.

    The moves hold the signal until every file is moved (:meth:`~nextmove._files.StagedFiles.publish`),
    after the run was saved in the store and promoted: the run is whole (saved, served unless
    ``promote`` is False, all its files in ``out_dir``), and ``result`` is it. A
    :class:`KeyboardInterrupt`, so that a program that does not ask for it stops as asked; ``stop``
    is the interruption the signal raised (:class:`~nextmove.errors.Terminated` for SIGTERM in the CLI).
    ``nextmove run`` says the run is complete and exits 0.
    """

    def __init__(self, result: RunResult, stop: KeyboardInterrupt) -> None:
        super().__init__(failure_text(stop))
        self.result = result
        self.stop = stop


RECOMMENDATION_COLUMNS = (
    "account_id",
    "name",
    "owner",
    "lifecycle_stage",
    "arr",
    "health_score",
    "health_band",
    "action_id",
    "variant",
    "arm",
    "propensity",
    "expected_value_usd",
    "value_low_usd",
    "value_high_usd",
    "default_action_id",
    "differs_from_default",
    "model_action_id",
)
"""The first columns of ``recommendations``; then ``projected_<objective>`` per objective, ``evidence``,
``alternatives``, ``model_version``, ``run_id``."""


def run(
    book: Book,
    playbook: Playbook,
    *,
    as_of: datetime | date | None = None,
    store: Store | None = None,
    out_dir: Path | str | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    detail: Progress | None = None,
    extra_files: ExtraFiles | None = None,
    **options: Any,
) -> RunResult:
    """Recommend one action (or nothing) for every active account, with evidence; write and store it.

    Parameters
    ----------
    book
        A validated book of business.
    playbook
        Objectives, actions, rules, capacities, control cohort and exploration.
    as_of
        Decision time (default: :func:`~nextmove.book.default_as_of`: ``book.as_of`` if given, else how
        far the book's data reaches, rounded up to a UTC midnight).
    store
        When given, the run and its recommendations are saved in one transaction (and a newly
        fitted effect model as a new active version).
    out_dir
        When given, ``recommendations.csv``, ``recommendations.parquet`` and ``summary.json`` are
        written there, only once the whole run has succeeded: they are written into a hidden
        temporary folder inside it (``.nextmove-staging-*.tmp``) and moved into place, one file
        after the other, after the run is saved in the store and promoted. A run that fails (or is
        interrupted) before then removes the temporary folder and leaves ``out_dir`` exactly as it
        was, or absent if it did not exist; other files in it are never touched.
    seed
        Seed of the models and of the exploration draws.
    progress
        Called with each stage's description as it starts (:data:`RUN_STAGES`).
    detail
        Called with what a long stage is doing within it (e.g. "learning from 4,558,168
        decisions"), so a display can show it beside the stage.
    extra_files
        With ``out_dir``: called as ``extra_files(result, folder)`` once the run has succeeded, to
        write more files into ``folder`` (the temporary folder), which are then moved into
        ``out_dir`` with the run's own (``nextmove run`` writes ``report.html`` so). If it raises,
        nothing is moved: ``out_dir`` stays as it was, while the run stays saved in the store.
    **options
        Any field of :class:`RunOptions` (``run_id``, ``reuse_model``, ``truth`` …).

    Returns
    -------
    RunResult

    Raises
    ------
    ConfigError
        If an option is unknown, no account is active at ``as_of``, or the history cannot train models.
    NotFoundError
        With ``reuse_model``, if the store has no effect model fitted under this playbook.
    RunStoppedComplete
        If Ctrl-C or SIGTERM came while the files moved into ``out_dir``: the run is complete, and the
        error holds its result. A stop before the moves stops the run: a :class:`KeyboardInterrupt`
        after its cleanup (the run recorded as failed, the temporary folder removed), whose message
        says what it left: the run recorded as failed, or saved (served or not, from the store), and
        ``out_dir`` left as it was. An error of the store after the save (a promotion it refused)
        says the same of the run saved.
    """
    opts = _options(options)
    if out_dir is not None:
        check_folder(Path(out_dir), "the output folder")
    say = progress or (lambda _: None)
    tell = detail or (lambda _: None)
    started = time.perf_counter()
    timings: dict[str, float] = {}
    when = resolve_as_of(book, as_of)
    # The instant the outcomes are complete to, checked against the decision time before the run is recorded.
    opts = replace(opts, outcomes_until=checked_outcomes_until(opts.outcomes_until, when))
    # One order of accounts whatever the caller's (load_book already sorts; a Book built in Python may not).
    book = replace(book, accounts=canonical_accounts(book.accounts))
    # Feedback counts up to the decision time a backtest gives; a run of today's book (no as_of, so
    # the midnight after its last row) reads everything sent by now: snoozes sent since the last
    # export still hold, as they do online.
    feedback_until = when if as_of is not None else max(when, utcnow())
    run_id = opts.run_id or f"run-{utcnow():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    notes: list[str] = []
    record = RunRecord(
        run_id=run_id,
        book_source=recorded_source(book.source),
        playbook_hash=playbook.content_hash(),
        as_of=when,
        # A backtest reads today's accounts table, stages included: later runs and evaluations must
        # not take the defaults it records as those of its as_of (RunRecord.backtest).
        params=_params(opts, seed, backtest=as_of is not None and is_backtest(book, when)),
    )
    if store is not None and as_of is None:  # where the book ends: does the store hold a run as of then already?
        notes.extend(filter(None, [repeated_as_of_note(record, store.list_runs(100, status="succeeded"))]))
    staged = StagedFiles(out_dir) if out_dir is not None else None
    stop: KeyboardInterrupt | None = None
    if store is not None:
        store.start_run(record)
    try:
        result = _run(
            book,
            playbook,
            when,
            feedback_until,
            as_of is not None,
            store,
            staged,
            seed,
            say,
            tell,
            opts,
            run_id,
            record,
            timings,
            notes,
            started,
        )
        if staged is not None:
            with writing("the run's files"):
                if extra_files is not None:
                    extra_files(result, staged.folder)
                files, stop = _publish(staged)
                result = replace(result, files=files)
    except BaseException as exc:
        # Whole even through a second Ctrl-C: the staging folder holds personal data, a run left
        # `running` would stay so. Twice when the first call raises: a Ctrl-C in Polars raises twice.
        try:
            clean_up(_fail, staged, store, run_id, exc)
        except KeyboardInterrupt:
            clean_up(_fail, staged, store, run_id, exc)
        out = staged.target if staged is not None else None
        if isinstance(exc, KeyboardInterrupt):
            # One line of what the stop left: the run saved (and served) or not, the output folder untouched.
            exc.args = (f"{failure_text(exc)}{_stopped_state(store, run_id, opts.promote, out)}",)
        elif isinstance(exc, WriteError) and staged is not None:
            # One message whatever file failed (in the staging folder, which is gone now).
            reason = write_failure(exc.__cause__) if exc.__cause__ is not None else None
            saved, kept = _kept(store, run_id, opts.promote, staged.target)
            raise RunFilesError(
                f"cannot write the run's files into {staged.target}: {reason or exc}; {kept}",
                run_id=run_id,
                saved=saved,
            ) from exc.__cause__
        elif isinstance(exc, NextmoveError) and store is not None:
            # A store that refused the promotion (a full disk) after the run was saved: say what it kept.
            saved, kept = _kept(store, run_id, opts.promote, out)
            if saved:
                exc.args = (f"{exc}; {kept}",)
        raise
    if stop is not None:
        raise RunStoppedComplete(result, stop) from None
    return result


def _publish(staged: StagedFiles) -> tuple[dict[str, Path], KeyboardInterrupt | None]:
    """Move the run's files into place (:meth:`StagedFiles.publish`); with the stop that came meanwhile, if one did.

    Ctrl-C or SIGTERM during the moves waits until they end, then stops as its handler does: after
    the moves, it no longer stops anything, and is returned rather than raised.
    """
    files: dict[str, Path] | None = None
    try:
        # Held from before the moves to after them: one that comes between is the moves' too.
        with signals_held():
            files = staged.publish()
    except KeyboardInterrupt as stop:
        if files is None:
            raise
        return files, stop
    return files, None


def _kept(store: Store | None, run_id: str, promote: bool, out_dir: Path | None) -> tuple[bool, str]:
    """Whether a run that failed is saved in the store, and what it kept, in words (``out_dir``: its files' folder)."""
    status = None
    if store is not None:
        with contextlib.suppress(NextmoveError):
            status = store.get_run(run_id).status
    untouched = [] if out_dir is None else [f"{out_dir} is left as it was"]
    if status == "succeeded":
        assert store is not None
        return True, "; ".join([f"run {run_id} is saved in the store{_serving(store, run_id, promote)}", *untouched])
    recorded = [f"run {run_id} is recorded as failed"] if status is not None else []
    return False, ", ".join([*recorded, *untouched])


def _stopped_state(store: Store | None, run_id: str, promote: bool, out_dir: Path | None) -> str:
    """What a run stopped by Ctrl-C or SIGTERM left, in words following the stop's own.

    Examples
    --------
    >>> print("interrupted by the user (Ctrl-C)" + _stopped_state(None, "run-1", True, Path("out")))
    interrupted by the user (Ctrl-C): out is left as it was
    """
    saved, kept = _kept(store, run_id, promote, out_dir)
    if not saved:
        return f": {kept}" if kept else ""
    # Stopped after the save (while promoting it, or writing its report): the run stays saved, so
    # the stop must not read as a run that failed.
    assert store is not None
    unwritten = f"; its files were not written, so {out_dir} is left as it was" if out_dir is not None else ""
    return f" after run {run_id} was saved in the store{_serving(store, run_id, promote)}{unwritten}"


def _serving(store: Store, run_id: str, promote: bool) -> str:
    """Whether saved run ``run_id`` is served, in words following "saved in the store" (empty when not asked).

    From the store, not from ``promote``: a run stopped, or refused by the store, between its save
    and its promotion is saved and not served.
    """
    if not promote:
        return ""
    try:
        served = served_run(store)
    except NextmoveError:
        return ""
    if served is not None and served.run_id == run_id:
        return " and served"
    now = "no run is served" if served is None else f"the served run is still {served.run_id}"
    return f" but not served ({now}; `nextmove models promote {run_id}` serves it)"


def _fail(staged: StagedFiles | None, store: Store | None, run_id: str, exc: BaseException) -> None:
    """The cleanup of a run that failed or was stopped: its staging folder removed, the run recorded as failed."""
    if staged is not None:
        staged.discard()
    if store is not None:
        _mark_failed(store, run_id, exc)


def _run(
    book: Book,
    playbook: Playbook,
    when: datetime,
    feedback_until: datetime,
    as_of_given: bool,
    store: Store | None,
    staged: StagedFiles | None,
    seed: int,
    say: Progress,
    tell: Progress,
    opts: RunOptions,
    run_id: str,
    record: RunRecord,
    timings: dict[str, float],
    notes: list[str],
    started: float,
) -> RunResult:
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 3)
        clock = now

    say(RUN_STAGES[0])
    snapshot, previous, accounts, vocab = _features(book, playbook, when)
    eligibility = [(a.id, a.eligibility) for a in playbook.actions]
    schema = feature_schema(snapshot)
    if errors := check_playbook_expressions(eligibility, schema):
        raise errors[0]  # what deciding would raise, said before the models' fit rather than after it
    card, health = _health_scores(playbook, snapshot, vocab, notes)
    book_notes = (
        unscored_signals_note(playbook, book.signal_names),
        unknown_signals_note(playbook, book.signal_names),
        left_out_measures_note(playbook, snapshot, vocab),
        missing_arr_note(book, playbook),
        unmatched_stages_note(book, playbook),
        unmatched_gone_stages_note(book, playbook),
        unmatched_owners_note(book, playbook),
        *unmatched_kinds_notes(book, playbook),
        late_signals_note(book, when),
        stale_as_of_note(bulk_end(book), when, latest=latest_timestamp(book)),
        late_as_of_note(book, playbook, when, given=as_of_given),
        *lagging_book_notes(book, when, playbook.horizon_days),
        unended_outcome_note(book, playbook, when),
        *returned_accounts_notes(book, playbook, when),
        *gone_stage_notes(book, playbook, when),
    )
    # What loading the book noted (rows after --as-of or after now left out, columns dropped …) is
    # the run's too: kept in its summary, not only printed.
    # With outcomes_until, the note of outcomes that end before the rest gives way to one saying what was given.
    for note in outcomes_until_notes((*book.notes, *book_notes), opts.outcomes_until, table_reach(book.outcomes)):
        if note not in notes:
            notes.append(note)
    lap("features")

    say(run_stages(reuse_model=opts.reuse_model)[1])
    model, model_id, training, kept_bands = _model(book, playbook, when, store, seed, opts, notes, tell)
    health, bands = _health_bands(card, health, training, kept_bands, book, playbook, when, notes)
    if card is not None and (bare := no_signal_note(book, card, snapshot, health, when)) is not None:
        notes.append(bare)
    if card is not None and (silent := silent_usage_note(card, snapshot)) is not None:
        notes.append(silent)
    if training is not None and store is not None and opts.save_model:
        model_id = save_effect_model(store, model, playbook, training, when, activate=False, bands=bands)
    lap("models")

    say(RUN_STAGES[2])
    projection = model.project(snapshot)
    notes.extend(model.amount_notes(projection))
    lap("projection")

    say(RUN_STAGES[3])
    # What the accounts' users said (snoozed, dismissed) holds actions back as online.
    holds = read_holds(store, playbook, feedback_until) if store is not None else None
    # Plays reported done since the touches end count too; at the default as-of, those reported up to now.
    touches = (
        book.touches
        if store is None
        else with_done_plays(
            store,
            playbook,
            book.touches,
            when,
            notes,
            accounts=book.accounts.get_column("account_id").to_list(),
            until=feedback_until,
        )
    )
    rules = check_rules(snapshot, touches, playbook, when, schema, holds=holds)
    if (never := never_eligible_note(playbook, rules)) is not None:
        notes.append(never)
    owners = _column(accounts, "owner")
    decisions = decide(
        rules,
        projection.values,
        playbook,
        owners=owners,
        stages=_column(accounts, "lifecycle_stage"),
        seed=seed,
        run_key=when.isoformat(),
        options=DecisionOptions(
            method=opts.allocation,  # type: ignore[arg-type]
            time_limit_s=opts.exact_time_limit_s,
            capacity=opts.capacity,
            risk_aversion=opts.risk_aversion,
        ),
    )
    effort = np.array([c.effort_hours for c in decisions.candidates] + [0.0])[decisions.choice]
    if (unowned := _unowned_note(playbook, owners, effort)) is not None:
        notes.append(unowned)
    if (fallback := decisions.allocation.fallback) is not None:
        notes.append(_fallback_note(fallback, decisions.allocation.gap_to_bound))
    if (starved := exploration_capacity_note(decisions, playbook)) is not None:
        notes.append(starved)
    decided = decisions.frame()
    if (zero := zero_limits_note(playbook, decisions.candidates, owners, capacity=opts.capacity)) is not None:
        notes.append(zero)
    if (pooled := _pooled_note(decided, model.flagged_arms_)) is not None:
        notes.append(pooled)
    lap("decide")

    say(RUN_STAGES[4])
    outcomes = book.outcomes.filter(pl.col("ts") <= when)
    history = training
    if history is None and opts.evidence:
        # A reused model built no training set; the comparables ("accounts like this one") still need
        # the past decisions and what followed them, without a fit.
        tell("building the history of past decisions for the comparable accounts")
        history = _training(book, playbook, when, opts, notes, untouched=False)
    receipts = _receipts(snapshot, projection, decided, decisions, playbook, model, history, outcomes, previous, opts)
    lap("evidence")

    say(RUN_STAGES[5])
    policy_values, differences = (
        _policy_values(model, training, book, playbook, notes, seed, store, record) if opts.evaluate else ([], [])
    )
    regret = _regret(decisions, opts.truth, notes, playbook.currency) if opts.truth is not None else None
    segments, compared = (
        _segments(book, playbook, snapshot, projection, health, when, seed, store, notes, record)
        if opts.segments
        else None
    ) or (None, None)
    lap("evaluate")

    say(RUN_STAGES[6])
    recommendations = _recommendations(accounts, health, decided, projection, receipts, playbook, model_id, run_id)
    recommendations = recommendations.join(
        arr_at_risk(projection, recommendations, playbook), on="account_id", how="left", maintain_order="left"
    )
    if segments is not None:
        recommendations = recommendations.join(
            segments.assignments.select("account_id", "segment_id", pl.col("segment").alias("segment_name")),
            on="account_id",
            how="left",
            maintain_order="left",
        )
    summary = _summary(run_id, when, playbook, decisions, decided, policy_values, regret, model_id, notes, timings)
    if isinstance(opts.outcomes_until, datetime):
        summary["outcomes_until"] = opts.outcomes_until.isoformat()
    summary.update(
        action_labels=action_labels(playbook),
        action_families=action_families(playbook),
        health_bands=health_bands(recommendations),
        # The recommended cohort's, as projected_impact_usd: control's defaults are what it is measured against.
        impact_by_objective=impact_by_objective(projection, decided.filter(pl.col("arm") != "control"), playbook),
        policy_differences=differences,
    )
    if segments is not None:
        summary["segments"] = {**segments.to_dict(), "previous_run": compared}
    _json_numbers(summary)  # before the metrics read it: a NaN would read as a figure there
    summary["metrics"] = run_metrics(summary)
    files = _write_files(staged, recommendations, summary, evidence=opts.csv_evidence) if staged is not None else {}
    policy_version: str | None = None
    if store is not None:
        timings["total_before_store"] = round(time.perf_counter() - started, 3)
        done = RunRecord(
            run_id=run_id,
            book_source=record.book_source,
            playbook_hash=record.playbook_hash,
            status="succeeded",
            created_at=record.created_at,
            finished_at=utcnow(),
            as_of=when,
            params=record.params,
            summary=summary,
        )
        store.save_run(done, _records(recommendations, run_id))
        if opts.promote:
            # Only now that the run has landed whole: a run that fails or is interrupted before
            # leaves the previous run served and its model active. The same policy version as
            # `nextmove models promote` saves, so that a run served through one (POST /v1/runs)
            # does not stay served after later runs, and rollback goes back run by run.
            policy_version = promote_run(store, run_id, metrics={"started_by": "run"}).model_id
    lap("save")
    timings["total"] = round(time.perf_counter() - started, 3)
    if staged is not None and files.get("summary.json") is not None:
        with writing("the run's files"):
            _write_json(files["summary.json"], summary)
    return RunResult(
        run_id=run_id,
        as_of=when,
        recommendations=recommendations,
        summary=summary,
        health=None,
        projection=projection,
        policy_values=policy_values,
        files=files,
        decisions=decisions,
        policy_version=policy_version,
    )


# ---- inputs ---------------------------------------------------------------------------------------


def _options(options: Mapping[str, Any]) -> RunOptions:
    known = set(RunOptions.__dataclass_fields__)
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"unknown run option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    opts = RunOptions(**options)
    if opts.allocation not in ("auto", "exact", "lagrangian"):
        raise ConfigError(f"allocation must be 'auto', 'exact' or 'lagrangian', got {opts.allocation!r}")
    if opts.training_days is not None and (not isinstance(opts.training_days, int) or opts.training_days < 1):
        raise ConfigError(f"training_days must be a positive whole number or None, got {opts.training_days!r}")
    if opts.outcomes_until is not None and not isinstance(opts.outcomes_until, date):
        raise ConfigError(f"outcomes_until must be a date, a datetime or None, got {opts.outcomes_until!r}")
    limit = opts.exact_time_limit_s
    if isinstance(limit, bool) or not isinstance(limit, int | float) or not limit > 0:
        raise ConfigError(f"exact_time_limit_s (--exact-time-limit) must be a number of seconds > 0, got {limit!r}")
    DecisionOptions(risk_aversion=opts.risk_aversion)  # checks it before any work is done
    if not isinstance(opts.jobs, int) or opts.jobs < 1:
        raise ConfigError(f"jobs must be a positive whole number, got {opts.jobs!r}")
    return opts


def _params(opts: RunOptions, seed: int, *, backtest: bool) -> dict[str, Any]:
    return {
        "seed": seed,
        "backtest": backtest,
        "reuse_model": opts.reuse_model,
        "promote": opts.promote,
        "allocation": opts.allocation,
        "exact_time_limit_s": opts.exact_time_limit_s,
        "capacity": opts.capacity,
        "training_days": opts.training_days,
        "outcomes_until": None if opts.outcomes_until is None else opts.outcomes_until.isoformat(),
        "effect_params": {**FAST_EFFECT_PARAMS, **dict(opts.effect_params)},
        "evidence": opts.evidence,
        "evaluate": opts.evaluate,
        "lab_truth": opts.truth is not None,
        "process": run_process(),
    }


def _fallback_note(fallback: str, gap: float | None) -> str:
    """The note of an exact allocation that found nothing in time, so that the Lagrangian allocated the book."""
    within = "" if gap is None else f", within {gap:.2%} of the best possible"
    return (
        f"{fallback}, so the Lagrangian allocated the book instead{within}: --exact-time-limit gives HiGHS longer, "
        "and --allocation lagrangian (or auto, which picks it for a large book) goes straight to it"
    )


def _unowned_note(playbook: Playbook, owners: list[str | None] | None, effort_hours: np.ndarray) -> str | None:
    """A note when owners' hours are limited but some accounts have no owner (their actions use nobody's hours).

    ``effort_hours`` is the effort of each account's recommended play (0: none): the note says how
    many hours the accounts without an owner take, beside those the owned accounts take.

    Examples
    --------
    >>> from nextmove.playbook.loader import load_playbook
    >>> note = _unowned_note(load_playbook(), ["ana", None, None], np.array([2.0, 1.5, 0.0]))
    >>> print(note)  # doctest: +NORMALIZE_WHITESPACE
    2 of 3 accounts have no owner: the plays recommended to them take 1.5 effort hours, which count against
    nobody's hours (the accounts with an owner take 2.0): fill accounts.owner for the owners' limits to hold
    for them
    """
    capacity = playbook.capacity
    if not capacity.limits_owner_hours or not any(a.effort_hours > 0 for a in playbook.actions):
        return None
    accounts = len(effort_hours)
    unowned = np.ones(accounts, dtype=bool) if owners is None else np.array([o is None for o in owners], dtype=bool)
    missing = int(unowned.sum())
    if not missing:
        return None
    taken, owned = float(effort_hours[unowned].sum()), float(effort_hours[~unowned].sum())
    return (
        f"{missing:,} of {accounts:,} accounts have no owner: the plays recommended to them take {taken:,.1f} "
        f"effort hours, which count against nobody's hours (the accounts with an owner take {owned:,.1f}): "
        "fill accounts.owner for the owners' limits to hold for them"
    )


def zero_limits_note(
    playbook: Playbook,
    cands: Sequence[Candidate],
    owners: Sequence[str | None] | None,
    *,
    capacity: bool = True,
) -> str | None:
    """A note naming each limit of 0 in the playbook and the plays it blocks (None: no limit of 0 blocks any).

    A limit of 0 is allowed (a team's budget spent, a channel paused), but it lets none of the plays
    it covers be recommended, which a run that recommends little should say. A run without
    capacities (``capacity=False``) has no hours, budgets nor ``max_per_run``: only the contact
    policy's limits (rules, which still apply) are named.

    Examples
    --------
    >>> from nextmove.decide.rules import candidates
    >>> from nextmove.playbook.loader import parse_playbook
    >>> pb = parse_playbook('''
    ... [objectives.retention]
    ... outcome = "churn"
    ... sense = "avoid"
    ... value = "arr"
    ... [[actions]]
    ... id = "call"
    ... name = "Call"
    ... team = "cs"
    ... objective = "retention"
    ... effort_hours = 1
    ... [[actions]]
    ... id = "email"
    ... name = "E-mail"
    ... team = "marketing"
    ... channel = "email"
    ... objective = "retention"
    ... cost_usd = 2
    ... max_per_run = 0
    ... [contact_policy]
    ... caps = [{ channel = "email", max_touches = 0, window_days = 30 }]
    ... [capacity]
    ... hours_per_owner_per_week = 0
    ... budget_usd_per_team = { marketing = 0 }
    ... ''')
    >>> print(zero_limits_note(pb, candidates(pb), ["ana", None]))  # doctest: +NORMALIZE_WHITESPACE
    limits of 0 let none of the plays they cover be recommended: hours_per_owner_per_week = 0 blocks call (its
    effort_hours) for the accounts with an owner; budget_usd_per_team.marketing = 0 blocks email (its cost_usd);
    max_per_run = 0 blocks email; the contact cap on email (max_touches = 0) blocks email
    >>> zero_limits_note(pb, candidates(pb), None).count("hours_per_owner_per_week")  # nobody's hours: no limit
    0
    >>> print(zero_limits_note(pb, candidates(pb), ["ana"], capacity=False))  # the contact policy still applies
    limits of 0 let none of the plays they cover be recommended: the contact cap on email (max_touches = 0) blocks email

    A limit that blocks some variants of an action names them: the action's other variants are still given.

    >>> pb = parse_playbook('''
    ... [objectives.retention]
    ... outcome = "churn"
    ... sense = "avoid"
    ... value = "arr"
    ... [[actions]]
    ... id = "mailer"
    ... name = "Mailer"
    ... team = "marketing"
    ... channel = "email"
    ... objective = "retention"
    ... cost_usd = 5
    ... variants = [{ id = "am" }, { id = "sms", channel = "sms" }, { id = "push", channel = "push", cost_usd = 0 }]
    ... [contact_policy]
    ... caps = [{ channel = "sms", max_touches = 0, window_days = 7 }]
    ... [capacity]
    ... budget_usd_per_team = { marketing = 0 }
    ... ''')
    >>> print(zero_limits_note(pb, candidates(pb), ["ana"]))  # doctest: +NORMALIZE_WHITESPACE
    limits of 0 let none of the plays they cover be recommended: budget_usd_per_team.marketing = 0 blocks mailer's
    variants am, sms (its cost_usd), not mailer's variant push; the contact cap on sms (max_touches = 0) blocks
    mailer's variant sms, not mailer's variants am, push
    """

    variants: dict[str, list[str]] = {}
    for c in cands:
        variants.setdefault(c.action_id, []).append(c.variant or "")

    def named(blocked: Sequence[Candidate], what: str = "") -> str:
        # An action is blocked only if every variant of it is: else the variants blocked are named, and
        # the others said to stay open (a cap on sms blocks mailer's sms variant, not its e-mail one).
        hit: dict[str, list[str]] = {}
        for c in blocked:
            hit.setdefault(c.action_id, []).append(c.variant or "")
        words, spared = [], []
        for action, some in hit.items():
            rest = [v for v in variants[action] if v not in some]
            if not rest:
                words.append(action)
                continue
            words.append(f"{action}'s {_variants_text(some)}")
            spared.append(f"{action}'s {_variants_text(rest)}")
        why = f" ({'its' if len(words) == 1 else 'their'} {what})" if what else ""
        return ", ".join(words) + why + ("" if not spared else ", not " + " nor ".join(spared))

    policy = playbook.contact_policy
    parts: list[str] = []
    if policy.max_actions_per_window == 0:
        parts.append("max_actions_per_window = 0 in [contact_policy] blocks every play for every account")
    limits = playbook.capacity
    present = sorted({o for o in owners if o is not None}) if capacity and owners is not None else []
    idle = [o for o in present if limits.owner_hours_per_week(o) == 0]
    if idle and (acts := [c for c in cands if c.effort_hours > 0]):
        listed = [o for o in idle if o in limits.owner_hours]
        if len(listed) < len(idle):
            unlisted = " not in owner_hours" if limits.owner_hours else ""
            parts.append(
                f"hours_per_owner_per_week = 0 blocks {named(acts, 'effort_hours')} for the accounts with an "
                f"owner{unlisted}"
            )
        if listed:
            shown = ", ".join(repr(o) for o in listed[:5]) + (f" and {len(listed) - 5} more" if len(listed) > 5 else "")
            verb, whose = ("blocks", "that owner's") if len(listed) == 1 else ("block", "their")
            parts.append(f"owner_hours of 0 for {shown} {verb} {named(acts, 'effort_hours')} for {whose} accounts")
    for team, budget in playbook.capacity.budget_usd_per_team.items() if capacity else ():
        if budget == 0 and (acts := [c for c in cands if c.team == team and c.cost_usd > 0]):
            parts.append(f"budget_usd_per_team.{team} = 0 blocks {named(acts, 'cost_usd')}")
    for action in playbook.actions if capacity else ():
        if action.max_per_run == 0:
            parts.append(f"max_per_run = 0 blocks {action.id}")
    for cap in policy.caps:
        capped: str | None = getattr(cap.team, "value", cap.team)
        acts = [
            c
            for c in cands
            if (capped is None or capped == c.team) and (cap.channel is None or cap.channel == c.channel)
        ]
        if cap.max_touches == 0 and acts:
            scope = " ".join(x for x in (capped, cap.channel) if x) or "every team and channel"
            parts.append(f"the contact cap on {scope} (max_touches = 0) blocks {named(acts)}")
    if not parts:
        return None
    return "limits of 0 let none of the plays they cover be recommended: " + "; ".join(parts)


def _variants_text(variants: Sequence[str]) -> str:
    """``variant sms`` or ``variants am, push``."""
    return f"{'variant' if len(variants) == 1 else 'variants'} {', '.join(variants)}"


def never_eligible_note(playbook: Playbook, rules: RuleCheck) -> str | None:
    """A note naming each action whose eligibility no account of ``rules`` meets, with its expression.

    Such an action can never be recommended (nor explored) in this run: often a threshold out of the
    book's range or a feature the book lacks (``arr > 100`` without ARR: a missing value is not eligible).

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> from nextmove.decide.rules import check_rules
    >>> from nextmove.playbook.loader import parse_playbook
    >>> pb = parse_playbook('''
    ... [objectives.retention]
    ... outcome = "churn"
    ... sense = "avoid"
    ... value = "fixed"
    ... value_usd = 100
    ... [[actions]]
    ... id = "call"
    ... name = "Call"
    ... team = "cs"
    ... objective = "retention"
    ... eligibility = "seats > 1000"
    ... [[actions]]
    ... id = "mail"
    ... name = "Mail"
    ... team = "cs"
    ... objective = "retention"
    ... ''')
    >>> feats = pl.DataFrame({"account_id": ["a", "b"], "seats": [3.0, None]})
    >>> touches = pl.DataFrame(schema={"account_id": pl.String, "action_id": pl.String, "ts": pl.Datetime("us", "UTC")})
    >>> rules = check_rules(feats, touches, pb, datetime(2025, 1, 1, tzinfo=UTC), {"seats": "number"})
    >>> print(never_eligible_note(pb, rules))  # doctest: +NORMALIZE_WHITESPACE
    eligible for none of the 2 active accounts, so never recommended: call (seats > 1000); check each
    expression against the book's features (`nextmove features`; a missing value is not eligible)
    """
    n = len(rules.account_ids)
    if n == 0:
        return None
    never: list[str] = []
    for action in playbook.actions:
        if not action.eligibility.strip():
            continue
        cols = [j for j, c in enumerate(rules.candidates) if c.action_id == action.id]
        if cols and bool((rules.why[:, cols] == Why.RULE).all()):
            never.append(f"{action.id} ({action.eligibility.strip()})")
    if not never:
        return None
    return (
        f"eligible for none of the {n:,} active account{'s' if n != 1 else ''}, so never recommended: "
        + ", ".join(never)
        + "; check each expression against the book's features (`nextmove features`; a missing value is not eligible)"
    )


def _column(frame: pl.DataFrame, name: str) -> list[str | None] | None:
    if name not in frame.columns:
        return None
    return frame.get_column(name).cast(pl.String).to_list()


def _features(
    book: Book, playbook: Playbook, when: datetime
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, FeatureVocabulary]:
    """The active accounts' snapshot at ``when``, their snapshot ``PREVIOUS_DAYS`` earlier, account columns, and
    the snapshot's vocabulary (the names seen before ``when``, plus the playbook's)."""
    active = active_accounts(book, playbook, when)
    if active.height == 0:
        raise ConfigError(f"no active account at {when:%Y-%m-%d %H:%M} UTC: nothing to decide")
    vocab = vocabulary_of(book.accounts.schema, point_in_time(book, when), playbook=playbook)
    now = compute_features(book, when, playbook=playbook, vocabulary=vocab)
    snapshot = with_late_features(book, playbook, when, now).join(
        active, on="account_id", how="semi", maintain_order="left"
    )
    # As health's earlier score: only accounts that existed then and were not away (gone, won back since),
    # or the receipts would read the months before its start or away as a change.
    before = when - timedelta(days=PREVIOUS_DAYS)
    previous = (
        compute_features(book, before, playbook=playbook)
        .join(active, on="account_id", how="semi", maintain_order="left")
        .join(existing_accounts(book, before), on="account_id", how="semi", maintain_order="left")
        .join(gone_accounts(book, playbook, before), on="account_id", how="anti", maintain_order="left")
    )
    keep = [c for c in ("account_id", "name", "owner", "lifecycle_stage", "arr") if c in book.accounts.columns]
    accounts = (
        snapshot.select("account_id")
        .join(book.accounts.select(keep), on="account_id", how="left", maintain_order="left")
        .with_columns(
            *[pl.lit(None, dtype=pl.String).alias(c) for c in ("name", "owner", "lifecycle_stage") if c not in keep],
            *([pl.lit(None, dtype=pl.Float64).alias("arr")] if "arr" not in keep else []),
        )
        .select(
            "account_id",
            pl.col("name").cast(pl.String),
            pl.col("owner").cast(pl.String),
            pl.col("lifecycle_stage").cast(pl.String),
            pl.col("arr").cast(pl.Float64),
        )
    )
    # The book's own columns when it has them: a book without owners or stages decides without them.
    present = [c for c in ("name", "owner", "lifecycle_stage") if c in keep]
    return snapshot, previous, accounts.select("account_id", *present, "arr"), vocab


def with_late_features(book: Book, playbook: Playbook, when: datetime, snapshot: pl.DataFrame) -> pl.DataFrame:
    """``snapshot`` (at ``when``) with the columns of every name in the book it lacks, missing for every account.

    A snapshot has the features of the names seen before its time. A signal (or outcome kind)
    whose first row comes after the decision time then has no column, and a rule or eligibility on
    it stopped the run with "unknown feature" (``nextmove validate``, which checks the playbook
    against every name in the book, had passed it). With its columns added, missing as they are for
    an account without the signal, such a rule holds for no account; :func:`late_signals_note` says
    so. The snapshot's own columns are kept as they are (the models were fitted on them).
    """
    vocab = FeatureVocabulary.build(
        accounts_schema=book.accounts.schema,
        signal_names=book.signal_names,
        action_ids=book.touches.get_column("action_id").drop_nulls().unique().to_list(),
        outcome_kinds=book.outcomes.get_column("kind").drop_nulls().unique().to_list(),
        playbook=playbook,
    )
    empty = Book(book.accounts.head(0), book.signals.head(0), book.touches.head(0), book.outcomes.head(0))
    every = compute_features(empty, when, playbook=playbook, vocabulary=vocab).schema
    late = [pl.lit(None, dtype=dtype).alias(name) for name, dtype in every.items() if name not in snapshot.columns]
    return snapshot.with_columns(late) if late else snapshot


def late_signals_note(book: Book, when: datetime) -> str | None:
    """A note naming the signals with no row before ``when``, and their first date (None if there is none).

    Examples
    --------
    >>> from datetime import UTC
    >>> from nextmove.book import empty_table
    >>> signals = pl.DataFrame({"account_id": ["a", "a"], "name": ["logins", "NPS score"],
    ...                         "ts": [datetime(2025, 1, 5, tzinfo=UTC), datetime(2025, 4, 2, tzinfo=UTC)],
    ...                         "value": [3.0, 9.0]})
    >>> book = Book(pl.DataFrame({"account_id": ["a"]}), signals, empty_table("touches"), empty_table("outcomes"))
    >>> print(late_signals_note(book, datetime(2025, 3, 1, tzinfo=UTC)))  # doctest: +NORMALIZE_WHITESPACE
    the signal 'NPS score' has no row before the decision time 2025-03-01 (its first: 2025-04-02): its
    features are missing for every account, as for an account without it, so a rule or eligibility on
    them holds for no account (unless it tests missing(...)) and the models learn without it; pass an
    --as-of after its first row to decide with it
    """
    firsts = book.signals.group_by("name").agg(pl.col("ts").min()).filter(pl.col("ts") >= when).sort("ts", "name")
    if firsts.height == 0:
        return None
    missing = "features are missing for every account, as for an account without"
    rule = "so a rule or eligibility on them holds for no account (unless it tests missing(...))"
    if firsts.height == 1:
        name, first = firsts.row(0)
        return (
            f"the signal {name!r} has no row before the decision time {when:%Y-%m-%d} (its first: {first:%Y-%m-%d}): "
            f"its {missing} it, {rule} and the models learn without it; pass an --as-of after its first row to "
            "decide with it"
        )
    named = ", ".join(f"{name!r} (first: {first:%Y-%m-%d})" for name, first in firsts.iter_rows())
    return (
        f"the signals {named} have no row before the decision time {when:%Y-%m-%d}: their {missing} them, {rule} "
        "and the models learn without them; pass an --as-of after their first rows to decide with them"
    )


def unlearned_signals_note(
    book: Book,
    training: pl.DataFrame,
    playbook: Playbook,
    vocabulary: FeatureVocabulary,
    partial_horizon_days: float | None,
) -> str | None:
    """A note when the book has signals but none of the decisions the effect models learn from sees one.

    The models learn from the training decisions whose horizon is over (and, with
    ``partial_horizon_days``, the open ones seen that long); their signal features read the rows before
    each decision. A book whose signals were exported for recent weeks only, while every finished
    decision is older, gives them none: the models learn from attributes and touches alone and the
    evidence cites no signal. None when the book has no signals or some learned decision has one.

    Examples
    --------
    >>> from datetime import UTC
    >>> from nextmove.book import empty_table
    >>> from nextmove.playbook.loader import load_playbook
    >>> day = lambda m, d: datetime(2025, m, d, tzinfo=UTC)
    >>> signals = pl.DataFrame({"account_id": ["a"], "name": ["logins"], "ts": [day(5, 20)], "value": [3.0]})
    >>> book = Book(pl.DataFrame({"account_id": ["a"]}), signals, empty_table("touches"), empty_table("outcomes"))
    >>> training = pl.DataFrame({"account_id": ["a", "a"], "decision_ts": [day(3, 1), day(4, 1)],
    ...                          "censored": [False, False], "logins_last": [None, None]})
    >>> vocab = FeatureVocabulary(signals={"logins": "logins"})
    >>> print(unlearned_signals_note(book, training, load_playbook(), vocab, None))  # doctest: +NORMALIZE_WHITESPACE
    the book's signals (logins) hold no value before any of the 2 decisions the effect models learn from: its
    first signal is dated 2025-05-20, after the latest decision whose 90-day horizon is over (2025-04-01), so the
    models learn from the accounts' attributes and touches alone and the evidence cites no signal; add older
    signal exports (from before 2025-04-01), or learn from open horizons too (--partial-horizon-days, e.g. 28)
    """
    if book.signals.is_empty() or training.height == 0:
        return None
    learned = training
    if "censored" in training.columns:
        kept = ~pl.col("censored").fill_null(False)
        if partial_horizon_days is not None and "observed_days" in training.columns:
            kept = kept | (pl.col("observed_days").cast(pl.Float64) >= partial_horizon_days)
        learned = training.filter(kept)
    columns = [f"{stem}_last" for stem in vocabulary.signals.values() if f"{stem}_last" in learned.columns]
    if learned.height == 0 or not columns:
        return None
    if learned.select(pl.any_horizontal(pl.col(c).is_not_null() for c in columns).any()).item():
        return None
    names = sorted(str(n) for n in book.signals.get_column("name").unique().to_list())
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3:,} more" if len(names) > 3 else "")
    first = to_utc(book.signals.get_column("ts").min())  # type: ignore[arg-type]
    latest = to_utc(learned.get_column("decision_ts").max())  # type: ignore[arg-type]
    which = (
        f"the latest decision whose {playbook.horizon_days}-day horizon is over ({latest:%Y-%m-%d})"
        if partial_horizon_days is None
        else f"the latest decision learned from ({latest:%Y-%m-%d})"
    )
    when = (
        f"its first signal is dated {first:%Y-%m-%d}, after {which}"
        if first >= latest
        else f"no account has a signal before its own decisions (the first signal: {first:%Y-%m-%d}; {which})"
    )
    ways = f"add older signal exports (from before {latest:%Y-%m-%d})"
    if partial_horizon_days is None:
        ways += ", or learn from open horizons too (--partial-horizon-days, e.g. 28)"
    return (
        f"the book's signals ({shown}) hold no value before any of the {learned.height:,} decisions the effect models "
        f"learn from: {when}, so the models learn from the accounts' attributes and touches alone and the evidence "
        f"cites no signal; {ways}"
    )


def _health_scores(
    playbook: Playbook, snapshot: pl.DataFrame, vocab: FeatureVocabulary, notes: list[str]
) -> tuple[HealthScorecard | None, pl.DataFrame]:
    """The scorecard and ``account_id, health_score, health_band`` (None and nulls, with a note, when it cannot)."""
    try:
        card = HealthScorecard.from_playbook(playbook, snapshot, vocab).fit(snapshot)
        return card, card.score(snapshot).select("account_id", "health_score", "health_band")
    except NextmoveError as exc:
        notes.append(f"no health score: {exc}")
        return None, snapshot.select(
            "account_id",
            pl.lit(None, dtype=pl.Float64).alias("health_score"),
            pl.lit(None, dtype=pl.String).alias("health_band"),
        )


def _health_bands(
    card: HealthScorecard | None,
    health: pl.DataFrame,
    training: pl.DataFrame | None,
    kept: HealthBands | None,
    book: Book,
    playbook: Playbook,
    when: datetime,
    notes: list[str],
) -> tuple[pl.DataFrame, HealthBands | None]:
    """``health`` banded as ``nextmove health`` bands it, and the bands learned (None when none were).

    The cut-offs are learned from the training set's churn history. A run that reused its effect
    model built no training set: it bands with the cut-offs learned when that model was fitted
    (``kept``), or, for a model saved without them, the scorecard's (``band_cutoffs``, or 30/70)
    with a note.
    """
    if card is None or playbook.health.band_cutoffs is not None:
        return health, None
    if training is None:
        if kept is not None and kept.source == "history":
            return health.with_columns(band_expr(pl.col("health_score"), kept)), None
        why = (
            "they could not be learned from the history when the reused effect model was fitted (that run's "
            "notes say why)"
            if kept is not None
            else "the reused effect model was saved by an earlier version without learned ones; a run without "
            "--reuse-model fits a model that keeps them"
        )
        notes.append(
            f"health bands use the fixed cut-offs ({card.bands.describe()}): {why} "
            "(or set band_cutoffs in the playbook)"
        )
        return health, None
    learned = learned_bands(card, training, health, book, playbook, when, notes)
    if learned.bands.source != "history":
        return health, learned.bands  # kept with the model, so a reuse run says why they are fixed
    return health.with_columns(band_expr(pl.col("health_score"), learned.bands)), learned.bands


# ---- models ---------------------------------------------------------------------------------------


def _training(
    book: Book, playbook: Playbook, when: datetime, opts: RunOptions, notes: list[str], *, untouched: bool = True
) -> pl.DataFrame:
    """The training set of past decisions (those of the last ``opts.training_days`` days when given), with the
    outcomes complete to ``opts.outcomes_until`` if given; what it labels by window although the outcomes name
    touches goes to ``notes``.

    ``untouched`` False leaves out the untouched dates a log without logged ``none`` decisions gets
    (comparables read only logged decisions).
    """
    return build_training_set(
        book,
        playbook,
        as_of=when,
        decisions_from=None if opts.training_days is None else when - timedelta(days=opts.training_days),
        untouched_rows=None if untouched else False,
        notes=notes,
        outcomes_until=opts.outcomes_until,
    )


def _model(
    book: Book,
    playbook: Playbook,
    when: datetime,
    store: Store | None,
    seed: int,
    opts: RunOptions,
    notes: list[str],
    tell: Progress,
) -> tuple[EffectModel, str | None, pl.DataFrame | None, HealthBands | None]:
    """The effect model (fitted, or loaded from the store), its version id, the training set if built,
    and the health bands learned when a loaded model was fitted (if it was saved with them).

    A fitted model is not saved here: the run saves it with the health bands it learns next.
    """
    if opts.reuse_model:
        if store is None:
            raise ConfigError("reuse_model needs a store to load the effect model from")
        record = _effect_record(store, playbook)
        loaded = _unpickle_effect_model(record)
        notes.extend(_flagged_notes(loaded))  # what the fit said of its arms holds of the model reused
        # Read by the accounts table's names alone: the stems of a clash (rare) may differ from the model's.
        notes.extend(guard_leaks(book, playbook, when, None).reused_notes(loaded.matrix_.columns_))
        return loaded, record.model_id, None, saved_health_bands(record)
    tell("building the training set of past decisions")
    training = _training(book, playbook, when, opts, notes)
    tell(f"learning from {training.height:,} decisions")
    params = {**FAST_EFFECT_PARAMS, "random_state": seed, "n_jobs": opts.jobs, **dict(opts.effect_params)}
    # The training set's vocabulary: each objective reads the labels of its own outcome kind.
    params["vocabulary"] = training_vocabulary(book, playbook, as_of=when)
    # Accounts columns written as accounts leave tell how past decisions ended: never learned from.
    guard = guard_leaks(book, playbook, when, params["vocabulary"])
    notes.extend(guard.notes())
    params = guard.effect_params(params)
    try:
        model = EffectModel(playbook, **params).fit(training)
    except NothingToLearnError as error:
        if params.get("partial_horizon_days") is not None:
            raise
        until = opts.outcomes_until if isinstance(opts.outcomes_until, datetime) else None
        raise _nothing_to_learn(error, book, playbook, when, opts.training_days, until) from None
    notes.extend(_flagged_notes(model))
    notes.extend(model.fit_notes())
    partial = params.get("partial_horizon_days")
    unlearned = unlearned_signals_note(book, training, playbook, params["vocabulary"], partial)
    if unlearned is not None:
        notes.append(unlearned)
    return model, None, training, None


def _flagged_notes(model: EffectModel) -> list[str]:
    """The run's note on the actions the model values at the pooled effect, fitted or reused (none if no action)."""
    if not model.flagged_arms_:
        return []
    return [
        "actions with too little history, valued at the pooled effect with a wide interval: "
        + ", ".join(model.flagged_arms_)
    ]


def _pooled_note(decided: pl.DataFrame, flagged: Sequence[str]) -> str | None:
    """A note when actions with too little history of their own are recommended on the pooled effect alone."""
    counts = (
        decided.filter(pl.col("action_id").is_in(list(flagged)))
        .group_by("action_id")
        .len()
        .sort(["len", "action_id"], descending=[True, False])
    )
    if counts.height == 0:
        return None
    parts = [f"{a} to {n:,} account{'s' if n != 1 else ''}" for a, n in counts.iter_rows()]
    return (
        "recommended on the pooled effect alone, without a history of their own: "
        + ", ".join(parts)
        + "; --risk-aversion favours actions whose effect is known better"
    )


def _nothing_to_learn(
    error: NothingToLearnError,
    book: Book,
    playbook: Playbook,
    when: datetime,
    training_days: int | None = None,
    outcomes_until: datetime | None = None,
) -> ConfigError:
    """The effect model's "nothing to learn from", with the run's ways out.

    What is said rests on the decisions of the whole history
    (:func:`~nextmove.engine.health.finished_decisions`): when none is finished by ``when``, a later
    ``--as-of`` (or the outcomes since, when the outcomes' end is what leaves every horizon open); when
    some are but ``--training-days`` keeps none of them, the ``--training-days`` that keeps one
    (:func:`~nextmove.engine.health.training_days_error`, as health says it). ``outcomes_until``: the
    run's ``--outcomes-until``, how far the
    outcomes are complete (else where they are seen to).
    """
    if error.ready_on is None:
        return error
    horizon = timedelta(days=playbook.horizon_days)
    earliest, latest_finished, seen = finished_decisions(book, playbook, when, outcomes_until)
    if latest_finished is None:
        if earliest is None:
            return error
        done = earliest + horizon
        if done <= when and seen < when:
            return ConfigError(
                f"no past decision's outcomes can be learned from as of {when:%Y-%m-%d}: the book's outcomes end "
                f"{last_day(seen)}, before the {playbook.horizon_days}-day horizon of any decision is "
                "over. Add the outcomes since to the book; if there were none (a quiet spell), say so with "
                "--outcomes-until DATE; or learn from open horizons (--partial-horizon-days)"
            )
        window = playbook.contact_policy.window_days
        short = (
            ""
            if training_days is None or training_days >= playbook.horizon_days
            else f"; --training-days {training_days}, shorter than the horizon, keeps no finished decision at any "
            f"as-of: pass {playbook.horizon_days + window} or more with it, or leave it out"
        )
        # A book whose data end before that (a finished campaign's log: no signals, the conversions dated a
        # week after the send) is read as exported at its end: a later --as-of alone leaves the horizons open.
        reach = outcomes_seen_until(book, done, whole_days=of_dates(book.outcomes)) if outcomes_until is None else done
        complete = (
            ""
            if reach >= done
            else f", with --outcomes-until {last_day(done)} as the book's data end {last_day(reach)}"
        )
        return ConfigError(
            f"no past decision's outcomes can be learned from as of {when:%Y-%m-%d}: the playbook's horizon is "
            f"{playbook.horizon_days} days, so the earliest decision is only finished on {done:%Y-%m-%d}. "
            f"Decide as of {done:%Y-%m-%d} or later (--as-of{complete}) if the book holds the outcomes up to then, "
            f"shorten horizon_days in the playbook, or learn from open horizons (--partial-horizon-days){short}"
        )
    if training_days is None:
        return error
    return training_days_error(training_days, playbook, when, latest_finished, seen)


_REFIT = "run without --reuse-model (reuse_model in Python)"
"""How a refused stored effect model is replaced: fit a new one."""

EFFECT_MODEL_FORMAT = 3
"""Version of the :class:`~nextmove.models.effect.EffectModel`'s learned state, kept with every saved model.

Raise it whenever the fitted attributes change (2: behavior groups and the S-learner contrast as
modifiers of the shift; 3: the repeat-count, fatigue and touch-cost terms): a model saved under
another format is refused with a clear message rather than failing half-way through a projection.
Learning from open horizons (``partial_horizon_days``) added attributes that models saved before
it read as absent (no open rows), so it kept format 3. The R-loss correction (``rloss_*``) and the
vocabulary were added without raising it: models of format 3 saved before them are refused by
what they lack (:meth:`~nextmove.models.effect.EffectModel.missing_state`, checked on every load),
as is any model saved before an attribute added later. An attribute added to the model needs no
new format; one whose meaning changes does."""


def save_effect_model(
    store: Store,
    model: EffectModel,
    playbook: Playbook,
    training: pl.DataFrame,
    when: datetime,
    *,
    activate: bool = True,
    bands: HealthBands | None = None,
) -> str:
    """Save a fitted effect model as a version of kind ``effect``, the active one if ``activate``; returns its id.

    ``bands``, the health bands learned from the same history, are kept with it (in its metrics), so
    a run that reuses the model bands health as the run that fitted it did (:func:`saved_health_bands`).
    """
    created = utcnow()
    model_id = f"effect-{created:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    stamps = training.get_column("decision_ts") if "decision_ts" in training.columns else None
    record = ModelVersionRecord(
        model_id=model_id,
        kind=EFFECT_MODEL_KIND,
        playbook_hash=playbook.content_hash(),
        blob=pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL),
        created_at=created,
        trained_from=None if stamps is None or stamps.len() == 0 else stamps.min(),  # type: ignore[arg-type]
        trained_to=when,
        features=list(model.matrix_.columns_),
        metrics={
            "format": EFFECT_MODEL_FORMAT,
            "rows": int(model.n_rows_),
            "arms": list(model.arms_),
            "flagged_arms": list(model.flagged_arms_),
            "fit_seconds": {k: round(float(v), 3) for k, v in model.fit_seconds_.items()},
            **(
                {}
                if bands is None
                else {
                    "health_bands": {
                        "critical_max": bands.critical_max,
                        "at_risk_max": bands.at_risk_max,
                        "source": bands.source,
                    }
                }
            ),
        },
    )
    store.save_model(record)
    if activate:
        store.activate_model(model_id)
    return model_id


def load_effect_model(store: Store, playbook: Playbook, model_id: str | None = None) -> tuple[EffectModel, str]:
    """The store's active effect model (or the version ``model_id``), checked against the playbook.

    Raises
    ------
    NotFoundError
        If there is no active effect model (or no model ``model_id``).
    ConfigError
        If it was fitted under another playbook, saved in another format (:data:`EFFECT_MODEL_FORMAT`)
        or by an earlier nextmove without an attribute this one reads, or is not an effect model.
    """
    record = _effect_record(store, playbook, model_id)
    return _unpickle_effect_model(record), record.model_id


def saved_health_bands(record: ModelVersionRecord) -> HealthBands | None:
    """The health bands saved with an effect model, or None when it was saved without them (an earlier version).

    Their ``source`` is ``history`` when they were learned, ``fixed`` when the fitting run could not
    learn them.
    """
    saved = record.metrics.get("health_bands")
    if not isinstance(saved, dict):
        return None
    try:
        return HealthBands(
            int(saved["critical_max"]),
            int(saved["at_risk_max"]),
            "fixed" if saved.get("source") == "fixed" else "history",
        )
    except (KeyError, TypeError, ValueError, ConfigError):
        return None  # a damaged entry: band as a model saved without them


def _effect_record(store: Store, playbook: Playbook, model_id: str | None = None) -> ModelVersionRecord:
    """The stored effect model's record (the active one, or ``model_id``), checked against the playbook."""
    from nextmove.errors import NotFoundError

    record = store.active_model(EFFECT_MODEL_KIND) if model_id is None else store.load_model(model_id)
    if record is None:
        raise NotFoundError(f"the store at {store.url} has no active {EFFECT_MODEL_KIND!r} model: {_REFIT} once first")
    if record.kind != EFFECT_MODEL_KIND:
        raise ConfigError(f"model {record.model_id!r} is a {record.kind!r} model, not an {EFFECT_MODEL_KIND!r} one")
    if record.playbook_hash != playbook.content_hash():
        raise ConfigError(
            f"effect model {record.model_id!r} was fitted under playbook {record.playbook_hash}, and this playbook is "
            f"{playbook.content_hash()}: {_REFIT} to fit one under this playbook"
        )
    saved_format = record.metrics.get("format", 1)
    if saved_format != EFFECT_MODEL_FORMAT:
        raise ConfigError(
            f"effect model {record.model_id!r} was saved in format {saved_format} by another version of nextmove, "
            f"and this version reads format {EFFECT_MODEL_FORMAT}: {_REFIT} to fit one"
        )
    return record


def _unpickle_effect_model(record: ModelVersionRecord) -> EffectModel:
    """The record's effect model, whole: every attribute this version's :class:`EffectModel` reads.

    The format kept with it (:data:`EFFECT_MODEL_FORMAT`) is checked first (:func:`_effect_record`);
    a model of that format saved before an attribute was added without raising it (the R-loss
    settings and the vocabulary, 6c9f306) would fail on first use, so it is refused here too.
    """
    model = pickle.loads(record.blob)
    if not isinstance(model, EffectModel):
        raise ConfigError(f"model {record.model_id!r} is not an effect model")
    missing = model.missing_state()
    if missing:
        shown = ", ".join(missing[:5]) + (f" … ({len(missing)} in all)" if len(missing) > 5 else "")
        raise ConfigError(
            f"effect model {record.model_id!r} was saved in format {record.metrics.get('format', 1)} by an earlier "
            f"version of nextmove, without what this version reads ({shown}): {_REFIT} to fit one"
        )
    return model


# ---- evidence and outputs -------------------------------------------------------------------------


def _receipts(
    snapshot: pl.DataFrame,
    projection: EffectProjection,
    decided: pl.DataFrame,
    decisions: Decisions,
    playbook: Playbook,
    model: EffectModel,
    training: pl.DataFrame | None,
    outcomes: pl.DataFrame,
    previous: pl.DataFrame,
    opts: RunOptions,
) -> pl.DataFrame:
    """``account_id, evidence, alternatives, summary`` (JSON strings; ``{}``/``[]`` when evidence is off)."""
    if not opts.evidence:
        return decided.select(
            "account_id",
            pl.lit("{}").alias("evidence"),
            pl.lit("[]").alias("alternatives"),
            pl.lit("").alias("summary"),
        )
    history = None
    if training is not None and "censored" in training.columns:
        history = training.filter(~pl.col("censored") & pl.col("logged").fill_null(True))
    return explain_decisions(
        snapshot,
        projection,
        decided,
        decisions.lost(playbook),
        playbook,
        model=model,
        history=history,
        outcomes=outcomes,
        previous=previous,
    )


def _projected_columns(projection: EffectProjection, decided: pl.DataFrame, playbook: Playbook) -> pl.DataFrame:
    """``account_id`` and ``projected_<objective>``: each objective's projected outcome with the recommended action.

    A probability for event objectives and dollars for amount ones; for doing nothing, the
    do-nothing baseline. Control accounts show the default's projection (what they get).
    """
    specs = objective_specs(playbook)
    base = projection.baselines().select("account_id", "objective", "baseline")
    chosen = decided.select(
        "account_id",
        pl.when(pl.col("variant").is_not_null())
        .then(pl.concat_str([pl.col("action_id"), pl.lit(":"), pl.col("variant")]))
        .otherwise(pl.col("action_id"))
        .alias("_key"),
        pl.col("action_id").alias("_action"),
    )
    arms = projection.arm_ids
    chosen = chosen.with_columns(
        pl.when(pl.col("_key").is_in(arms)).then(pl.col("_key")).otherwise(pl.col("_action")).alias("_key")
    )
    effects = projection.pair_effects(chosen.select("account_id", "_key")).select(
        "account_id", "_key", "objective", "effect"
    )
    with_effect = (
        chosen.join(base, on="account_id", how="left")
        .join(effects, on=["account_id", "_key", "objective"], how="left")
        .with_columns((pl.col("baseline") + pl.col("effect").fill_null(0.0)).alias("_with"))
    )
    wide = with_effect.pivot(on="objective", index="account_id", values="_with")
    out = decided.select("account_id").join(wide, on="account_id", how="left", maintain_order="left")
    return out.select(
        "account_id",
        *[
            (pl.col(s.objective) if s.objective in out.columns else pl.lit(None, dtype=pl.Float64))
            .cast(pl.Float64)
            .alias(f"projected_{s.objective}")
            for s in specs
        ],
    )


def _recommendations(
    accounts: pl.DataFrame,
    health: pl.DataFrame,
    decided: pl.DataFrame,
    projection: EffectProjection,
    receipts: pl.DataFrame,
    playbook: Playbook,
    model_id: str | None,
    run_id: str,
) -> pl.DataFrame:
    projected = _projected_columns(projection, decided, playbook)
    frame = (
        accounts.join(health, on="account_id", how="left", maintain_order="left")
        .join(
            decided.rename({"value_usd": "expected_value_usd"}).drop("objective", "team"),
            on="account_id",
            how="left",
            maintain_order="left",
        )
        .join(projected, on="account_id", how="left", maintain_order="left")
        .join(receipts.select("account_id", "evidence", "alternatives"), on="account_id", how="left")
        .with_columns(
            pl.lit(model_id, dtype=pl.String).alias("model_version"),
            pl.lit(run_id, dtype=pl.String).alias("run_id"),
        )
    )
    for name, dtype in (("name", pl.String), ("owner", pl.String), ("lifecycle_stage", pl.String)):
        if name not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=dtype).alias(name))
    projected_cols = [c for c in projected.columns if c != "account_id"]
    return frame.select(*RECOMMENDATION_COLUMNS, *projected_cols, "evidence", "alternatives", "model_version", "run_id")


def _records(frame: pl.DataFrame, run_id: str) -> Any:
    """The recommendations as store records, built lazily in batches."""
    created = utcnow()
    columns = (
        "account_id",
        "owner",
        "action_id",
        "variant",
        "arm",
        "propensity",
        "expected_value_usd",
        "value_low_usd",
        "value_high_usd",
        "default_action_id",
        "differs_from_default",
        "evidence",
        "alternatives",
        "model_version",
    )
    # The account's facts travel with its receipt, so a stored run renders its report without the book.
    facts = [c for c in ACCOUNT_FIELDS if c in frame.columns]
    health = [
        (pl.col(c) if c in frame.columns else pl.lit(None, dtype=dtype)).alias(f"_{c}")
        for c, dtype in (("health_score", pl.Float64), ("health_band", pl.String))
    ]
    chosen = frame.select(*columns, *health, *[pl.col(c).alias(f"_account_{c}") for c in facts])
    for part in chosen.iter_slices(20_000):
        for row in part.iter_rows(named=True):
            evidence = json.loads(row["evidence"] or "{}")
            evidence["account"] = {c: row[f"_account_{c}"] for c in facts}
            yield RecommendationRecord(
                run_id=run_id,
                account_id=row["account_id"],
                action_id=row["action_id"],
                arm=row["arm"],
                propensity=float(row["propensity"]),
                expected_value_usd=float(row["expected_value_usd"]),
                variant=row["variant"],
                value_low_usd=row["value_low_usd"],
                value_high_usd=row["value_high_usd"],
                default_action_id=row["default_action_id"],
                differs_from_default=bool(row["differs_from_default"]),
                owner=row["owner"],
                evidence=evidence,
                alternatives=json.loads(row["alternatives"] or "[]"),
                model_version=row["model_version"],
                health_score=None if row["_health_score"] is None else float(row["_health_score"]),
                health_band=row["_health_band"],
                created_at=created,
            )


RECEIPT_COLUMNS = ("evidence", "alternatives")
"""The receipts' JSON columns: ``recommendations.csv`` leaves them out with ``csv_evidence=False``."""


def _write_files(
    staged: StagedFiles, recommendations: pl.DataFrame, summary: dict[str, Any], *, evidence: bool = True
) -> dict[str, Path]:
    """The run's files, written into ``staged``'s temporary folder (which :func:`run` then moves into ``out_dir``).

    Without ``evidence``, ``recommendations.csv`` leaves out the :data:`RECEIPT_COLUMNS` (the Parquet keeps them).
    """
    with writing("the run's files"):
        folder = staged.folder
        files = {
            "recommendations.csv": folder / "recommendations.csv",
            "recommendations.parquet": folder / "recommendations.parquet",
            "summary.json": folder / "summary.json",
        }
        recommendations.write_parquet(files["recommendations.parquet"])
        csv = recommendations if evidence else recommendations.drop(RECEIPT_COLUMNS, strict=False)
        write_csv(csv, files["recommendations.csv"])
        _write_json(files["summary.json"], summary)
    return files


def _write_json(path: Path, payload: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n", encoding="utf-8")


def _json_default(value: object) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def _json_numbers(summary: dict[str, Any]) -> dict[str, Any]:
    """``summary``, changed in place: any NaN or infinite number made None, and a note naming each one.

    JSON has no NaN: the store refuses one, and the run, its work done, would be lost to a figure
    that could not be computed. Each figure should say so itself (None and a note, as the off-policy
    estimates do); this is the last guard, and its note names the key so that the cause can be fixed.
    In place, because parts of the summary (its timings) are still being filled in.
    """
    found: list[str] = []

    def clean(value: Any, path: str) -> Any:
        if isinstance(value, float | np.floating) and not np.isfinite(value):
            found.append(f"{path} ({value})")
            return None
        if isinstance(value, dict):
            for k, v in value.items():
                value[k] = clean(v, f"{path}.{k}" if path else str(k))
        elif isinstance(value, list):
            value[:] = [clean(v, f"{path}[{i}]") for i, v in enumerate(value)]
        elif isinstance(value, tuple):
            return [clean(v, f"{path}[{i}]") for i, v in enumerate(value)]
        return value

    clean(summary, "")
    if found:
        summary["notes"].append(
            f"not a finite number, stored as null: {', '.join(found)} (please report it: this figure should "
            "say itself why it could not be computed)"
        )
    return summary


def _mark_failed(store: Store, run_id: str, exc: BaseException) -> None:
    # The original error matters more than a failed bookkeeping write.
    with contextlib.suppress(NextmoveError):
        # A run saved whole before the error (say, interrupted while its model was being made
        # active) stays succeeded: its recommendations are all there.
        if store.get_run(run_id).status == "running":
            store.finish_run(run_id, "failed", {"error": failure_text(exc)})


# ---- the summary ----------------------------------------------------------------------------------


def _summary(
    run_id: str,
    when: datetime,
    playbook: Playbook,
    decisions: Decisions,
    decided: pl.DataFrame,
    policy_values: list[dict[str, Any]],
    regret: dict[str, Any] | None,
    model_id: str | None,
    notes: list[str],
    timings: dict[str, float],
) -> dict[str, Any]:
    acting = decided.filter(pl.col("action_id") != NO_ACTION)
    # The recommended cohort (model and explore arms) apart from control's defaults, which it is measured against.
    recommended = acting.filter(pl.col("arm") != "control")
    assigned = dict.fromkeys(playbook.objectives, 0)
    for objective, count in acting.group_by("objective").len().iter_rows():
        assigned[str(objective)] = int(count)
    by_action = {a.id: 0 for a in playbook.actions}
    for action, count in acting.group_by("action_id").len().iter_rows():
        by_action[str(action)] = int(count)
    by_team = {str(team): int(count) for team, count in acting.group_by("team").len().sort("team").iter_rows()}
    arms = dict.fromkeys(("model", "explore", "control"), 0)
    for arm, count in decided.group_by("arm").len().iter_rows():
        arms[str(arm)] = int(count)
    known_default = decided.filter(pl.col("default_action_id").is_not_null())
    differs = (
        float(known_default.get_column("differs_from_default").cast(pl.Float64).mean() or 0.0)  # type: ignore[arg-type]
        if known_default.height
        else None
    )
    allocation = decisions.allocation
    usage = decisions.usage()
    # A limit of 0 that some candidate needs binds too: it blocks every play that would use it.
    needed = {r.name for r in decisions.resources if np.any(np.asarray(r.per_candidate) > 0)}
    binding = sorted(
        name
        for name, u in usage.items()
        if (u["limit"] > 0 and u["used"] >= 0.98 * u["limit"]) or (u["limit"] <= 0 and name in needed)
    )
    out: dict[str, Any] = {
        "run_id": run_id,
        "playbook_name": playbook.name,
        # The report of this run writes its amounts in it, whatever playbook is read when it is made.
        "currency": playbook.currency,
        "as_of": when.isoformat(),
        "accounts": decided.height,
        "actions": len(playbook.actions),
        "candidates": len(decisions.candidates),
        "assigned": assigned,
        "objective_names": {k: (o.name or k) for k, o in playbook.objectives.items()},
        "do_nothing": int(decided.filter(pl.col("action_id") == NO_ACTION).height),
        "differs_from_default": int(known_default.get_column("differs_from_default").sum())
        if known_default.height
        else 0,
        "differs_from_default_share": differs,
        "acted_differs_from_default": {
            "accounts": int(known_default.filter(pl.col("action_id") != NO_ACTION).height),
            "differs": int(
                known_default.filter((pl.col("action_id") != NO_ACTION) & pl.col("differs_from_default")).height
            ),
        },
        "projected_impact_usd": _projected_impact(recommended),
        "projected_impact_by_cohort": {
            "recommended": _projected_impact(recommended),
            "control": _projected_impact(acting.filter(pl.col("arm") == "control")),
        },
        "model_policy_value_usd": round(float(decisions.chosen_value("model").sum()), 2),
        "by_action": by_action,
        "by_team": by_team,
        "arms": arms,
        "allocation": {
            "method": allocation.method,
            "total_value_usd": round(allocation.total_value, 2),
            "upper_bound_usd": None if allocation.upper_bound is None else round(allocation.upper_bound, 2),
            "gap_to_bound": allocation.gap_to_bound,
            "seconds": round(allocation.seconds, 3),
            **({} if allocation.fallback is None else {"fallback": allocation.fallback}),
            "binding_resources": len(binding),
            "resources": len(decisions.resources),
            **_allocation_check(decisions),
        },
        "capacity": _capacity_summary(usage),
        "exploration": {
            "method": decisions.exploration,
            "epsilon": decisions.epsilon,
            "control_fraction": decisions.control_fraction,
        },
        "model_version": model_id,
        "policy_values": policy_values,
        "timings_s": timings,
        "notes": notes,
    }
    if regret is not None:
        out["regret"] = regret
    return out


def _projected_impact(acting: pl.DataFrame) -> dict[str, Any]:
    """The projected value of the actions ``acting`` (decided rows given an action), with its interval, and how many.

    The interval's ends are summed account by account (conservative: accounts share the models' uncertainty).
    """
    return {
        "value": round(float(acting.get_column("value_usd").sum()), 2),
        "low": round(float(acting.get_column("value_low_usd").sum()), 2),
        "high": round(float(acting.get_column("value_high_usd").sum()), 2),
        "accounts": acting.height,
    }


def _allocation_check(decisions: Decisions) -> dict[str, Any]:
    """The Lagrangian's value and its gap to the exact allocation, when both ran (either may be the one kept)."""
    if decisions.allocation_check is None:
        return {}
    exact, check = decisions.allocation, decisions.allocation_check
    if exact.method != "exact":
        exact, check = check, exact
    if exact.total_value <= 0:
        return {}
    return {
        "lagrangian_value_usd": round(check.total_value, 2),
        "lagrangian_gap": (exact.total_value - check.total_value) / exact.total_value,
        "lagrangian_seconds": round(check.seconds, 3),
    }


def _capacity_summary(usage: Mapping[str, Mapping[str, float]]) -> dict[str, Any]:
    """Per kind of resource (hours, budget, volume): total limit and use; per team budget and volume: each."""
    kinds: dict[str, dict[str, float]] = {}
    each: dict[str, dict[str, float]] = {}
    for name, u in usage.items():
        kind = name.split(":", 1)[0]
        agg = kinds.setdefault(kind, {"limit": 0.0, "used": 0.0, "resources": 0})
        agg["limit"] += u["limit"]
        agg["used"] += u["used"]
        agg["resources"] += 1
        if kind != "hours":
            each[name] = {"limit": round(u["limit"], 2), "used": round(u["used"], 2)}
    return {"by_kind": {k: {kk: round(vv, 2) for kk, vv in v.items()} for k, v in kinds.items()}, "each": each}


# ---- evaluation -----------------------------------------------------------------------------------


def _segments(
    book: Book,
    playbook: Playbook,
    snapshot: pl.DataFrame,
    projection: EffectProjection,
    health: pl.DataFrame,
    when: datetime,
    seed: int,
    store: Store | None,
    notes: list[str],
    record: RunRecord,
) -> tuple[SegmentReport, dict[str, Any] | None] | None:
    """Behavioral segments of the active accounts, their response, and the moves since the previous run of the book.

    Segments describe what an account is like, so they use a year of behavior
    (:func:`~nextmove.segment.behavior_snapshot`), not the run's 90-day decision snapshot. With
    the segments, the previous run they are compared with (``run_id``, ``as_of``; None: there is
    none, :func:`_previous_segments`). The responses count only the actions the playbook's
    eligibility allows on the run's ``snapshot`` (:func:`~nextmove.measure.policy.eligible_actions`,
    as ``nextmove segment`` does): a retired action (``eligibility = "false"``) the model still
    projects is never a segment's best.
    """
    previous, compared = _previous_segments(store, record) or (None, None)
    try:
        report = segment_book(
            behavior_snapshot(book, when, playbook=playbook),
            projection=projection,
            playbook=playbook,
            outcomes=book.outcomes,
            touches=book.touches,
            accounts=book.accounts,
            health=health,
            previous=previous,
            eligible=eligible_actions(snapshot, playbook),
            as_of=when,
            seed=seed,
            labels=signal_labels(book, when, playbook=playbook),
            active=snapshot.select("account_id"),  # the accounts the run decides on, as it counts them active
        )
    except NextmoveError as exc:
        notes.append(f"no segments: {exc}")
        return None
    as_of = None if compared is None or compared.as_of is None else compared.as_of.isoformat()
    return report, None if compared is None else {"run_id": compared.run_id, "as_of": as_of}


PREVIOUS_RUNS_SEARCHED = 200
"""How many of the store's newest succeeded runs :func:`_previous_segments` looks through for the previous run."""


def _previous_segments(store: Store | None, record: RunRecord) -> tuple[pl.DataFrame, RunRecord] | None:
    """``account_id, segment_id`` of the previous run of this book, from its receipts, and that run.

    The previous run is the succeeded one of the same book (:func:`~nextmove.store.same_book`)
    and playbook (``playbook_hash``) with the latest decision time before this run's that kept
    segments (with segment ids in its receipts; else the next earlier):
    not the store's newest run, which may be a later run of a backtest (``--no-promote`` at an
    earlier ``--as-of``) or a run of another book in the same store. None when there is none
    among the store's :data:`PREVIOUS_RUNS_SEARCHED` newest succeeded runs.
    """
    when = record.as_of
    if store is None or when is None:
        return None
    earlier = [
        r
        for r in store.list_runs(PREVIOUS_RUNS_SEARCHED, status="succeeded")
        if r.run_id != record.run_id
        and same_book(r, record)
        and r.playbook_hash == record.playbook_hash
        and r.as_of is not None
        and r.as_of < when
        and (r.summary or {}).get("segments")
    ]
    # Latest decision time first (of runs at one as_of, the newest); one whose receipts lack segment ids gives way.
    for last in sorted(earlier, key=lambda r: r.as_of or when, reverse=True):
        # Each receipt's segment id alone (None where it has none), never the receipt whole.
        fields = {"account_id": ("account_id",), "segment_id": ("evidence", "account", "segment_id")}
        rows = [row for batch in store.recommendation_values(last.run_id, fields) for row in batch]
        frame = pl.DataFrame(rows, schema={"account_id": pl.String, "segment_id": pl.Int64}, orient="row")
        frame = frame.drop_nulls("segment_id")
        if frame.height:
            return frame, last
    return None


DEFAULT_RUNS_READ = 1000
"""How many of the store's newest succeeded runs :func:`_policy_values` reads the recorded lifecycle defaults of."""

RUN_DEFAULT_REMEDY = (
    "Write the default with each decision's stage as a policy table (account_id, decision_ts, action_id) and "
    "evaluate it with nextmove evaluate --policy FILE; a run saved in a store records each account's default, "
    "which the runs after it value the default by (docs/measure.md)"
)
"""What the run's note on a lifecycle default that is not known at the evaluated decisions says to do."""


def _recorded_defaults(store: Store | None, record: RunRecord) -> Callable[[datetime, datetime], pl.DataFrame] | None:
    """The lifecycle default the store's earlier runs of this book recorded for their accounts, for the times asked
    (as ``nextmove evaluate --store`` reads them: backtests' skipped); None without a store or such runs."""
    if store is None:
        return None
    runs = [
        r
        for r in store.list_runs(DEFAULT_RUNS_READ, status="succeeded")
        if r.run_id != record.run_id and r.as_of is not None and same_book(r, record)
    ]
    return partial(stored_defaults, store, runs) if runs else None


def _policy_values(
    model: EffectModel,
    training: pl.DataFrame | None,
    book: Book,
    playbook: Playbook,
    notes: list[str],
    seed: int,
    store: Store | None = None,
    record: RunRecord | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Off-policy value of the learned, lifecycle-default and do-nothing policies on the latest finished decisions,
    and the paired difference of the learned policy's over the default's (``learned - default``).

    The decisions are those of the latest decision time whose horizon is over. The effect model
    was fitted on them too, so the learned policy's estimate is in-sample (optimistic); the
    default's and do-nothing's are not affected. Decisions without a logged propensity get the
    effect model's cross-fitted estimate from the whole history
    (:meth:`~nextmove.models.effect.EffectModel.training_propensities`), or, when it has none for
    them, one from a cross-fitted model of these decisions alone (as ``nextmove evaluate`` does);
    a note says how many were estimated. The difference is taken row by row on the same decisions
    (:func:`~nextmove.measure.ope.policy_difference`), so its interval is the one to judge the
    learned policy against the default by; empty without a lifecycle default.

    The lifecycle default at a decision is the one the ``store``'s earlier runs of the book
    recorded then, where one did; else the one of the account's stage today, except at decisions
    of accounts that left after them, whose stage then is not known: as ``nextmove evaluate``
    does (:func:`~nextmove.measure.ope.default_values`), where those could move the default's value
    too far, the default and the difference have no estimate, and their note says why.
    """
    if training is None or training.height == 0:
        return [], []
    rows = evaluation_window(training, playbook)
    if rows.height == 0:
        notes.append("no off-policy evaluation: no logged decision has a finished horizon")
        return [], []
    try:
        rows, filled = _with_history_propensities(rows, model, training)
        # Not reading what the effect model leaves out (lifecycle_stage, leaking accounts columns).
        logging, estimated = logging_propensities(rows, playbook, random_state=seed, exclude=model.exclude)
        if filled:
            notes.append(
                f"off-policy evaluation: {filled:,} of {rows.height:,} evaluated decisions have no logged "
                "propensity, estimated by the effect model's cross-fitted model of the logged actions"
            )
        if estimated:
            notes.append(f"off-policy evaluation: {estimated}")
        q = model.expected_values(rows)
        keys = [c for c in ("account_id", "decision_ts") if c in q.columns]
        # The learned policy's choice: the best expected value over doing nothing (no draws needed).
        relative = q.join(
            q.filter(pl.col("action_id") == NO_ACTION).select(*keys, pl.col("expected_value_usd").alias("_none")),
            on=keys,
        ).select(*keys, "action_id", (pl.col("expected_value_usd") - pl.col("_none")).alias("value_usd"))
        # Both policies keep to what the playbook's eligibility allows (as `nextmove evaluate`'s do): a
        # stage default an account is not eligible for is doing nothing, as its control cohort gets.
        eligible = eligible_actions(rows, playbook)
        learned = learned_policy(relative, eligible=eligible)
        common: dict[str, Any] = {
            "propensity": logging.raw_propensity_,
            "clip": RUN_OPE_CLIP,
            "vocabulary": model.vocabulary,
        }
        policies = [("learned", learned), ("nothing", do_nothing_policy(rows))]
        unknown: pl.DataFrame | None = None
        if "lifecycle_stage" in rows.columns:
            recorded = _recorded_defaults(store, record) if record is not None else None
            default, unknown, source = lifecycle_default_at(
                rows, book, playbook, eligible=eligible, recorded_defaults=recorded
            )
            policies.append(("default", default))
            if recorded is not None:  # the store has runs of this book: whether their records served, and where
                notes.append(f"off-policy evaluation: {source}")
        out: list[dict[str, Any]] = []
        for name, policy in policies:
            estimate = partial(evaluate_policy, policy=policy, playbook=playbook, expected_values=q, name=name)
            if name == "default" and unknown is not None:
                values = default_values(rows, unknown, playbook, estimate, common, remedy=RUN_DEFAULT_REMEDY)
            else:
                values = estimate(rows, **common)
            out += [{"policy": name, **value.to_dict(), "in_sample": name == "learned"} for value in values]
        differences: list[dict[str, Any]] = []
        named = dict(policies)
        if "default" in named and unknown is not None:
            difference = partial(
                policy_difference,
                policy=learned,
                baseline=named["default"],
                playbook=playbook,
                expected_values=q,
                name="learned - default",
            )
            values = default_values(
                rows, unknown, playbook, difference, common, difference=True, remedy=RUN_DEFAULT_REMEDY
            )
            differences += [{**value.to_dict(), "in_sample": True} for value in values]
        return out, differences
    except NextmoveError as exc:
        notes.append(f"no off-policy evaluation: {exc}")
        return [], []


RUN_OPE_CLIP = (1e-3, 1.0)
"""The range the run's off-policy evaluation clips the logging propensities to (``evaluate_policy``'s default)."""


def evaluation_window(training: pl.DataFrame, playbook: Playbook) -> pl.DataFrame:
    """The decisions a run evaluates: the logged ones of the latest contact window whose horizon is over.

    Empty when no logged decision of ``training`` has a finished horizon.
    """
    done = training.filter(~pl.col("censored").fill_null(False) if "censored" in training.columns else pl.lit(True))
    done = done.filter(pl.col("logged").fill_null(True)) if "logged" in done.columns else done
    if done.height == 0:
        return done
    latest = done.get_column("decision_ts").max()
    horizon_start = latest - timedelta(days=playbook.contact_policy.window_days)  # type: ignore[operator]
    return done.filter(pl.col("decision_ts") > horizon_start)


def _with_history_propensities(
    rows: pl.DataFrame, model: EffectModel, training: pl.DataFrame
) -> tuple[pl.DataFrame, int]:
    """``rows`` (of ``training``) with each missing ``propensity`` filled from the effect model's
    estimates on the whole history, and how many were filled (0 when none was missing or the model
    has none for them)."""
    logged = rows.get_column("propensity").cast(pl.Float64) if "propensity" in rows.columns else None
    missing = rows.height if logged is None else int(logged.fill_nan(None).null_count())
    if missing == 0:
        return rows, 0
    fitted = model.training_propensities(training)
    if fitted is None:
        return rows, 0
    joined = rows.join(
        fitted.rename({"propensity": "_history"}), on=["account_id", "decision_ts"], how="left", maintain_order="left"
    )
    history = joined.get_column("_history").cast(pl.Float64).fill_null(np.nan).to_numpy()
    current = np.full(rows.height, np.nan) if logged is None else logged.fill_null(np.nan).to_numpy()
    needed = ~np.isfinite(current)
    if not np.isfinite(history[needed]).all():
        return rows, 0  # some have no estimate: all are estimated from the rows alone instead
    filled = pl.Series("propensity", np.where(needed, history, current), dtype=pl.Float64)
    return joined.drop("_history").with_columns(filled), missing


def _regret(decisions: Decisions, truth: pl.DataFrame, notes: list[str], currency: str) -> dict[str, Any] | None:
    """The regret against the lab's truth, with a note for each way the truth and the playbook differ."""
    regret = regret_against_truth(decisions, truth)
    if regret is None:
        notes.append(
            "no regret against the oracle: the truth (truth/values) has no value for any of these accounts' actions"
        )
        return None
    notes.extend(regret_notes(regret, currency))
    return regret


def _truth_matrix(decisions: Decisions, truth: pl.DataFrame) -> tuple[np.ndarray, np.ndarray] | None:
    """The lab's true values as an (accounts × candidates) array (NaN where the truth has no row)
    and which of them both its rules and the run's allow; ``None`` when the truth covers none of the decisions.

    On the lab's own playbook the two agree; a playbook that differs (an action retired with
    ``eligibility = "false"``, a limit of 0) binds the oracle as it binds the run.
    """
    needed = {"account_id", "action_id", "value_usd"}
    if not needed <= set(truth.columns):
        raise ConfigError(f"the truth needs the columns {', '.join(sorted(needed))}")
    ids = decisions.account_ids
    cands = decisions.candidates
    index = pl.DataFrame({"account_id": ids}, schema={"account_id": pl.String}).with_row_index("_i")
    action_of = {c.action_id for c in cands}
    table = (
        truth.lazy()
        .select(
            pl.col("account_id").cast(pl.String),
            pl.col("action_id").cast(pl.String),
            pl.col("value_usd").cast(pl.Float64),
            (pl.col("eligible").cast(pl.Boolean) if "eligible" in truth.columns else pl.lit(True)).alias("eligible"),
        )
        .filter(pl.col("action_id").is_in(list(action_of)))
        .join(index.lazy(), on="account_id", how="inner")
        .collect()
    )
    if table.height == 0:
        return None
    n, k = len(ids), len(cands)
    col_of: dict[str, list[int]] = {}
    for j, c in enumerate(cands):
        col_of.setdefault(c.action_id, []).append(j)
    true_v = np.full((n, k), np.nan)
    true_ok = np.zeros((n, k), dtype=bool)
    rows = table.get_column("_i").to_numpy().astype(np.int64)
    acts = table.get_column("action_id").to_list()
    vals = table.get_column("value_usd").to_numpy()
    elig = table.get_column("eligible").to_numpy()
    for action, cols in col_of.items():
        hit = np.array([a == action for a in acts], dtype=bool)
        for j in cols:
            true_v[rows[hit], j] = vals[hit]
            true_ok[rows[hit], j] = elig[hit]
    return true_v, true_ok & np.isfinite(true_v) & decisions.rules.allowed


def oracle_choice(decisions: Decisions, truth: pl.DataFrame) -> np.ndarray:
    """The constrained oracle's pick for each account of ``decisions``: the index of its candidate
    in ``decisions.candidates``, or -1 for nothing. It allocates the lab's true values
    (``account_id, action_id, value_usd``, optionally ``eligible``) under the same capacities
    (``decisions.resources``) and the same rules (the truth's eligibility and the run's). A yardstick for
    benchmarks: what a policy that knew the truth would do in the same place.

    Raises
    ------
    ConfigError
        If the truth lacks a needed column.
    """
    matrix = _truth_matrix(decisions, truth)
    if matrix is None:
        return np.full(len(decisions.account_ids), -1, dtype=np.int64)
    choice: np.ndarray = _oracle_allocation(*matrix, decisions.resources).choice
    return choice


def _oracle_allocation(true_v: np.ndarray, allowed: np.ndarray, resources: list[Resource]) -> Allocation:
    """The true values allocated under the capacities (a candidate without truth is worth −1)."""
    return allocate(np.nan_to_num(true_v, nan=-1.0), allowed, resources, method="auto")


def regret_against_truth(decisions: Decisions, truth: pl.DataFrame) -> dict[str, Any] | None:
    """Regret against the oracle, from the lab's true values (``account_id, action_id, eligible, value_usd``).

    The *constrained* oracle allocates the true values under the same capacities and the same
    rules (the truth's eligibility and the run's); the lifecycle default takes each account's stage default
    where allowed, in a stable order while capacity lasts. Regret is the oracle's value minus the
    policy's, as a share of the oracle's gain over the default. Variants share their action's truth.
    The ``unconstrained_*`` figures drop the capacities: each account's best allowed projection
    against the best true value and the default where allowed.

    A policy that picks, for an account the truth covers, an action the truth has no value for
    (one the playbook added after the lab was simulated) has no value and no regret (None):
    counting such a pick as $0 would make up a figure. ``picks_without_truth`` says, per policy
    (``model``, ``deployed``, ``unconstrained_model``), how many accounts got each such action;
    ``actions_without_truth`` lists the playbook's actions the truth never values (the oracle
    cannot pick them) and ``truth_actions_outside_playbook`` the truth's actions the playbook
    lacks (left out: the oracle chooses among the playbook's actions).
    """
    matrix = _truth_matrix(decisions, truth)
    if matrix is None:
        return None
    true_v, allowed = matrix
    n = len(decisions.account_ids)
    cands = decisions.candidates
    covered = np.isfinite(true_v).any(axis=1)

    def unknown(choice: np.ndarray) -> dict[str, int]:
        """Per action, the covered accounts whose pick the truth has no value for."""
        r = np.flatnonzero((choice >= 0) & covered)
        missing = choice[r[~np.isfinite(true_v[r, choice[r]])]]
        out: dict[str, int] = {}
        for j in missing:
            out[cands[j].action_id] = out.get(cands[j].action_id, 0) + 1
        return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))

    def value_of(choice: np.ndarray) -> float:
        picked = (choice >= 0) & covered
        r = np.flatnonzero(picked)
        return float(np.nansum(true_v[r, choice[r]]))

    oracle = _oracle_allocation(true_v, allowed, decisions.resources)
    oracle_free = np.where(allowed & (true_v > 0), true_v, 0.0).max(axis=1).sum()
    default = _default_under_capacity(decisions, allowed)
    default_value = value_of(default)
    gain = oracle.total_value - default_value

    # Without capacities: every account's best allowed projection (nothing unless positive).
    projected = np.where(decisions.rules.allowed & np.isfinite(decisions.values), decisions.values, -np.inf)
    free_pick = np.where(projected.max(axis=1) > 0, projected.argmax(axis=1), -1)
    idx = decisions.default_choice
    free_default = np.where((idx >= 0) & allowed[np.arange(n), np.maximum(idx, 0)], idx, -1)
    free_gain = float(oracle_free) - value_of(free_default)

    unknowns = {
        "model": unknown(decisions.model_choice),
        "deployed": unknown(decisions.choice),
        "unconstrained_model": unknown(free_pick),
    }

    def measured(name: str, choice: np.ndarray, best: float, base: float) -> tuple[float | None, float | None]:
        """The policy's true value and its regret share; both None when it picks what the truth does not know."""
        if unknowns[name]:
            return None, None
        v = value_of(choice)
        return round(v, 2), (None if base <= 0 else (best - v) / base)

    model_value, model_share = measured("model", decisions.model_choice, oracle.total_value, gain)
    deployed_value, deployed_share = measured("deployed", decisions.choice, oracle.total_value, gain)
    free_value, free_share = measured("unconstrained_model", free_pick, float(oracle_free), free_gain)
    known = {c.action_id for c in cands}
    valued = {cands[j].action_id for j in np.flatnonzero(np.isfinite(true_v).any(axis=0))}
    truth_actions = set(truth.get_column("action_id").cast(pl.String).drop_nulls().unique().to_list())

    return {
        "accounts_with_truth": int(covered.sum()),
        "oracle_value_usd": round(oracle.total_value, 2),
        "oracle_method": oracle.method,
        "oracle_unconstrained_value_usd": round(float(oracle_free), 2),
        "default_value_usd": round(default_value, 2),
        "model_value_usd": model_value,
        "deployed_value_usd": deployed_value,
        "model_regret_share": model_share,
        "deployed_regret_share": deployed_share,
        "unconstrained_model_value_usd": free_value,
        "unconstrained_default_value_usd": round(value_of(free_default), 2),
        "unconstrained_model_regret_share": free_share,
        "picks_without_truth": {name: picks for name, picks in unknowns.items() if picks},
        "actions_without_truth": sorted(known - valued),
        "truth_actions_outside_playbook": sorted(truth_actions - known - {NO_ACTION}),
        "note": "model: the learned allocation for every account; deployed: with the control cohort and exploration",
    }


_POLICIES = (
    ("model", "the learned policy", "by the learned policy"),
    ("deployed", "as deployed", "as deployed"),
    ("unconstrained_model", "without capacities", "without capacities"),
)
"""The policies the regret measures: key, name, and how a count of their picks is said."""


def regret_notes(regret: Mapping[str, Any], currency: str = DEFAULT_CURRENCY) -> list[str]:
    """What a run says when the lab's truth and the playbook differ (from :func:`regret_against_truth`).

    ``currency`` is the playbook's (a pick the truth has no value for is not counted as 0 of it).

    Examples
    --------
    >>> notes = regret_notes({
    ...     "picks_without_truth": {"model": {"tip_email": 101}, "deployed": {"tip_email": 98, "call": 1}},
    ...     "actions_without_truth": ["tip_email", "call", "demo"], "truth_actions_outside_playbook": ["qbr"],
    ... })
    >>> for note in notes:  # doctest: +NORMALIZE_WHITESPACE
    ...     print(note)
    no regret against the oracle for the learned policy, nor as deployed: the truth (truth/values) has no
    value for tip_email, given to 101 accounts by the learned policy, 98 as deployed; call, given to 1
    account as deployed; counting those picks as $0 would not be a regret (the truth values only the
    actions the lab simulated)
    the oracle knows only the truth's actions: the truth has no value for demo of the playbook, so the
    oracle never picks it
    the truth (truth/values) values actions the playbook does not have (qbr): the oracle chooses among
    the playbook's actions only
    """
    out: list[str] = []
    picks: Mapping[str, Mapping[str, int]] = regret.get("picks_without_truth") or {}
    given: dict[str, list[str]] = {}
    for key, _, by in _POLICIES:
        for action, count in (picks.get(key) or {}).items():
            counts = given.setdefault(action, [])
            unit = "" if counts else (" account" if count == 1 else " accounts")
            counts.append(f"{count:,}{unit} {by}")
    if given:
        which = ", nor ".join(name for key, name, _ in _POLICIES if picks.get(key))
        actions = "; ".join(f"{action}, given to {', '.join(counts)}" for action, counts in given.items())
        out.append(
            f"no regret against the oracle for {which}: the truth (truth/values) has no value for {actions}; "
            f"counting those picks as {money_text(0.0, currency)} would not be a regret (the truth values only the "
            "actions the lab simulated)"
        )
    if unpicked := [a for a in regret.get("actions_without_truth") or [] if a not in given]:
        out.append(
            f"the oracle knows only the truth's actions: the truth has no value for {', '.join(unpicked)} of the "
            f"playbook, so the oracle never picks {'it' if len(unpicked) == 1 else 'them'}"
        )
    if outside := list(regret.get("truth_actions_outside_playbook") or []):
        out.append(
            f"the truth (truth/values) values actions the playbook does not have ({', '.join(outside)}): "
            "the oracle chooses among the playbook's actions only"
        )
    return out


def _default_under_capacity(decisions: Decisions, allowed: np.ndarray) -> np.ndarray:
    """Every account's lifecycle default where allowed, placed in a stable order while capacity lasts."""
    n = decisions.n
    idx = decisions.default_choice
    ok = (idx >= 0) & allowed[np.arange(n), np.maximum(idx, 0)]
    choice = np.where(ok, idx, -1)
    if not decisions.resources:
        return choice
    # A feasible default: the same prefix rule the control cohort follows, over the whole book.
    state = CapacityLedger(decisions.resources, n, len(decisions.candidates))
    rows = np.flatnonzero(choice >= 0)
    placed = state.accept_prefix(rows, choice[rows])
    out = np.full(n, -1)
    out[rows[placed]] = choice[rows[placed]]
    return out
