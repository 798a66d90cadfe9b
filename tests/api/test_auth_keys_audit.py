"""``nextmove keys create`` and ``revoke`` name, in their audit entries, the OS user who ran them."""

from __future__ import annotations

import getpass
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nextmove.cli import app
from nextmove.store import open_store

runner = CliRunner()


def _create_and_revoke(url: str) -> list[tuple[str, str, dict[str, object]]]:
    created = runner.invoke(app, ["keys", "create", "--role", "service", "--name", "crm-sync", "--store", url])
    assert created.exit_code == 0, created.output
    key = re.search(r"nm_([0-9a-f]{12})_\S+", created.output)
    assert key is not None
    revoked = runner.invoke(app, ["keys", "revoke", key.group(1), "--store", url])
    assert revoked.exit_code == 0, revoked.output
    with open_store(url) as store:
        return [(e.path, e.resource, e.detail) for e in reversed(store.audit_log())]


def test_key_changes_made_with_the_cli_name_the_os_user_who_ran_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOGNAME", "ops-maria")  # what getpass.getuser() reads first
    entries = _create_and_revoke(f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}")
    assert [(path, detail["os_user"]) for path, _, detail in entries] == [
        ("nextmove keys create", "ops-maria"),
        ("nextmove keys revoke", "ops-maria"),
    ]
    assert entries[0][2]["role"] == "service"  # what the entry said before is still there
    assert entries[0][1] == entries[1][1]  # the same key:<id>


def test_a_key_change_is_made_and_audited_when_the_os_cannot_name_the_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def nameless() -> str:
        raise OSError("No username set in the environment")  # a uid with no name, no LOGNAME/USER (a container)

    monkeypatch.setattr(getpass, "getuser", nameless)
    entries = _create_and_revoke(f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}")
    assert [(path, detail["os_user"]) for path, _, detail in entries] == [
        ("nextmove keys create", None),
        ("nextmove keys revoke", None),
    ]
