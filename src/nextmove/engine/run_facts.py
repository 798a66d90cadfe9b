"""Book-level facts of a run that its summary keeps for the report: labels, health bands, impact, metrics.

They are computed once, when the run is made, and stored with it, so a report of a stored
run shows the same figures without the book or the models. So are the notes on where the run's
decision time lies: after the book's data (:func:`late_as_of_note`), or not after a stored run's
(:func:`repeated_as_of_note`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

import polars as pl

from nextmove.book import Book
from nextmove.book.model import as_utc
from nextmove.book.validate import STALE_AS_OF_DAYS
from nextmove.models.effect import EffectProjection, ObjectiveSpec, objective_specs
from nextmove.playbook import Playbook
from nextmove.playbook.money import DEFAULT_CURRENCY, currency_code
from nextmove.store import RunRecord, same_book

NO_ACTION = "none"
BAND_ORDER = ("Healthy", "At risk", "Critical")
ACCOUNT_FIELDS = (
    "name",
    "lifecycle_stage",
    "arr",
    "health_score",
    "health_band",
    "arr_at_risk_usd",
    "segment_id",
    "segment_name",
)
"""Account columns a stored recommendation keeps under ``evidence["account"]`` for the report."""


def run_currency(summary: Mapping[str, Any]) -> str:
    """The currency a run's amounts are in: its summary's ``currency`` (its playbook's), else USD.

    A run stored before runs kept their currency has none; its amounts are read as dollars, as they
    were written then.

    Examples
    --------
    >>> run_currency({"currency": "EUR"}), run_currency({}), run_currency({"currency": "euro"})
    ('EUR', 'USD', 'USD')
    """
    try:
        return currency_code(summary.get("currency", DEFAULT_CURRENCY))
    except ValueError:
        return DEFAULT_CURRENCY  # not a code: no playbook could have written it


def action_labels(playbook: Playbook) -> dict[str, str]:
    """Each action's display name, by id (``none`` is "Do nothing")."""
    out = {a.id: (a.name or a.id) for a in playbook.actions}
    out[NO_ACTION] = "Do nothing"
    return out


def action_families(playbook: Playbook) -> dict[str, str]:
    """Each action's focus: the display name of the objective it mainly serves."""
    names = {k: (o.name or k) for k, o in playbook.objectives.items()}
    return {a.id: names.get(a.objective, a.objective) for a in playbook.actions}


def has_arr(accounts: pl.DataFrame) -> bool:
    """Whether the book has ARR: any account's ``arr`` non-null and non-zero (a consumer book has none)."""
    if "arr" not in accounts.columns:
        return False
    return bool(accounts.select((pl.col("arr").cast(pl.Float64).fill_null(0.0) != 0).any()).item())


def health_bands(recommendations: pl.DataFrame) -> list[dict[str, Any]]:
    """Accounts and ARR per health band, Healthy first; empty without health scores.

    ``arr_usd`` is None for a book without ARR (:func:`has_arr`), not a column of $0.
    """
    if "health_band" not in recommendations.columns or recommendations.get_column("health_band").null_count() == (
        recommendations.height
    ):
        return []
    arr = pl.col("arr").cast(pl.Float64).fill_null(0.0) if "arr" in recommendations.columns else pl.lit(0.0)
    grouped = recommendations.group_by(pl.col("health_band").fill_null("no score")).agg(
        pl.len().alias("accounts"), arr.sum().alias("arr_usd")
    )
    rows = {str(r["health_band"]): r for r in grouped.iter_rows(named=True)}
    order = [b for b in BAND_ORDER if b in rows] + sorted(b for b in rows if b not in BAND_ORDER)
    with_arr = has_arr(recommendations)
    return [
        {
            "band": b,
            "accounts": int(rows[b]["accounts"]),
            "arr_usd": round(float(rows[b]["arr_usd"]), 2) if with_arr else None,
        }
        for b in order
    ]


PLACEHOLDER_PLAYBOOK_NAME: Final = "playbook"
"""The name a playbook has when it gives none (the schema's default): no name to say."""


def playbook_named(summary: Mapping[str, Any]) -> str | None:
    """The playbook's own name (the summary's ``playbook_name``), None when it gave none (the schema's placeholder).

    Examples
    --------
    >>> playbook_named({"playbook_name": " Streamly retention "}), playbook_named({"playbook_name": "playbook"})
    ('Streamly retention', None)
    """
    name = str(summary.get("playbook_name") or "").strip()
    return name if name and name != PLACEHOLDER_PLAYBOOK_NAME else None


def scored_sentence(summary: Mapping[str, Any], accounts: int, *, name: Callable[[str], str] = str) -> str:
    """The executive summary's first sentence, as ``nextmove run`` prints it and the report writes it.

    It names the playbook by its name when it has one (``name`` sets the name in the sentence: the
    report isolates a right-to-left one), else "The playbook"; ``accounts`` is how many were scored,
    the summary's ``actions`` how many actions they were scored across.

    Examples
    --------
    >>> print(scored_sentence({"actions": 5, "playbook_name": "Streamly retention"}, 281_833))
    ... # doctest: +NORMALIZE_WHITESPACE
    The Streamly retention playbook scored 281,833 active customers across 5 possible actions and recommended the
    single best next action per account.
    >>> scored_sentence({"actions": 1, "playbook_name": "Default B2B SaaS playbook"}, 1).split(" active")[0]
    'The Default B2B SaaS playbook scored 1'
    >>> scored_sentence({"actions": 1}, 1).split(" and ")[0]
    'The playbook scored 1 active customer across 1 possible action'
    """
    own = playbook_named(summary)
    if own is None:
        subject = "The playbook"
    else:
        said = name(own)
        lead = said if own.lower().startswith("the ") else f"The {said}"
        subject = lead if own.lower().endswith("playbook") else f"{lead} playbook"
        subject = subject[0].upper() + subject[1:]
    actions = int(summary.get("actions") or 0)
    return (
        f"{subject} scored {accounts:,} active customer{'' if accounts == 1 else 's'} across {actions} possible "
        f"action{'' if actions == 1 else 's'} and recommended the single best next action per account."
    )


LEFT_ALONE_GENERIC: Final = "no action is worth more than it costs, or none fits the capacities"
"""Why the model left accounts alone, when their receipts do not say (a run without evidence)."""

LEFT_ALONE_NOT_WORTH: Final = "no action is worth more than it costs"
"""Why the model left an account alone when its best runner-up is worth no more than doing nothing."""

_WAITS = "the best action waits on a cooldown, a contact cap or a play in flight"
_USERS = "the account's users snoozed or dismissed the best action"

LEFT_ALONE_CONTROL_CAPACITY: Final = "the control cohort's lifecycle default did not fit the capacities left"
"""Why a control account is left alone when its lifecycle default, an action, found no capacity left."""

DEFAULT_DID_NOT_FIT: Final = (
    r"(?s)^Control group: the lifecycle default, .+, did not fit( \(.*\))?, so nothing is done\.$"
)
"""How a control account's receipt says its lifecycle default did not fit the capacities (its ``default_why``, as
:mod:`nextmove.decide.explain` writes it when the default lost to ``capacity``; tests/engine pins the two together)."""

LEFT_ALONE_WHY: Final[Mapping[str, str]] = {
    "lower_value": LEFT_ALONE_NOT_WORTH,
    "capacity": "the best action did not fit the capacities left",
    "rule": "the best action is not eligible for them",
    "cooldown": _WAITS,
    "contact_cap": _WAITS,
    "in_flight": _WAITS,
    "snoozed": _USERS,
    "dismissed": _USERS,
}
"""Why the model left an account alone, by the ``why`` code of its best runner-up (the receipt's first alternative)."""

BEST_ALTERNATIVE_COLUMNS = frozenset({"best_alternative_why", "best_alternative_value_usd"})
"""Columns that may stand for ``alternatives`` (the receipt's runner-ups, as JSON text): its first
runner-up's ``why`` and ``value_usd``, all :func:`left_alone_reasons` reads of it."""


def _runner_up(alone: pl.DataFrame) -> pl.DataFrame | None:
    """The best runner-up's ``why`` and ``value`` of each receipt (None when the receipts do not say)."""
    if set(alone.columns) >= BEST_ALTERNATIVE_COLUMNS:
        # Read out of the receipts already (a stored run's report reads only these two values).
        return alone.select(
            pl.col("best_alternative_why").cast(pl.Utf8).alias("why"),
            pl.col("best_alternative_value_usd").cast(pl.Float64, strict=False).alias("value"),
        )
    if "alternatives" in alone.columns:
        best = pl.col("alternatives").cast(pl.Utf8)
        return alone.select(
            best.str.json_path_match("$[0].why").alias("why"),
            best.str.json_path_match("$[0].value_usd").cast(pl.Float64, strict=False).alias("value"),
        )
    return None


def _default_did_not_fit(control: pl.DataFrame) -> int:
    """How many of the ``control`` accounts' receipts say their lifecycle default did not fit the capacities.

    Read from each receipt's ``default_why`` (a column, as a stored run's report reads it, or in the
    ``evidence``); 0 when the receipts do not say (a run without evidence).
    """
    if "default_why" in control.columns:
        why = pl.col("default_why").cast(pl.Utf8)
    elif "evidence" in control.columns:
        why = pl.col("evidence").cast(pl.Utf8).str.json_path_match("$.default_why")
    else:
        return 0
    return int(control.select(why.str.contains(DEFAULT_DID_NOT_FIT).fill_null(False).sum()).item())


def _left_alone(recs: pl.DataFrame) -> tuple[pl.DataFrame, int, int]:
    """The accounts left alone for a reason of their own, how many control accounts capacity left alone, and how
    many the control cohort or a draw left alone.

    The model's accounts, and the exploring accounts whose best runner-up, worth more than nothing, lost to
    capacity: capacity kept it out of their draw (``Decisions.draw_short``), the draw did not choose to do
    nothing. The control accounts whose lifecycle default, an action, did not fit the capacities, as their
    receipts say (``default_why``): capacity left them alone, not the control draw. The other control and
    exploring accounts left alone are so by the draw.
    """
    nothing = pl.col("action_id").cast(pl.Utf8) == NO_ACTION
    alone = recs.filter(nothing & (pl.col("arm").cast(pl.Utf8) != "control"))
    runner_up = _runner_up(alone)
    arm = alone.get_column("arm").cast(pl.Utf8)
    if runner_up is None:
        own = arm == "model"
    else:
        starved = (runner_up.get_column("why") == "capacity") & (runner_up.get_column("value").fill_null(0.0) > 0)
        own = (arm == "model") | starved.fill_null(False)
    starved_explorers = int((own & (arm == "explore")).sum())
    short_control = _default_did_not_fit(recs.filter(nothing & (pl.col("arm").cast(pl.Utf8) == "control")))
    drawn = recs.filter(nothing & (pl.col("arm").cast(pl.Utf8) != "model")).height - starved_explorers - short_control
    return alone.filter(own), short_control, drawn


def left_alone_by_draw(recs: pl.DataFrame) -> int | None:
    """How many accounts the control cohort or an exploration draw leaves alone (None without the columns).

    Not an exploring account whose best play capacity kept out of its draw, nor a control account
    whose lifecycle default did not fit the capacities: capacity left them alone
    (:func:`left_alone_reasons` counts them).

    Examples
    --------
    >>> recs = pl.DataFrame({"action_id": ["none"] * 3, "arm": ["control", "explore", "explore"],
    ...                      "alternatives": ["[]", '[{"why": "capacity", "value_usd": 4.0}]', "[]"]})
    >>> left_alone_by_draw(recs)
    2
    """
    if not {"action_id", "arm"} <= set(recs.columns):
        return None
    return _left_alone(recs)[2]


def left_alone_reasons(recs: pl.DataFrame) -> list[tuple[str, int]]:
    """Why the accounts the model left alone are left alone, with how many each, most first.

    The one count of them: ``nextmove run``'s executive summary and the report both say it. From
    each receipt's best runner-up (alternatives are ranked by value, whatever stopped them): worth
    nothing over doing nothing (or less), it is not worth its cost; otherwise what stopped it (its
    eligibility, a contact rule, the capacities, the account's users), in the words of
    :data:`LEFT_ALONE_WHY`. Accounts whose receipt names no runner-up get :data:`LEFT_ALONE_GENERIC`.
    The runner-up is read from the ``alternatives`` column, or from the :data:`BEST_ALTERNATIVE_COLUMNS`
    read out of it. The accounts the control cohort or an exploration draw left alone are not counted
    (:func:`left_alone_by_draw`); an exploring account whose best play capacity kept out of its draw is,
    and so is a control account whose lifecycle default did not fit the capacities, as its receipt says
    (:data:`LEFT_ALONE_CONTROL_CAPACITY`). Empty without ``action_id`` and ``arm``, or when no account
    is left alone but by the draw.

    Examples
    --------
    >>> recs = pl.DataFrame({"action_id": ["none"] * 3 + ["call"], "arm": ["model"] * 3 + ["control"],
    ...                      "alternatives": ['[{"why": "capacity", "value_usd": 4.0}]',
    ...                                       '[{"why": "capacity", "value_usd": -1.0}]', "[]", "[]"]})
    >>> left_alone_reasons(recs)  # doctest: +NORMALIZE_WHITESPACE
    [('no action is worth more than it costs', 1), ('no action is worth more than it costs, or none fits the
    capacities', 1), ('the best action did not fit the capacities left', 1)]
    """
    if not {"action_id", "arm"} <= set(recs.columns):
        return []
    alone, short_control, _ = _left_alone(recs)
    control = [(LEFT_ALONE_CONTROL_CAPACITY, short_control)] if short_control else []
    if alone.height == 0:
        return control
    runner_up = _runner_up(alone)
    if runner_up is None:
        return sorted([(LEFT_ALONE_GENERIC, alone.height), *control], key=lambda rn: (-rn[1], rn[0]))
    why = (
        runner_up.select(
            pl.when(pl.col("why").is_null())
            .then(pl.lit(LEFT_ALONE_GENERIC))
            .when(pl.col("value").fill_null(0.0) <= 0)
            .then(pl.lit(LEFT_ALONE_NOT_WORTH))
            .otherwise(pl.col("why").replace_strict(LEFT_ALONE_WHY, default=LEFT_ALONE_GENERIC, return_dtype=pl.Utf8))
            .alias("reason")
        )
        .group_by("reason")
        .len()
    )
    return sorted([*((str(r), int(n)) for r, n in why.iter_rows()), *control], key=lambda rn: (-rn[1], rn[0]))


def _risk_specs(playbook: Playbook) -> list[ObjectiveSpec]:
    """The objectives whose outcome ends the account (``ends_account``: e.g. churn), whose chance puts ARR at risk."""
    return [s for s in objective_specs(playbook) if playbook.objectives[s.objective].ends_accounts]


def arr_at_risk(projection: EffectProjection, recommendations: pl.DataFrame, playbook: Playbook) -> pl.DataFrame:
    """``account_id, arr_at_risk_usd``: ARR × the do-nothing probability of each outcome that ends the account (churn).

    Zero for every account when no objective's outcome ends accounts (``ends_account``); null for
    every account of a book without ARR (:func:`has_arr`), where there is nothing to put at risk.
    """
    specs = _risk_specs(playbook)
    ids = recommendations.select("account_id")
    if not has_arr(recommendations):
        return ids.with_columns(pl.lit(None, dtype=pl.Float64).alias("arr_at_risk_usd"))
    if not specs or "arr" not in recommendations.columns or projection.effects_height == 0:
        return ids.with_columns(pl.lit(0.0).alias("arr_at_risk_usd"))
    base = (
        projection.baselines()
        .filter(pl.col("objective").is_in([s.objective for s in specs]))
        .group_by("account_id")
        .agg(pl.col("baseline").sum().clip(0.0, 1.0).alias("_p"))
    )
    return (
        recommendations.select("account_id", pl.col("arr").cast(pl.Float64).fill_null(0.0).alias("_arr"))
        .join(base, on="account_id", how="left")
        .select("account_id", (pl.col("_arr") * pl.col("_p").fill_null(0.0)).round(2).alias("arr_at_risk_usd"))
    )


def impact_by_objective(
    projection: EffectProjection, decided: pl.DataFrame, playbook: Playbook
) -> list[dict[str, Any]]:
    """Per objective: the dollars the chosen actions are projected to add, with the sum of the interval bounds.

    ``decided`` has ``account_id, action_id`` and optionally ``variant`` (accounts doing nothing
    add nothing). The bounds are summed account by account, which is conservative (wider than
    the interval of the total) because accounts' effects share the arm-level uncertainty.
    """
    if projection.effects_height == 0:
        return []
    keyed = decided.filter(pl.col("action_id") != NO_ACTION).select(
        "account_id",
        (
            pl.when(pl.col("variant").is_not_null())
            .then(pl.concat_str([pl.col("action_id"), pl.lit(":"), pl.col("variant")]))
            .otherwise(pl.col("action_id"))
            if "variant" in decided.columns
            else pl.col("action_id")
        ).alias("_key"),
        pl.col("action_id").alias("_action"),
    )
    arms = projection.arm_ids
    keyed = keyed.with_columns(
        pl.when(pl.col("_key").is_in(arms)).then(pl.col("_key")).otherwise(pl.col("_action")).alias("_key")
    )
    chosen = projection.pair_effects(keyed).with_columns(
        pl.when(pl.col("effect").abs() > 0)
        .then(pl.col("effect_usd") / pl.col("effect"))
        .otherwise(0.0)
        .alias("_per_unit")
    )
    chosen = chosen.with_columns(
        (pl.col("low") * pl.col("_per_unit")).alias("_a"), (pl.col("high") * pl.col("_per_unit")).alias("_b")
    ).with_columns(
        pl.min_horizontal("_a", "_b").alias("_low"),
        pl.max_horizontal("_a", "_b").alias("_high"),
    )
    totals = chosen.group_by("objective").agg(
        pl.col("effect_usd").sum().alias("value_usd"),
        pl.col("_low").sum().alias("low"),
        pl.col("_high").sum().alias("high"),
        pl.len().alias("accounts"),
    )
    found = {str(r["objective"]): r for r in totals.iter_rows(named=True)}
    out = []
    for key, objective in playbook.objectives.items():
        r = found.get(key)
        if r is None:
            continue
        out.append(
            {
                "objective": key,
                "label": objective.name or key,
                "value_usd": round(float(r["value_usd"]), 2),
                "low": round(float(r["low"]), 2),
                "high": round(float(r["high"]), 2),
                "accounts": int(r["accounts"]),
            }
        )
    return out


def _policy(values: Sequence[Mapping[str, Any]], name: str, method: str = "dr") -> Mapping[str, Any] | None:
    for v in values:
        if str(v.get("policy") or v.get("name")) == name and str(v.get("method")) == method:
            return v
    return None


def _numbers(value: Mapping[str, Any], *keys: str) -> bool:
    """Whether every key of ``value`` holds a number (an estimate that could not be made is None)."""
    return all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        for v in (value.get(k) for k in keys)
    )


DIFFERS_METRIC = "Accounts given something other than their lifecycle default"
"""The metric row of :func:`differs_metric` (the report recomputes it from the recommendations)."""


def differs_metric(share: float, acted: int | None = None, acted_differs: int | None = None) -> dict[str, str]:
    """The metric row of the share that differs from the lifecycle default, judged on a stated base.

    ``share`` (the summary's ``differs_from_default_share``) is over every account with a default,
    those left alone included: doing nothing where the default is an action differs. With the
    accounts given an action (``acted``) and how many of them got another action than their
    default (``acted_differs``), the row is judged on those (some, not all: 10–80%); without
    them, on ``share`` and says so.

    Examples
    --------
    >>> row = differs_metric(0.97, 2_972, 2_430)
    >>> row["current"], row["status"]
    ('97% of all accounts; 82% of the 2,972 given an action', 'Review')
    >>> differs_metric(0.38)["benchmark"]
    'some, not all: 10–80% of all accounts (those left alone included)'
    >>> differs_metric(0.95, 0, 0)["current"]
    '95% of all accounts; no account was given an action'
    """
    current = f"{share:.0%} of all accounts"
    if acted == 0:  # nothing recommended: no action to judge, whatever the share of those left alone
        return {
            "metric": DIFFERS_METRIC,
            "current": f"{current}; no account was given an action",
            "benchmark": "some, not all: 10–80% of the accounts given an action",
            "status": "Review",
        }
    if acted and acted_differs is not None:
        acted_share = acted_differs / acted
        return {
            "metric": DIFFERS_METRIC,
            "current": f"{current}; {acted_share:.0%} of the {acted:,} given an action",
            "benchmark": "some, not all: 10–80% of the accounts given an action",
            "status": "On track" if 0.1 <= acted_share <= 0.8 else "Review",
        }
    return {
        "metric": DIFFERS_METRIC,
        "current": current,
        "benchmark": "some, not all: 10–80% of all accounts (those left alone included)",
        "status": "On track" if 0.1 <= share <= 0.8 else "Review",
    }


OFF_POLICY_METRIC = "Off-policy value over the lifecycle default (DR, $ per decision)"
"""The off-policy row's name as a run's summary keeps it (and the report finds the row by): the report shows it
with the run's currency ("€ per decision")."""

MIN_OPE_DECISIONS = 30
"""Logged decisions an off-policy check needs before the metrics call the learned policy "On track"."""

MIN_OPE_ESS = 10.0
"""Effective sample size (what the DR weights are worth in decisions) each of the learned and default policies needs."""

MIN_OPE_MATCHED = 0.10
"""Share of the logged decisions each policy needs to agree with: below it DR is mostly the effect model's own
value (in-sample, for the learned policy), not what the decisions earned."""


def _short_evidence(learned: Mapping[str, Any], default: Mapping[str, Any]) -> list[str]:
    """What the off-policy check lacks to be judged: each figure below its minimum, in words (empty when none is).

    Examples
    --------
    >>> learned = {"n": 2, "effective_sample_size": 0.0, "matched_share": 0.0}
    >>> for line in _short_evidence(learned, {"n": 2, "effective_sample_size": 12.0, "matched_share": 0.05}):
    ...     print(line)
    2 logged decisions (at least 30)
    effective sample size learned 0.0 (at least 10)
    matched share learned 0% and default 5% (at least 10%)
    """
    short = []
    n = int(learned.get("n") or 0)
    if n < MIN_OPE_DECISIONS:
        short.append(f"{n:,} logged decision{'' if n == 1 else 's'} (at least {MIN_OPE_DECISIONS})")
    pairs = (("learned", learned), ("default", default))
    ess = [(k, float(v.get("effective_sample_size") or 0.0)) for k, v in pairs]
    matched = [(k, float(v.get("matched_share") or 0.0)) for k, v in pairs]
    if low := [f"{k} {x:.1f}" for k, x in ess if x < MIN_OPE_ESS]:
        short.append(f"effective sample size {' and '.join(low)} (at least {MIN_OPE_ESS:g})")
    if low := [f"{k} {x:.0%}" for k, x in matched if x < MIN_OPE_MATCHED]:
        short.append(f"matched share {' and '.join(low)} (at least {MIN_OPE_MATCHED:.0%})")
    return short


def off_policy_metric(
    values: Sequence[Mapping[str, Any]], differences: Sequence[Mapping[str, Any]] = ()
) -> dict[str, str] | None:
    """The metric row of the learned policy's DR value over the lifecycle default's; None without both policies.

    Judged on the paired difference ``learned - default`` (``differences``, the run's
    ``policy_differences``) when there is one: "On track" when its interval's low end is above 0.
    Without it (a summary from before runs kept it), on the learned policy's interval low end
    against the default's estimate, which ignores what the two share and says so. Either way
    never "On track" on too little evidence: fewer than :data:`MIN_OPE_DECISIONS` logged
    decisions, or either policy with an effective sample size under :data:`MIN_OPE_ESS` or a
    matched share under :data:`MIN_OPE_MATCHED` (then DR is mostly the effect model's own value,
    and the learned policy's is in-sample); the row says which. Where the difference (or, without
    it, either policy) has no estimate, the row says "no estimate" with the estimate's note (e.g.
    the default not known at the decisions of accounts that left since): "Review", never left out.

    Examples
    --------
    >>> learned = {"policy": "learned", "method": "dr", "estimate": 135.8, "low": 127.0, "n": 2,
    ...            "effective_sample_size": 0.0, "matched_share": 0.0}
    >>> default = {**learned, "policy": "default", "estimate": 120.8, "low": 82.6}
    >>> diff = {"policy": "learned - default", "method": "dr", "estimate": 15.0, "low": 6.1, "high": 23.9}
    >>> row = off_policy_metric([learned, default], [diff])
    >>> row["status"]
    'Review'
    >>> row["current"].split(";")[0]
    '+15.00 (paired interval +6.10 to +23.90)'
    >>> unknown = {"estimate": None, "low": None, "high": None, "note": "the default is not known at 13%"}
    >>> row = off_policy_metric([learned, {**default, **unknown}], [{**diff, **unknown}])
    >>> row["current"], row["status"]
    ('no estimate: the default is not known at 13%', 'Review')
    """
    learned, default = _policy(values, "learned"), _policy(values, "default")
    if learned is None or default is None:
        return None
    difference = _policy(differences, "learned - default")
    if difference is not None and _numbers(difference, "estimate"):
        gain = float(difference["estimate"])
        paired = _numbers(difference, "low", "high")
        low_gain = float(difference["low"]) if paired else None
        current = (
            f"{gain:+,.2f} (paired interval {low_gain:+,.2f} to {float(difference['high']):+,.2f})"
            if paired
            else f"{gain:+,.2f} (no interval: {difference.get('note') or 'fewer than two accounts'})"
        )
        benchmark = "the paired difference's interval above 0 (its low end), on enough logged decisions"
    elif _numbers(learned, "estimate", "low") and _numbers(default, "estimate", "low"):
        # A default without an interval (its value the outcome model's alone, e.g. on actions the
        # history never took) is no yardstick for the learned policy's low end.
        gain = float(learned["estimate"]) - float(default["estimate"])
        low_gain = float(learned["low"]) - float(default["estimate"])
        current = f"{gain:+,.2f} (interval low end {low_gain:+,.2f})"
        benchmark = (
            "low end above 0: the learned policy's interval low end above the default's estimate "
            "(no paired difference kept), on enough logged decisions"
        )
    else:
        # No estimate to judge (the default not known at too many decisions, or never taken by the
        # history): the row says so with the estimate's own note, rather than leaving the metric out.
        missing = [
            v for v in (difference, default, learned) if v is not None and not _numbers(v, "estimate") and v.get("note")
        ]
        if not missing:
            return None
        return {
            "metric": OFF_POLICY_METRIC,
            "current": f"no estimate: {missing[0]['note']}",
            "benchmark": "the paired difference's interval above 0 (its low end), on enough logged decisions",
            "status": "Review",
        }
    short = _short_evidence(learned, default)
    if short:
        current += "; too little evidence to judge: " + ", ".join(short)
    return {
        "metric": OFF_POLICY_METRIC,
        "current": current,
        "benchmark": benchmark,
        "status": "On track" if low_gain is not None and low_gain > 0 and not short else "Review",
    }


def metrics(summary: Mapping[str, Any]) -> list[dict[str, str]]:
    """The metric / benchmark / status lines of the report, from a run's summary.

    Status is ``On track``, ``Review`` or ``Action needed``, by the rule stated in each benchmark.

    Examples
    --------
    >>> rows = metrics({"differs_from_default_share": 0.38, "do_nothing": 10, "accounts": 100})
    >>> rows[0]["metric"], rows[0]["current"], rows[0]["status"]
    ('Accounts given something other than their lifecycle default', '38% of all accounts', 'On track')
    """
    rows: list[dict[str, str]] = []
    share = summary.get("differs_from_default_share")
    if isinstance(share, int | float):
        acted = summary.get("acted_differs_from_default")
        rows.append(
            differs_metric(
                float(share),
                int(acted["accounts"]) if isinstance(acted, Mapping) else None,
                int(acted["differs"]) if isinstance(acted, Mapping) else None,
            )
        )
    accounts = int(summary.get("accounts") or 0)
    nothing = int(summary.get("do_nothing") or 0)
    if accounts:
        rows.append(
            {
                # Those the control or exploration draw left alone count too: what the teams leave this window.
                "metric": "Accounts left alone",
                "current": f"{nothing / accounts:.0%}",
                "benchmark": "below 90% (otherwise the catalog or the values need a look)",
                "status": "On track" if nothing / accounts < 0.9 else "Review",
            }
        )
    off_policy = off_policy_metric(summary.get("policy_values") or [], summary.get("policy_differences") or [])
    if off_policy is not None:
        rows.append(off_policy)
    allocation = summary.get("allocation")
    if isinstance(allocation, Mapping) and isinstance(allocation.get("gap_to_bound"), int | float):
        gap = float(allocation["gap_to_bound"])
        rows.append(
            {
                "metric": "Allocation gap to the upper bound",
                "current": f"{gap:.2%}",
                "benchmark": "below 1%",
                "status": "On track" if gap < 0.01 else "Review",
            }
        )
    arms = summary.get("arms")
    if isinstance(arms, Mapping) and accounts:
        control = int(arms.get("control") or 0)
        rows.append(
            {
                "metric": "Control cohort",
                "current": f"{control:,} accounts",
                "benchmark": "at least 100 for a lift readout",
                "status": "On track" if control >= 100 else "Action needed",
            }
        )
    regret = summary.get("regret")
    if isinstance(regret, Mapping) and isinstance(regret.get("model_regret_share"), int | float):
        share_r = float(regret["model_regret_share"])
        rows.append(
            {
                "metric": "Regret against the oracle (lab only)",
                "current": f"{share_r:.0%}",
                "benchmark": "at most 15% of the oracle's gain over the default",
                "status": "On track" if share_r <= 0.15 else "Review",
            }
        )
    return rows


LATE_AS_OF_MIN_DAYS: Final[int] = 7
"""The least gap, in days, after a book's latest touch or signal that :func:`late_as_of_note` names."""


def late_as_of_note(book: Book, playbook: Playbook, as_of: datetime, *, given: bool = True) -> str | None:
    """A note when ``as_of`` lies more than a decision window after the book's latest touch or signal row.

    The window is the contact policy's ``window_days``, or :data:`LATE_AS_OF_MIN_DAYS` if that is
    longer: a week's export missing from a weekly book is then named, while a decision time a day
    or two after the book's end is not. Plays made in the gap are unknown to the cooldowns and plays
    in flight (unless reported as ``done`` feedback), and the features' recent windows lack it. From
    :data:`~nextmove.book.validate.STALE_AS_OF_DAYS` days the book's staleness note says more, and
    this one is None. ``given``: whether the user gave ``--as-of``; if not (the decision time is
    where the book's data ends, its outcomes reaching later), the note names the export that is
    behind rather than telling to leave out an option that was not given.

    Examples
    --------
    >>> from datetime import UTC
    >>> from nextmove.book import empty_table
    >>> from nextmove.playbook.loader import load_playbook
    >>> touches = pl.DataFrame({"account_id": ["a"], "action_id": ["qbr"], "ts": [datetime(2025, 6, 1, tzinfo=UTC)]})
    >>> book = Book(empty_table("accounts"), empty_table("signals"), touches, empty_table("outcomes"))
    >>> pb = load_playbook()  # a 14-day decision window
    >>> print(late_as_of_note(book, pb, datetime(2025, 6, 20, tzinfo=UTC)))  # doctest: +NORMALIZE_WHITESPACE
    the decision time 2025-06-20 is 19 days after the book's latest touch or signal (2025-06-01), more than the
    playbook's 14-day decision window: plays made since are unknown to the cooldowns and plays in flight (unless
    reported as done feedback) and the features miss that time; add the missing export, or leave out --as-of to
    decide as of the book's end
    >>> print(late_as_of_note(book, pb, datetime(2025, 6, 20, tzinfo=UTC), given=False))
    ... # doctest: +NORMALIZE_WHITESPACE
    the book's touches end 19 days before its data does (2025-06-01; decided as of 2025-06-20), more than the
    playbook's 14-day decision window: plays made since are unknown to the cooldowns and plays in flight (unless
    reported as done feedback) and the features miss that time; add the missing touches export
    >>> late_as_of_note(book, pb, datetime(2025, 6, 15, tzinfo=UTC)) is None  # 14 days: within the window
    True
    """
    ends = {
        name: as_utc(stamp)
        for name, frame in (("touches", book.touches), ("signals", book.signals))
        if frame.height and "ts" in frame.columns and isinstance(stamp := frame.get_column("ts").max(), datetime)
    }
    if not ends:
        return None
    latest = max(ends.values())
    window = max(playbook.contact_policy.window_days, LATE_AS_OF_MIN_DAYS)
    gap = as_utc(as_of) - latest
    if gap <= timedelta(days=window) or gap >= timedelta(days=STALE_AS_OF_DAYS):
        return None
    days = gap.total_seconds() / 86_400
    shown = f"{days:.0f}" if days - window >= 0.5 else f"{days:.1f}"  # never "7 days, more than 7"
    unknown = (
        f"more than the playbook's {window}-day decision window: plays made since are unknown to the cooldowns and "
        "plays in flight (unless reported as done feedback) and the features miss that time"
    )
    if not given:
        behind = [name for name, end in ends.items() if as_utc(as_of) - end > timedelta(days=window)]
        tables = " and ".join(behind)
        exports = "export" if len(behind) == 1 else "exports"
        return (
            f"the book's {tables} end {shown} days before its data does ({latest:%Y-%m-%d}; decided as of "
            f"{as_of:%Y-%m-%d}), {unknown}; add the missing {tables} {exports}"
        )
    return (
        f"the decision time {as_of:%Y-%m-%d} is {shown} days after the book's latest touch or signal "
        f"({latest:%Y-%m-%d}), {unknown}; add the missing export, or leave out --as-of to decide as of the book's end"
    )


def repeated_as_of_note(run: RunRecord, stored: Iterable[RunRecord]) -> str | None:
    """A note when ``run`` is not after the latest of the ``stored`` succeeded runs of its book or playbook.

    For a run at the default decision time, where the book's data ends: a book whose newest export
    is missing ends where an earlier run's did, and the run decides again on the same data,
    repeating much of that run's list (and, promoted, replaces it as the served run). The stored
    run named is the one of the same book (:func:`~nextmove.store.same_book`: the same folder, or a
    weekly export in a new folder of the same parent under the same playbook of its own) with the
    latest ``as_of``, the newest made of those. None when ``run`` is after it, or has no ``as_of``.

    Examples
    --------
    >>> from datetime import UTC
    >>> def made(run_id, day, book="crm/w04"):
    ...     return RunRecord(run_id=run_id, book_source=book, playbook_hash="own", status="succeeded",
    ...                      as_of=datetime(2025, 6, day, tzinfo=UTC))
    >>> print(repeated_as_of_note(made("r5", 2, "crm/w05"), [made("r4", 2), made("r3", 1)]))
    ... # doctest: +NORMALIZE_WHITESPACE
    the store already holds run r4 (book crm/w04) as of 2025-06-02, and the book's data ends there too: this run
    decides again on no newer data and will repeat much of r4's list; check that the latest export reached the book
    >>> repeated_as_of_note(made("r5", 9, "crm/w05"), [made("r4", 2)]) is None
    True
    """
    if run.as_of is None:
        return None
    when = as_utc(run.as_of)
    same = [
        r
        for r in stored
        if r.run_id != run.run_id and r.status == "succeeded" and r.as_of is not None and same_book(r, run)
    ]
    if not same:
        return None
    latest = max(same, key=lambda r: (as_utc(r.as_of or when), as_utc(r.created_at)))
    other = as_utc(latest.as_of or when)
    if when > other:
        return None
    where = "there too" if when == other else f"before it, on {when:%Y-%m-%d}"
    return (
        f"the store already holds run {latest.run_id} (book {latest.book_source}) as of {other:%Y-%m-%d}, and the "
        f"book's data ends {where}: this run decides again on no newer data and will repeat much of "
        f"{latest.run_id}'s list; check that the latest export reached the book"
    )
