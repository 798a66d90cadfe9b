"""``nextmove models rollback`` goes back through what was served, not through the order versions were saved in."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nextmove.cli import app
from nextmove.engine.online import POLICY_MODEL_KIND, promote_run, rollback_policy, rollback_step, served_run
from nextmove.errors import NotFoundError
from nextmove.store import ModelVersionRecord, RunRecord, Store, open_store

runner = CliRunner()
T0 = datetime(2025, 5, 5, tzinfo=UTC)


def _store(tmp_path: Path, runs: list[str]) -> str:
    """A SQLite store holding a succeeded run (no recommendations needed to serve it) per name, a week apart."""
    url = f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}"
    with open_store(url) as store:
        for k, run_id in enumerate(runs):
            record = RunRecord(
                run_id=run_id, book_source="crm", playbook_hash="h", status="succeeded", as_of=T0 + timedelta(weeks=k)
            )
            store.save_run(record, [])
    return url


def _served(url: str) -> str | None:
    with open_store(url) as store:
        run = served_run(store)
    return None if run is None else run.run_id


def _cli(*args: str) -> str:
    result = runner.invoke(app, ["models", *args])
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def test_rollback_after_promoting_an_older_run_again_serves_the_run_served_before(tmp_path: Path) -> None:
    weeks = ["w07", "w08", "w09", "w10", "w11"]
    url = _store(tmp_path, weeks)
    for run_id in weeks:  # each week's run promoted as it is made
        _cli("promote", run_id, "--store", url)
    for was, now in [("w11", "w10"), ("w10", "w09"), ("w09", "w08")]:
        said = _cli("rollback", "--store", url)
        assert f"it serves run {now} (it served run {was} before)." in said
        assert _served(url) == now
    _cli("promote", "w11", "--store", url)  # w11 again: a new version of the run, over w08
    assert _served(url) == "w11"
    said = _cli("rollback", "--store", url)
    assert "it serves run w08 (it served run w11 before)." in said  # not w11's older version
    assert _served(url) == "w08"
    said = _cli("rollback", "--store", url)  # further back through what was served before w08
    assert "it serves run w07 (it served run w08 before)." in said
    end = runner.invoke(app, ["models", "rollback", "--store", url])
    assert end.exit_code == 4
    said = " ".join(end.output.split())
    assert "there is nothing to roll back to: the active 'policy' model" in said
    assert "was made when no policy version was active" in said


def test_rollback_passes_over_versions_that_serve_the_same_run_and_says_so(tmp_path: Path) -> None:
    url = _store(tmp_path, ["run-a", "run-b"])
    _cli("promote", "run-a", "--store", url)
    _cli("promote", "run-b", "--store", url)
    _cli("promote", "run-b", "--store", url)  # promoted twice
    said = _cli("rollback", "--store", url)
    assert "it serves run run-a (it served run run-b before)." in said
    assert "Passed over 1 older version that serves run run-b too." in said
    assert _served(url) == "run-a"
    listed = _cli("list", "--kind", "policy", "--store", url)
    assert "replaces" not in listed  # a model id for rollbacks, not a figure

    (tmp_path / "only").mkdir()
    only = _store(tmp_path / "only", ["run-a"])
    _cli("promote", "run-a", "--store", only)
    _cli("promote", "run-a", "--store", only)
    refused = runner.invoke(app, ["models", "rollback", "--store", only])
    assert refused.exit_code == 4
    said = " ".join(refused.output.split())
    assert "there is nothing to roll back to: every version served before the active 'policy' model" in said
    assert "serves run run-a too" in said
    assert _served(only) == "run-a"


def _old_version(store: Store, model_id: str, run_id: str, created_at: datetime) -> None:
    """A policy version saved before versions recorded what they replaced."""
    store.save_model(
        ModelVersionRecord(
            model_id=model_id,
            kind=POLICY_MODEL_KIND,
            playbook_hash="h",
            blob=json.dumps({"run_id": run_id}).encode(),
            created_at=created_at,
            metrics={"run_id": run_id},
            active=True,
        )
    )


def test_versions_saved_before_they_recorded_what_they_replaced_roll_back_in_the_order_saved(tmp_path: Path) -> None:
    url = _store(tmp_path, ["run-a", "run-b", "run-c"])
    with open_store(url) as store:
        _old_version(store, "policy-a", "run-a", T0)
        _old_version(store, "policy-b", "run-b", T0 + timedelta(days=1))
        step = rollback_step(store)
        assert (step.current.model_id, step.target.model_id, step.passed_over) == ("policy-b", "policy-a", ())
        newer = promote_run(store, "run-c")
        assert newer.metrics["replaces"] == "policy-b"
        assert rollback_step(store, version_id="policy-b").target.model_id == "policy-a"
        assert rollback_policy(store).model_id == "policy-b"
        assert rollback_policy(store).model_id == "policy-a"
        with pytest.raises(NotFoundError, match="nothing to roll back to: the active 'policy' model 'policy-a' is the"):
            rollback_policy(store)
