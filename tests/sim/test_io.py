"""Writing a simulated book: files, formats, atomicity, playbooks other than the default."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from nextmove.errors import ConfigError
from nextmove.playbook.loader import load_playbook, parse_playbook
from nextmove.playbook.schema import Action, ContactPolicy
from nextmove.sim import SimConfig, SimResult, simulate, write_book
from nextmove.sim import io as sim_io
from nextmove.sim.eligibility import evaluate_eligibility
from nextmove.sim.playbook_toml import dump_playbook


@pytest.fixture(scope="module")
def tiny() -> SimResult:
    return simulate(SimConfig(accounts=60, months=2, seed=5, signals_format="csv"))


def test_write_book_writes_every_file(tiny: SimResult, tmp_path: Path) -> None:
    out = write_book(tiny, tmp_path / "book")
    names = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    truth = {f"truth/{t}.csv" for t in ("values", "accounts", "decisions", "propensities", "groups", "group_actions")}
    assert (
        names
        == {"accounts.csv", "signals.csv", "touches.csv", "outcomes.csv", "playbook.toml", "truth/README.md"} | truth
    )
    assert parse_playbook((out / "playbook.toml").read_text()) == load_playbook()
    first = (out / "touches.csv").read_text().splitlines()[1]
    assert "T00:00:00Z" in first
    accounts = pl.read_csv(out / "accounts.csv")
    assert accounts.height == tiny.book.accounts.height
    signals = pl.read_csv(out / "signals.csv", try_parse_dates=True)
    assert signals.height == tiny.book.signals.height
    assert "values.csv" in (out / "truth" / "README.md").read_text()
    assert not list(tmp_path.glob(".*"))


def test_write_book_refuses_a_non_empty_folder(tiny: SimResult, tmp_path: Path) -> None:
    out = tmp_path / "book"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        write_book(tiny, out)
    # Overwriting replaces a book's own files only: a folder with any other file is refused, and kept.
    with pytest.raises(ConfigError, match=r"keep\.txt"):
        write_book(tiny, out, overwrite=True)
    assert (out / "keep.txt").read_text() == "mine"
    (out / "keep.txt").unlink()
    write_book(tiny, out)
    (out / "accounts.csv").write_text("stale")
    write_book(tiny, out, overwrite=True)
    assert (out / "accounts.csv").read_text() != "stale"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["book"]
    assert not list(out.rglob(".*"))


def test_write_book_leaves_nothing_half_written(
    tiny: SimResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = sim_io._write

    def failing(frame: pl.DataFrame, path: Path) -> None:
        if path.name.startswith("touches"):
            raise OSError("disk full")
        real(frame, path)

    monkeypatch.setattr(sim_io, "_write", failing)
    with pytest.raises(OSError, match="disk full"):
        write_book(tiny, tmp_path / "book")
    assert list(tmp_path.iterdir()) == []


def test_simulate_runs_a_playbook_other_than_the_default(tmp_path: Path) -> None:
    base = load_playbook()
    extra = Action(
        id="in_app_tip", name="In-app tip", team="marketing", objective="expansion",
        channel="in_app", cost_usd=1, cooldown_days=14, eligibility="seats >= 5 and not arr < 2000",
    )  # fmt: skip
    playbook = base.model_copy(update={"actions": [*base.actions, extra]})
    result = simulate(SimConfig(accounts=60, months=2, seed=1, playbook=playbook))
    assert "in_app_tip" in set(result.truth.values["action_id"])
    assert parse_playbook(result.playbook_text) == playbook
    out = write_book(result, tmp_path / "book")
    assert parse_playbook((out / "playbook.toml").read_text()) == playbook
    assert parse_playbook(dump_playbook(playbook)) == playbook


def test_simulate_rejects_what_the_lab_cannot_simulate() -> None:
    base = load_playbook()
    odd = base.model_copy(update={"contact_policy": ContactPolicy(window_days=10)})
    with pytest.raises(ConfigError, match="whole number of weeks"):
        simulate(SimConfig(accounts=20, months=1, playbook=odd))
    first = base.actions[0].model_copy(update={"eligibility": "health_score > 3"})
    bad = base.model_copy(update={"actions": [first, *base.actions[1:]]})
    with pytest.raises(ConfigError, match="health_score"):
        simulate(SimConfig(accounts=20, months=1, playbook=bad))


def test_evaluate_eligibility_handles_the_playbook_grammar() -> None:
    import numpy as np

    features = {"arr": np.array([5e3, 2e4, 3e4]), "days_to_renewal": np.array([10.0, 200.0, 100.0])}
    got = evaluate_eligibility("days_to_renewal <= 120 and arr > 10000", features)
    assert got.tolist() == [False, False, True]
    assert evaluate_eligibility("", features).tolist() == [True, True, True]
    assert evaluate_eligibility("10 < days_to_renewal < 150 or not arr >= 1e4", features).tolist() == [
        True,
        False,
        True,
    ]
    with pytest.raises(ConfigError, match="not a valid expression"):
        evaluate_eligibility("arr >=", features)
    with pytest.raises(ConfigError, match="evaluates only"):
        evaluate_eligibility("len(arr) > 1", features)
