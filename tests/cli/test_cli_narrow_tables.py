"""Ids and numbers stay whole in the CLI's tables at a narrow terminal width: users copy them."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from nextmove.cli import _common, app
from nextmove.sim import SimConfig, simulate, write_book
from nextmove.store import open_store
from nextmove.store.records import ModelVersionRecord

runner = CliRunner()


@pytest.fixture
def narrow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_common.console, "width", 72)


def test_models_and_keys_list_show_whole_ids(tmp_path: Path, narrow: None) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    model_id = "effect-20260706T120000-0123abcd"  # as the engine names them
    with open_store(url) as store:
        metrics = {"auc": 0.71234, "brier": 0.1234, "rows": 123456, "note": "a long note " * 3}
        store.save_model(
            ModelVersionRecord(model_id=model_id, kind="effect", playbook_hash="ab", blob=b".", metrics=metrics)
        )
    listed = runner.invoke(app, ["models", "list", "--store", url])
    assert listed.exit_code == 0, listed.output
    assert model_id in listed.output
    created = runner.invoke(
        app, ["keys", "create", "--role", "admin", "--name", "a fairly long label " * 3, "--store", url]
    )
    assert created.exit_code == 0, created.output
    keys = runner.invoke(app, ["keys", "list", "--store", url])
    with open_store(url) as store:
        (key,) = store.list_api_keys()
    assert key.key_id in keys.output


def test_health_keeps_amounts_and_account_ids_whole(tmp_path: Path, narrow: None) -> None:
    book = tmp_path / "book"
    write_book(simulate(SimConfig(accounts=120, months=8, seed=2)), book)
    out = tmp_path / "health.csv"
    result = runner.invoke(
        app,
        ["health", "--book", str(book), "--out", str(out), "--store", f"sqlite:///{tmp_path / 'h.db'}", "--top", "5"],
    )
    assert result.exit_code == 0, result.output
    top = pl.read_csv(out).sort("arr", descending=True).head(20)
    shown = [row for row in top.iter_rows(named=True) if str(row["account_id"]) in result.output]
    assert shown  # some of the top accounts, their ids whole
    for row in shown:
        assert f"${row['arr']:,.0f}" in result.output
