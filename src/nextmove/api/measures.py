"""Measurements the API serves from the server's book: lift against control, behavioral segments."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

from nextmove.api.errors import NotReadyError
from nextmove.book import Book
from nextmove.engine.health import active_accounts
from nextmove.engine.holds import completion_feedback
from nextmove.errors import NotFoundError
from nextmove.measure.lift import (
    HorizonNotOverError,
    account_overlap,
    estimate_lift,
    json_ready,
    latest_data_time,
    stored_recommendations_frame,
    with_overlap_note,
    with_playbook_note,
)
from nextmove.playbook import Playbook
from nextmove.segment import BehaviorSegmenter, behavior_snapshot, signal_labels
from nextmove.store import RunRecord, Store

OVERLAP_RUNS_READ = 200
"""How many of the latest succeeded runs a lift looks through for those whose horizons overlap its run's."""


def _book(book: Book | None, what: str) -> Book:
    if book is None:
        raise NotReadyError(f"{what} needs the book of business: start the server with `nextmove serve --book PATH`")
    return book


def lift_report(
    store: Store, book: Book | None, playbook: Playbook, run: RunRecord, *, allow_partial: bool
) -> dict[str, Any]:
    """The lift report of ``run`` as JSON-ready data (see :func:`nextmove.measure.lift.estimate_lift`), with the
    completion of its recommendations from the book's touches and the store's feedback.

    Raises
    ------
    NotReadyError
        Without a book, or if the book holds nothing after the run, or the run's horizon has not
        passed (unless ``allow_partial``).
    """
    loaded = _book(book, "lift")
    if run.as_of is None:
        raise NotFoundError(f"run {run.run_id!r} has no as_of time; lift measures what followed a run's decisions")
    frame = stored_recommendations_frame(store, run.run_id)  # a few values of each, never a whole receipt
    feedback = completion_feedback(store, run.as_of, run.as_of + timedelta(days=playbook.horizon_days))
    try:
        report = estimate_lift(
            frame,
            loaded,
            playbook,
            as_of=run.as_of,
            allow_partial=allow_partial,
            run_id=run.run_id,
            feedback=feedback,
        )
    except HorizonNotOverError as exc:
        # Not the request's fault: the same request answers once the book holds the outcomes.
        raise NotReadyError(str(exc).replace("allow_partial (--partial)", "allow_partial=true")) from None
    report = with_playbook_note(report, run, playbook, frame.get_column("action_id").unique().to_list())
    stored = store.list_runs(OVERLAP_RUNS_READ, status="succeeded")
    overlap = account_overlap(store, run, stored, report.horizon_days)
    return with_overlap_note(report, run, stored, overlap).to_dict()


class SegmentCache:
    """Behavioral segments of the book at a time, computed once per time (they take seconds)."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._lock = threading.Lock()
        self._cache: dict[datetime, dict[str, Any]] = {}

    def report(self, book: Book | None, playbook: Playbook, as_of: datetime | None) -> dict[str, Any]:
        """Segments of the accounts active at ``as_of`` (default: the book's latest data)."""
        loaded = _book(book, "segments")
        when = as_of or latest_data_time(loaded)
        with self._lock:
            if when not in self._cache:
                self._cache[when] = self._compute(loaded, playbook, when)
            return self._cache[when]

    def _compute(self, book: Book, playbook: Playbook, when: datetime) -> dict[str, Any]:
        snapshot = behavior_snapshot(book, when, playbook=playbook)
        active = snapshot.join(active_accounts(book, playbook, when), on="account_id", how="semi")
        labels = signal_labels(book, when, playbook=playbook)
        result = BehaviorSegmenter(seed=self.seed, labels=labels).fit(active).segment(active)
        data = {
            "as_of": when,
            "accounts": active.height,
            "k": result.k,
            "silhouette": result.silhouette,
            "segments": [
                {
                    "id": s.id,
                    "name": s.name,
                    "accounts": s.accounts,
                    "traits": [{"feature": f, "z": z} for f, z in s.traits],
                }
                for s in result.segments
            ],
        }
        out: dict[str, Any] = json_ready(data)
        return out
