"""The Store interface: what the engine, the API and the dashboard may ask of any store."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

from nextmove.errors import ConflictError
from nextmove.store.records import (
    ActivityRecord,
    ApiKeyRecord,
    AuditEntry,
    DecisionPlay,
    DecisionRecord,
    FeedbackEvent,
    HoldEvent,
    ModelVersionRecord,
    RecommendationRecord,
    RunRecord,
    RunStatus,
)


class ModelsChangedError(ConflictError):
    """The active model of a kind was not the one :meth:`Store.activate_models` expected: nothing was changed."""


@runtime_checkable
class Store(Protocol):
    """Where nextmove keeps runs, recommendations, feedback events and model versions.

    Get one with :func:`nextmove.store.open_store`; use it as a context manager or call
    :meth:`close`. Every method raises :class:`~nextmove.errors.StoreError` when the
    database cannot be reached or refuses a write, and a write that fails leaves nothing
    behind.
    """

    @property
    def url(self) -> str:
        """The store's URL, with the password hidden."""
        ...

    # --- runs ---------------------------------------------------------------------------

    def start_run(self, run: RunRecord) -> None:
        """Record that a run has started.

        Parameters
        ----------
        run : RunRecord
            The run, usually with status ``running``.

        Raises
        ------
        StoreError
            If a run with this ``run_id`` already exists.
        """
        ...

    def finish_run(
        self,
        run_id: str,
        status: RunStatus,
        summary: dict[str, Any] | None = None,
    ) -> None:
        """Mark a run finished now, with its final status and (if given) its summary.

        Parameters
        ----------
        run_id : str
            The run to finish.
        status : {"succeeded", "failed", "running"}
            Its final status.
        summary : dict, optional
            Replaces the run's summary; None keeps the stored one.

        Raises
        ------
        NotFoundError
            If there is no such run.
        """
        ...

    def save_run(self, run: RunRecord, recommendations: Iterable[RecommendationRecord]) -> None:
        """Write a run and all its recommendations in one transaction.

        Either everything lands or nothing does. A run recorded earlier with
        :meth:`start_run` (still ``running``) is updated to ``run``.

        Parameters
        ----------
        run : RunRecord
            The run row.
        recommendations : iterable of RecommendationRecord
            Its recommendations, one per account; each must carry ``run.run_id``. Consumed
            once, in batches, so a generator of any size is fine.

        Raises
        ------
        StoreError
            If the run was already saved as finished, or any recommendation is refused
            (e.g. an account twice, or another run's id); nothing is written then.
        """
        ...

    def get_run(self, run_id: str) -> RunRecord:
        """The run ``run_id``.

        Raises
        ------
        NotFoundError
            If there is no such run.
        """
        ...

    def list_runs(self, limit: int = 20, *, status: RunStatus | None = None) -> list[RunRecord]:
        """The most recent runs, newest first.

        Parameters
        ----------
        limit : int, default 20
            At most this many runs.
        status : str, optional
            Only runs with this status.
        """
        ...

    def latest_run(self, *, status: RunStatus | None = None) -> RunRecord | None:
        """The newest run (with ``status``, if given), or None if there is none."""
        ...

    # --- recommendations ----------------------------------------------------------------

    def recommendations(
        self,
        run_id: str,
        *,
        owner: str | None = None,
        action_id: str | None = None,
        account_ids: Collection[str] | None = None,
        health_band: str | None = None,
        owners: Collection[str] | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[RecommendationRecord]:
        """A run's recommendations, ordered by ``account_id``, filtered and paginated.

        Parameters
        ----------
        run_id : str
            The run.
        owner, action_id, health_band : str, optional
            Only recommendations with this owner / this action / this health band.
        owners : collection of str, optional
            Only recommendations whose owner is one of these (a team; empty matches nothing).
        account_ids : collection of str, optional
            Only these accounts.
        limit : int, optional
            At most this many; None for all.
        offset : int, default 0
            Skip this many first (with ``limit``, pages through the list).
        """
        ...

    def count_recommendations(
        self,
        run_id: str,
        *,
        owner: str | None = None,
        action_id: str | None = None,
        account_ids: Collection[str] | None = None,
        health_band: str | None = None,
        owners: Collection[str] | None = None,
    ) -> int:
        """How many recommendations :meth:`recommendations` would return without a limit."""
        ...

    def recommendation_values(
        self,
        run_id: str,
        fields: Mapping[str, Sequence[str | int]],
        *,
        action_id: str | None = None,
        account_ids: Collection[str] | None = None,
        batch_rows: int = 10_000,
    ) -> Iterator[list[tuple[Any, ...]]]:
        """Only some values of a run's recommendations, in batches of rows, ordered by ``account_id``.

        For readers that need a few values of many recommendations (the report): the database
        picks them out, so no receipt is read whole.

        Parameters
        ----------
        run_id : str
            The run.
        fields : mapping of str to a path
            The values, in the order of each row's tuple. A path is a column of ``recommendations``
            (``("action_id",)``), or a JSON column and the keys and list positions into it
            (``("evidence", "account", "arr")``, ``("alternatives", 0, "why")``): the value there
            as JSON gives it (None where the path leads nowhere).
        action_id : str, optional
            Only recommendations of this action.
        account_ids : collection of str, optional
            Only these accounts.
        batch_rows : int, default 10 000
            Rows per batch: the rows are streamed from the database, never held all at once.

        Raises
        ------
        ConfigError
            If a path names no column, or goes into a column that is not JSON.
        """
        ...

    def shared_accounts(self, run_id: str, others: Collection[str]) -> dict[str, int]:
        """How many accounts each run of ``others`` holds a recommendation for that ``run_id`` holds one for too.

        Runs sharing none (or not in the store) are left out. One query over the recommendations'
        keys, whatever their number.
        """
        ...

    # --- feedback -----------------------------------------------------------------------

    def add_feedback(self, events: Sequence[FeedbackEvent], *, audit: Sequence[AuditEntry] = ()) -> int:
        """Store feedback events, ignoring any already stored (the same ``event_id`` and the same event).

        Safe to retry and safe against concurrent senders of the same events. When this
        returns, the events are committed (durable): an API may acknowledge them. An
        ``event_id`` stored (or given earlier in ``events``) for another event, another account's
        or with another body (see :meth:`FeedbackEvent.same_event_as`), is refused, never
        dropped silently.

        Parameters
        ----------
        events : sequence of FeedbackEvent
            The events; duplicates within it count once.
        audit : sequence of AuditEntry
            Audit entries written in the same transaction (who sent the events).

        Returns
        -------
        int
            How many events were newly stored.

        Raises
        ------
        ConflictError
            If an ``event_id`` is already used for another event; nothing is written then (nor
            the audit entries).
        """
        ...

    def count_feedback(self) -> int:
        """How many feedback events the store holds."""
        ...

    def feedback(
        self,
        account_id: str | None = None,
        run_id: str | None = None,
        *,
        received_since: datetime | None = None,
        kind: str | None = None,
    ) -> list[FeedbackEvent]:
        """Stored feedback events, oldest first, for an account and/or a run if given.

        ``received_since`` keeps the events the store received (``received_at``) at or after it (read
        through their index: what each server reads at every refresh); ``kind``, those of that kind.
        """
        ...

    def hold_events(self, account_id: str | None = None, *, until: datetime | None = None) -> list[HoldEvent]:
        """The ``snoozed`` and ``dismissed`` events of one account (None: of every account), oldest first.

        What feedback holds read (:func:`nextmove.engine.holds.feedback_holds`), in one read
        however many accounts and events: each event with the action of the decision its payload
        names (``decision_id``) and of its run's recommendation to the account (``run_id``), so
        that neither is read once per event. The online decider reads one account's on every
        decision, the batch run every account's at once.

        Parameters
        ----------
        account_id : str, optional
            Only this account's events.
        until : datetime, optional
            Only events that happened (``ts``) at or before it: a backtest's ``as_of`` sees no later one.
        """
        ...

    def done_events(self, *, after: datetime | None = None, before: datetime) -> list[HoldEvent]:
        """The ``done`` events that happened (``ts``) after ``after`` and before ``before``, oldest first.

        What the batch run counts as plays (:func:`nextmove.engine.holds.done_plays`), in one
        read: only these events, each with the action of the decision its payload names
        (``decision_id``) and of its run's recommendation to the account (``run_id``), as
        :meth:`hold_events` gives them.

        Parameters
        ----------
        after : datetime, optional
            Only events after it (None: from the first).
        before : datetime
            Only events before it.
        """
        ...

    # --- decisions ----------------------------------------------------------------------

    def log_decisions(
        self,
        decisions: Sequence[DecisionRecord],
        *,
        audit: Sequence[AuditEntry] = (),
        fence: Callable[[Any], None] | None = None,
    ) -> list[DecisionRecord]:
        """Log decisions made online, in one transaction, with their propensities.

        Committed before it returns, so a decision survives the server process being killed; to
        answer in milliseconds it does not wait for the disk flush (SQLite ``synchronous=NORMAL``,
        PostgreSQL ``synchronous_commit=off``), so an OS crash or power loss may lose the last
        fraction of a second of decisions. Feedback, runs, models and keys do wait for it.

        A decision whose ``request_id`` is already logged for the same account is not logged
        again: the logged one is returned in its place, so a retried request gets the decision it
        was first given, also when another process logs the same ``request_id`` at the same time. A
        ``request_id`` logged for another account is a conflict, never a retry.

        Parameters
        ----------
        decisions : sequence of DecisionRecord
            The decisions.
        audit : sequence of AuditEntry
            Audit entries written in the same transaction.
        fence : callable, optional
            Run first in the transaction, with its DB-API cursor (each time it is tried): the
            account locks' :meth:`~nextmove.store.locks.AccountLocks.fence`, which makes sure the
            accounts' locks are held until the commit ends. What it raises ends the transaction,
            nothing written.

        Returns
        -------
        list of DecisionRecord
            One per decision given, in order: the one logged now or, for a known
            ``request_id``, the one logged before.

        Raises
        ------
        StoreError
            If a ``decision_id`` is already logged; nothing is written then.
        ConflictError
            If a ``request_id`` is logged (or given earlier in ``decisions``) for another account;
            nothing is written then.
        """
        ...

    def decisions(
        self,
        *,
        account_id: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[DecisionRecord]:
        """Logged decisions, newest first, for one account and/or since a time if given."""
        ...

    def decision_plays(self, run_id: str, *, since: datetime | None = None) -> list[DecisionPlay]:
        """What the decisions logged for run ``run_id`` (at or after ``since``, if given) gave, oldest first.

        Only ids, accounts, times, actions and variants (no receipts): the online decider counts them
        against the playbook's capacities when it loads a run, and again every refresh.
        """
        ...

    def activity(self, account_id: str, since: datetime) -> list[ActivityRecord]:
        """What the contact rules read for one account since ``since``, oldest first.

        Decisions logged online that chose a play (not ``none``), with the run each was decided
        from, and ``done`` and ``dismissed`` feedback events, without their payloads but for the
        decision an event names.
        """
        ...

    def get_decision(self, decision_id: str) -> DecisionRecord:
        """The decision ``decision_id``.

        Raises
        ------
        NotFoundError
            If there is no such decision.
        """
        ...

    # --- API keys and the audit log -----------------------------------------------------

    def create_api_key(self, record: ApiKeyRecord, *, audit: Sequence[AuditEntry] = ()) -> None:
        """Store a new API key (its hash; see :mod:`nextmove.store.keys`).

        Raises
        ------
        StoreError
            If a key with this ``key_id`` exists.
        """
        ...

    def api_key(self, key_id: str) -> ApiKeyRecord:
        """The API key ``key_id``, revoked or not.

        Raises
        ------
        NotFoundError
            If there is no such key.
        """
        ...

    def list_api_keys(self) -> list[ApiKeyRecord]:
        """Every API key, revoked ones too, oldest first."""
        ...

    def revoke_api_key(self, key_id: str, *, audit: Sequence[AuditEntry] = ()) -> None:
        """Revoke the key ``key_id`` (revoking a revoked key does nothing).

        Raises
        ------
        NotFoundError
            If there is no such key.
        """
        ...

    def add_audit(self, entries: Sequence[AuditEntry]) -> None:
        """Append entries to the audit log, in one transaction."""
        ...

    def audit_log(
        self,
        *,
        key_id: str | None = None,
        since: datetime | None = None,
        limit: int | None = 100,
    ) -> list[AuditEntry]:
        """Audit entries, newest first, of one key and/or since a time if given."""
        ...

    def count_audit(self, *, before: datetime) -> int:
        """How many audit entries were made before ``before``."""
        ...

    def delete_audit(self, *, before: datetime, record: Callable[[int], Sequence[AuditEntry]] | None = None) -> int:
        """Delete the audit entries made before ``before``; how many were deleted.

        ``record``, given how many were deleted, makes the entries that say so: they are written in
        the same transaction, so the log is never cut without saying it was.
        """
        ...

    # --- models -------------------------------------------------------------------------

    def save_model(self, record: ModelVersionRecord) -> None:
        """Store a model version; if ``record.active``, it becomes the active one of its kind.

        Raises
        ------
        StoreError
            If a model with this ``model_id`` already exists (versions are immutable).
        """
        ...

    def load_model(self, model_id: str) -> ModelVersionRecord:
        """The model version ``model_id``.

        Raises
        ------
        NotFoundError
            If there is no such model.
        """
        ...

    def active_model(self, kind: str) -> ModelVersionRecord | None:
        """The active model of ``kind``, or None if none is active."""
        ...

    def activate_model(self, model_id: str) -> None:
        """Make ``model_id`` the one active model of its kind, atomically.

        Raises
        ------
        NotFoundError
            If there is no such model; the active model stays as it was.
        """
        ...

    def activate_models(
        self,
        model_ids: Sequence[str],
        *,
        new: ModelVersionRecord | None = None,
        expect_active: Mapping[str, str | None] | None = None,
    ) -> None:
        """Save ``new`` (if given) and make each of ``model_ids`` the active model of its kind, all at once.

        One transaction, under the store's lock on model versions (every change of a version takes
        it, in every process): what it reads and changes is not changed by another writer meanwhile.
        ``new`` is saved as :meth:`save_model` saves it (activated if ``new.active``, after
        ``model_ids``). ``expect_active`` maps a kind to the model that must be its active one now
        (None: none is), checked first: promoting a run reads the active policy, which the new
        version records it replaces, and saves the version only if that is still the active one.

        Raises
        ------
        ModelsChangedError
            If a kind's active model is not the one expected; nothing is changed.
        NotFoundError
            If a model of ``model_ids`` does not exist; nothing is changed.
        StoreError
            If ``new``'s ``model_id`` exists already; nothing is changed.
        """
        ...

    def list_models(self, kind: str | None = None) -> list[ModelVersionRecord]:
        """Model versions (of ``kind``, if given), newest first."""
        ...

    # --- lifetime -----------------------------------------------------------------------

    def close(self) -> None:
        """Release the store's connections; the store cannot be used afterwards."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
