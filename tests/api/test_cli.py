"""``nextmove keys`` and ``nextmove models``: a key is printed once and stored hashed; policy versions roll back."""

from __future__ import annotations

import contextlib
import re
import sqlite3
from pathlib import Path

import pytest
from tests.api.conftest import ended_process, seed_run
from typer.testing import CliRunner

from nextmove.cli import app
from nextmove.engine.online import promote_run, rollback_policy
from nextmove.playbook import Playbook
from nextmove.store import ModelVersionRecord, RunRecord, Store, open_store
from nextmove.store.keys import verify_api_key

runner = CliRunner()


def test_keys_create_prints_a_working_key_once_and_list_never_shows_it(tmp_path: Path) -> None:
    url = f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}"
    created = runner.invoke(app, ["keys", "create", "--role", "csm", "--owner", "Ana Ruiz", "--store", url])
    assert created.exit_code == 0, created.output
    key = re.search(r"nm_[0-9a-f]{12}_\S+", created.output)
    assert key is not None
    key_id = key.group(0).split("_")[1]
    with open_store(url) as store:
        record = store.api_key(key_id)
    assert (record.role, record.owners, record.hash_scheme) == ("csm", ["Ana Ruiz"], "scrypt:16384:8:1")
    assert verify_api_key(record, key.group(0))
    listed = runner.invoke(app, ["keys", "list", "--store", url])
    assert key_id in listed.output
    assert key.group(0).split("_", 2)[2] not in listed.output
    revoked = runner.invoke(app, ["keys", "revoke", key_id, "--store", url])
    assert revoked.exit_code == 0
    with open_store(url) as store:
        assert not store.api_key(key_id).active
        assert [e.path for e in store.audit_log()] == ["nextmove keys revoke", "nextmove keys create"]


def test_keys_create_refuses_a_csm_without_an_owner(tmp_path: Path) -> None:
    url = f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}"
    result = runner.invoke(app, ["keys", "create", "--role", "csm", "--store", url])
    assert result.exit_code == 2
    assert "needs at least one owner" in result.output


def test_models_promote_and_rollback_switch_the_served_run(tmp_path: Path, playbook: Playbook) -> None:
    url = f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}"
    with open_store(url) as store:
        seed_run(store, playbook, run_id="run-a", accounts=3)
        seed_run(store, playbook, run_id="run-b", accounts=3)
    assert runner.invoke(app, ["models", "promote", "run-a", "--store", url]).exit_code == 0
    assert runner.invoke(app, ["models", "promote", "run-b", "--store", url]).exit_code == 0
    listed = runner.invoke(app, ["models", "list", "--kind", "policy", "--store", url])
    assert listed.output.count("policy-") == 2
    back = runner.invoke(app, ["models", "rollback", "--store", url])
    assert back.exit_code == 0, back.output
    assert "it serves run run-a" in back.output
    with open_store(url) as store:
        active = store.active_model("policy")
        assert active is not None
        assert active.metrics["run_id"] == "run-a"
    again = runner.invoke(app, ["models", "rollback", "--store", url])
    assert again.exit_code == 4
    assert "nothing to roll back to" in again.output
    missing = runner.invoke(app, ["models", "promote", "nope", "--store", url])
    assert missing.exit_code == 4
    # A failed run is refused as report and lift refuse it: its status and why.
    with open_store(url) as store:
        seed_run(store, playbook, run_id="run-c", accounts=3)
        store.finish_run("run-c", "failed", {"error": "the book could not be read"})
    failed = runner.invoke(app, ["models", "promote", "run-c", "--store", url])
    assert failed.exit_code == 2, failed.output
    said = " ".join(failed.output.split())
    assert "run 'run-c' is failed: only a succeeded run can be served. It failed: the book could not be read" in said


def test_a_missing_model_or_key_names_the_command_that_lists_them(tmp_path: Path) -> None:
    url = f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}"
    open_store(url).close()  # a store without them
    model = runner.invoke(app, ["models", "activate", "nope", "--store", url])
    key = runner.invoke(app, ["keys", "revoke", "nope", "--store", url])
    assert model.exit_code == key.exit_code == 4
    assert "`nextmove models list` lists them" in " ".join(model.output.split())
    assert "`nextmove keys list` lists them" in " ".join(key.output.split())
    assert "()" not in model.output + key.output


@pytest.mark.parametrize(
    "command",
    [
        ["keys", "list"],
        ["keys", "revoke", "nope"],
        ["models", "list"],
        ["models", "activate", "nope"],
        ["models", "rollback"],
        ["models", "promote", "nope"],
    ],
)
def test_commands_that_need_a_store_say_there_is_none_and_do_not_make_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    # Run in a folder without a store: an empty nextmove.db and an empty table with exit 0 said nothing.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NEXTMOVE_STORE_URL", raising=False)
    monkeypatch.delenv("NEXTMOVE_WORKSPACE", raising=False)
    result = runner.invoke(app, command)
    assert result.exit_code == 4, result.output
    assert "there is no store at" in " ".join(result.output.split())
    assert list(tmp_path.iterdir()) == []


def test_models_list_refuses_an_unknown_kind_naming_the_valid_ones(tmp_path: Path, playbook: Playbook) -> None:
    url = f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}"
    with open_store(url) as store:
        seed_run(store, playbook, run_id="run-a", accounts=3)
        store.save_model(ModelVersionRecord(model_id="m1", kind="churn-v2", playbook_hash="h", blob=b"."))
    typo = runner.invoke(app, ["models", "list", "--kind", "polcy", "--store", url])
    assert typo.exit_code == 2, typo.output
    said = " ".join(typo.output.split())
    assert "--kind 'polcy' is not a kind of model; use one of churn-v2, effect, outcome, policy" in said
    rollback = runner.invoke(app, ["models", "rollback", "--kind", "polcy", "--store", url])
    assert rollback.exit_code == 2, rollback.output
    for kind in ("policy", "churn-v2"):  # a kind nextmove saves, and one the store holds
        listed = runner.invoke(app, ["models", "list", "--kind", kind, "--store", url])
        assert listed.exit_code == 0, listed.output


def test_cli_model_kinds_are_the_engine_kinds() -> None:
    from nextmove.cli.models import SAVED_KINDS
    from nextmove.engine.model_store import OUTCOME_MODEL_KIND
    from nextmove.engine.online import POLICY_MODEL_KIND
    from nextmove.engine.run import EFFECT_MODEL_KIND

    assert set(SAVED_KINDS) == {EFFECT_MODEL_KIND, OUTCOME_MODEL_KIND, POLICY_MODEL_KIND}


def test_keys_create_warns_of_an_owner_no_account_has_naming_close_ones(tmp_path: Path, playbook: Playbook) -> None:
    url = f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}"
    fresh = runner.invoke(app, ["keys", "create", "--role", "csm", "--owner", "Zoe Usmann", "--store", url])
    assert fresh.exit_code == 0, fresh.output
    assert "warning" not in fresh.output  # no run yet: nothing knows the owners
    with open_store(url) as store:
        seed_run(store, playbook, run_id="run-a", accounts=6)  # owned by ana, ben and cleo
    warned = runner.invoke(
        app, ["keys", "create", "--role", "manager", "--owner", "anna", "--owner", "ben", "--store", url]
    )
    assert warned.exit_code == 0, warned.output
    said = " ".join(warned.output.split())
    assert "no account of run run-a (the latest) is owned by 'anna' (did you mean 'ana'?)" in said
    assert "owned by 'ben'" not in said
    assert re.search(r"nm_[0-9a-f]{12}_\S+", warned.output)  # created all the same
    far = runner.invoke(app, ["keys", "create", "--role", "csm", "--owner", "Zoe Usmann", "--store", url])
    assert "owned by 'Zoe Usmann'; the key was created" in " ".join(far.output.split())


def test_commands_on_another_applications_database_leave_it_as_it_was(tmp_path: Path) -> None:
    # `nextmove models list --store sqlite:///crm.db` printed an empty list, leaving nextmove's tables in the file.
    crm = tmp_path / "crm.db"
    with contextlib.closing(sqlite3.connect(crm)) as conn:
        conn.execute("CREATE TABLE accounts (account_id TEXT PRIMARY KEY, arr REAL)")
        conn.commit()
    url = f"sqlite:///{crm.as_posix()}"
    listed = runner.invoke(app, ["models", "list", "--store", url])
    assert listed.exit_code == 4, listed.output
    assert "there is no nextmove store at" in " ".join(listed.output.split())
    assert runner.invoke(app, ["keys", "list", "--store", url]).exit_code == 4
    created = runner.invoke(app, ["keys", "create", "--role", "admin", "--store", url])
    assert created.exit_code == 2, created.output
    assert "an empty database" in " ".join(created.output.split())
    with contextlib.closing(sqlite3.connect(crm)) as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == ["accounts"]
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)


def test_serve_refuses_a_store_that_takes_no_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `serve` started and /readyz said ready, then every request with a key was a 503 (its audit entry failed).
    import uvicorn

    served: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **_: served.append(app))
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "nextmove.db"
    open_store(f"sqlite:///{path.as_posix()}").close()
    # Read-only even for root, who may write a file chmod'ed read-only.
    said = runner.invoke(app, ["serve", "--store", f"sqlite:///file:{path.as_posix()}?mode=ro&uri=true"])
    for started in served:
        started.state.services.close()  # type: ignore[attr-defined]
    assert said.exit_code == 3, said.output
    assert "cannot be written: attempt to write a readonly database" in " ".join(said.output.split())
    assert served == []


def _run_with_effect_model(store: Store, playbook: Playbook, run_id: str) -> str:
    """A succeeded run and the effect model it fitted (saved inactive, as a run does); the model's id."""
    model_id = f"effect-{run_id}"
    store.save_model(
        ModelVersionRecord(model_id=model_id, kind="effect", playbook_hash=playbook.content_hash(), blob=b".")
    )
    seed_run(store, playbook, run_id=run_id, accounts=3)
    run = store.get_run(run_id)
    store.finish_run(run_id, "succeeded", {**run.summary, "model_version": model_id})
    return model_id


def test_rollback_and_activate_of_a_policy_bring_back_its_runs_effect_model(tmp_path: Path, playbook: Playbook) -> None:
    url = f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}"
    with open_store(url) as store:
        first = _run_with_effect_model(store, playbook, "run-a")
        second = _run_with_effect_model(store, playbook, "run-b")
        newer = promote_run(store, "run-a").model_id, promote_run(store, "run-b").model_id

    def active(kind: str) -> str:
        with open_store(url) as store:
            record = store.active_model(kind)
        assert record is not None
        return record.model_id

    assert active("effect") == second
    back = runner.invoke(app, ["models", "rollback", "--store", url])
    assert back.exit_code == 0, back.output
    assert "it serves run run-a" in back.output
    # `run --reuse-model` projects with the active effect model: the served run's, not the rolled-back one's.
    assert active("effect") == first
    again = runner.invoke(app, ["models", "activate", newer[1], "--store", url])
    assert again.exit_code == 0, again.output
    assert "it serves run run-b" in again.output
    assert (active("policy"), active("effect")) == (newer[1], second)
    with open_store(url) as store:
        assert rollback_policy(store).metrics["run_id"] == "run-a"
    assert active("effect") == first
    # An effect model activated by hand is activated alone: the served policy stays.
    assert runner.invoke(app, ["models", "activate", second, "--store", url]).exit_code == 0
    assert (active("policy"), active("effect")) == (newer[0], second)


def test_models_list_names_a_run_saved_but_never_promoted(tmp_path: Path, playbook: Playbook) -> None:
    url = f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}"
    with open_store(url) as store:
        _run_with_effect_model(store, playbook, "run-a")
        promote_run(store, "run-a")
        store.save_run(
            RunRecord(
                run_id="run-killed-before-promotion",
                book_source="tests",
                playbook_hash=playbook.content_hash(),
                status="succeeded",
                params={"promote": True, "process": ended_process()},
            ),
            [],
        )
    listed = runner.invoke(app, ["models", "list", "--store", url])
    assert listed.exit_code == 0, listed.output
    said = " ".join(listed.output.split())
    assert "run 'run-killed-before-promotion' was saved but never promoted" in said
    assert "`nextmove models promote run-killed-before-promotion` serves it" in said
    assert runner.invoke(app, ["models", "promote", "run-killed-before-promotion", "--store", url]).exit_code == 0
    listed = runner.invoke(app, ["models", "list", "--store", url])
    assert "never promoted" not in listed.output
