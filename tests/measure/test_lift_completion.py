"""Completion beside lift: which recommended plays were done (touches, done feedback), dismissed or snoozed."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from nextmove.book import Book
from nextmove.book.validate import load_book
from nextmove.cli import app
from nextmove.engine.holds import completion_feedback
from nextmove.measure.lift import ESTIMAND, estimate_lift, stored_recommendations_frame
from nextmove.playbook import Playbook
from nextmove.playbook.loader import parse_playbook
from nextmove.store import DecisionRecord, FeedbackEvent, RecommendationRecord, RunRecord, open_store

AS_OF = datetime(2026, 3, 2, tzinfo=UTC)
RUN = "run-completion"

# A book of its own: a renewal objective, two plays, a 30-day horizon.
PLAYBOOK = """
name = "Completion check"
horizon_days = 30
control_fraction = 0.3

[objectives.renew]
outcome = "renewal"
value = "fixed"
value_usd = 1000

[[actions]]
id = "call"
name = "Call"
team = "cs"
objective = "renew"

[[actions]]
id = "email"
name = "Email"
team = "marketing"
objective = "renew"
default_for_stages = ["customer"]
"""

# account: (arm, recommended action)
RECOMMENDED = {
    "a01": ("model", "call"),  # a touch on day 2: done, in the book
    "a02": ("model", "call"),  # a touch on day 10 whose status reads "dismissed": a touch is a done touch
    "a03": ("model", "call"),  # done feedback on day 4, no touch: done, not in the book
    "a04": ("model", "call"),  # dismissed on day 1, then touched on day 20 and reported done on day 21: done once
    "a05": ("model", "email"),  # dismissed, naming the run alone (its recommendation): dismissed
    "a06": ("model", "email"),  # a snooze of the whole account: snoozed
    "a07": ("model", "email"),  # a touch of another action, and of email before the run and after the horizon
    "a08": ("model", "none"),  # no play
    "a09": ("control", "email"),  # done feedback naming an online decision of email, on day 5
    "a10": ("control", "email"),  # done feedback before the run; a snooze of another action: neither
    "a11": ("control", "email"),  # dismissed on day 3
    "a12": ("control", "none"),  # no play
}


def _day(n: int) -> datetime:
    return AS_OF + timedelta(days=n)


def _book() -> Book:
    ids = sorted(RECOMMENDED)
    touches = pl.DataFrame(
        [
            ("a01", "call", _day(2), "completed"),
            ("a02", "call", _day(10), "dismissed"),
            ("a04", "call", _day(20), "Done"),
            ("a07", "call", _day(3), "done"),
            ("a07", "email", _day(-3), "done"),
            ("a07", "email", _day(30), "done"),
            ("a10", "email", _day(-40), "done"),
        ],
        schema=["account_id", "action_id", "ts", "status"],
        orient="row",
    )
    renewals = ["a01", "a02", "a03", "a05", "a09"]
    outcomes = pl.DataFrame(
        {
            "account_id": [*renewals, "a12"],
            "ts": [_day(15)] * len(renewals) + [_day(45)],
            "kind": ["renewal"] * (len(renewals) + 1),
        }
    )
    accounts = pl.DataFrame(
        {
            "account_id": ids,
            "lifecycle_stage": ["customer"] * len(ids),
            "contract_start": [datetime(2025, 1, 1, tzinfo=UTC)] * len(ids),
        }
    )
    return load_book({"accounts": accounts, "touches": touches, "outcomes": outcomes})


def _event(event_id: str, account: str, kind: str, day: int, **more: Any) -> FeedbackEvent:
    return FeedbackEvent(event_id=event_id, account_id=account, kind=kind, ts=_day(day), **more)  # type: ignore[arg-type]


FEEDBACK = [
    _event("e03", "a03", "done", 4, action_id="call"),
    _event("e04a", "a04", "dismissed", 1, action_id="call", reason="busy"),
    _event("e04b", "a04", "done", 21, action_id="call"),
    _event("e05", "a05", "dismissed", 6, run_id=RUN, reason="not now"),
    _event("e06", "a06", "snoozed", 7, reason="holiday", payload={"snoozed_until": _day(20).isoformat()}),
    _event("e09", "a09", "done", 5, payload={"decision_id": "d09"}),
    _event("e10a", "a10", "done", -1, action_id="email"),
    _event("e10b", "a10", "snoozed", 8, action_id="call", payload={"snoozed_until": _day(25).isoformat()}),
    _event("e11", "a11", "dismissed", 3, action_id="email", reason="no"),
]


def _store(url: str, playbook: Playbook) -> None:
    records = [
        RecommendationRecord(
            run_id=RUN, account_id=a, action_id=action, arm=arm, propensity=1.0, expected_value_usd=0.0, evidence={}
        )
        for a, (arm, action) in RECOMMENDED.items()
    ]
    run = RunRecord(
        run_id=RUN,
        book_source="completion-book",
        playbook_hash=playbook.content_hash(),
        status="succeeded",
        as_of=AS_OF,
    )
    with open_store(url) as store:
        store.save_run(run, records)
        decision = DecisionRecord(
            decision_id="d09",
            account_id="a09",
            action_id="email",
            arm="control",
            propensity=1.0,
            expected_value_usd=0.0,
            ts=_day(1),
            run_id=RUN,
        )
        store.log_decisions([decision])
        store.add_feedback(FEEDBACK)


@dataclass(frozen=True)
class Setup:
    url: str
    book: Book
    playbook: Playbook


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    playbook = parse_playbook(PLAYBOOK)
    url = f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}"
    _store(url, playbook)
    return Setup(url, _book(), playbook)


def _counts(c: dict[str, Any]) -> tuple[Any, ...]:
    keys = ("recommended", "done", "done_in_book", "dismissed", "snoozed", "neither", "completion_rate")
    return (*(c[k] for k in keys), c["median_days_to_done"])


MODEL = (7, 4, 3, 1, 1, 1, 4 / 7, 7.0)  # done on days 2, 10, 4 and 20
MODEL_CALL = (4, 4, 3, 0, 0, 0, 1.0, 7.0)
MODEL_EMAIL = (3, 0, 0, 1, 1, 1, 0.0, None)
CONTROL = (3, 1, 0, 1, 0, 1, 1 / 3, 5.0)


def _check(completion: dict[str, Any]) -> None:
    assert completion["feedback_read"] is True
    assert completion["window_start"] == AS_OF.isoformat()
    assert completion["window_end"] == _day(30).isoformat()
    assert _counts(completion["recommended"]) == pytest.approx(MODEL)
    assert completion["recommended"]["arm"] == "recommended"
    assert _counts(completion["control"]) == pytest.approx(CONTROL)
    rows = {(r["arm"], r["action_id"]): _counts(r) for r in completion["arms"]}
    assert list(rows) == [
        ("control", None),
        ("control", "email"),
        ("model", None),
        ("model", "call"),
        ("model", "email"),
    ]
    assert rows[("model", None)] == pytest.approx(MODEL)
    assert rows[("model", "call")] == pytest.approx(MODEL_CALL)
    assert rows[("model", "email")] == pytest.approx(MODEL_EMAIL)
    assert rows[("control", None)] == rows[("control", "email")] == pytest.approx(CONTROL)
    assert completion["no_play"] == {"control": 1, "model": 1}


def test_completion_counts_touches_and_feedback_each_recommendation_once(setup: Setup) -> None:
    with open_store(setup.url) as store:
        frame = stored_recommendations_frame(store, RUN)
        feedback = completion_feedback(store, AS_OF, _day(setup.playbook.horizon_days))
    report = estimate_lift(frame, setup.book, setup.playbook, as_of=AS_OF, run_id=RUN, feedback=feedback)
    data = report.to_dict()
    assert data["estimand"] == ESTIMAND == "intention to treat"
    _check(data["completion"])
    assert report.completion_frame().height == 5
    # The lift's own figures do not move with completion: the same without the store's feedback.
    alone = estimate_lift(frame, setup.book, setup.playbook, as_of=AS_OF, run_id=RUN)
    assert [asdict(o) for o in alone.objectives] == [asdict(o) for o in report.objectives]
    assert asdict(alone.value) == asdict(report.value)
    assert alone.arms == report.arms == {"control": 4, "model": 8}
    # Touches alone: a01, a02 and a04 done in the book; a09's done feedback and every dismissal and snooze unknown.
    assert alone.completion is not None
    assert not alone.completion.feedback_read
    assert (alone.completion.recommended.done, alone.completion.recommended.neither) == (3, 4)
    assert alone.completion.control.done == 0


def test_completion_without_touches_after_the_run_says_only_feedback_tells(setup: Setup) -> None:
    book = setup.book
    early = Book(book.accounts, book.signals, book.touches.filter(pl.col("ts") < AS_OF), book.outcomes)
    with open_store(setup.url) as store:
        frame = stored_recommendations_frame(store, RUN)
        feedback = completion_feedback(store, AS_OF, _day(setup.playbook.horizon_days))
    report = estimate_lift(frame, early, setup.playbook, as_of=AS_OF, feedback=feedback)
    assert report.completion is not None
    model = report.completion.recommended
    # a03 and a04 reported done; a01 and a02, touched only in the book left behind, are neither now.
    assert (model.done, model.done_in_book, model.dismissed, model.snoozed, model.neither) == (2, 0, 1, 1, 3)
    (note,) = report.completion.notes
    assert "the book holds no touch after the run's decision time (2026-03-02)" in note
    assert "only the store's done feedback" in note
    assert not any("touch" in n for n in report.notes)  # the lift's notes are the lift's


def test_completion_of_a_partial_lift_stops_where_the_data_is_known(setup: Setup) -> None:
    with open_store(setup.url) as store:
        frame = stored_recommendations_frame(store, RUN)
        feedback = completion_feedback(store, AS_OF, _day(setup.playbook.horizon_days))
    report = estimate_lift(
        frame, setup.book, setup.playbook, as_of=AS_OF, feedback=feedback, observed_until=_day(9), allow_partial=True
    )
    assert report.completion is not None
    assert report.completion.window_end == _day(9)
    model = report.completion.recommended
    # By day 9: a01 touched (day 2), a03 reported done (day 4); a04 (day 1) and a05 dismissed; a06 snoozed;
    # a02 (touched on day 10) and a07 neither.
    assert (model.done, model.done_in_book, model.dismissed, model.snoozed, model.neither) == (2, 1, 2, 1, 2)
    assert model.median_days_to_done == pytest.approx(3.0)


def test_cli_and_api_lift_report_completion_beside_the_intention_to_treat_lift(setup: Setup, tmp_path: Path) -> None:
    folder = tmp_path / "book"
    folder.mkdir()
    for name in ("accounts", "signals", "touches", "outcomes"):
        getattr(setup.book, name).write_parquet(folder / f"{name}.parquet")
    (folder / "playbook.toml").write_text(PLAYBOOK, encoding="utf-8")
    out = tmp_path / "lift.json"
    args = ["lift", "--book", str(folder), "--store", setup.url, "--run", RUN, "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "intention to treat" in text
    assert "plays done: recommended 57.1% (4 of 7), control 33.3% (1 of 3)" in text
    assert "Completion of the recommended plays" in text
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["estimand"] == "intention to treat"
    _check(report["completion"])

    from tests.cli.test_lift_cli import _api_lift

    api = _api_lift(setup.url, folder, RUN)
    assert api["estimand"] == "intention to treat"
    _check(api["completion"])
