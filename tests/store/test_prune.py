"""``nextmove store prune``: old runs' receipts slimmed; what lift, holds, reports and serving read kept."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from tests.api.conftest import make_keys, seed_run
from typer.testing import CliRunner

from nextmove.api.app import create_app
from nextmove.api.service import ApiConfig
from nextmove.cli import app
from nextmove.engine.online import activate_version, promote_run, rollback_policy, served_run
from nextmove.errors import ConfigError, StoreError
from nextmove.measure.lift import recommendations_frame
from nextmove.playbook import Playbook
from nextmove.playbook.loader import load_playbook
from nextmove.report.stored import report_data_from_store
from nextmove.store import AuditEntry, ModelVersionRecord, Store, open_store
from nextmove.store.prune import apply_prune, plan_prune

runner = CliRunner()
WEEKS = ("w1", "w2", "w3", "w4", "w5")
T0 = datetime(2026, 3, 2, tzinfo=UTC)
ACCOUNTS = 40


@pytest.fixture
def playbook() -> Playbook:
    return load_playbook()


def _seed(url: str, playbook: Playbook) -> None:
    """Five weekly runs, each with its effect model, promoted as made: w5 served, w4 the rollback target."""
    with open_store(url) as store:
        for k, run_id in enumerate(WEEKS):
            as_of = T0 + timedelta(weeks=k)
            seed_run(store, playbook, run_id=run_id, accounts=ACCOUNTS, seed=k, as_of=as_of)
            model_id = f"effect-{run_id}"
            store.save_model(
                ModelVersionRecord(
                    model_id=model_id, kind="effect", playbook_hash=playbook.content_hash(), blob=b"x" * 20_000
                )
            )
            store.finish_run(run_id, "succeeded", {"accounts": ACCOUNTS, "model_version": model_id, "notes": []})
            promote_run(store, run_id)


def _prune(url: str, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["store", "prune", "--store", url, *args])
    return result.exit_code, " ".join(result.output.split())


def _snapshot(store: Store) -> dict[str, object]:
    return {
        run_id: [(r.account_id, r.evidence, r.alternatives) for r in store.recommendations(run_id)] for run_id in WEEKS
    }


def test_prune_slims_old_receipts_and_keeps_what_lift_serving_and_reports_read(
    store_url: str, playbook: Playbook
) -> None:
    _seed(store_url, playbook)
    with open_store(store_url) as store:
        before = _snapshot(store)
        lift_before = recommendations_frame(store.recommendations("w1"))

    code, said = _prune(store_url, "--keep-runs", "1", "--dry-run")
    assert code == 0, said
    assert "To prune: 3 runs, 120 receipts" in said
    assert "Kept whole: w5 (served online)." in said
    assert "Kept whole: w4 (what `nextmove models rollback` would serve)." in said
    assert "Dry run: nothing was changed." in said
    with open_store(store_url) as store:
        assert _snapshot(store) == before
        assert {m.model_id for m in store.list_models("effect")} == {f"effect-{w}" for w in WEEKS}

    code, said = _prune(store_url, "--keep-runs", "1")
    assert code == 0, said
    assert "Pruned 3 runs: 120 receipts slimmed" in said
    assert "3 effect models deleted (60 KB)" in said
    if store_url.startswith("sqlite"):
        assert "VACUUM: the SQLite store went from" in said
    else:
        assert "VACUUM FULL recommendations, model_versions" in said

    with open_store(store_url) as store:
        # The served run and the rollback target are untouched, and still served / rolled back to.
        after = _snapshot(store)
        assert after["w4"] == before["w4"]
        assert after["w5"] == before["w5"]
        assert {m.model_id for m in store.list_models("effect")} == {"effect-w4", "effect-w5"}
        for run_id in ("w1", "w2", "w3"):
            run = store.get_run(run_id)
            assert run.summary["pruned"]["model_deleted"] == f"effect-{run_id}"
            assert any("receipts of this run were pruned" in n for n in run.summary["notes"])
            for (account, evidence, alternatives), (_, old, old_alternatives) in zip(
                after[run_id], before[run_id], strict=True
            ):
                assert evidence["pruned"]["by"] == "nextmove store prune", account
                assert "signals" not in evidence
                assert "comparables" not in evidence
                kept = {k: v for k, v in old.items() if k not in ("signals", "comparables")}
                assert {k: v for k, v in evidence.items() if k != "pruned"} == kept
                best = old_alternatives[0]
                assert alternatives == [{k: best[k] for k in ("action_id", "variant", "value_usd", "why", "reason")}]
        # What lift reads of the run is exactly what it was.
        assert recommendations_frame(store.recommendations("w1")).equals(lift_before)
        # Its report draws, and says the receipts were pruned.
        data = report_data_from_store(store, "w1")
        assert "receipts of this run were pruned" in data.run_notes[0]
        # A pruned run is never served again.
        with pytest.raises(ConfigError, match="run w2 cannot be served again: its receipts were pruned on"):
            promote_run(store, "w2")
        assert served_run(store).run_id == "w5"  # type: ignore[union-attr]
        assert rollback_policy(store).metrics["run_id"] == "w4"
        old_version = next(v for v in store.list_models("policy") if v.metrics.get("run_id") == "w3")
        with pytest.raises(ConfigError, match="run w3 cannot be served again"):
            activate_version(store, old_version.model_id)
        assert served_run(store).run_id == "w4"  # type: ignore[union-attr]

    code, said = _prune(store_url, "--keep-runs", "1")  # again: the pruned runs are left as they are
    assert code == 0, said
    assert "Nothing to prune." in said
    assert "Kept whole: w5 (the newest run, --keep-runs 1)." in said
    assert "Kept whole: w4 (served online)." in said
    assert "Pruned before: 3 runs (w1, w2, w3)." in said
    assert "Pruned 0" not in said


def test_the_api_says_a_runs_receipts_were_pruned(store_url: str, playbook: Playbook) -> None:
    _seed(store_url, playbook)
    assert _prune(store_url, "--keep-runs", "2")[0] == 0
    with open_store(store_url) as store:
        keys = make_keys(store)
    api = create_app(ApiConfig(playbook=playbook, store_url=store_url))

    async def ask(*paths: str) -> list[httpx.Response]:
        auth = {"Authorization": f"Bearer {keys.admin}"}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://api") as client:
            return [await client.get(path, headers=auth) for path in paths]

    services = api.state.services
    services.start()
    try:
        page, run, served = asyncio.run(
            ask("/v1/recommendations?run_id=w1&limit=5", "/v1/runs/w1", "/v1/recommendations?limit=5")
        )
    finally:
        services.close()
    assert page.status_code == 200, page.text
    item = page.json()["items"][0]
    assert item["evidence"]["pruned"]["by"] == "nextmove store prune"
    assert "signals" not in item["evidence"]
    assert run.json()["summary"]["pruned"]["removed_evidence"] == ["signals", "comparables"]
    assert served.json()["run_id"] == "w5"
    assert "pruned" not in served.json()["items"][0]["evidence"]


def test_prune_refuses_a_plan_made_before_another_run_was_promoted(store_url: str, playbook: Playbook) -> None:
    _seed(store_url, playbook)
    with open_store(store_url) as store:
        before = _snapshot(store)
        plan = plan_prune(store, protected={"w5": "served online", "w4": "rollback"}, keep_runs=0)
        assert [r.run_id for r in plan.runs] == ["w1", "w2", "w3"]
        promote_run(store, "w2")  # meanwhile: w2 is served
        with pytest.raises(StoreError, match=r"changed while the prune was planned.*nothing was pruned"):
            apply_prune(store, plan)
        assert _snapshot(store) == before
        assert "pruned" not in store.get_run("w2").summary


def test_prune_older_than_counts_days_since_each_run_was_made(tmp_path: Path, playbook: Playbook) -> None:
    url = f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}"
    _seed(url, playbook)  # seed_run makes each run an hour after its as_of: w1 on 2 March … w5 on 30 March
    with open_store(url) as store:
        plan = plan_prune(store, protected={}, older_than_days=10, now=datetime(2026, 4, 3, tzinfo=UTC))
        assert [r.run_id for r in plan.runs] == ["w1", "w2", "w3", "w4"]
        both = plan_prune(store, protected={}, older_than_days=10, keep_runs=3, now=datetime(2026, 4, 3, tzinfo=UTC))
        assert [r.run_id for r in both.runs] == ["w1", "w2"]  # only what both allow


def test_prune_says_which_runs_to_prune(tmp_path: Path, playbook: Playbook) -> None:
    url = f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}"
    _seed(url, playbook)
    code, said = _prune(url)
    assert code == 2
    assert "say which runs to prune: --keep-runs N (keep the N newest) and/or --older-than DAYS" in said
    code, said = _prune(f"sqlite:///{(tmp_path / 'none.db').as_posix()}", "--keep-runs", "1")
    assert code == 4
    assert not (tmp_path / "none.db").exists()


def test_a_stop_during_the_vacuum_after_the_prune_committed_exits_0_saying_the_prune_is_done(
    tmp_path: Path, playbook: Playbook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while the SQLite file is VACUUMed: the prune is committed, so the command says so and what the stop cut
    short, and exits 0, not 130 (a failure: a scheduler would run it again)."""
    import nextmove.store.prune as prune

    url = f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}"
    _seed(url, playbook)

    def stopped(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(prune, "vacuum", stopped)
    code, said = _prune(url, "--keep-runs", "1")
    assert code == 0, said
    assert "Pruned 3 runs: 120 receipts slimmed" in said
    assert (
        "note: a stop (Ctrl-C) came after the prune was committed, so it cut short only what followed it: the VACUUM "
        "that gives the space back to the system may not have run"
    ) in said
    assert "`nextmove store prune` again VACUUMs it" in said
    with open_store(url) as store:
        assert [r.run_id for r in store.list_runs() if r.summary.get("pruned")] == ["w3", "w2", "w1"]


def test_prune_deletes_the_effect_models_of_failed_runs_and_lists_them_in_a_dry_run(tmp_path: Path) -> None:
    from nextmove.book.validate import load_book
    from nextmove.engine.run import EFFECT_MODEL_KIND, RUN_STAGES, run
    from nextmove.testing import write_subscription_book

    folder = tmp_path / "book"
    write_subscription_book(folder, 300)
    book_playbook = load_playbook(folder / "playbook.toml")
    book = load_book(folder, playbook=book_playbook)
    url = f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}"

    def stop_at(step: str) -> None:
        if step == RUN_STAGES[5]:  # its effect model is fitted and saved by now
            raise KeyboardInterrupt

    with open_store(url) as store:
        served = run(book, book_playbook, store=store, seed=0)
        with pytest.raises(KeyboardInterrupt):
            run(book, book_playbook, store=store, seed=1, progress=stop_at)
        failed = next(r for r in store.list_runs() if r.status == "failed")
        models = {m.model_id for m in store.list_models(EFFECT_MODEL_KIND)}
        (orphan,) = models - {served.summary["model_version"]}

    code, said = _prune(url, "--keep-runs", "0", "--dry-run")
    assert code == 0, said
    assert "Effect models of failed runs, never served" in said
    assert orphan in said
    assert failed.run_id in said
    assert "To delete: 1 effect model of failed runs" in said
    assert "Nothing to prune" not in said
    with open_store(url) as store:
        assert {m.model_id for m in store.list_models(EFFECT_MODEL_KIND)} == models

    code, said = _prune(url, "--keep-runs", "0")
    assert code == 0, said
    assert "1 effect model deleted" in said
    with open_store(url) as store:
        assert [m.model_id for m in store.list_models(EFFECT_MODEL_KIND)] == [served.summary["model_version"]]
        assert store.active_model(EFFECT_MODEL_KIND).model_id == served.summary["model_version"]  # type: ignore[union-attr]
        assert store.get_run(served.run_id).summary.get("pruned") is None  # served: left whole
    code, said = _prune(url, "--keep-runs", "0")
    assert "Nothing to prune." in said


def test_prune_leaves_the_model_a_run_still_going_may_be_saving(store_url: str, playbook: Playbook) -> None:
    from nextmove.store import RunRecord

    hash_ = playbook.content_hash()

    def model(model_id: str, trained_to: datetime) -> ModelVersionRecord:
        return ModelVersionRecord(
            model_id=model_id, kind="effect", playbook_hash=hash_, blob=b"x" * 1000, trained_to=trained_to
        )

    with open_store(store_url) as store:
        for run_id in ("stopped", "going"):
            store.start_run(RunRecord(run_id=run_id, book_source="b", playbook_hash=hash_, as_of=T0))
        store.save_model(model("effect-a", T0))  # saved while both went: it may be the one still going's
        store.save_model(model("effect-other", T0 + timedelta(days=1)))  # no run of that as_of: not a failed run's
        store.finish_run("stopped", "failed", {"error": "interrupted by the user (Ctrl-C)"})
        plan = plan_prune(store, protected={}, keep_runs=0)
        assert plan.failed_models == ()
        assert plan.empty
        # A run killed outright stays "running": once its process is known to have ended, it counts as failed.
        plan = plan_prune(store, protected={}, keep_runs=0, ended={"going"})
        assert [(m.model_id, m.run_id) for m in plan.failed_models] == [("effect-a", "going")]
        store.activate_model("effect-a")  # meanwhile, by hand: no longer to delete
        assert apply_prune(store, plan).failed_models_deleted == ()
        assert {m.model_id for m in store.list_models("effect")} == {"effect-a", "effect-other"}


def _audit(ts: datetime, i: int) -> AuditEntry:
    return AuditEntry(
        action="read", method="GET", path=f"/v1/accounts/a{i}", status=200, key_id="k1", resource=f"account:a{i}", ts=ts
    )


def test_prune_deletes_old_audit_entries_only_when_asked_and_files_one_saying_so(store_url: str) -> None:
    now = datetime.now(UTC)
    old = [_audit(now - timedelta(days=400 + i), i) for i in range(3)]
    recent = [_audit(now - timedelta(days=10 + i), 10 + i) for i in range(2)]
    with open_store(store_url) as store:
        store.add_audit(old + recent)

    # Pruning runs leaves the audit log alone.
    code, said = _prune(store_url, "--keep-runs", "1")
    assert code == 0, said
    with open_store(store_url) as store:
        assert len(store.audit_log(limit=None)) == 5

    code, said = _prune(store_url, "--audit-older-than", "365", "--dry-run")
    assert code == 0, said
    assert "Audit log: 3 audit entries made before" in said
    assert "Dry run: nothing was changed." in said
    with open_store(store_url) as store:
        assert len(store.audit_log(limit=None)) == 5

    code, said = _prune(store_url, "--audit-older-than", "365")
    assert code == 0, said
    assert "Deleted 3 audit entries." in said
    assert "Runs to prune" not in said
    assert "Nothing to prune" not in said
    with open_store(store_url) as store:
        left = store.audit_log(limit=None)
        # The two recent ones and the entry recording the prune.
        assert store.count_audit(before=now + timedelta(days=1)) == 3
    assert [e.resource for e in left[1:]] == [e.resource for e in recent]
    record = left[0]
    assert (record.method, record.path, record.resource) == ("CLI", "nextmove store prune", "audit_log:3 entries")
    assert record.detail["deleted"] == 3

    code, said = _prune(store_url, "--audit-older-than", "0")
    assert code != 0
    assert "--audit-older-than" in said


def test_store_deletes_audit_entries_before_a_time(store: Store) -> None:
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    store.add_audit([_audit(t0 + timedelta(days=i), i) for i in range(4)])
    assert store.count_audit(before=t0 + timedelta(days=2)) == 2
    assert store.delete_audit(before=t0 + timedelta(days=2)) == 2
    assert [e.resource for e in store.audit_log(limit=None)] == ["account:a3", "account:a2"]
    assert store.delete_audit(before=t0) == 0
    # The entry saying so is written with the deletion, told how many went.
    said = store.delete_audit(before=t0 + timedelta(days=3), record=lambda n: [_audit(t0 + timedelta(days=9), n)])
    assert said == 1
    assert [e.resource for e in store.audit_log(limit=None)] == ["account:a1", "account:a3"]
