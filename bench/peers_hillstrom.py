"""Policies on real data: nextmove beside CausalML, EconML and scikit-uplift on the Hillstrom e-mail test.

Hillstrom (``../shared/data/hillstrom.csv``) is a randomised test: 64,000 customers, one third each
got the men's e-mail, the women's e-mail or none, with a known propensity of 1/3. Each split seed
cuts it 50/50 (the test half is ``train_test_split(numpy.arange(64000), test_size=0.5,
random_state=seed)[1]``; seed 0 is the data README's fixed split). On the train half every learner
fits, per objective (visits, and dollars spent), a model of what each e-mail causes; its policy
sends each test customer the e-mail of highest estimated effect, or none when no effect is above 0.
On the test half each policy is scored by inverse propensity weighting (IPS, propensity 1/3) with
nextmove's ``evaluate_policy``, and compared with nextmove's policy, the single arms, nobody and a
uniformly random arm by paired differences (``policy_difference``) with their standard errors.

- **nextmove**: ``EffectModel(playbook)`` with its defaults (``n_jobs`` aside), fitted on the train
  half's rows of ``build_training_set`` of the Hillstrom book with a one-objective playbook; the
  policy is ``project(test).best()``.
- **peers**: the same customer columns (numbers as they are, text one-hot), the arm and the outcome.
  Every peer's nuisance and outcome models are one LightGBM setting (``--trees`` trees, 0.05
  learning rate, 15 leaves, 100 rows per leaf), so the comparison is of the causal method, not
  of the booster. Peers that take one treatment (scikit-uplift) fit one model per e-mail against
  no e-mail. The uplift random forest takes a binary outcome (visits only); the class
  transformation uses its regression form (``ClassTransformationReg``) on spend.

Fit time is the learner's ``fit`` on the train half; predict time is scoring the test half and
choosing each customer's arm. The book, its training set and the peers' matrix are built once,
not timed per learner (the training set's time is printed).

The peers are bench-only dependencies, imported lazily; missing ones are named and skipped::

    python -m venv .venv-bench && .venv-bench/bin/pip install -e '.[bench]'
    .venv-bench/bin/python bench/peers_hillstrom.py                 # 5 split seeds, every peer
    .venv-bench/bin/python bench/peers_hillstrom.py --seeds 0 --trees 50   # a quick run
    .venv/bin/python bench/peers_hillstrom.py --param n_folds=3            # nextmove with another setting

The data path: ``--data``, else ``NEXTMOVE_HILLSTROM``, else ``../shared/data/hillstrom.csv``
relative to the repository. Without the file, the bench says so and exits 0.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from _util import effect_params, machine, timed

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / ".." / "shared" / "data" / "hillstrom.csv"
OBJECTIVES = ("visit", "spend")
PEER_PACKAGES = {"causalml": "causalml", "econml": "econml", "scikit-uplift": "sklift"}
"""Distribution name → module name of each peer library."""
INSTALL = "python -m venv .venv-bench && .venv-bench/bin/pip install -e '.[bench]'"


# ---- data ------------------------------------------------------------------------------------


@dataclass
class Data:
    """The Hillstrom training set (one row per customer, in file order) and what the learners need."""

    training: pl.DataFrame
    arms: list[str]
    """The e-mails (the playbook's actions), without ``none``."""
    positions: np.ndarray
    """Each training row's position in the file."""
    build_seconds: float


def load(path: Path, rows: int | None) -> Data:
    """Load the book and build its training set once: features do not depend on the split."""
    from nextmove.features import build_training_set
    from nextmove.testing import hillstrom_book, hillstrom_playbook

    playbook = hillstrom_playbook()
    with timed() as took:
        book = hillstrom_book(path, rows=rows)
        # The test's conversions are dated a week after the send, its 14-day horizons end after: the book is
        # complete to its own as_of (a finished experiment), which the training set is told.
        training = build_training_set(book, playbook, outcomes_until=book.as_of)
    # hillstrom_book names each customer by its row position (c00000…): the split is by position.
    positions = training.get_column("account_id").str.slice(1).cast(pl.Int64).to_numpy()
    order = np.argsort(positions)
    return Data(
        training=training[order],
        arms=[a.id for a in playbook.actions],
        positions=positions[order],
        build_seconds=took.seconds,
    )


def split(data: Data, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The train and test halves of one split seed (seed 0: the data README's fixed split)."""
    from nextmove.testing import hillstrom_test_positions

    test = np.zeros(len(data.positions), dtype=bool)
    test[hillstrom_test_positions(len(data.positions), random_state=seed)] = True
    mask = test[data.positions]
    return data.training.filter(pl.Series(~mask)), data.training.filter(pl.Series(mask))


def peer_matrix(train: pl.DataFrame, test: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The features nextmove sees, as the peers take them: numbers as floats, text one-hot (train-half levels).

    Columns constant on the train half (features of an empty history) are left out, and so are
    the columns nextmove leaves out by default.
    """
    from nextmove.features import feature_schema
    from nextmove.models.propensity import DEFAULT_EXCLUDE

    kinds = {c: k for c, k in feature_schema(train).items() if c not in DEFAULT_EXCLUDE}
    varying = [c for c in kinds if train.get_column(c).n_unique() > 1]
    exprs: list[pl.Expr] = []
    names: list[str] = []
    for column in varying:
        if kinds[column] == "number":
            exprs.append(pl.col(column).cast(pl.Float64).fill_null(-1.0))
            names.append(column)
            continue
        for level in sorted(train.get_column(column).drop_nulls().unique().to_list()):
            name = f"{column}={level}"
            exprs.append((pl.col(column) == level).fill_null(False).cast(pl.Float64).alias(name))
            names.append(name)
    return train.select(exprs).to_numpy(), test.select(exprs).to_numpy(), names


def arm_labels(frame: pl.DataFrame) -> np.ndarray:
    """The logged action of each row, as a string array (``none`` for no e-mail)."""
    from nextmove.book import NO_ACTION

    return np.asarray(frame.get_column("action_id").cast(pl.String).fill_null(NO_ACTION).to_list(), dtype=object)


# ---- nextmove ----------------------------------------------------------------------------------


def nextmove_policy(
    train: pl.DataFrame, test: pl.DataFrame, objective: str, jobs: int, params: Mapping[str, Any] | None = None
) -> tuple[pl.DataFrame, float, float, Any]:
    """Fit nextmove's EffectModel for one objective on the train half; its best action per test customer."""
    from nextmove.models.effect import EffectModel
    from nextmove.testing import hillstrom_playbook

    with timed() as fit:
        model = EffectModel(hillstrom_playbook(objective), n_jobs=jobs, **dict(params or {})).fit(train)
    with timed() as predict:
        best = model.project(test).best()
    return best.select("account_id", "action_id"), fit.seconds, predict.seconds, model


PROPOSAL = "nextmove + arm-aware trees (proposal)"


def arm_aware_policy(model: Any, train: pl.DataFrame, test: pl.DataFrame) -> pl.DataFrame:
    """A measured proposal, not nextmove's policy: let each e-mail's effect vary with the features.

    ``EffectModel`` moves every account's do-nothing logit by one shift per arm, so on an event
    objective every account gets the same e-mail. Its outcome trees are grown with the arm as a
    feature, though, and learn where an e-mail works better: this adds, to each arm's shift, the
    trees' own arm-minus-none logit difference for the account, centred on its train-half mean
    (the shift stays the calibrated average). It reads the fitted model's internals (``fits_``,
    ``matrix_``): it measures a change to the model, which belongs in ``EffectModel`` itself.
    """
    from nextmove.book import NO_ACTION
    from nextmove.measure.policy import learned_policy
    from nextmove.models._crossfit import sigmoid

    fit = model.fits_[0]

    def logit(x: np.ndarray, code: int) -> np.ndarray:
        return np.mean([b.predict(model._with_arm(x, code), raw_score=True) for b in fit.boosters], axis=0)

    x_train, x_test = model.matrix_.transform(train), model.matrix_.transform(test)
    base_train, base_test = logit(x_train, 0), logit(x_test, 0)
    p0 = sigmoid(base_test + fit.beta0)
    amount = model._baseline_amounts(fit, x_test) if fit.spec.is_amount else np.ones(test.height)
    values = []
    for code, arm in enumerate(model.arms_):
        if arm == NO_ACTION:
            continue
        spread = logit(x_test, code) - base_test - float(np.mean(logit(x_train, code) - base_train))
        pa = sigmoid(base_test + fit.beta0 + fit.delta[code] + spread)
        multiplier = float(np.exp(fit.log_mult[code])) if fit.spec.is_amount else 1.0
        values.append(
            test.select("account_id").with_columns(
                pl.lit(arm).alias("action_id"), pl.Series("value_usd", (pa * multiplier - p0) * amount)
            )
        )
    return learned_policy(pl.concat(values)).select("account_id", "action_id")


# ---- peers -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """What every peer shares: the LightGBM setting of its models, the seed and the threads."""

    trees: int
    seed: int
    jobs: int

    def lgbm(self, kind: str) -> Any:
        import lightgbm as lgb

        common = {
            "n_estimators": self.trees,
            "learning_rate": 0.05,
            "num_leaves": 15,
            "min_child_samples": 100,
            "subsample": 0.8,
            "subsample_freq": 1,
            "colsample_bytree": 0.8,
            "random_state": self.seed,
            "n_jobs": self.jobs,
            "verbose": -1,
        }
        return lgb.LGBMClassifier(**common) if kind == "classifier" else lgb.LGBMRegressor(**common)


Uplift = Callable[[np.ndarray], np.ndarray]
"""Scores test rows: the estimated effect of each e-mail against none, shape (rows, e-mails)."""


@dataclass(frozen=True)
class Peer:
    """One peer method: its library, whether it needs a binary outcome, and how to fit it."""

    name: str
    library: str
    fit: Callable[[np.ndarray, np.ndarray, np.ndarray, list[str], bool, Settings], Uplift]
    binary_only: bool = False


def _causalml_meta(kind: str) -> Callable[..., Uplift]:
    def fit(x: np.ndarray, t: np.ndarray, y: np.ndarray, arms: list[str], binary: bool, s: Settings) -> Uplift:
        from causalml.inference import meta

        from nextmove.book import NO_ACTION

        half = {arm: np.full(len(y), 0.5) for arm in arms}  # within an e-mail ∪ none, the propensity is 1/2
        if kind == "S":
            cls = meta.BaseSClassifier if binary else meta.BaseSRegressor
            learner = cls(learner=s.lgbm("classifier" if binary else "regressor"), control_name=NO_ACTION)
        elif kind == "T":
            cls = meta.BaseTClassifier if binary else meta.BaseTRegressor
            learner = cls(learner=s.lgbm("classifier" if binary else "regressor"), control_name=NO_ACTION)
        elif kind == "X" and binary:
            learner = meta.BaseXClassifier(
                outcome_learner=s.lgbm("classifier"), effect_learner=s.lgbm("regressor"), control_name=NO_ACTION
            )
        elif kind == "X":
            learner = meta.BaseXRegressor(learner=s.lgbm("regressor"), control_name=NO_ACTION)
        else:
            learner = meta.BaseDRRegressor(learner=s.lgbm("regressor"), control_name=NO_ACTION)
        kwargs: dict[str, Any] = {"p": half} if kind in ("X", "DR") else {}
        if kind == "DR":
            kwargs["seed"] = s.seed
        learner.fit(x, t, y, **kwargs)
        order = [list(learner.t_groups).index(arm) for arm in arms]

        def uplift(xt: np.ndarray) -> np.ndarray:
            p = {arm: np.full(len(xt), 0.5) for arm in arms} if kind in ("X", "DR") else None
            tau = learner.predict(xt, p=p) if p is not None else learner.predict(xt)
            return np.asarray(tau)[:, order]

        return uplift

    return fit


def _causalml_forest(x: np.ndarray, t: np.ndarray, y: np.ndarray, arms: list[str], binary: bool, s: Settings) -> Uplift:
    from causalml.inference.tree import UpliftRandomForestClassifier

    from nextmove.book import NO_ACTION

    forest = UpliftRandomForestClassifier(
        control_name=NO_ACTION,
        n_estimators=max(10, s.trees // 5),
        max_depth=5,
        min_samples_leaf=200,
        evaluationFunction="KL",
        random_state=s.seed,
        n_jobs=s.jobs,
    )
    forest.fit(x, t, y.astype(int))
    groups = [str(c) for c in forest.classes_[1:]]
    order = [groups.index(arm) for arm in arms]
    return lambda xt: np.asarray(forest.predict(xt))[:, order]


def _econml(kind: str) -> Callable[..., Uplift]:
    def fit(x: np.ndarray, t: np.ndarray, y: np.ndarray, arms: list[str], binary: bool, s: Settings) -> Uplift:
        from sklearn.dummy import DummyClassifier

        from nextmove.book import NO_ACTION

        # The design's propensity: the arms' shares (1/3 each), the same everywhere.
        propensity = DummyClassifier(strategy="prior")
        categories = [NO_ACTION, *arms]
        if kind == "dr":
            from econml.dr import DRLearner

            est: Any = DRLearner(
                model_propensity=propensity,
                model_regression=s.lgbm("regressor"),
                model_final=s.lgbm("regressor"),
                categories=categories,
                cv=3,
                random_state=s.seed,
            )
        else:
            from econml.dml import CausalForestDML

            est = CausalForestDML(
                model_y=s.lgbm("regressor"),
                model_t=propensity,
                discrete_treatment=True,
                categories=categories,
                n_estimators=max(20, 4 * (s.trees // 4)),
                min_samples_leaf=50,
                max_depth=10,
                cv=3,
                random_state=s.seed,
                n_jobs=s.jobs,
            )
        est.fit(y, t, X=x)

        def uplift(xt: np.ndarray) -> np.ndarray:
            return np.column_stack([est.effect(xt, T0=NO_ACTION, T1=arm) for arm in arms])

        return uplift

    return fit


def _sklift(kind: str) -> Callable[..., Uplift]:
    def fit(x: np.ndarray, t: np.ndarray, y: np.ndarray, arms: list[str], binary: bool, s: Settings) -> Uplift:
        from sklift.models import ClassTransformation, ClassTransformationReg, TwoModels

        from nextmove.book import NO_ACTION

        models = []
        for arm in arms:  # one binary-treatment model per e-mail, on that e-mail's rows and no e-mail's
            rows = (t == arm) | (t == NO_ACTION)
            treated = (t[rows] == arm).astype(int)
            model: Any
            if kind == "two":
                base = "classifier" if binary else "regressor"
                model = TwoModels(estimator_trmnt=s.lgbm(base), estimator_ctrl=s.lgbm(base), method="vanilla")
            elif binary:
                model = ClassTransformation(estimator=s.lgbm("classifier"))
            else:
                model = ClassTransformationReg(estimator=s.lgbm("regressor"), propensity_val=0.5)
            model.fit(x[rows], y[rows], treated)
            models.append(model)
        return lambda xt: np.column_stack([m.predict(xt) for m in models])

    return fit


PEERS = [
    Peer("CausalML S-learner", "causalml", _causalml_meta("S")),
    Peer("CausalML T-learner", "causalml", _causalml_meta("T")),
    Peer("CausalML X-learner", "causalml", _causalml_meta("X")),
    Peer("CausalML DR-learner", "causalml", _causalml_meta("DR")),
    Peer("CausalML uplift random forest", "causalml", _causalml_forest, binary_only=True),
    Peer("EconML DRLearner", "econml", _econml("dr")),
    Peer("EconML CausalForestDML", "econml", _econml("forest")),
    Peer("scikit-uplift TwoModels", "scikit-uplift", _sklift("two")),
    Peer("scikit-uplift class transformation", "scikit-uplift", _sklift("transform")),
]


def preload(peers: Sequence[Peer]) -> None:
    """Import the peers' modules before any timing, so no fit time counts an import."""
    modules = {
        "causalml": ("causalml.inference.meta", "causalml.inference.tree"),
        "econml": ("econml.dr", "econml.dml"),
        "scikit-uplift": ("sklift.models",),
    }
    for library in {p.library for p in peers}:
        for module in modules[library]:
            importlib.import_module(module)


def missing_libraries() -> list[str]:
    """The peer libraries that cannot be imported here."""
    return [dist for dist, module in PEER_PACKAGES.items() if importlib.util.find_spec(module) is None]


def choose_arms(account_ids: pl.Series, tau: np.ndarray, arms: list[str]) -> pl.DataFrame:
    """Each row's e-mail of highest estimated effect, ``none`` when no effect is above 0."""
    from nextmove.book import NO_ACTION

    tau = np.nan_to_num(np.asarray(tau, dtype=np.float64).reshape(len(account_ids), len(arms)), nan=-np.inf)
    best = tau.argmax(axis=1)
    chosen = np.where(tau.max(axis=1) > 0, np.asarray(arms, dtype=object)[best], NO_ACTION)
    return pl.DataFrame({"account_id": account_ids, "action_id": chosen.tolist()})


# ---- evaluation --------------------------------------------------------------------------------


@dataclass
class Scored:
    """One policy's IPS value on one split and objective, and its paired differences."""

    value: float
    stderr: float
    differences: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Against each comparator: (policy − comparator, its standard error)."""
    fit_seconds: float | None = None
    predict_seconds: float | None = None
    shares: dict[str, float] = field(default_factory=dict)
    """Share of test customers sent each action."""


def baselines(test: pl.DataFrame, arms: list[str]) -> dict[str, pl.DataFrame]:
    """Everyone gets one e-mail (per e-mail), nobody gets one, and a uniformly random arm."""
    from nextmove.book import NO_ACTION

    ids = test.select("account_id")
    out = {f"all {arm}": ids.with_columns(pl.lit(arm).alias("action_id")) for arm in arms}
    out["nobody"] = ids.with_columns(pl.lit(NO_ACTION).alias("action_id"))
    every = [*arms, NO_ACTION]
    out["random"] = pl.concat(
        [ids.with_columns(pl.lit(a).alias("action_id"), pl.lit(1 / len(every)).alias("probability")) for a in every]
    )
    return out


def score(
    test: pl.DataFrame, policies: dict[str, pl.DataFrame], objective: str, subjects: Sequence[str]
) -> dict[str, Scored]:
    """IPS value of every policy with its standard error, and paired differences.

    Every policy is compared with the single arms, nobody and nextmove; the ``subjects``
    (nextmove, the proposal) with every other policy.
    """
    from nextmove.measure.ope import evaluate_policy, policy_difference
    from nextmove.testing import hillstrom_playbook

    playbook = hillstrom_playbook(objective)
    fixed = [n for n in policies if n.startswith("all ") or n == "nobody" or n == "nextmove"]
    out: dict[str, Scored] = {}
    for name, policy in policies.items():
        value = evaluate_policy(test, policy, playbook, objective=objective, methods=("ips",), name=name)[0]
        scored = Scored(value=value.estimate, stderr=value.stderr)
        for other in list(policies) if name in subjects else fixed:
            if other == name:
                continue
            diff = policy_difference(test, policy, policies[other], playbook, objective=objective, methods=("ips",))
            scored.differences[other] = (diff[0].estimate, diff[0].stderr)
        if "probability" not in policy.columns:
            counts = policy.get_column("action_id").value_counts(normalize=True)
            scored.shares = dict(zip(counts.get_column("action_id"), counts.get_column("proportion"), strict=True))
        out[name] = scored
    return out


# ---- one split ---------------------------------------------------------------------------------


def run_split(
    data: Data,
    seed: int,
    peers: list[Peer],
    objectives: Sequence[str],
    *,
    trees: int,
    jobs: int,
    proposal: bool,
    log: Callable[[str], None],
    params: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, Scored]]:
    """Every policy of one split seed, per objective, scored on its test half."""
    from nextmove.models.effect import row_value_usd
    from nextmove.testing import hillstrom_playbook

    train, test = split(data, seed)
    x_train, x_test, _ = peer_matrix(train, test)
    t_train = arm_labels(train)
    test_ids = test.get_column("account_id")
    results: dict[str, dict[str, Scored]] = {}
    for objective in objectives:
        playbook = hillstrom_playbook(objective)
        y_train = row_value_usd(train, playbook, objective=objective)
        binary = not any(spec.is_amount for spec in _specs(playbook))
        policies: dict[str, pl.DataFrame] = baselines(test, data.arms)
        timings: dict[str, tuple[float, float]] = {}
        nm, fit_s, predict_s, model = nextmove_policy(train, test, objective, jobs, params)
        policies["nextmove"], timings["nextmove"] = nm, (fit_s, predict_s)
        log(f"  seed {seed} {objective}: nextmove fit {fit_s:.1f} s, predict {predict_s:.1f} s")
        if proposal:
            try:
                policies[PROPOSAL] = arm_aware_policy(model, train, test)
            except (AttributeError, IndexError) as exc:  # EffectModel's internals moved on
                log(f"  seed {seed} {objective}: proposal skipped, the EffectModel internals it reads changed ({exc})")
        for peer in peers:
            if peer.binary_only and not binary:
                continue
            try:
                with timed() as fit:
                    uplift = peer.fit(x_train, t_train, y_train, data.arms, binary, Settings(trees, seed, jobs))
                with timed() as predict:
                    policy = choose_arms(test_ids, uplift(x_test), data.arms)
            except Exception as exc:  # a peer that fails is reported, and the others still run
                log(f"  seed {seed} {objective}: {peer.name} FAILED: {type(exc).__name__}: {exc}")
                continue
            policies[peer.name], timings[peer.name] = policy, (fit.seconds, predict.seconds)
            log(f"  seed {seed} {objective}: {peer.name} fit {fit.seconds:.1f} s, predict {predict.seconds:.1f} s")
        scored = score(test, policies, objective, ("nextmove", PROPOSAL))
        for name, (fit_s, predict_s) in timings.items():
            scored[name].fit_seconds, scored[name].predict_seconds = fit_s, predict_s
        results[objective] = scored
    return results


def _specs(playbook: Any) -> list[Any]:
    from nextmove.models.effect import objective_specs

    return objective_specs(playbook)


# ---- summary -----------------------------------------------------------------------------------


def summarise(runs: dict[int, dict[str, dict[str, Scored]]], arms: list[str]) -> dict[str, Any]:
    """Per objective: each policy's mean over seeds, nextmove against the best peer and the best arm, fit ratios."""
    out: dict[str, Any] = {}
    seeds = sorted(runs)
    objectives = list(runs[seeds[0]])
    for objective in objectives:
        names = list(runs[seeds[0]][objective])
        per: dict[str, Any] = {}
        for name in names:
            got = [runs[s][objective][name] for s in seeds if name in runs[s][objective]]
            per[name] = {
                "seeds": len(got),
                "value": float(np.mean([g.value for g in got])),
                "stderr": float(np.mean([g.stderr for g in got])),
                "fit_seconds": _mean([g.fit_seconds for g in got]),
                "predict_seconds": _mean([g.predict_seconds for g in got]),
            }
        single = [f"all {arm}" for arm in arms]
        best_arm = max(single, key=lambda n: per[n]["value"])
        known = {p.name for p in PEERS}
        peers = [n for n in names if n in known and per[n]["seeds"] == len(seeds)]
        best_peer = max(peers, key=lambda n: per[n]["value"]) if peers else None
        block: dict[str, Any] = {"policies": per, "best_arm": best_arm, "best_peer": best_peer}
        block["comparisons"] = [
            _compare(runs, objective, subject, other)
            for subject in ("nextmove", PROPOSAL)
            if subject in per and per[subject]["seeds"] == len(seeds)
            for other in (best_arm, best_peer)
            if other is not None
        ]
        nm_fit = per["nextmove"]["fit_seconds"]
        block["fit_ratio"] = {
            n: nm_fit / per[n]["fit_seconds"] for n in peers if per[n]["fit_seconds"] and nm_fit is not None
        }
        out[objective] = block
    return out


def _compare(runs: dict[int, dict[str, dict[str, Scored]]], objective: str, subject: str, other: str) -> dict[str, Any]:
    """``subject − other`` in every seed (paired, with its standard error), their mean and how often it is ≥ 0."""
    seeds = sorted(runs)
    diffs = [runs[s][objective][subject].differences[other] for s in seeds]
    return {
        "policy": subject,
        "comparator": other,
        "per_seed": {s: {"difference": d, "stderr": se} for s, (d, se) in zip(seeds, diffs, strict=True)},
        "mean_difference": float(np.mean([d for d, _ in diffs])),
        "mean_stderr": float(np.mean([se for _, se in diffs])),
        "seeds_not_below": int(sum(d >= 0 for d, _ in diffs)),
    }


def _mean(values: Sequence[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return float(np.mean(got)) if got else None


def print_split(seed: int, results: dict[str, dict[str, Scored]], arms: list[str]) -> None:
    """One split's table per objective: value ± SE, differences against the first arm and nextmove, times, shares."""
    from nextmove.book import NO_ACTION

    first = f"all {arms[0]}"
    sent = [*arms, NO_ACTION]
    for objective, scored in results.items():
        print(f"\nseed {seed}, {objective} (IPS per customer on the test half; ± one standard error)")
        print(
            f"  {'policy':<38} {'value':>16} {'− ' + first:>20} {'− nextmove':>20} {'fit s':>7} {'pred s':>7}"
            f"  sent % ({' / '.join(sent)})"
        )
        for name, s in sorted(scored.items(), key=lambda kv: -kv[1].value):
            d_arm = _pm(s.differences.get(first))
            d_nm = _pm(s.differences.get("nextmove"))
            fit = f"{s.fit_seconds:7.1f}" if s.fit_seconds is not None else " " * 7
            pred = f"{s.predict_seconds:7.1f}" if s.predict_seconds is not None else " " * 7
            shares = " / ".join(f"{100 * s.shares.get(a, 0.0):.0f}" for a in sent) if s.shares else ""
            print(f"  {name:<38} {s.value:8.4f} ± {s.stderr:<6.4f} {d_arm:>20} {d_nm:>20} {fit} {pred}  {shares}")


def _pm(pair: tuple[float, float] | None) -> str:
    return "" if pair is None else f"{pair[0] + 0.0:+.4f} ± {pair[1]:.4f}"


def print_summary(summary: dict[str, Any], seeds: list[int]) -> None:
    """Means over the seeds, nextmove against the best peer and the best arm, and fit-time ratios."""
    print(f"\nover split seeds {', '.join(map(str, seeds))}")
    for objective, block in summary.items():
        print(f"\n{objective}: mean IPS value (mean SE), mean fit / predict seconds")
        for name, p in sorted(block["policies"].items(), key=lambda kv: -kv[1]["value"]):
            times = ""
            if p["fit_seconds"] is not None:
                times = f"  fit {p['fit_seconds']:6.1f} s  predict {p['predict_seconds']:5.1f} s"
            print(f"  {name:<38} {p['value']:8.4f} ({p['stderr']:.4f}){times}")
        for c in block["comparisons"]:
            each = ", ".join(f"{v['difference'] + 0.0:+.4f} ± {v['stderr']:.4f}" for v in c["per_seed"].values())
            print(
                f"  {c['policy']} − {c['comparator']}: mean {c['mean_difference'] + 0.0:+.4f}"
                f" (per-seed SE ≈ {c['mean_stderr']:.4f});"
                f" not below in {c['seeds_not_below']} of {len(c['per_seed'])} seeds [{each}]"
            )
        ratios = ", ".join(f"{n} {r:.2f}" for n, r in sorted(block["fit_ratio"].items(), key=lambda kv: kv[1]))
        print(f"  fit time, nextmove ÷ peer: {ratios or 'no peer measured'}")


# ---- main --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None, help="hillstrom.csv (default: see above)")
    parser.add_argument("--seeds", default="0,1,2,3,4", help="split seeds, comma-separated (0 is the fixed split)")
    parser.add_argument("--objectives", default=",".join(OBJECTIVES), help="visit, spend or both")
    parser.add_argument("--peers", default="", help="only peers whose name contains one of these (comma-separated)")
    parser.add_argument("--trees", type=int, default=100, help="trees of every peer's LightGBM models")
    parser.add_argument("--rows", type=int, default=None, help="first rows of the file only (default: all 64,000)")
    parser.add_argument("--jobs", type=int, default=1, help="threads of every learner")
    parser.add_argument(
        "--proposal", action="store_true", help="also score the arm-aware projection (a proposed model change)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    parser.add_argument("--param", action="append", default=[], help="nextmove's EffectModel setting, e.g. n_folds=3")
    args = parser.parse_args(argv)
    path = args.data or Path(os.environ.get("NEXTMOVE_HILLSTROM", DEFAULT))
    if not path.is_file():
        print(f"Hillstrom data not found at {path}: skipped (pass --data or set NEXTMOVE_HILLSTROM).")
        return 0
    _quiet()
    missing = missing_libraries()
    if missing:
        print(f"peer libraries missing here: {', '.join(missing)} — skipped. To measure them: {INSTALL}")
    wanted = [w.strip().lower() for w in args.peers.split(",") if w.strip()]
    peers = [p for p in PEERS if p.library not in missing and (not wanted or any(w in p.name.lower() for w in wanted))]
    preload(peers)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    objectives = [o.strip() for o in args.objectives.split(",") if o.strip()]

    print(f"machine: {machine()}; 1-min load average {os.getloadavg()[0]:.1f}", flush=True)
    print(_versions(), flush=True)
    data = load(path.resolve(), args.rows)
    print(f"book and training set: {data.training.height:,} customers in {data.build_seconds:.1f} s", flush=True)

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    runs: dict[int, dict[str, dict[str, Scored]]] = {}
    for seed in seeds:
        runs[seed] = run_split(
            data,
            seed,
            peers,
            objectives,
            trees=args.trees,
            jobs=args.jobs,
            proposal=args.proposal,
            log=log,
            params=effect_params(args.param),
        )
        print_split(seed, runs[seed], data.arms)
    summary = summarise(runs, data.arms)
    print_summary(summary, seeds)
    print(f"\n1-min load average at the end {os.getloadavg()[0]:.1f}")
    if args.json:
        per_seed = {
            seed: {objective: {name: asdict(one) for name, one in block.items()} for objective, block in run.items()}
            for seed, run in runs.items()
        }
        figures = {"seeds": seeds, "trees": args.trees, "summary": summary, "per_seed": per_seed}
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


def _quiet() -> None:
    """The peers warn and log a lot (deprecations, progress); the figures are what this prints."""
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for dist in ("nextmove", "lightgbm", "scikit-learn", "numpy", *PEER_PACKAGES):
        try:
            parts.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            parts.append(f"{dist} missing")
    return "versions: " + ", ".join(parts)


if __name__ == "__main__":
    sys.exit(main())
