"""A run lands whole or not at all, its effect model included; rescoring uses the served run's own model."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import socket
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from nextmove.book import Book
from nextmove.book.validate import load_book
from nextmove.engine.online import (
    POLICY_MODEL_KIND,
    DecideRequest,
    OnlineDecider,
    promote_run,
    rollback_policy,
    served_run,
)
from nextmove.engine.run import EFFECT_MODEL_KIND, RUN_STAGES, run
from nextmove.engine.run_process import interrupted_run_note, run_process
from nextmove.errors import ConfigError, StoreError
from nextmove.playbook import Playbook
from nextmove.playbook.loader import load_playbook
from nextmove.store import RunRecord, Store, open_store
from nextmove.testing import write_subscription_book


@pytest.fixture(scope="module")
def subs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Book, Playbook]:
    folder = tmp_path_factory.mktemp("subscriptions") / "book"
    write_subscription_book(folder, 300)
    playbook = load_playbook(folder / "playbook.toml")
    return load_book(folder, playbook=playbook), playbook


class _HalfWayError(Exception):
    """An error half-way through a run."""


@pytest.mark.parametrize(("error", "stage"), [(KeyboardInterrupt, RUN_STAGES[5]), (_HalfWayError, RUN_STAGES[6])])
def test_a_run_stopped_half_way_leaves_the_previous_model_active(
    subs: tuple[Book, Playbook], error: type[BaseException], stage: str
) -> None:
    book, playbook = subs

    def stop_at(step: str) -> None:
        if step == stage:  # the effect model is fitted and saved by now
            raise error()

    with open_store("sqlite://") as store:
        first = run(book, playbook, store=store, seed=0)
        with pytest.raises(error):
            run(book, playbook, store=store, seed=1, progress=stop_at)
        stopped = store.list_runs()[0]
        assert stopped.status == "failed"
        assert store.count_recommendations(stopped.run_id) == 0
        active = store.active_model(EFFECT_MODEL_KIND)
        assert active is not None
        assert active.model_id == first.summary["model_version"]
        models = store.list_models(EFFECT_MODEL_KIND)
        assert len(models) == 2  # the stopped run's model is kept, inactive
        # A run that succeeds makes its model the active one, at the end.
        third = run(book, playbook, store=store, seed=2)
        active = store.active_model(EFFECT_MODEL_KIND)
        assert active is not None
        assert active.model_id == third.summary["model_version"]


def test_fresh_signals_are_rescored_with_the_served_runs_model_not_the_active_one(
    subs: tuple[Book, Playbook],
) -> None:
    book, playbook = subs
    with open_store("sqlite://") as store:
        served = run(book, playbook, store=store, seed=0)
        later = run(book, playbook, store=store, seed=1, promote=False)
        store.activate_model(later.summary["model_version"])  # by hand (`nextmove models activate`)
        active = store.active_model(EFFECT_MODEL_KIND)
        assert active is not None
        assert active.model_id == later.summary["model_version"] != served.summary["model_version"]

        decider = OnlineDecider(store, playbook, book=book)
        assert decider.snapshot is not None
        assert decider.snapshot.run.run_id == served.run_id
        scorer = decider.fresh_scorer()
        assert scorer is not None
        assert scorer.model_id == served.summary["model_version"]
        account = next(r.account_id for r in store.recommendations(served.run_id) if r.arm != "control")
        (decision,) = decider.decide([DecideRequest(account, signals={"minutes_watched": 300.0})])
        assert decision.evidence["rescored_with_fresh_signals"] is True
        assert decision.model_version == served.summary["model_version"]


def _served(store: Store, playbook: Playbook) -> str:
    decider = OnlineDecider(store, playbook)
    assert decider.snapshot is not None
    return decider.snapshot.run.run_id


def test_a_promoted_run_is_served_whether_the_cli_or_the_api_made_it(subs: tuple[Book, Playbook]) -> None:
    book, playbook = subs
    with open_store("sqlite://") as store:
        # POST /v1/runs: the engine's run, then the service promotes it through a policy version.
        api = run(book, playbook, store=store, seed=0)
        promote_run(store, api.run_id, metrics={"started_by": "api"})
        assert _served(store, playbook) == api.run_id
        # `nextmove run` (promote by default) is served after it, not left behind the API's policy version.
        cli = run(book, playbook, store=store, seed=1)
        assert cli.policy_version is not None
        policy = store.active_model(POLICY_MODEL_KIND)
        assert policy is not None
        assert policy.model_id == cli.policy_version
        assert policy.metrics["run_id"] == cli.run_id
        decider = OnlineDecider(store, playbook, book=book)
        assert decider.snapshot is not None
        assert decider.snapshot.run.run_id == cli.run_id
        # The served run's model is the active one.
        active = store.active_model(EFFECT_MODEL_KIND)
        assert active is not None
        assert active.model_id == cli.summary["model_version"]
        scorer = decider.fresh_scorer()
        assert scorer is not None
        assert scorer.model_id == active.model_id
        # promote=False: stored, neither served nor its model made active.
        kept = run(book, playbook, store=store, seed=2, promote=False)
        assert kept.policy_version is None
        assert _served(store, playbook) == cli.run_id
        active = store.active_model(EFFECT_MODEL_KIND)
        assert active is not None
        assert active.model_id == cli.summary["model_version"]
        # Rollback goes back to the run served before.
        back = rollback_policy(store)
        assert back.metrics["run_id"] == api.run_id
        assert _served(store, playbook) == api.run_id


def test_a_running_run_whose_process_has_ended_is_said_to_be_interrupted() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    record = RunRecord(
        run_id="run-killed",
        book_source="tests",
        playbook_hash="sha256:0",
        params={"process": {"host": socket.gethostname(), "pid": gone.pid}},
    )
    note = interrupted_run_note(record)
    assert note is not None
    assert "run-killed" in note
    assert "interrupted" in note
    # Its pid now names a process started after the run: the run's own process has ended too.
    reused = dataclasses.replace(record, params={"process": run_process()}, created_at=datetime(2000, 1, 1, tzinfo=UTC))
    assert interrupted_run_note(reused) is not None
    # This process, started before the run, is still making it; a finished run is never judged.
    assert interrupted_run_note(dataclasses.replace(record, params={"process": run_process()})) is None
    assert interrupted_run_note(dataclasses.replace(record, status="failed")) is None
    with open_store("sqlite://") as store:
        store.start_run(record)
        with pytest.raises(ConfigError, match="interrupted"):
            promote_run(store, record.run_id)


QUICK = {"effect_params": {"n_folds": 2, "n_estimators": 20}, "evaluate": False, "segments": False}
"""A run's settings for tests of its files: a small model, no evaluation, no segments."""


def refuse_recommendations(db: Path, refuse: bool = True) -> None:
    """Make the SQLite store in ``db`` refuse (or accept again) every new recommendation, as a full disk would."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        if refuse:
            conn.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON recommendations BEGIN SELECT RAISE(ABORT, 'disk is full'); END"
            )
        else:
            conn.execute("DROP TRIGGER refuse")
        conn.commit()


def folder_bytes(folder: Path) -> dict[str, bytes | None]:
    """Every entry under ``folder`` (hidden ones too), by relative path: a file's bytes, None for a folder."""
    return {
        p.relative_to(folder).as_posix(): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))
    }


def test_a_run_whose_store_save_fails_leaves_its_output_folder_as_it_was(
    subs: tuple[Book, Playbook], tmp_path: Path
) -> None:
    book, playbook = subs
    out = tmp_path / "out"
    db = tmp_path / "nextmove.db"
    with open_store(f"sqlite:///{db}") as store:
        run(book, playbook, store=store, out_dir=out, seed=0, **QUICK)
    (out / "report.html").write_text("<html>the first run's report</html>", encoding="utf-8")  # as `nextmove run`
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    before = folder_bytes(out)
    assert set(before) == {"recommendations.csv", "recommendations.parquet", "summary.json", "report.html", "notes.txt"}

    refuse_recommendations(db)
    fresh = tmp_path / "new" / "out"
    with open_store(f"sqlite:///{db}") as store:
        for folder in (out, fresh):
            with pytest.raises(StoreError, match="disk is full"):
                run(book, playbook, store=store, out_dir=folder, seed=1, reuse_model=True, **QUICK)
        failed = store.list_runs()[:2]
        assert [r.status for r in failed] == ["failed", "failed"]
    # Byte for byte as it was, and no temporary folder left inside it or beside it.
    assert folder_bytes(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nextmove.db", "out"]  # nor "new", made for nothing

    refuse_recommendations(db, refuse=False)
    with open_store(f"sqlite:///{db}") as store:
        second = run(book, playbook, store=store, out_dir=out, seed=2, reuse_model=True, **QUICK)
    after = folder_bytes(out)
    names = ("recommendations.csv", "recommendations.parquet", "summary.json")
    assert second.files == {name: out / name for name in names}
    assert set(after) == set(before)  # the run's files replaced; nothing else added, nothing left behind
    assert all(after[name] != before[name] for name in names)
    assert json.loads(second.files["summary.json"].read_text(encoding="utf-8"))["run_id"] == second.run_id
    assert (after["report.html"], after["notes.txt"]) == (before["report.html"], b"mine")  # not the run's files


def test_a_stop_after_the_save_says_the_run_is_saved_and_served_not_that_it_failed(
    subs: tuple[Book, Playbook], tmp_path: Path
) -> None:
    book, playbook = subs

    def stop_in_the_report(*_: object) -> None:  # the run is saved and promoted before its files are made
        raise KeyboardInterrupt()

    with open_store("sqlite://") as store:
        with pytest.raises(KeyboardInterrupt) as stopped:
            run(book, playbook, store=store, seed=0, out_dir=tmp_path / "out", extra_files=stop_in_the_report)
        [record] = store.list_runs()
        assert record.status == "succeeded"
        assert str(stopped.value) == (
            f"interrupted by the user (Ctrl-C) after run {record.run_id} was saved in the store and served; "
            f"its files were not written, so {tmp_path / 'out'} is left as it was"
        )
        assert not (tmp_path / "out").exists()


def test_a_stop_before_the_save_says_the_run_is_recorded_as_failed_and_out_untouched(
    subs: tuple[Book, Playbook], tmp_path: Path
) -> None:
    book, playbook = subs

    def stop_at(step: str) -> None:
        if step == RUN_STAGES[5]:
            raise KeyboardInterrupt()

    with open_store("sqlite://") as store:
        with pytest.raises(KeyboardInterrupt) as stopped:
            run(book, playbook, store=store, seed=0, out_dir=tmp_path / "out", progress=stop_at, **QUICK)
        [record] = store.list_runs()
        assert record.status == "failed"
        assert record.error == "interrupted by the user (Ctrl-C)"  # what it records: the stop alone
    assert str(stopped.value) == (
        f"interrupted by the user (Ctrl-C): run {record.run_id} is recorded as failed, {tmp_path / 'out'} is left "
        "as it was"
    )
    with pytest.raises(KeyboardInterrupt) as stopped:
        run(book, playbook, seed=0, out_dir=tmp_path / "out", progress=stop_at, **QUICK)
    assert str(stopped.value) == f"interrupted by the user (Ctrl-C): {tmp_path / 'out'} is left as it was"


def refuse_policies(db: Path) -> None:
    """Make the SQLite store in ``db`` refuse every new policy version (a promotion), as a full disk would."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON model_versions WHEN NEW.kind = 'policy' "
            "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )
        conn.commit()


@pytest.mark.parametrize("failure", ["stop", "full disk"])
def test_a_run_whose_promotion_is_stopped_or_refused_says_it_is_saved_but_not_served(
    subs: tuple[Book, Playbook], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    """Saved, then stopped (Ctrl-C) or refused by the store while promoted: the run is saved and the previous one
    still served, which the error says, with the command that serves it; --out keeps the previous run's files."""
    engine = sys.modules["nextmove.engine.run"]  # the package's `run` attribute is the function

    book, playbook = subs
    out = tmp_path / "out"
    db = tmp_path / "nextmove.db"
    with open_store(f"sqlite:///{db}") as store:
        first = run(book, playbook, store=store, out_dir=out, seed=0, **QUICK)
    before = folder_bytes(out)
    if failure == "stop":

        def stopped_before_promoting(*_: object, **__: object) -> None:
            raise KeyboardInterrupt()  # Ctrl-C right after the save committed, before the promotion's transaction

        monkeypatch.setattr(engine, "promote_run", stopped_before_promoting)
        expected: type[BaseException] = KeyboardInterrupt
    else:
        refuse_policies(db)
        expected = StoreError
    with open_store(f"sqlite:///{db}") as store:
        with pytest.raises(expected) as info:
            run(book, playbook, store=store, out_dir=out, seed=1, **QUICK)
        second = store.list_runs()[0]
        assert second.status == "succeeded"
        assert served_run(store).run_id == first.run_id  # type: ignore[union-attr]
    said = str(info.value)
    kept = (
        f"saved in the store but not served (the served run is still {first.run_id}; "
        f"`nextmove models promote {second.run_id}` serves it)"
    )
    if failure == "stop":
        assert said == (
            f"interrupted by the user (Ctrl-C) after run {second.run_id} was {kept}; its files were not written, "
            f"so {out} is left as it was"
        )
    else:
        assert said.startswith("could not ")
        assert "database or disk is full" in said
        assert said.endswith(f"; run {second.run_id} is {kept}; {out} is left as it was")
    assert folder_bytes(out) == before
