"""The server's services: the served run is kept out of the garbage collector's full collections."""

from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from tests.api.conftest import AS_OF, seed_run

from nextmove.api import ApiConfig
from nextmove.api.measures import SegmentCache
from nextmove.api.service import RunSegments, Services
from nextmove.engine.run import run
from nextmove.models._crossfit import release_one_lightgbm_thread
from nextmove.playbook import Playbook
from nextmove.sim import SimConfig, simulate
from nextmove.store import Store, open_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}") as opened:
        yield opened


def _frozen(obj: object) -> bool:
    return any(o is obj for o in gc.get_objects(generation=None)) is False and gc.is_tracked(obj)


def test_the_served_run_is_frozen_at_start_and_again_when_a_new_run_is_served(store: Store, playbook: Playbook) -> None:
    seed_run(store, playbook, run_id="run-1")
    services = Services(ApiConfig(playbook=playbook, refresh_s=0.05), store=store)
    try:
        services.start()
        first = services.decider.snapshot
        assert first is not None
        assert gc.get_freeze_count() > 0
        assert _frozen(first)
        seed_run(store, playbook, run_id="run-2", seed=1, as_of=AS_OF + timedelta(days=7))
        services.decider.promote_run("run-2")
        second = services.decider.snapshot
        assert second is not None
        assert second is not first
        deadline = time.monotonic() + 30
        while not _frozen(second) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _frozen(second)
    finally:
        services._stop.set()
        services.decisions.close()
        services.audit.close()
        release_one_lightgbm_thread()  # taken by services.start(), as close() would release it
        gc.unfreeze()


def test_segments_are_the_served_runs_own_not_a_new_clustering(store: Store) -> None:
    # A small lab book whose clustering depends on the seed: k-means seeded 0 finds 2 segments, 3 finds 7.
    lab = simulate(SimConfig(accounts=200, months=6, seed=0))
    playbook = lab.config.resolved_playbook()
    result = run(
        lab.book,
        playbook,
        as_of=lab.as_of,
        store=store,
        seed=3,
        effect_params={"n_folds": 2, "n_estimators": 25, "n_draws": 60},
        evidence=False,
        evaluate=False,
    )
    stored = result.summary["segments"]
    services = Services(ApiConfig(playbook=playbook, book=lab.book), store=store)
    try:
        served = services.served_run()
        assert served is not None
        assert served.run_id == result.run_id
        data = services.segments.report(lab.book, playbook, served.as_of)
    finally:
        services.decider.close()
    shown = [(s["name"], s["accounts"]) for s in data["segments"]]
    assert data["k"] == stored["k"] == len(shown)
    assert shown == [(s["name"], s["accounts"]) for s in stored["segments"]]
    assert {name for name, _ in shown} == set(result.recommendations.get_column("segment_name").drop_nulls().to_list())
    assert data["accounts"] == stored["accounts"]
    # The clustering the API used to answer (seed 0) finds other segments for the same book and time.
    assert SegmentCache().report(lab.book, playbook, served.as_of)["k"] != stored["k"]
    # A served run that kept no segments is clustered again with its own seed.
    bare = replace(served, summary={k: v for k, v in served.summary.items() if k != "segments"})
    again = RunSegments(lambda: bare).report(lab.book, playbook, served.as_of)
    assert again == SegmentCache(seed=3).report(lab.book, playbook, served.as_of)
    # The same clusters as the run's (the run lists them by response, the clustering by id).
    assert sorted((s["name"], s["accounts"]) for s in again["segments"]) == sorted(shown)


# ---- the book, read again when it changes ------------------------------------------------------------


def _write_book(folder: Path, account_ids: list[str], *, duplicate: bool = False) -> Path:
    """A small folder book: its accounts (the first one twice with ``duplicate``, which breaks the contract)."""
    folder.mkdir(parents=True, exist_ok=True)
    ids = [*account_ids, account_ids[0]] if duplicate else account_ids
    rows = "".join(f"{a},ana,12000\n" for a in ids)
    (folder / "accounts.csv").write_text(f"account_id,owner,arr\n{rows}", encoding="utf-8")
    touches = "".join(f"{a},nurture_email,2026-05-{1 + i % 28:02d}T10:00:00Z\n" for i, a in enumerate(account_ids))
    (folder / "touches.csv").write_text(f"account_id,action_id,ts\n{touches}", encoding="utf-8")
    _settled(folder)
    return folder


def _settled(folder: Path) -> None:
    """Date the book's files 10 s back: written whole, so that the server need not wait for them to settle."""
    then = time.time() - 10
    for file in folder.iterdir():
        os.utime(file, (then, then))


def _book_services(tmp_path: Path, store: Store, playbook: Playbook, **config: object) -> tuple[Services, Path]:
    from nextmove.book.validate import load_book

    folder = _write_book(tmp_path / "book", ["a1", "a2"])
    book = load_book(str(folder), playbook=playbook)
    services = Services(ApiConfig(playbook=playbook, book=book, book_path=str(folder), **config), store=store)  # type: ignore[arg-type]
    return services, folder


def _started_with_book(services: Services, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Start a run through the services with a stand-in for the batch run; the books it was given."""
    import nextmove.api.service as service

    given: list[object] = []

    def fake_run(book: object, playbook: object, **kwargs: object) -> object:
        given.append(book)
        return type("Result", (), {"run_id": kwargs["run_id"]})()

    monkeypatch.setattr(service, "engine_run_function", lambda: fake_run)
    progress = services.runs.start(as_of=None, seed=0, promote=False)
    services.runs.join(30)
    assert progress.done
    return [progress, *given]


def test_a_run_started_by_the_server_reads_the_book_as_it_is_now(
    tmp_path: Path, store: Store, playbook: Playbook, monkeypatch: pytest.MonkeyPatch
) -> None:
    services, folder = _book_services(tmp_path, store, playbook)
    try:
        _write_book(folder, ["a1", "a2", "a3"])  # a new account, after the server read the book
        progress, book = _started_with_book(services, monkeypatch)
        assert progress.error is None, progress.error  # type: ignore[attr-defined]
        assert book.accounts.get_column("account_id").to_list() == ["a1", "a2", "a3"]  # type: ignore[attr-defined]
        assert services.config.book is book
        assert services.knows_account("a3")
        assert services.owner_of("a3") == "ana"
    finally:
        services.decider.close()


def test_a_running_server_notices_a_changed_book_without_being_asked(
    tmp_path: Path, store: Store, playbook: Playbook
) -> None:
    seed_run(store, playbook, run_id="run-1", account_ids=["a1", "a2"])
    services, folder = _book_services(tmp_path, store, playbook, refresh_s=0.05)
    try:
        services.start()
        assert not services.knows_account("a9")
        _write_book(folder, ["a1", "a2", "a9"])
        deadline = time.monotonic() + 30
        while services.config.book.accounts.height != 3 and time.monotonic() < deadline:  # type: ignore[union-attr]
            time.sleep(0.05)
        assert services.config.book.accounts.height == 3  # type: ignore[union-attr]
        assert services.decider.book is services.config.book
        assert services.knows_account("a9")
    finally:
        services._stop.set()
        services.decisions.close()
        services.audit.close()
        release_one_lightgbm_thread()  # taken by services.start(), as close() would release it
        gc.unfreeze()


def test_feedback_for_an_account_added_to_the_book_is_not_refused(
    tmp_path: Path, store: Store, playbook: Playbook
) -> None:
    services, folder = _book_services(tmp_path, store, playbook)
    try:
        _write_book(folder, ["a1", "a2", "a4"])
        assert services.knows_account("a4")  # looked for in the book on disk, not refused as unknown
        assert not services.knows_account("nobody")
    finally:
        services.decider.close()


def test_a_changed_book_that_does_not_validate_is_not_served_and_a_run_says_why(
    tmp_path: Path, store: Store, playbook: Playbook, monkeypatch: pytest.MonkeyPatch
) -> None:
    services, folder = _book_services(tmp_path, store, playbook)
    try:
        before = services.config.book
        _write_book(folder, ["a1", "a2", "a5"], duplicate=True)
        progress, *given = _started_with_book(services, monkeypatch)
        assert given == []  # no run on a book that is not the book any more
        assert "no longer loads" in progress.error  # type: ignore[attr-defined]
        assert "'a1'" in progress.error  # type: ignore[attr-defined]
        assert services.config.book is before  # the last good book, whole
        assert services.book_problem == progress.error  # type: ignore[attr-defined]
        _write_book(folder, ["a1", "a2", "a5"])  # fixed
        assert services.refresh_book()
        assert services.book_problem is None
        assert services.knows_account("a5")
    finally:
        services.decider.close()


def test_lift_is_measured_on_the_book_as_it_is_now(
    tmp_path: Path, store: Store, playbook: Playbook, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    import httpx
    from tests.api.conftest import make_keys

    import nextmove.api.routes as routes
    from nextmove.api import create_app
    from nextmove.book.validate import load_book

    seed_run(store, playbook, run_id="run-1", account_ids=["a1", "a2"])
    keys = make_keys(store)
    folder = _write_book(tmp_path / "book", ["a1", "a2"])
    config = ApiConfig(
        playbook=playbook,
        book=load_book(str(folder), playbook=playbook),
        book_path=str(folder),
        refresh_s=3600.0,  # no background look during the test: the lift itself must read the book again
    )
    measured: list[int] = []

    def fake_lift(store: object, book: object, *args: object, **kwargs: object) -> dict[str, object]:
        measured.append(book.outcomes.height)  # type: ignore[attr-defined]
        return {}

    monkeypatch.setattr(routes, "lift_report", fake_lift)
    app = create_app(config, store=store)
    services: Services = app.state.services
    (folder / "outcomes.csv").write_text("account_id,ts,kind\na1,2026-05-20T00:00:00Z,churn\n", encoding="utf-8")
    _settled(folder)

    async def ask() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            refused = await client.get("/v1/lift")  # no key: the book is not read for it
            assert services.config.book.outcomes.height == 0  # type: ignore[union-attr]
            answer = await client.get("/v1/lift", headers={"Authorization": f"Bearer {keys.admin}"})
        return refused, answer

    services.start()
    try:
        refused, answer = asyncio.run(ask())
    finally:
        services.close()
        gc.unfreeze()
    assert refused.status_code == 401
    assert answer.status_code == 200, answer.text
    assert measured == [1]


def test_a_promoted_run_started_by_the_server_is_served_with_the_one_policy_version_it_saved(
    tmp_path: Path, store: Store, playbook: Playbook, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The batch run saves and activates its own policy version when promoted (as from the CLI): the
    # server serves it, without a second version of its own (a rollback would need two steps).
    import nextmove.api.service as service
    from nextmove.engine.online import POLICY_MODEL_KIND, promote_run

    seed_run(store, playbook, run_id="run-1", account_ids=["a1", "a2"])
    services, _ = _book_services(tmp_path, store, playbook)

    def engine_run(book: object, playbook_: Playbook, **kwargs: object) -> object:
        seed_run(store, playbook_, run_id="run-2", account_ids=["a1", "a2"])
        promote_run(store, "run-2", metrics={"started_by": "run"})
        return type("Result", (), {"run_id": "run-2"})()

    monkeypatch.setattr(service, "engine_run_function", lambda: engine_run)
    try:
        progress = services.runs.start(as_of=None, seed=0, promote=True)
        services.runs.join(30)
        assert progress.error is None, progress.error
        assert len(store.list_models(POLICY_MODEL_KIND)) == 1
        assert services.decider.snapshot is not None
        assert services.decider.snapshot.run.run_id == "run-2"
    finally:
        services.decider.close()


def test_a_promoted_run_the_server_cannot_serve_at_once_succeeded_all_the_same(
    tmp_path: Path,
    store: Store,
    playbook: Playbook,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The run is saved and promoted; reading it to serve it fails (the store's connections were cut):
    # the run still succeeded, and the refresh loop serves it at its next turn.
    import nextmove.api.service as service
    from nextmove.engine.online import promote_run
    from nextmove.errors import StoreError

    seed_run(store, playbook, run_id="run-1", account_ids=["a1", "a2"])
    services, _ = _book_services(tmp_path, store, playbook)
    refresh = services.decider.refresh
    failures = [StoreError("could not read the recommendations of run 'run-2': terminating connection")]

    def refresh_failing_once() -> bool:
        if failures:
            raise failures.pop()
        return refresh()

    def engine_run(book: object, playbook_: Playbook, **kwargs: object) -> object:
        seed_run(store, playbook_, run_id="run-2", account_ids=["a1", "a2"])
        promote_run(store, "run-2", metrics={"started_by": "run"})
        return type("Result", (), {"run_id": "run-2"})()

    monkeypatch.setattr(service, "engine_run_function", lambda: engine_run)
    monkeypatch.setattr(services.decider, "refresh", refresh_failing_once)
    try:
        with caplog.at_level(logging.WARNING, logger="nextmove"):
            progress = services.runs.start(as_of=None, seed=0, promote=True)
            services.runs.join(30)
        assert failures == []  # the refresh was tried, and failed
        assert progress.done
        assert progress.error is None, progress.error
        assert progress.steps[-1] == "done"
        assert services.runs.record("run-2").status == "succeeded"
        assert not any("failed" in r.getMessage() for r in caplog.records)
        (warned,) = [r for r in caplog.records if "run-2" in r.getMessage()]
        assert warned.levelno == logging.WARNING
        assert "succeeded" in warned.getMessage()
        assert "terminating connection" in warned.getMessage()
        assert services.decider.snapshot is not None
        assert services.decider.snapshot.run.run_id == "run-1"  # until the next refresh...
        services.decider.refresh()
        assert services.decider.snapshot.run.run_id == "run-2"  # ...which serves it
    finally:
        services.decider.close()


def test_a_database_book_is_read_again_from_its_real_url_and_shown_without_its_password(
    tmp_path: Path, playbook: Playbook
) -> None:
    # The keeper reads the book from the URL as given (a masked one would not log in), says what went
    # wrong with the password hidden, and forgets the problem once the book loads again unchanged.
    from nextmove.api.service import BookKeeper
    from nextmove.book.validate import load_book
    from nextmove.errors import BookError

    book = load_book(str(_write_book(tmp_path / "book", ["a1", "a2"])), playbook=playbook)
    url = "postgresql://crm:S3cret@db.internal/book"
    asked: list[str] = []
    broken = [True]

    def load(path: str, playbook: Playbook) -> object:
        asked.append(path)
        if broken[0]:
            raise BookError(f"cannot reach {path.replace('S3cret', '***')}")
        return book

    keeper = BookKeeper(url, book, playbook, stamp=None, load=load)
    assert keeper.in_database
    assert keeper.refresh(max_age_s=0) is False
    assert asked == [url]
    assert keeper.problem is not None
    assert "S3cret" not in keeper.problem
    assert "crm:***@db.internal" in keeper.problem
    broken[0] = False
    assert keeper.refresh(max_age_s=0) is False  # the same book as served
    assert keeper.problem is None


def test_a_feedback_batch_looks_at_the_book_once_for_its_unknown_accounts(
    tmp_path: Path, store: Store, playbook: Playbook, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Accounts added to the book on disk are found, with one look at the files for the whole batch
    # (a batch holds up to 1,000 events), not one per event.
    from nextmove.api.feedback import check_feedback
    from nextmove.api.schemas import FeedbackIn
    from nextmove.errors import NotFoundError

    services, folder = _book_services(tmp_path, store, playbook)
    try:
        _write_book(folder, ["a1", "a2", "a4", "a5"])
        looks: list[bool] = []
        real = services.refresh_book
        monkeypatch.setattr(services, "refresh_book", lambda **kw: looks.append(True) or real(**kw))
        now = AS_OF + timedelta(days=1)
        events = [
            FeedbackIn(event_id=f"e{i}", account_id=a, kind="done") for i, a in enumerate(["a4", "a5", "a4", "a1"])
        ]
        check_feedback(services, events, now)
        assert looks == [True]
        strangers = [FeedbackIn(event_id=f"x{i}", account_id=f"nobody{i}", kind="done") for i in range(5)]
        with pytest.raises(NotFoundError, match="nobody0"):
            check_feedback(services, strangers, now)
        assert looks == [True, True]
    finally:
        services.decider.close()
