"""LightGBM from several Python threads: every call names its thread count, one on a pool thread.

LightGBM 4 keeps one thread count for the whole process and every call that reads settings sets it
(``num_threads``, 0 when not named: all cores). A call sizes per-thread buffers from it, then runs a
parallel loop that reads it again; another thread's call naming a different count in between made
the loop outrun its buffers (segmentation faults in CI and in ``bench/decide.py --scale``). See
:func:`nextmove.models._crossfit.quiet_lightgbm`.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from tests.lightgbm_calls import lightgbm_calls

from nextmove.book import NO_ACTION
from nextmove.decide.explain import explain_decisions
from nextmove.models.effect import EffectModel
from nextmove.models.outcome import OutcomeModel, OutcomeModels
from nextmove.playbook import Action, Objective, Playbook


def book(accounts: int, periods: int, seed: int) -> pl.DataFrame:
    """A randomised history: a won deal (an event) and growth dollars (an amount) over two actions."""
    rng = np.random.default_rng(seed)
    n = accounts * periods
    account = np.repeat(np.arange(accounts), periods)
    period = np.tile(np.arange(periods), accounts)
    names = np.array(["none", "call", "email"])
    probs = np.array([0.5, 0.25, 0.25])
    choice = rng.choice(3, size=n, p=probs)
    y_win = (rng.random(n) < np.array([0.2, 0.35, 0.2])[choice]).astype(np.int8)
    y_grow = (rng.random(n) < 0.2).astype(np.int8)
    start = datetime(2025, 1, 6, tzinfo=UTC)
    return pl.DataFrame(
        {
            "account_id": [f"acc{i:04d}" for i in account],
            "decision_ts": [start + timedelta(days=14 * int(p)) for p in period],
            "logged": [True] * n,
            "action_id": names[choice].tolist(),
            "propensity": probs[choice],
            "usage": rng.normal(size=accounts)[account] + 0.3 * rng.normal(size=n),
            "y_win": y_win,
            "y_win_value": y_win.astype(float),
            "y_grow": y_grow,
            "y_grow_value": np.where(y_grow == 1, 1000 * np.exp(0.3 * rng.normal(size=n)), 0.0),
            "censored": [False] * n,
        }
    )


PLAYBOOK = Playbook(
    objectives={
        "win": Objective(outcome="win", value="fixed", value_usd=100.0),
        "growth": Objective(outcome="grow", value="amount"),
    },
    actions=[Action(id=a, name=a.title(), team="cs", objective="win", cost_usd=5.0) for a in ("call", "email")],
)
FAST: dict[str, Any] = {
    "n_folds": 3,
    "n_estimators": 20,
    "num_leaves": 7,
    "min_child_samples": 40,
    "n_draws": 20,
    "n_jobs": 2,
}


@pytest.mark.parametrize("logged", [True, False])
def test_every_lightgbm_call_on_a_pool_thread_names_one_thread(logged: bool) -> None:
    """Fitting and projecting (two objectives, one an amount) on 2 threads: no pool thread's call leaves
    LightGBM's thread count to its default (all cores) or names another count. Without logged
    propensities the propensity model's fold models train side by side too."""
    training = book(300, 6, 0)
    if not logged:
        training = training.with_columns(pl.lit(None, dtype=pl.Float64).alias("propensity"))
    snapshot = training.head(50).select("account_id", "usage")
    with lightgbm_calls() as calls:
        model = EffectModel(PLAYBOOK, **FAST).fit(training)
        model.project(snapshot)
    pooled = [c for c in calls if c.thread != threading.main_thread().name]
    # The fold models, their held-out scores and the projection's objectives ran on pool threads.
    assert {c.function for c in pooled} >= {"LGBM_BoosterCreate", "LGBM_BoosterPredictForMat"}
    if not logged:
        assert model.propensity_model_.models_
    others = sorted({(c.function, c.threads, c.site) for c in pooled if c.threads != "1"})
    assert not others, f"LightGBM calls on pool threads not naming one thread: {others}"


def none_decisions(snapshot: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Every account of ``snapshot`` decided ``none`` by the model, and no runner-up: the least receipts need."""
    n = snapshot.height
    decisions = pl.DataFrame(
        {
            "account_id": snapshot.get_column("account_id"),
            "action_id": [NO_ACTION] * n,
            "variant": pl.Series([None] * n, dtype=pl.String),
            "arm": ["model"] * n,
            "propensity": [1.0] * n,
            "model_action_id": [NO_ACTION] * n,
            "default_action_id": [NO_ACTION] * n,
            "value_usd": [0.0] * n,
            "value_low_usd": [0.0] * n,
            "value_high_usd": [0.0] * n,
        }
    )
    lost = pl.DataFrame(schema=dict.fromkeys(("account_id", "action_id", "variant", "why", "reason"), pl.String))
    return decisions, lost


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_every_lightgbm_call_of_the_library_names_its_thread_count(n_jobs: int) -> None:
    """What a library user calls: an effect model's fit and projection (R-loss on, so its propensity model
    predicts), its propensity model's predictions, receipts with the trees' contributions, and the
    outcome models as ``nextmove health`` fits and predicts them. Every LightGBM call names a thread
    count: one on a pool thread, the model's ``n_jobs`` on the calling thread; with ``n_jobs=1`` (the
    default) every call names one, so two Python threads may call nextmove at once. The effect model's
    held-out scores, the receipts' contributions and the propensity and outcome models' predictions
    named none (all cores): beside another thread's one-thread call, a segfault."""
    training = book(300, 6, 0).with_columns(pl.lit(None, dtype=pl.Float64).alias("propensity"))
    snapshot = training.unique("account_id", keep="last", maintain_order=True).head(50).select("account_id", "usage")
    decisions, lost = none_decisions(snapshot)
    with lightgbm_calls() as calls:
        model = EffectModel(PLAYBOOK, **{**FAST, "n_jobs": n_jobs}, rloss_effect=True).fit(training)
        projection = model.project(snapshot)
        model.propensity_model_.predict_proba(snapshot)
        explain_decisions(snapshot, projection, decisions, lost, PLAYBOOK, model=model, contributions="tree")
        outcomes = OutcomeModels(PLAYBOOK, template=OutcomeModel(n_estimators=30, n_jobs=n_jobs)).fit(training)
        assert outcomes.kinds == ["win", "grow"]
        outcomes.predict(snapshot, top_k=2)
    # Each part made its own LightGBM calls.
    files = {c.site.split(":")[0] for c in calls}
    assert files >= {"models/effect.py", "models/propensity.py", "decide/explain.py", "models/outcome.py"}
    main = threading.main_thread().name
    assert n_jobs == 1 or any(c.thread != main for c in calls)  # fold models and objectives on pool threads
    unnamed = sorted({(c.function, c.site) for c in calls if c.threads is None})
    assert not unnamed, f"LightGBM calls naming no thread count (all cores): {unnamed}"
    # One thread on a pool thread; one or the model's n_jobs on the calling thread.
    others = sorted(
        {
            (c.thread == main, c.function, c.threads, c.site)
            for c in calls
            if c.threads not in ({"1", str(n_jobs)} if c.thread == main else {"1"})
        }
    )
    assert not others, f"LightGBM calls naming another count (on the calling thread?, function, count, line): {others}"


def test_a_projection_and_receipts_predict_each_booster_with_one_tree_count() -> None:
    """A projection and receipts with the trees' contributions, as two Python threads may make them at
    once: each fold model is predicted with one tree count. Predicting one booster with different
    counts at once gives wrong numbers (LightGBM issue #6142: setting a prediction up writes its
    rounds into the shared booster): the receipts' contributions used every tree grown, up to
    ``_PATIENCE`` rounds past the projection's count, and a projection beside receipts on another
    thread differed from its one-thread numbers about once in a thousand (11 of 9,883 results, 20-s runs)."""
    training = book(300, 6, 0)
    snapshot = training.unique("account_id", keep="last", maintain_order=True).head(50).select("account_id", "usage")
    decisions, lost = none_decisions(snapshot)
    model = EffectModel(PLAYBOOK, **{**FAST, "n_jobs": 1}).fit(training)
    boosters = {b._handle.value: fit.spec.objective for fit in model.fits_ for b in fit.boosters}
    # The trees grown past the count chosen, which a prediction naming none would use.
    assert any(b.current_iteration() > fit.n_trees for fit in model.fits_ for b in fit.boosters)
    with lightgbm_calls() as calls:
        projection = model.project(snapshot)
        explain_decisions(snapshot, projection, decisions, lost, PLAYBOOK, model=model, contributions="tree")
    rounds: dict[int, set[tuple[str, tuple[int, int] | None]]] = {}
    for c in calls:
        if c.booster in boosters:
            rounds.setdefault(c.booster, set()).add((c.site, c.trees))
    assert {c.site.split(":")[0] for c in calls if c.booster in boosters} == {"models/effect.py", "decide/explain.py"}
    mixed = sorted((boosters[b], sorted(seen, key=str)) for b, seen in rounds.items() if len({t for _, t in seen}) > 1)
    assert not mixed, f"fold models predicted with different rounds (objective, [(line, rounds)]): {mixed}"


@pytest.mark.slow
def test_projection_objectives_side_by_side_do_not_crash_lightgbm() -> None:
    """The projection's two objective threads, hammered for 8 s in a child process: an amount
    objective's baseline beside an event objective's. When the amount's predict left LightGBM's thread
    count to its default, the child died of a segmentation fault within about 5 s (7 runs out of 7)."""
    script = textwrap.dedent(
        f"""
        import runpy, threading, time

        here = runpy.run_path({str(Path(__file__))!r})
        book, PLAYBOOK, FAST, EffectModel = here["book"], here["PLAYBOOK"], here["FAST"], here["EffectModel"]
        training = book(400, 6, 0)
        model = EffectModel(PLAYBOOK, **FAST).fit(training)
        win, grow = model.fits_
        assert grow.amount_boosters and win.boosters
        x = model._transform(training.head(4).select("account_id", "usage"))
        stop = time.perf_counter() + 8.0

        def amounts():
            while time.perf_counter() < stop:
                model._baseline_amounts(grow, x)

        def logits():
            while time.perf_counter() < stop:
                model._baseline_logits(win, x, parallel=False)

        threads = [threading.Thread(target=amounts), threading.Thread(target=logits)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print("survived")
        """
    )
    root = Path(__file__).resolve().parents[2]  # the child imports this file, which imports tests.lightgbm_calls
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False, cwd=root
    )
    assert done.returncode == 0, f"the child ended with {done.returncode} (-11: a segfault): {done.stderr[-2000:]}"
    assert "survived" in done.stdout
