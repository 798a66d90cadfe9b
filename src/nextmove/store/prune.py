"""Pruning a store: the bulky receipts of old runs dropped, what lift, holds and reports read kept.

Every run keeps, per account, a receipt (``evidence``) and its runner-ups (``alternatives``): most of
what a store holds, and read again only while the run is served. Pruning an old run slims each of its
recommendations to what is read after that (:data:`DROPPED_EVIDENCE`, :data:`KEPT_RUNNER_UP`) and
deletes the effect model it fitted unless that is active; the rows themselves stay, so that ``nextmove
lift`` measures the run, feedback that names it finds its actions, and the next run reads its segments.
A pruned run is marked, in its summary and in every receipt, and is never served again.

The effect models of runs that failed (or were interrupted) are deleted too: such a run is never
served and nothing reads its model, which it saved, inactive, before it failed (2.8 MB each on a
2,000-account book). A failed run's summary does not name its model, so a model is taken for one
when no run names it, it is not active, and only failed runs of its ``as_of`` and playbook were
going when it was saved (:func:`_failed_runs_models`).

Which runs must not be pruned (the one served, the one a rollback goes back to) is the engine's to
say: :func:`plan_prune` takes them, and :func:`apply_prune` checks, under the store's write lock,
that the policy versions are still those the plan was made with.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from nextmove.errors import ConfigError, StoreError
from nextmove.store import schema
from nextmove.store.base import Store
from nextmove.store.records import POLICY_MODEL_KIND, RunRecord, utcnow
from nextmove.store.sql import SqlStore, _to_json

PRUNED_KEY: Final[str] = "pruned"
"""The key that marks a pruned run's summary and each of its receipts."""

DROPPED_EVIDENCE: Final[tuple[str, ...]] = ("signals", "comparables")
"""The receipt's fields a prune removes: the signals that drove the outlook and the comparable accounts."""

KEPT_RUNNER_UP: Final[tuple[str, ...]] = ("action_id", "variant", "value_usd", "why", "reason")
"""What a prune keeps of a receipt's runner-ups: these fields of the best one (the report's "why left alone")."""

EFFECT_MODEL_KIND: Final[str] = "effect"
"""The kind of the model a run fits (the engine's ``EFFECT_MODEL_KIND``)."""


_PAGE_ROWS: Final[int] = 2000
"""Recommendations read and rewritten at a time: bounds memory on a book of any size."""


@dataclass(frozen=True)
class RunToPrune:
    """A run a prune slims: its recommendations' receipts, and the effect model it fitted if not active."""

    run_id: str
    created_at: datetime
    as_of: datetime | None
    recommendations: int
    """How many recommendations it has (each keeps its row)."""
    receipt_bytes: int
    """Bytes of their ``evidence`` and ``alternatives`` as stored now (JSON text)."""
    model_id: str | None
    """The effect model it fitted, deleted with the prune (None: none, or active, or gone)."""
    model_bytes: int


@dataclass(frozen=True)
class FailedRunModel:
    """The effect model a run saved before it failed: never served, read by nothing, deleted by a prune."""

    model_id: str
    run_id: str
    """The failed run it was saved during."""
    created_at: datetime
    model_bytes: int


@dataclass(frozen=True)
class PrunePlan:
    """What :func:`apply_prune` will do, and what it leaves and why."""

    runs: tuple[RunToPrune, ...]
    """The runs to prune, oldest first."""
    kept: tuple[tuple[str, str], ...]
    """(run id, why it is kept) of the succeeded runs left whole, newest first."""
    already: tuple[str, ...]
    """Runs pruned before (left as they are), oldest first."""
    policy_versions: tuple[str, ...]
    """Every policy version when the plan was made (sorted): a promotion since makes the plan stale."""
    active_policy: str | None
    """The active policy version when the plan was made: a rollback or activation since makes it stale."""
    failed_models: tuple[FailedRunModel, ...] = ()
    """The effect models of failed runs to delete, oldest first."""

    @property
    def empty(self) -> bool:
        """Whether there is nothing to prune: no run to slim, no model of a failed run to delete."""
        return not self.runs and not self.failed_models

    @property
    def receipt_bytes(self) -> int:
        """Bytes of the receipts of the runs to prune, as stored now."""
        return sum(r.receipt_bytes for r in self.runs)

    @property
    def model_bytes(self) -> int:
        """Bytes of the effect models to delete (the pruned runs' and the failed runs')."""
        return sum(r.model_bytes for r in self.runs) + sum(m.model_bytes for m in self.failed_models)


@dataclass(frozen=True)
class PruneResult:
    """What :func:`apply_prune` did."""

    runs: tuple[str, ...]
    recommendations: int
    """Recommendations slimmed."""
    receipt_bytes_freed: int
    """Bytes of JSON the receipts lost."""
    models_deleted: tuple[str, ...]
    """The effect models deleted: the pruned runs' and the failed runs'."""
    model_bytes_freed: int
    failed_models_deleted: tuple[str, ...] = ()
    """Of ``models_deleted``, those of failed runs."""


def pruned_note(run: RunRecord) -> str | None:
    """What was pruned of ``run`` and when (the sentence its summary's notes carry), or None if it was not pruned.

    Examples
    --------
    >>> run = RunRecord(run_id="r1", book_source="b", playbook_hash="h", summary={"pruned": {"note": "gone"}})
    >>> pruned_note(run), pruned_note(RunRecord(run_id="r2", book_source="b", playbook_hash="h"))
    ('gone', None)
    """
    marker = (run.summary or {}).get(PRUNED_KEY)
    if not isinstance(marker, Mapping):
        return None
    note = marker.get("note")
    return str(note) if note else f"run {run.run_id}'s receipts were pruned (`nextmove store prune`)"


def refuse_pruned(run: RunRecord) -> None:
    """Refuse to serve a pruned run: its receipts no longer have what online decisions give (runner-ups, signals).

    Raises
    ------
    ConfigError
        If ``run`` was pruned.
    """
    marker = (run.summary or {}).get(PRUNED_KEY)
    if isinstance(marker, Mapping):
        when = str(marker.get("at", ""))[:10] or "an earlier day"
        raise ConfigError(
            f"run {run.run_id} cannot be served again: its receipts were pruned on {when} (`nextmove store prune`), "
            "and online decisions give their signals and runner-ups; promote a later run (`nextmove models list`), "
            "or make a new one with `nextmove run`"
        )


def plan_prune(
    store: Store,
    *,
    protected: Mapping[str, str],
    keep_runs: int | None = None,
    older_than_days: int | None = None,
    now: datetime | None = None,
    ended: Collection[str] = (),
) -> PrunePlan:
    """The runs a prune slims: the succeeded runs past the ``keep_runs`` newest and older than ``older_than_days``.

    And the effect models of failed runs (made more than ``older_than_days`` ago, when given), which
    it deletes: ``keep_runs`` counts succeeded runs only.

    Parameters
    ----------
    store : Store
        A SQL store (:func:`~nextmove.store.open_store`).
    protected : mapping of str to str
        Runs never pruned, each with why (the run served, the one a rollback goes back to).
    keep_runs : int, optional
        Keep the newest this many succeeded runs (by when they were made) whole.
    older_than_days : int, optional
        Prune only runs made more than this many days before ``now``.
    now : datetime, optional
        Default: the current time.
    ended : collection of str, optional
        Runs recorded as ``running`` whose process is known to have ended (killed outright): their
        effect models count as failed runs' (the engine's to tell, as ``protected``).

    Raises
    ------
    ConfigError
        If neither ``keep_runs`` nor ``older_than_days`` is given, or either is negative.
    """
    if keep_runs is None and older_than_days is None:
        raise ConfigError("say which runs to prune: --keep-runs N (keep the N newest) and/or --older-than DAYS")
    for name, value in (("--keep-runs", keep_runs), ("--older-than", older_than_days)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ConfigError(f"{name} must be a whole number of 0 or more; got {value!r}")
    sql = _sql_store(store)
    moment = now or utcnow()
    runs, rt = schema.runs, schema.recommendations
    with sql._errors("plan a prune"), sql._read() as conn:
        succeeded = [
            RunRecord(**row)
            for row in conn.execute(
                sa.select(runs)
                .where(runs.c.status == "succeeded")
                .order_by(runs.c.created_at.desc(), runs.c.run_id.desc())
            ).mappings()
        ]
        policy_versions, active_policy = _policy_state(conn)
        cutoff = None if older_than_days is None else moment - timedelta(days=older_than_days)
        kept: list[tuple[str, str]] = []
        already: list[str] = []
        chosen: list[RunRecord] = []
        for position, run in enumerate(succeeded):
            if pruned_note(run) is not None:
                already.append(run.run_id)
            elif run.run_id in protected:
                kept.append((run.run_id, protected[run.run_id]))
            elif keep_runs is not None and position < keep_runs:
                newest = "the newest run" if keep_runs == 1 else f"one of the {keep_runs} newest runs"
                kept.append((run.run_id, f"{newest}, --keep-runs {keep_runs}"))
            elif cutoff is not None and run.created_at > cutoff:
                kept.append((run.run_id, f"made less than {older_than_days} days ago, --older-than {older_than_days}"))
            else:
                chosen.append(run)
        text = sa.Text()
        sizes = {
            row.run_id: (int(row.n), int(row.size or 0))
            for row in conn.execute(
                sa.select(
                    rt.c.run_id,
                    sa.func.count().label("n"),
                    sa.func.sum(
                        sa.func.length(sa.cast(rt.c.evidence, text)) + sa.func.length(sa.cast(rt.c.alternatives, text))
                    ).label("size"),
                )
                .where(rt.c.run_id.in_([r.run_id for r in chosen]))
                .group_by(rt.c.run_id)
            )
        }
        needed = _needed_models(conn, {r.run_id for r in chosen})
        out = []
        for run in reversed(chosen):  # oldest first
            model_id, model_bytes = _run_model(conn, run, needed)
            n, size = sizes.get(run.run_id, (0, 0))
            out.append(RunToPrune(run.run_id, run.created_at, run.as_of, n, size, model_id, model_bytes))
        failed = tuple(m for m in _failed_runs_models(conn, ended) if cutoff is None or m.created_at <= cutoff)
    return PrunePlan(tuple(out), tuple(kept), tuple(reversed(already)), policy_versions, active_policy, failed)


def apply_prune(store: Store, plan: PrunePlan, *, now: datetime | None = None) -> PruneResult:
    """Prune the runs of ``plan``, in one transaction under the store's write lock.

    Each recommendation keeps its row, its figures and its receipt but for the fields of
    :data:`DROPPED_EVIDENCE` and the runner-ups past the best one (whose :data:`KEPT_RUNNER_UP`
    fields stay), and is marked ``"pruned"``; the run's summary says what was removed and when (in
    its ``pruned`` entry and its notes); its effect model is deleted unless it has become active. The
    effect models of failed runs in the plan are deleted if they are still such (not made active,
    nor named by a run, meanwhile).

    Raises
    ------
    StoreError
        If the policy versions changed since the plan was made (a run was promoted, rolled back
        to or activated meanwhile): nothing is pruned then; plan again.
    """
    sql = _sql_store(store)
    moment = now or utcnow()
    stamp = {"at": moment.isoformat(), "by": "nextmove store prune"}
    rt, mv = schema.recommendations, schema.model_versions
    update = (
        sa.update(rt)
        .where(rt.c.run_id == sa.bindparam("b_run_id"), rt.c.account_id == sa.bindparam("b_account_id"))
        .values(evidence=sa.bindparam("b_evidence"), alternatives=sa.bindparam("b_alternatives"))
    )
    slimmed = 0
    freed = 0
    deleted: list[str] = []
    model_freed = 0
    with sql._errors("prune old runs"), sql._write() as conn:
        if conn.dialect.name == "postgresql":
            # Promotions, rollbacks and activations wait until the prune is committed, so that
            # none serves a run while it is being pruned.
            conn.exec_driver_sql("LOCK TABLE model_versions IN SHARE ROW EXCLUSIVE MODE")
        if _policy_state(conn) != (plan.policy_versions, plan.active_policy):
            raise StoreError(
                f"the runs served in the store at {sql.url} changed while the prune was planned (a run was "
                "promoted, rolled back to or activated): nothing was pruned; run `nextmove store prune` again"
            )
        needed = _needed_models(conn, {r.run_id for r in plan.runs})
        for item in plan.runs:
            run = _locked_run(conn, item.run_id)
            if run is None or run.status != "succeeded" or pruned_note(run) is not None:
                continue
            after = ""
            while True:
                rows = conn.execute(
                    sa.select(rt.c.account_id, rt.c.evidence, rt.c.alternatives)
                    .where(rt.c.run_id == item.run_id, rt.c.account_id > after)
                    .order_by(rt.c.account_id)
                    .limit(_PAGE_ROWS)
                ).all()
                if not rows:
                    break
                params = []
                for account_id, evidence, alternatives in rows:
                    slim_evidence, slim_alternatives = slim_receipt(evidence, alternatives, stamp)
                    freed += _json_size(evidence) + _json_size(alternatives)
                    freed -= _json_size(slim_evidence) + _json_size(slim_alternatives)
                    params.append(
                        {
                            "b_run_id": item.run_id,
                            "b_account_id": account_id,
                            "b_evidence": slim_evidence,
                            "b_alternatives": slim_alternatives,
                        }
                    )
                conn.execute(update, params)
                slimmed += len(rows)
                after = rows[-1][0]
            model_id, size = _run_model(conn, run, needed)
            if model_id is not None:
                conn.execute(sa.delete(mv).where(mv.c.model_id == model_id, mv.c.kind == EFFECT_MODEL_KIND))
                deleted.append(model_id)
                model_freed += size
            conn.execute(
                sa.update(schema.runs)
                .where(schema.runs.c.run_id == run.run_id)
                .values(summary=_pruned_summary(run, moment, model_id))
            )
        still = _still_unused(conn, [m.model_id for m in plan.failed_models])
        orphans = [m for m in plan.failed_models if m.model_id in still]
        for model in orphans:
            conn.execute(sa.delete(mv).where(mv.c.model_id == model.model_id, mv.c.kind == EFFECT_MODEL_KIND))
            deleted.append(model.model_id)
            model_freed += model.model_bytes
    return PruneResult(
        tuple(r.run_id for r in plan.runs),
        slimmed,
        max(freed, 0),
        tuple(deleted),
        model_freed,
        tuple(m.model_id for m in orphans),
    )


def slim_receipt(
    evidence: Mapping[str, Any], alternatives: Sequence[Any], stamp: Mapping[str, Any]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A receipt as a prune leaves it: without :data:`DROPPED_EVIDENCE`, the best runner-up's :data:`KEPT_RUNNER_UP`.

    Examples
    --------
    >>> evidence = {"action_id": "call", "projected": [], "signals": [{"text": "usage down"}], "comparables": []}
    >>> runner_ups = [{"action_id": "email", "why": "capacity", "value_usd": 3.0, "projected": []}, {"action_id": "x"}]
    >>> slim, kept = slim_receipt(evidence, runner_ups, {"at": "2026-01-05"})
    >>> slim
    {'action_id': 'call', 'projected': [], 'pruned': {'at': '2026-01-05'}}
    >>> kept
    [{'action_id': 'email', 'why': 'capacity', 'value_usd': 3.0}]
    """
    base = dict(evidence) if isinstance(evidence, Mapping) else {}
    slim = {k: v for k, v in base.items() if k not in DROPPED_EVIDENCE}
    slim[PRUNED_KEY] = dict(stamp)
    best = alternatives[0] if isinstance(alternatives, Sequence) and alternatives else None
    kept = [{k: v for k, v in best.items() if k in KEPT_RUNNER_UP}] if isinstance(best, Mapping) else []
    return slim, kept


def vacuum(store: Store) -> tuple[int, int] | None:
    """Give a SQLite file's freed pages back to the system (``VACUUM``): its size (bytes) before and after.

    None for PostgreSQL (and in-memory SQLite): there the freed space is reused by later rows, and
    ``VACUUM FULL`` (which locks the tables while it runs) is the database administrator's to run.
    """
    sql = _sql_store(store)
    engine = sql._engine
    if engine.dialect.name != "sqlite" or sql._in_memory:
        return None
    with sql._errors("VACUUM the SQLite file"), sql._write_lock:
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            before = _sqlite_bytes(cursor)
            cursor.execute("VACUUM")
            # The rewrite went through the write-ahead log: copy it in and empty it.
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            after = _sqlite_bytes(cursor)
            cursor.close()
        finally:
            raw.close()
    return before, after


def sqlite_free_bytes(store: Store) -> int | None:
    """Bytes of a SQLite store's free pages (what ``VACUUM`` gives back); None for PostgreSQL, in-memory SQLite."""
    sql = _sql_store(store)
    if sql._engine.dialect.name != "sqlite" or sql._in_memory:
        return None
    with sql._errors("read the SQLite file's free pages"), sql._read() as conn:
        cursor: Any = conn.connection.cursor()
        try:
            cursor.execute("PRAGMA freelist_count")
            free = int(cursor.fetchone()[0])
            cursor.execute("PRAGMA page_size")
            return free * int(cursor.fetchone()[0])
        finally:
            cursor.close()


def _sqlite_bytes(cursor: Any) -> int:
    cursor.execute("PRAGMA page_count")
    pages = int(cursor.fetchone()[0])
    cursor.execute("PRAGMA page_size")
    return pages * int(cursor.fetchone()[0])


def _sql_store(store: Store) -> SqlStore:
    if not isinstance(store, SqlStore):
        raise StoreError(f"only a SQL store (SQLite or PostgreSQL) can be pruned; got {type(store).__name__}")
    return store


def _policy_state(conn: Connection) -> tuple[tuple[str, ...], str | None]:
    mv = schema.model_versions
    rows = conn.execute(sa.select(mv.c.model_id, mv.c.active).where(mv.c.kind == POLICY_MODEL_KIND)).all()
    active = next((model_id for model_id, on in rows if on), None)
    return tuple(sorted(model_id for model_id, _ in rows)), active


def _needed_models(conn: Connection, pruned: Collection[str]) -> set[str]:
    """The effect models a prune of the runs ``pruned`` keeps: the active one, and those a run left whole names."""
    mv, runs = schema.model_versions, schema.runs
    needed = set(conn.execute(sa.select(mv.c.model_id).where(mv.c.kind == EFFECT_MODEL_KIND, mv.c.active)).scalars())
    for run_id, summary in conn.execute(sa.select(runs.c.run_id, runs.c.summary)):
        if run_id not in pruned and isinstance(summary, Mapping) and isinstance(summary.get("model_version"), str):
            needed.add(summary["model_version"])
    return needed


def _failed_runs_models(conn: Connection, ended: Collection[str] = ()) -> list[FailedRunModel]:
    """The effect models failed runs saved, oldest first: inactive, named by no run, made by a failed run alone.

    A run saves its effect model, inactive and trained to its ``as_of``, before it saves itself; one
    that fails then is recorded with its error alone, its model named nowhere. A model no run names
    and not active could only be made by a run of the same ``as_of`` and playbook that was going
    when it was saved and did not succeed (a succeeded run names its own). It is a failed run's when
    every such run failed, or is ``running`` but its process is known to have ended (``ended``: a
    run killed outright); a run still going may be saving it, so it is left alone then.
    """
    runs, mv = schema.runs, schema.model_versions
    named: set[str] = set()
    makers: list[tuple[datetime | None, str, datetime, datetime | None, str, bool]] = []
    for run_id, status, as_of, playbook_hash, created_at, finished_at, summary in conn.execute(
        sa.select(
            runs.c.run_id,
            runs.c.status,
            runs.c.as_of,
            runs.c.playbook_hash,
            runs.c.created_at,
            runs.c.finished_at,
            runs.c.summary,
        ).order_by(runs.c.created_at, runs.c.run_id)
    ):
        if isinstance(summary, Mapping) and isinstance(summary.get("model_version"), str):
            named.add(summary["model_version"])
        if status != "succeeded":
            failed = status == "failed" or run_id in ended
            makers.append(
                (as_of, playbook_hash, created_at, finished_at if status == "failed" else None, run_id, failed)
            )
    out: list[FailedRunModel] = []
    for model_id, trained_to, playbook_hash, created_at, size in conn.execute(
        sa.select(mv.c.model_id, mv.c.trained_to, mv.c.playbook_hash, mv.c.created_at, sa.func.length(mv.c.blob))
        .where(mv.c.kind == EFFECT_MODEL_KIND, sa.not_(mv.c.active))
        .order_by(mv.c.created_at, mv.c.model_id)
    ):
        if model_id in named or trained_to is None:
            continue
        owners = [
            (run_id, failed)
            for as_of, hash_, start, end, run_id, failed in makers
            if as_of == trained_to
            and hash_ == playbook_hash
            and start <= created_at
            and (end is None or created_at <= end)
        ]
        if owners and all(failed for _, failed in owners):
            out.append(FailedRunModel(model_id, owners[-1][0], created_at, int(size or 0)))
    return out


def _still_unused(conn: Connection, model_ids: Collection[str]) -> set[str]:
    """Of ``model_ids``, the effect models still inactive and named by no run (none was activated or served since)."""
    runs, mv = schema.runs, schema.model_versions
    named = {
        s["model_version"]
        for s in conn.execute(sa.select(runs.c.summary)).scalars()
        if isinstance(s, Mapping) and isinstance(s.get("model_version"), str)
    }
    inactive = conn.execute(
        sa.select(mv.c.model_id).where(
            mv.c.kind == EFFECT_MODEL_KIND, sa.not_(mv.c.active), mv.c.model_id.in_(list(model_ids))
        )
    ).scalars()
    return {m for m in inactive if m not in named}


def _run_model(conn: Connection, run: RunRecord, needed: set[str]) -> tuple[str | None, int]:
    """The effect model ``run`` fitted and its size, if the store has it and it is not in ``needed``; else (None, 0)."""
    model_id = (run.summary or {}).get("model_version")
    # A run made with reuse_model names the model of the run that fitted it: that run owns it.
    if not isinstance(model_id, str) or model_id in needed or (run.params or {}).get("reuse_model"):
        return None, 0
    mv = schema.model_versions
    size = conn.execute(
        sa.select(sa.func.length(mv.c.blob)).where(mv.c.model_id == model_id, mv.c.kind == EFFECT_MODEL_KIND)
    ).scalar_one_or_none()
    return (None, 0) if size is None else (model_id, int(size))


def _locked_run(conn: Connection, run_id: str) -> RunRecord | None:
    runs = schema.runs
    row = conn.execute(sa.select(runs).where(runs.c.run_id == run_id).with_for_update()).mappings().one_or_none()
    return None if row is None else RunRecord(**row)


def _pruned_summary(run: RunRecord, moment: datetime, model_id: str | None) -> dict[str, Any]:
    removed = "their signals, comparable accounts and runner-ups past the best one"
    if model_id is not None:
        removed += f", and the effect model the run fitted ({model_id})"
    note = (
        f"The receipts of this run were pruned on {moment:%Y-%m-%d} (`nextmove store prune`): {removed} are gone. "
        "Its actions, arms, values, projected effects, account facts and one-line summaries are as the run made "
        "them, so `nextmove lift` still measures it; it cannot be served again."
    )
    summary = dict(run.summary or {})
    summary[PRUNED_KEY] = {
        "at": moment.isoformat(),
        "by": "nextmove store prune",
        "removed_evidence": list(DROPPED_EVIDENCE),
        "kept_runner_up": list(KEPT_RUNNER_UP),
        "model_deleted": model_id,
        "note": note,
    }
    summary["notes"] = [note, *(summary.get("notes") or [])]  # first: the report shows it before the run's own
    return summary


def _json_size(value: Any) -> int:
    return len(_to_json(value).encode())
