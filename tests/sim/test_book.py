"""The simulated book: scale, contract dtypes, integrity, time bounds, propensities, determinism."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl

from nextmove.book import CONTRACT, NO_ACTION
from nextmove.playbook.loader import load_playbook
from nextmove.sim import SIGNAL_NAMES, SimConfig, SimResult, simulate, write_book

from .conftest import SMALL


def _hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_simulate_same_seed_writes_identical_files(tmp_path: Path) -> None:
    config = SimConfig(accounts=150, months=4, seed=11)
    first = write_book(simulate(config), tmp_path / "a")
    second = write_book(simulate(config), tmp_path / "b")
    hashes = _hashes(first)
    assert hashes == _hashes(second)
    assert {"accounts.csv", "signals.parquet", "touches.csv", "outcomes.csv", "playbook.toml"} <= set(hashes)


def test_simulate_different_seeds_differ() -> None:
    a = simulate(SimConfig(accounts=150, months=4, seed=1)).book
    b = simulate(SimConfig(accounts=150, months=4, seed=2)).book
    assert not a.signals.equals(b.signals)
    assert not a.accounts.equals(b.accounts)


def test_default_book_has_the_seed_scale(default_run: tuple[SimResult, float]) -> None:
    # Its time is a benchmark figure (docs/benchmarks.md), not a test: a loaded CI machine must not fail it.
    result, _seconds = default_run
    book = result.book
    active = book.accounts.filter(pl.col("lifecycle_stage") != "churned")
    assert active.height == 4200
    assert result.as_of - SimConfig().start >= timedelta(days=540)
    actions = set(book.touches.get_column("action_id").unique().to_list())
    assert actions == {*load_playbook().action_ids, NO_ACTION}
    # At least twelve months of paired action and outcome history.
    first_touch = book.touches.get_column("ts").min()
    last_outcome = book.outcomes.get_column("ts").max()
    assert last_outcome - first_touch >= timedelta(days=365)  # type: ignore[operator]
    per_owner = active.group_by("owner").len().get_column("len")
    assert 50 <= per_owner.mean() <= 70  # type: ignore[operator]
    assert set(book.accounts.get_column("segment").unique()) == {"SMB", "Mid-Market", "Enterprise"}
    stages = set(book.accounts.get_column("lifecycle_stage").unique())
    assert stages == {"onboarding", "adoption", "growth", "maturity", "renewal", "churned"}
    # Churned accounts are kept and replaced.
    assert book.accounts.height > 4200


def test_default_book_arr_is_lognormal_per_tier(default: SimResult) -> None:
    arr = default.book.accounts.group_by("segment").agg(pl.col("arr").median().alias("median"))
    medians = dict(zip(arr["segment"], arr["median"], strict=True))
    assert medians["SMB"] < medians["Mid-Market"] < medians["Enterprise"]
    smb = np.log(default.book.accounts.filter(pl.col("segment") == "SMB")["arr"].to_numpy())
    assert 0.3 < smb.std() < 0.8


def test_book_tables_have_contract_dtypes(small: SimResult) -> None:
    for name, spec in CONTRACT.items():
        frame = small.book.table(name)
        assert frame.columns[: len(spec.columns)] == list(spec.column_names)
        for col in spec.columns:
            assert frame.schema[col.name] == col.type.polars, (name, col.name)
    assert small.book.extra_account_columns == ["seats", "plan"]


def test_book_signal_names_are_the_playbook_roles(small: SimResult) -> None:
    roles = load_playbook().signal_roles
    expected = {*roles.usage, *roles.engagement, *roles.support, *roles.sentiment, *roles.survey}
    assert set(small.book.signal_names) == expected == set(SIGNAL_NAMES)


def test_book_outcome_kinds_match_the_objectives(small: SimResult) -> None:
    kinds = set(small.book.outcomes.get_column("kind").unique())
    objectives = {o.outcome for o in load_playbook().objectives.values()}
    assert objectives <= kinds <= objectives | {"renewal"}
    plain = small.book.outcomes.filter(~pl.col("kind").is_in(["churn", "expansion"]))
    assert (plain.get_column("value") == 1.0).all()
    money = small.book.outcomes.filter(pl.col("kind").is_in(["churn", "expansion"]))
    assert (money.get_column("value") > 0).all()


def test_book_references_are_intact(small: SimResult) -> None:
    book = small.book
    ids = set(book.accounts.get_column("account_id"))
    assert book.accounts.get_column("account_id").is_unique().all()
    for name in ("signals", "touches", "outcomes"):
        assert set(book.table(name).get_column("account_id").unique()) <= ids
    touch_ids = book.touches.get_column("touch_id")
    assert touch_ids.null_count() == 0
    assert touch_ids.is_unique().all()
    attributed = book.outcomes.get_column("touch_id").drop_nulls()
    assert len(attributed) > 0.9 * book.outcomes.height
    assert set(attributed) <= set(touch_ids)
    assert book.outcomes.get_column("outcome_id").is_unique().all()
    # An attributed outcome follows its touch, within the horizon.
    joined = book.outcomes.join(book.touches.select("touch_id", pl.col("ts").alias("t0")), on="touch_id")
    lag = (joined["ts"] - joined["t0"]).dt.total_seconds()
    assert (lag > 0).all()
    assert (lag <= 90 * 86_400).all()
    # Each account churns at most once, and nothing is observed after it.
    churn = book.outcomes.filter(pl.col("kind") == "churn")
    assert churn.get_column("account_id").is_unique().all()
    late = book.signals.join(churn.select("account_id", pl.col("ts").alias("gone")), on="account_id")
    assert (late["ts"] < late["gone"]).all()


def test_book_has_nothing_after_as_of(small: SimResult) -> None:
    assert small.book.as_of == small.as_of
    for name in ("signals", "touches", "outcomes"):
        assert small.book.table(name).get_column("ts").max() <= small.as_of  # type: ignore[operator]
    assert small.book.accounts.get_column("contract_start").max() <= small.as_of  # type: ignore[operator]
    assert small.book.signals.get_column("ts").min() >= SMALL.start  # type: ignore[operator]


def test_book_signals_are_noisy_and_have_gaps(small: SimResult) -> None:
    signals = small.book.signals
    weeks = SMALL.decision_windows * 2
    usage_rows = signals.filter(pl.col("name") == "active_users").height
    # Every week each of the 400 active accounts could report usage; some weeks are missing.
    assert 0.85 * SMALL.accounts * weeks < usage_rows < 0.995 * SMALL.accounts * weeks
    nps = signals.filter(pl.col("name") == "nps").get_column("value")
    assert nps.min() >= 0
    assert nps.max() <= 10
    csat = signals.filter(pl.col("name") == "csat")
    tickets = signals.filter(pl.col("name") == "tickets_opened")
    assert 0 < csat.height < tickets.height
    sources = set(signals.get_column("source").unique())
    assert sources == {"product", "marketing", "crm", "support", "survey"}


def test_touches_propensities_are_probabilities(small: SimResult) -> None:
    touches = small.book.touches
    assert set(touches.get_column("arm").unique()) == {"default"}
    propensity = touches.get_column("propensity")
    assert propensity.null_count() == 0
    assert (propensity > 0).all()
    assert (propensity <= 1).all()
    wide = small.truth.propensities
    assert wide.height == touches.height
    candidates = [c for c in wide.columns if c != "touch_id"]
    sums = wide.select(pl.sum_horizontal(candidates)).to_series()
    assert np.allclose(sums.to_numpy(), 1.0)
    assert (wide.get_column(NO_ACTION) > 0).all()
    # The logged propensity is the probability of the action taken.
    long = wide.unpivot(index="touch_id", variable_name="action_id", value_name="p")
    logged = touches.join(long, on=["touch_id", "action_id"])
    assert logged.height == touches.height
    assert np.allclose(logged["p"].to_numpy(), logged["propensity"].to_numpy())


def test_touches_respect_cooldowns_and_eligibility(small: SimResult) -> None:
    playbook = load_playbook()
    touches = small.book.touches.filter(pl.col("action_id") != NO_ACTION).sort("account_id", "action_id", "ts")
    gaps = touches.with_columns(
        (pl.col("ts").diff().over("account_id", "action_id").dt.total_days()).alias("gap")
    ).drop_nulls("gap")
    for action in playbook.actions:
        g = gaps.filter(pl.col("action_id") == action.id).get_column("gap")
        if len(g):
            assert g.min() >= action.cooldown_days, action.id  # type: ignore[operator]
    # Eligibility read off the world's state at each decision, independently of the policy's mask.
    world = small.world
    checked = 0
    for t in world.decision_times[:-1]:
        x = world.snapshot(t)
        at_t = small.book.touches.filter(pl.col("ts") == t)
        taken = dict(zip(at_t["account_id"], at_t["action_id"], strict=True))
        for row, account_id in enumerate(world.account_ids(x.idx)):
            action = taken[account_id]
            if action == "exec_sponsor_call":
                assert x.arr[row] >= 15_000
            elif action == "renewal_incentive":
                assert x.days_to_renewal[row] <= 120
            elif action == "case_study_invite":
                assert x.tenure_days[row] >= 365
            else:
                continue
            checked += 1
    assert checked > 0


def test_without_propensities_leaves_the_column_null() -> None:
    result = simulate(SimConfig(accounts=60, months=2, seed=3, with_propensities=False))
    touches = result.book.touches
    assert touches.height > 0
    assert touches.get_column("propensity").null_count() == touches.height
    assert touches.schema["propensity"] == pl.Float64
    # The truth still knows them.
    assert result.truth.decisions.get_column("propensity").null_count() == 0
