"""Benchmark of the feedback loop in the closed-loop lab: 26 weeks of decide → environment → feedback.

Two (or three) arms run on identical worlds (the same ``SimConfig``: accounts, 12 months of
history, seed) with the default playbook, whose decision window is 14 days, so 26 weeks are 13
windows. Every window each arm decides for every active account with the product's run
(:func:`nextmove.engine.run.run`: features, the effect model's projection, rules, allocation under
the playbook's capacities, 10 % control, Thompson exploration with logged propensities), the lab
carries the decisions out and answers with what followed, and the true value of the decisions is
read off the hidden world (its exact outcome probabilities, so no outcome noise).

- ``static``: the effect model fitted once on the history; every window decides with it
  (``reuse_model``) and never learns;
- ``learning``: the loop of :mod:`nextmove.engine.loop` as a team would run it: every window the
  decisions are logged in the store, and once a decision's 90-day horizon is over its realised
  dollars go back as an ``outcome`` feedback event (idempotent by event id), which moves the online
  decider's per-action corrections; the next window's decision applies them
  (:func:`~nextmove.engine.loop.decide_with_corrections`); the effect model is refitted on the
  grown book every ``--refit-every`` windows (the run's ``FAST_EFFECT_PARAMS``);
- ``lowering`` (optional): the learning arm with only the corrections that lower an action's value
  (``decide_with_corrections(..., lower_only=True)``): feedback can take an action away from
  accounts, never hand it to more;
- ``refit`` (optional): the learning arm's refits without the online corrections, to tell the two
  apart;
- ``oracle`` (optional): a yardstick, not a policy: every window each account gets what the
  constrained oracle picks from the lab's truth at that time (same capacities, the truth's
  eligibility; :func:`nextmove.engine.run.oracle_choice`), no control or exploration. It knows
  this window's truth but not what a touch does to later windows (myopic), so its trajectory shows
  what the world itself lets a perfect one-window policy do over 26 weeks. ``--oracle-price P``
  charges it P USD per touch before allocating (it acts only where the truth beats P).

``--touch-price P`` does the same for the policies: every projection the arms make takes P USD off
each action's value and interval (not off ``none``), a fixed price of contact. Costs, budgets and the
lab's truth stay as they are.

With ``--contact`` the learning arms also log each decision's contact context (``calm`` / ``busy``:
fewer or more than 2 touches in the 60 days before, :func:`~nextmove.engine.loop.contact_contexts`)
and apply one correction per action and context. ``--param KEY=VALUE`` (repeatable) passes an
``EffectModel`` setting to every arm's fits (``run(..., effect_params=…)``), e.g.
``--param touch_cost_feature=touch_any_count_28d``. ``--risk-aversion K`` makes every arm's
allocation rank ``value − K × sd`` (``run(..., risk_aversion=K)``; the learning arms' re-decision
with their corrections reuses the run's settings).

Printed per window: each arm's true value per decision (dollars over doing nothing, net of cost),
the oracle's (each account's best eligible action under the truth, without capacities) and the
regret share 1 − value / oracle; at the end, the OLS slope of the learning arm's value per decision
over the weeks (with its standard error), the same for learning − static, and the last-4-windows
difference learning − static, paired by account, with its standard error; the mean value per
decision and its share of the oracle's (per window, then averaged) in windows 1–7 and 8–13, before
and after the first feedback. With several seeds,
the same per seed and the mean over seeds. For the learning arms, two checks of the feedback: per
action, the fed-back value against the lab's true value of the same decisions, and the observed
variance of the gaps the learner moves with (``OnlineLearner`` takes that noise into account).

Per arm, the second half's windows are also split by decision arm (``model``, ``control``,
``explore``): each one's mean true value and mean oracle value, since the per-window value mixes
the model's decisions with the control cohort's lifecycle defaults and the exploration's draws.

Each model an arm fits is also scored on the **week-0 book**: the book as it was before the loop's
first decision, with its exact truth, decided with the real rules and capacities (no online
corrections, no control or exploration). The loop's own windows get harder as it acts (repeats,
cooldowns, accounts already expanded), for the oracle too; the same book for every model shows
whether the models themselves get better. Printed per arm: each model's true value per decision
and regret share there; over seeds, the last model's value minus the first's. At the end the
static arm also fits the run's model on the decisions made before the loop began and no others
(their horizons have closed by then) and scores it the same way: what waiting for outcomes alone
gains, apart from the loop's own decisions.

Target: the learning arm's true value rises week over week (slope > 0) and ends above static's.
Measured in docs/learning.md (1,000 accounts, seeds 1–9). With the ``oracle`` arm the bench also
prints each arm's value as a share of the oracle arm's, and that share's slope: the oracle arm's
own value falls as it uses up the accounts, so the share is what a policy can be held to.

    .venv/bin/python bench/closed_loop.py                                    # 1,000 accounts, 13 windows, seed 1
    .venv/bin/python bench/closed_loop.py --accounts 300 --windows 6         # a quick check
    .venv/bin/python bench/closed_loop.py --arms static learning lowering refit --seeds 1 2 3 --json out.json
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from _util import DecisionInputs, decide_and_score, decision_inputs, effect_params, machine

ARMS = ("static", "learning", "lowering", "refit", "oracle")
LEARNING = ("learning", "lowering")


@dataclass
class ArmLog:
    """What one arm did and got, window by window."""

    name: str
    value: list[float] = field(default_factory=list)
    """True value per decision (USD over doing nothing, net of cost)."""
    oracle: list[float] = field(default_factory=list)
    acting: list[float] = field(default_factory=list)
    """Share of accounts given an action."""
    refits: list[int] = field(default_factory=list)
    feedback: list[tuple[int, int, int]] = field(default_factory=list)
    """(events sent, stored, learned) per window."""
    corrections: dict[str, float] = field(default_factory=dict)
    """The learner's posterior mean gap per action at the end (in projection spreads)."""
    gaps: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per action: outcome events, mean and variance of the observed gaps z."""
    attribution: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per action: mean projected value, mean true value and mean fed-back value of the decisions with feedback."""
    seconds: float = 0.0
    per_account: list[dict[str, float]] = field(default_factory=list, repr=False)
    """Per window: account → true value of its decision (for paired differences)."""
    fixed: list[tuple[int, float, float]] = field(default_factory=list)
    """Per model the arm had (window of its fit): the true value per decision and the regret share of
    that model's decisions on the *week-0 book* (the same accounts and state for every model)."""
    by_decision_arm: list[dict[str, tuple[int, float, float]]] = field(default_factory=list)
    """Per window and decision arm (``model``, ``control``, ``explore``): decisions, mean true value and
    mean oracle value, so the model's own decisions can be told from the control's and exploration's."""
    history_only: tuple[float, float] | None = None
    """Static arm, at the end: a model fitted on the decisions made before the loop began (their
    horizons closed meanwhile) and none of the loop's, scored on the week-0 book like ``fixed``."""


def history_only_model(env: Any, playbook: Any, reference: DecisionInputs, seed: int, params: dict[str, Any]) -> Any:
    """The run's effect model fitted now on the decisions made before the loop began, and no others."""
    import polars as pl

    from nextmove.engine.run import FAST_EFFECT_PARAMS
    from nextmove.features import build_training_set
    from nextmove.models.effect import EffectModel

    training = build_training_set(env.book(), playbook, as_of=env.now).filter(pl.col("decision_ts") < reference.as_of)
    return EffectModel(playbook, **{**FAST_EFFECT_PARAMS, "random_state": seed, **params}).fit(training)


def score_on_reference(ref: DecisionInputs, model: Any, playbook: Any) -> tuple[float, float]:
    """A model's decisions on the week-0 book (rules, capacities; no corrections): true value per
    decision of the learned allocation and its regret share against the constrained oracle."""
    regret = decide_and_score(ref, model, playbook)
    return regret["model_value_usd"] / len(ref.owners), regret["model_regret_share"]


def run_arm(
    name: str,
    *,
    accounts: int,
    months: int,
    seed: int,
    windows: int,
    refit_every: int,
    contact: bool = False,
    effect_params: dict[str, Any] | None = None,
    risk_aversion: float = 0.0,
    oracle_price: float = 0.0,
) -> ArmLog:
    """Run one arm for ``windows`` decision windows on the world of ``seed``."""
    import polars as pl

    from nextmove.engine.loop import (
        contact_contexts,
        decide_with_corrections,
        decision_records,
        outcome_feedback,
        send_feedback,
    )
    from nextmove.engine.online import OnlineDecider
    from nextmove.engine.run import load_effect_model, run
    from nextmove.sim import LabEnvironment, SimConfig
    from nextmove.store import open_store

    started = time.perf_counter()
    env = LabEnvironment(SimConfig(accounts=accounts, months=months, seed=seed))
    playbook = env.history.config.resolved_playbook()
    horizon_days = playbook.horizon_days
    log = ArmLog(name)
    quiet: dict[str, Any] = {
        "evidence": False,
        "evaluate": False,
        "segments": False,
        "effect_params": effect_params or {},
        "risk_aversion": risk_aversion,
    }
    # The book before the loop's first decision, with its truth: every model is also scored on it.
    # The oracle arm's choices do not come from its model, so there is nothing to score.
    reference = None if name == "oracle" else decision_inputs(env.book(), playbook, env.now, env.true_values())
    with open_store("sqlite://") as store:
        decider: OnlineDecider | None = None
        truth: dict[str, float] = {}
        for w in range(windows):
            refit = w == 0 or (name not in ("static", "oracle") and w % refit_every == 0)
            result = run(env.book(), playbook, as_of=env.now, store=store, seed=seed, reuse_model=not refit, **quiet)
            if refit:
                log.refits.append(w)
            if refit and reference is not None:
                model, _ = load_effect_model(store, playbook)
                log.fixed.append((w, *score_on_reference(reference, model, playbook)))
            contexts = contact_contexts(env.book(), env.now) if name in LEARNING and contact else None
            if name in LEARNING:
                if decider is None:
                    decider = OnlineDecider(store, playbook)
                decisions = decide_with_corrections(
                    result,
                    playbook,
                    decider.learner,
                    seed=seed,
                    contexts=contexts,
                    lower_only=name == "lowering",
                )
            else:
                assert result.decisions is not None
                decisions = result.decisions
            if name in LEARNING:
                store.log_decisions(decision_records(decisions, result, playbook, contexts=contexts))
            if name == "oracle":
                chosen = oracle_frame(decisions, env.true_values(), price=oracle_price)
            else:
                chosen = decisions.frame().select("account_id", "action_id", "variant", "propensity", "arm")
            step = env.step(chosen)
            decided = step.values.filter(pl.col("decided"))
            log.value.append(float(decided.get_column("value_usd").mean() or 0.0))  # type: ignore[arg-type]
            log.oracle.append(float(decided.get_column("oracle_value_usd").mean() or 0.0))  # type: ignore[arg-type]
            log.acting.append(float((decided.get_column("action_id") != "none").mean() or 0.0))  # type: ignore[arg-type]
            by_arm = (
                decided.join(chosen.select("account_id", pl.col("arm").alias("decision_arm")), on="account_id")
                .group_by("decision_arm")
                .agg(pl.len(), pl.col("value_usd").mean(), pl.col("oracle_value_usd").mean())
            )
            log.by_decision_arm.append({r[0]: (int(r[1]), float(r[2]), float(r[3])) for r in by_arm.iter_rows()})
            log.per_account.append(
                dict(zip(decided["account_id"].to_list(), decided["value_usd"].to_list(), strict=True))
            )
            if name in LEARNING:
                truth.update((f"{result.run_id}/{k}", v) for k, v in log.per_account[-1].items())
            if name in LEARNING and decider is not None:
                # Decisions whose horizon closed during this window; older ones were sent before
                # (sending them again would be harmless: event ids make it idempotent).
                since = step.now - _days(horizon_days + playbook.contact_policy.window_days)
                events = outcome_feedback(store.decisions(since=since), env.book(), playbook, step.now)
                receipt = send_feedback(store, decider, events)
                log.feedback.append((receipt.events, receipt.stored, receipt.learned))
            print(
                f"  seed {seed} {name} window {w + 1}/{windows}: {log.value[-1]:.1f} per decision"
                f"{' (refit)' if refit else ''}; {time.perf_counter() - started:.0f} s",
                file=sys.stderr,
                flush=True,
            )
        if name == "static" and reference is not None:
            model = history_only_model(env, playbook, reference, seed, effect_params or {})
            log.history_only = score_on_reference(reference, model, playbook)
        if decider is not None:
            log.corrections = {c.action_key: round(c.mean_z, 3) for c in decider.learner.corrections()}
            log.gaps = observed_gaps(store, decider.learner.z)
            log.attribution = attribution_check(store, truth)
    log.seconds = time.perf_counter() - started
    return log


@contextlib.contextmanager
def touch_price_on(price: float) -> Iterator[None]:
    """While open, every ``EffectModel.project`` takes ``price`` USD off each action's projected value
    and interval (not off ``none``): the policy acts only where the projection beats the price. The
    costs, and so the teams' budgets and the lab's truth, stay as they are."""
    from nextmove.models.effect import EffectModel

    if not price:
        yield
        return
    original = EffectModel.project

    def project(self: Any, snapshot: Any, *, level: float | None = None) -> Any:
        projection = original(self, snapshot, level=level)
        values = _charged(projection.values, price, ("value_usd", "low", "high"))
        return dataclasses.replace(projection, values=values)

    EffectModel.project = project  # type: ignore[method-assign]
    try:
        yield
    finally:
        EffectModel.project = original  # type: ignore[method-assign]


def _charged(frame: Any, price: float, columns: tuple[str, ...]) -> Any:
    """``frame`` (``action_id`` and dollar ``columns``) with ``price`` USD taken off every action but ``none``."""
    import polars as pl

    charge = pl.when(pl.col("action_id") == "none").then(0.0).otherwise(price)
    return frame.with_columns((pl.col(c) - charge).alias(c) for c in columns)


def oracle_frame(decisions: Any, truth: Any, *, price: float = 0.0) -> Any:
    """The constrained oracle's decisions for every account of ``decisions``, as ``env.step`` takes them.

    ``price`` (USD) is charged for every touch before allocating: the oracle then acts only where
    this window's true value exceeds it, a fixed stand-in for what a touch takes from later windows."""
    import polars as pl

    from nextmove.engine.run import oracle_choice

    choice = oracle_choice(decisions, _charged(truth, price, ("value_usd",)) if price else truth)
    cands = decisions.candidates
    return pl.DataFrame(
        {
            "account_id": list(decisions.account_ids),
            "action_id": [cands[j].action_id if j >= 0 else "none" for j in choice],
            "variant": [cands[j].variant if j >= 0 else None for j in choice],
            "propensity": 1.0,
            "arm": "model",
        },
        schema_overrides={"variant": pl.String},
    )


def _gap(decision: Any, event: Any, z_level: float) -> tuple[str, float] | None:
    """The action key and the gap z of one outcome event (None when the decision has no spread)."""
    ctx = decision.context
    spread = (ctx["projected_high_usd"] - ctx["projected_low_usd"]) / (2.0 * z_level)
    if spread <= 0:
        return None
    key = decision.action_id if decision.variant is None else f"{decision.action_id}:{decision.variant}"
    return key, (event.payload["value_usd"] - ctx["projected_value_usd"]) / spread


def _keys(decision: Any, key: str) -> list[str]:
    """The action key of a decision, and its key in the decision's contact context when it was logged with one."""
    contact = decision.context.get("contact")
    return [key, f"{key}@{contact}"] if isinstance(contact, str) and decision.action_id != "none" else [key]


def observed_gaps(store: Any, z_level: float) -> dict[str, dict[str, float]]:
    """Per action, the gaps z = (realised − projected) / spread of the stored outcome events."""
    by_action: dict[str, list[float]] = {}
    for event in store.feedback():
        if event.kind != "outcome":
            continue
        decision = store.get_decision(event.payload["decision_id"])
        gap = _gap(decision, event, z_level)
        if gap is not None:
            for key in _keys(decision, gap[0]):
                by_action.setdefault(key, []).append(gap[1])
    out = {}
    for key, zs in sorted(by_action.items()):
        z = np.array(zs)
        var = float(z.var(ddof=1)) if len(z) > 1 else float("nan")
        out[key] = {"n": len(z), "mean_z": float(z.mean()), "var_z": var}
    return out


def attribution_check(store: Any, truth: dict[str, float]) -> dict[str, dict[str, float]]:
    """Per action, over the decisions that got outcome feedback: projected, true and fed-back value (lab only).

    The fed-back value (realised dollars minus the projected do-nothing baseline) estimates the
    true value plus the baseline's error on those accounts: their difference is that error.
    """
    rows: dict[str, list[tuple[float, float, float]]] = {}
    for event in store.feedback():
        if event.kind != "outcome":
            continue
        d = store.get_decision(event.payload["decision_id"])
        if d.decision_id not in truth:
            continue
        key = d.action_id if d.variant is None else f"{d.action_id}:{d.variant}"
        for k in _keys(d, key):
            rows.setdefault(k, []).append(
                (d.context["projected_value_usd"], truth[d.decision_id], float(event.payload["value_usd"]))
            )
    out = {}
    for key, values in sorted(rows.items()):
        a = np.array(values)
        se = float(a[:, 2].std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else float("nan")
        out[key] = {
            "n": len(a),
            "projected": float(a[:, 0].mean()),
            "true": float(a[:, 1].mean()),
            "fed_back": float(a[:, 2].mean()),
            "fed_back_se": se,
        }
    return out


def _days(n: int) -> Any:
    from datetime import timedelta

    return timedelta(days=n)


def ols_slope(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Slope of ``y`` on ``x`` and its standard error (OLS, residual variance on n − 2 degrees of freedom)."""
    xc = x - x.mean()
    sxx = float((xc**2).sum())
    slope = float((xc * (y - y.mean())).sum() / sxx)
    resid = y - y.mean() - slope * xc
    se = math.sqrt(float((resid**2).sum()) / max(len(x) - 2, 1) / sxx)
    return slope, se


def paired_difference(a: list[dict[str, float]], b: list[dict[str, float]]) -> tuple[float, float, int]:
    """Mean over windows of the per-account difference a − b (accounts in both arms that window), with its SE.

    The SE treats accounts as independent within a window and sums the windows' variances
    (the same account in several windows makes it somewhat optimistic).
    """
    means, variances, n_total = [], [], 0
    for wa, wb in zip(a, b, strict=True):
        common = sorted(set(wa) & set(wb))
        d = np.array([wa[k] - wb[k] for k in common])
        means.append(float(d.mean()))
        variances.append(float(d.var(ddof=1)) / len(d))
        n_total += len(d)
    k = len(means)
    return float(np.mean(means)), math.sqrt(sum(variances)) / k, n_total


def _shares(log: ArmLog) -> list[float | None]:
    """Per window, the arm's true value as a share of the oracle's (None when the oracle's is 0)."""
    return [round(v / o, 4) if o else None for v, o in zip(log.value, log.oracle, strict=True)]


def report(logs: dict[str, ArmLog], seed: int) -> dict[str, Any]:
    """Print the per-window table and the summary of one seed; return its figures."""
    names = list(logs)
    windows = len(logs[names[0]].value)
    print(f"\nseed {seed}: true value per decision (USD over doing nothing, net of cost); regret = 1 − value/oracle")
    head = "window week " + " ".join(f"{n:>10} {'regret':>7}" for n in names) + f" {'oracle':>9}"
    if "learning" in logs and "static" in logs:
        head += f" {'learn−stat':>10}"
    print(head)
    for w in range(windows):
        oracle = logs[names[0]].oracle[w]
        cells = " ".join(f"{logs[n].value[w]:10.1f} {1 - logs[n].value[w] / logs[n].oracle[w]:7.1%}" for n in names)
        line = f"{w + 1:6d} {2 * (w + 1):4d} {cells} {oracle:9.1f}"
        if "learning" in logs and "static" in logs:
            line += f" {logs['learning'].value[w] - logs['static'].value[w]:10.1f}"
        marks = [f"refit({n})" for n in names if w in logs[n].refits and w > 0]
        learners = [n for n in names if n in LEARNING]
        fb = logs[learners[0]].feedback[w] if learners else None
        if fb and fb[0]:
            marks.append(f"feedback {fb[0]} sent, {fb[2]} learned")
        print(line + ("  " + ", ".join(marks) if marks else ""))
    weeks = 2.0 * np.arange(1, windows + 1)
    out: dict[str, Any] = {"seed": seed, "windows": windows, "arms": {}}
    for n in names:
        slope, se = ols_slope(weeks, np.array(logs[n].value))
        # The share of the oracle's value captured takes out what the world does to every arm alike.
        captured, captured_se = ols_slope(weeks, np.array(logs[n].value) / np.array(logs[n].oracle))
        out["arms"][n] = {
            "value": [round(v, 2) for v in logs[n].value],
            "oracle": [round(v, 2) for v in logs[n].oracle],
            "acting_share": [round(v, 3) for v in logs[n].acting],
            "oracle_share": _shares(logs[n]),
            "slope_per_week": slope,
            "slope_se": se,
            "captured_slope_per_week": captured,
            "captured_slope_se": captured_se,
            "refits": logs[n].refits,
            "feedback": logs[n].feedback,
            "corrections_z": logs[n].corrections,
            "seconds": round(logs[n].seconds, 1),
            "fixed_book": [
                {"window": w, "value_per_decision": round(v, 2), "regret_share": round(r, 4)}
                for w, v, r in logs[n].fixed
            ],
            "by_decision_arm": [
                {a: {"decisions": k, "value": round(v, 2), "oracle": round(o, 2)} for a, (k, v, o) in w.items()}
                for w in logs[n].by_decision_arm
            ],
        }
        if logs[n].history_only is not None:
            v, r = logs[n].history_only
            out["arms"][n]["history_only"] = {"value_per_decision": round(v, 2), "regret_share": round(r, 4)}
        print(
            f"{n:>11}: slope {slope:+.2f} ± {se:.2f} USD per decision per week; share of the oracle captured "
            f"{100 * captured:+.2f} ± {100 * captured_se:.2f} points per week; {logs[n].seconds:.0f} s"
        )
        late = logs[n].by_decision_arm[windows // 2 :]
        parts = []
        for a in ("model", "control", "explore"):
            cells = [w[a] for w in late if a in w]
            if cells:
                k = sum(c[0] for c in cells)
                v, o = (sum(c[0] * c[i] for c in cells) / k for i in (1, 2))
                parts.append(f"{a} {v:.1f} (oracle {o:.1f}, {k} decisions)")
        print(f"{'':>13}by decision arm, windows {windows // 2 + 1}–{windows}: " + "; ".join(parts))
        if logs[n].fixed:
            fixed = ", ".join(f"week {2 * w}: {v:.1f} ({r:.1%})" for w, v, r in logs[n].fixed)
            print(f"{'':>13}its models on the week-0 book, value per decision (regret): {fixed}")
        if logs[n].history_only is not None:
            v, r = logs[n].history_only
            print(f"{'':>13}refitted at the end on the pre-loop decisions alone, on the week-0 book: {v:.1f} ({r:.1%})")
    for n in names:
        if n == "static" or "static" not in logs:
            continue
        diff = np.array(logs[n].value) - np.array(logs["static"].value)
        slope, se = ols_slope(weeks, diff)
        last = min(4, windows)
        mean, dse, pairs = paired_difference(logs[n].per_account[-last:], logs["static"].per_account[-last:])
        final, fse, _ = paired_difference(logs[n].per_account[-1:], logs["static"].per_account[-1:])
        out["arms"][n]["vs_static"] = {
            "slope_per_week": slope,
            "slope_se": se,
            f"last_{last}_windows_diff": mean,
            f"last_{last}_windows_se": dse,
            "final_window_diff": final,
            "final_window_se": fse,
            "pairs": pairs,
        }
        print(
            f"{n} − static: slope {slope:+.2f} ± {se:.2f} per week; last {last} windows {mean:+.2f} ± {dse:.2f} "
            f"(paired, {pairs} account-windows); final window {final:+.2f} ± {fse:.2f}"
        )
    for arm in (n for n in names if n in LEARNING and logs[n].attribution):
        print(f"feedback against the truth, {arm} arm (per action, decisions with feedback; USD per decision):")
        print(f"  {'action':>28} {'n':>5} {'projected':>10} {'true':>9} {'fed back':>9} {'± SE':>7}")
        for key, a in logs[arm].attribution.items():
            print(
                f"  {key:>28} {int(a['n']):5d} {a['projected']:10.1f} {a['true']:9.1f} {a['fed_back']:9.1f} "
                f"{a['fed_back_se']:7.1f}"
            )
        out["arms"][arm]["attribution"] = logs[arm].attribution
    for arm in (n for n in names if n in LEARNING and logs[n].gaps):
        print(f"online corrections of the {arm} arm: action, outcome events, the learner's posterior mean gap (z),")
        print("  and the observed mean and variance of z (the learner's noise, before pooling):")
        for key, g in logs[arm].gaps.items():
            print(
                f"  {key:>28}: {int(g['n']):5d} events, learner {logs[arm].corrections.get(key, 0.0):+6.2f}, "
                f"observed mean {g['mean_z']:+7.2f} variance {g['var_z']:9.1f}"
            )
        out["arms"][arm]["gaps"] = logs[arm].gaps
    return out


def print_halves(results: list[dict[str, Any]], arms: list[str]) -> None:
    """Per arm, the mean over seeds of the value per decision and its share of the oracle's, in three parts.

    Windows 1–7 and 8–13 are before and after the first feedback. Window 1 is also shown alone, with
    2–7 after it: it is the only window whose accounts the loop has not touched yet, so its value
    (and the oracle's) is far above any later window's. The share (value / oracle per window, then
    averaged) takes out what the world does to every arm alike. Last, the OLS slope of the value per
    decision over the weeks from window 2 on, mean ± SE across seeds.
    """
    windows = results[0]["windows"]
    first = min(7, windows)
    parts = [
        (f"windows 1–{first}", slice(0, first)),
        (f"windows {first + 1}–{windows}", slice(first, windows)),
        ("window 1", slice(0, 1)),
        (f"windows 2–{first}", slice(1, first)),
    ]
    print("\nmean over seeds: value per decision (USD) and share of the oracle's value per window")
    for label, part in parts:
        if part.start >= min(part.stop, windows):
            continue
        cells = []
        for n in arms:
            value = np.mean([np.mean(r["arms"][n]["value"][part]) for r in results])
            share = np.mean([np.mean(np.array(r["arms"][n]["value"][part]) / np.array(r["arms"][n]["oracle"][part]))
                             for r in results])  # fmt: skip
            cells.append(f"{n} {value:7.1f} ({share:6.1%})")
        oracle = np.mean([np.mean(r["arms"][arms[0]]["oracle"][part]) for r in results])
        print(f"  {label:>13}: " + "; ".join(cells) + f"; oracle {oracle:.1f}")
    if windows > 3:
        weeks = 2.0 * np.arange(2, windows + 1)
        for n in arms:
            slopes = np.array([ols_slope(weeks, np.array(r["arms"][n]["value"][1:]))[0] for r in results])
            se = slopes.std(ddof=1) / math.sqrt(len(slopes)) if len(slopes) > 1 else float("nan")
            print(f"  {n:>9}: slope from window 2 {slopes.mean():+.2f} ± {se:.2f} USD per decision per week")
        print("  the model's own decisions (not the control cohort's defaults, not exploration), from window 2:")
        for n in arms:
            values = [np.array([w["model"]["value"] for w in r["arms"][n]["by_decision_arm"][1:]]) for r in results]
            oracles = [np.array([w["model"]["oracle"] for w in r["arms"][n]["by_decision_arm"][1:]]) for r in results]
            slopes = np.array([ols_slope(weeks, v)[0] for v in values])
            shares = np.array([ols_slope(weeks, v / o)[0] for v, o in zip(values, oracles, strict=True)])
            late = np.array([v[len(v) // 2 :].mean() for v in values])
            print(
                f"  {n:>9}: slope {_mean_se(slopes, '+.2f')} USD per decision per week ({int((slopes > 0).sum())} of "
                f"{len(slopes)} seeds above 0); share of their oracle {_mean_se(100 * shares, '+.2f')} points per "
                f"week; second half {_mean_se(late, '.1f')} USD per decision"
            )
    if "oracle" in arms and len(arms) > 1:
        print_oracle_shares(results, [n for n in arms if n != "oracle"], parts)


def print_oracle_shares(results: list[dict[str, Any]], arms: list[str], parts: list[tuple[str, slice]]) -> None:
    """Per arm, its value as a share of the oracle arm's in the same seed's world, in the same parts,
    and the OLS slope of that share per window from window 2 (mean ± SE across seeds). The oracle
    arm's own value falls as it uses up the accounts, so this is what a policy can be held to."""
    print(
        "  share of the oracle arm's value (a perfect one-window policy run in the same world), mean ± SE across seeds:"
    )
    oracle = np.array([r["arms"]["oracle"]["value"] for r in results])
    windows = oracle.shape[1]
    # Window 1, then the rest of the first half, then the second half (when the run has one).
    shown = [(label, part) for label, part in [*parts[2:], parts[1]] if part.start < min(part.stop, windows)]
    for n in arms:
        value = np.array([r["arms"][n]["value"] for r in results])
        cells = [f"{label} {_mean_se(100 * value[:, part].mean(axis=1) / oracle[:, part].mean(axis=1), '.1f')} %"
                 for label, part in shown]  # fmt: skip
        line = f"  {n:>9}: " + "; ".join(cells)
        if windows > 3:
            weeks = 2.0 * np.arange(2, windows + 1)
            slopes = np.array([ols_slope(weeks, v[1:] / o[1:])[0] for v, o in zip(value, oracle, strict=True)])
            above = int((slopes > 0).sum())
            line += f"; slope from window 2 {_mean_se(100 * slopes, '+.2f')} points per week"
            line += f" ({above} of {len(slopes)} seeds above 0)"
        print(line)


def _mean_se(x: np.ndarray, spec: str) -> str:
    """``mean ± SE`` across seeds (SE nan with one seed)."""
    se = x.std(ddof=1) / math.sqrt(len(x)) if len(x) > 1 else float("nan")
    return f"{format(float(x.mean()), spec)} ± {format(float(se), spec.lstrip('+'))}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--months", type=int, default=12, help="months of history before the loop starts")
    parser.add_argument("--windows", type=int, default=13, help="decision windows (14 days each: 13 = 26 weeks)")
    parser.add_argument("--refit-every", type=int, default=3, help="refit the learning arms every N windows")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=["static", "learning"])
    parser.add_argument(
        "--contact",
        action="store_true",
        help="learning arms learn and apply one correction per action and contact context (calm / busy)",
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        help="EffectModel setting for every arm, e.g. touch_cost_feature=touch_any_count_28d (repeatable)",
    )
    parser.add_argument(
        "--risk-aversion",
        type=float,
        default=0.0,
        help="every arm ranks value − this × sd in the allocation (run's risk_aversion; default 0)",
    )
    parser.add_argument(
        "--oracle-price",
        type=float,
        default=0.0,
        help="the oracle arm charges this many USD per touch before allocating (default 0: myopic)",
    )
    parser.add_argument(
        "--touch-price",
        type=float,
        default=0.0,
        help="every arm's projections take this many USD off each action's value (costs and budgets unchanged)",
    )
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args(argv)
    params = effect_params(args.param)

    print(
        f"closed loop: {args.accounts} accounts, {args.months} months of history, {args.windows} windows, "
        f"refit every {args.refit_every}; arms {', '.join(args.arms)}; seeds {args.seeds}"
    )
    print(f"machine: {machine()}")
    results = []
    for seed in args.seeds:
        with touch_price_on(args.touch_price):
            logs = {
                name: run_arm(
                    name,
                    accounts=args.accounts,
                    months=args.months,
                    seed=seed,
                    windows=args.windows,
                    refit_every=args.refit_every,
                    contact=args.contact,
                    effect_params=params,
                    risk_aversion=args.risk_aversion,
                    oracle_price=args.oracle_price,
                )
                for name in args.arms
            }
        results.append(report(logs, seed))
        sys.stdout.flush()
        if args.json:  # after every seed, so that a long run leaves its figures as it goes
            payload = {"args": vars(args) | {"json": str(args.json)}, "seeds": results}
            args.json.write_text(json.dumps(payload, indent=2))
    print_halves(results, args.arms)
    if len(results) > 1:
        print("\nover seeds (mean ± SE across seeds):")
        for n in args.arms:
            slopes = np.array([r["arms"][n]["slope_per_week"] for r in results])
            print(f"{n:>9}: slope {slopes.mean():+.2f} ± {slopes.std(ddof=1) / math.sqrt(len(slopes)):.2f} per week")
            fixed = [r["arms"][n]["fixed_book"] for r in results]
            if len(fixed[0]) > 1:
                gain = np.array([f[-1]["value_per_decision"] - f[0]["value_per_decision"] for f in fixed])
                drop = np.array([f[-1]["regret_share"] - f[0]["regret_share"] for f in fixed])
                print(
                    f"{n:>9}: on the week-0 book, last model − first {_mean_se(gain, '+.2f')} USD per decision, "
                    f"regret {_mean_se(100 * drop, '+.1f')} points"
                )
            if "vs_static" in results[0]["arms"][n]:
                key = next(k for k in results[0]["arms"][n]["vs_static"] if k.endswith("_windows_diff"))
                d = np.array([r["arms"][n]["vs_static"][key] for r in results])
                print(f"{n} − static, {key}: {d.mean():+.2f} ± {d.std(ddof=1) / math.sqrt(len(d)):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
