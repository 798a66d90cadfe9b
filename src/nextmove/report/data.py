"""What the report shows, as typed data built once from a run (the template only lays it out)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import polars as pl

from nextmove._words import plural
from nextmove.decide.phrases import feature_wording, isolated
from nextmove.engine.run_facts import BEST_ALTERNATIVE_COLUMNS as BEST_ALTERNATIVE_COLUMNS
from nextmove.engine.run_facts import (
    DIFFERS_METRIC,
    OFF_POLICY_METRIC,
    differs_metric,
    off_policy_metric,
    run_currency,
    scored_sentence,
)
from nextmove.engine.run_facts import LEFT_ALONE_GENERIC as _GENERIC_WHY
from nextmove.engine.run_facts import LEFT_ALONE_NOT_WORTH as _WORTH_WHY
from nextmove.engine.run_facts import LEFT_ALONE_WHY as _WHY_LEFT_ALONE
from nextmove.engine.run_facts import left_alone_by_draw as left_alone_by_draw
from nextmove.engine.run_facts import left_alone_reasons as _left_alone_reasons
from nextmove.errors import ConfigError
from nextmove.playbook.money import DEFAULT_CURRENCY, currency_code, currency_unit
from nextmove.report.charts import money_short

MAX_TABLE_ROWS = 20_000
"""Accounts embedded in the report's table; beyond it, the largest values are kept and the
table says so (every account is in recommendations.csv)."""


@dataclass(frozen=True)
class Count:
    """A labelled count with its share of the whole (0–1)."""

    label: str
    count: int
    share: float


@dataclass(frozen=True)
class StageRow:
    """How many accounts of one lifecycle stage got something other than the stage's default."""

    stage: str
    accounts: int
    differs: int
    share: float
    """``differs`` over ``accounts``: every account of the stage, those left alone included."""
    acted: int = 0
    """Accounts of the stage given an action (not "do nothing")."""
    acted_differs: int = 0
    """Of those, how many got an action other than the stage's default."""

    @property
    def acted_share(self) -> float | None:
        """``acted_differs`` over ``acted`` (None when no account of the stage got an action)."""
        return self.acted_differs / self.acted if self.acted else None


@dataclass(frozen=True)
class BandRow:
    """Accounts and ARR in one health band."""

    band: str
    accounts: int
    arr_usd: float
    arr_share: float
    account_share: float


@dataclass(frozen=True)
class ImpactRow:
    """Projected dollar impact with its interval."""

    label: str
    value_usd: float
    low_usd: float
    high_usd: float


@dataclass(frozen=True)
class PolicyRow:
    """An off-policy estimate of one policy's value per decision."""

    policy: str
    method: str
    estimate: float | None
    """None when the estimator cannot value the policy (``note`` says why)."""
    low: float | None
    high: float | None
    """The interval's ends; None when there is none (``note`` says why)."""
    n: int
    note: str | None = None


@dataclass(frozen=True)
class SegmentRow:
    """One behavioral segment as the report shows it."""

    name: str
    accounts: int
    arr_usd: float | None
    response: str
    details: list[str]


@dataclass(frozen=True)
class MetricRow:
    """One line of the metric / benchmark / status table."""

    metric: str
    current: str
    benchmark: str
    status: str


@dataclass(frozen=True)
class ReportData:
    """Everything the playbook report shows, computed before rendering.

    Build it with :func:`build_report_data` from a run's summary and recommendations.
    """

    title: str
    run_id: str
    as_of: str
    as_of_text: str
    """``as_of`` for people: "5 January 2026", with the time (UTC) only when it is not midnight."""
    sentences: list[str]
    actions: list[Count]
    families: list[Count]
    stages: list[StageRow]
    bands: list[BandRow]
    top_at_risk: list[dict[str, Any]]
    impact: list[ImpactRow]
    impact_cost_usd: float | None
    """What the per-objective rows (gross) sum to over "All objectives" (net): the actions' cost; None
    when there is no total or no objective row, or they agree to the dollar."""
    policies: list[PolicyRow]
    segments: list[SegmentRow]
    segment_notes: list[str]
    metrics: list[MetricRow]
    table: list[dict[str, Any]] = field(repr=False)
    table_note: str | None
    notes: list[str]
    has_arr: bool
    """Whether the book has ARR (any non-null, non-zero): without it, no ARR chart, section or column."""
    has_owners: bool
    """Whether any account has an owner: without one, the accounts table has no Owner column."""
    run_notes: list[str] = field(default_factory=list)
    """The run's own notes (the summary's ``notes``: what it could not do or did differently), each once."""
    families_note: str | None = None
    """What the focus chart's place says when there is no chart: no account given an action, or no focus."""
    impact_note: str | None = None
    """Whose actions the impact figures sum: the recommended cohort's (and the control cohort's apart), or,
    for a run stored before they were kept apart, every account given an action; without ``impact`` (a run that
    projects nothing), why there is none."""
    served: str | None = None
    """Whether online decisions come from this run (None: not known where the report was made)."""
    currency: str = DEFAULT_CURRENCY
    """The ISO 4217 code the run's amounts are in (its playbook's ``currency``): the page writes them in it."""


def _num(summary: Mapping[str, Any], key: str, default: float = 0.0) -> float:
    value = summary.get(key, default)
    return float(value) if isinstance(value, int | float) else default


def _labels(summary: Mapping[str, Any], labels: Mapping[str, str] | None) -> dict[str, str]:
    out = {"none": "Do nothing"}
    out.update({str(k): str(v) for k, v in (summary.get("action_labels") or {}).items()})
    out.update(labels or {})
    return out


def _sentences(summary: Mapping[str, Any], families: Sequence[Count], recs: pl.DataFrame, currency: str) -> list[str]:
    # One sentence with nextmove run's: the playbook by its name, a right-to-left one set apart.
    out = [scored_sentence(summary, int(_num(summary, "accounts", recs.height)), name=isolated)]
    if families:
        parts = []
        for i, c in enumerate(families):
            word = c.label  # as the playbook writes it: "Erweiterung (Upsell)"
            article = "an" if word[:1].lower() in "aeiou" else "a"
            word = isolated(word)  # set apart when right-to-left: the page shows it as <bdi> (render.sentence)
            lead = (
                f"{plural(c.count, 'customer')} {'was' if c.count == 1 else 'were'} assigned"
                if i == 0
                else f"{c.count:,}"
            )
            parts.append(f"{lead} {article} {word} action")
        listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + ", and " + parts[-1]
        out.append(listed[0].upper() + listed[1:] + ".")
    nothing = int(_num(summary, "do_nothing", recs.filter(pl.col("action_id") == "none").height))
    out.append(_left_alone_sentence(nothing, recs, summary))
    if "differs_from_default_share" in summary:
        share = _num(summary, "differs_from_default_share")
        out.append(_differs_sentence(share, _default_counts(recs)))
    if (impact := _impact_sentence(summary, currency)) is not None:
        out.append(impact)
    arms = summary.get("arms")
    if isinstance(arms, Mapping) and arms.get("control"):
        out.append(_control_sentence(int(arms["control"]), recs))
    regret = summary.get("regret")
    if isinstance(regret, Mapping) and isinstance(regret.get("model_regret_share"), int | float):
        out.append(
            f"Lab only: the learned policy's regret against the oracle is {float(regret['model_regret_share']):.0%} "
            "of the oracle's gain over the lifecycle default, under the same capacities."
        )
    elif isinstance(regret, Mapping) and (unknown := (regret.get("picks_without_truth") or {}).get("model")):
        out.append(
            "Lab only: no regret against the oracle: the lab's truth has no value for "
            f"{', '.join(str(a) for a in unknown)}, which the learned policy recommends."
        )
    return out


def _left_alone_sentence(nothing: int, recs: pl.DataFrame, summary: Mapping[str, Any]) -> str:
    """How many are left alone, why (each reason with its count), and how many by the control or exploration draw.

    An exploring account whose best play capacity kept out of its draw counts with the capacity reason, not the draw.
    """
    if nothing == 0:
        # No reason to give: the generic one read "0 customers are best left alone for now: no action is worth …".
        return "No customer is left alone: every one is given an action."
    verb = "is" if nothing == 1 else "are"
    reasons = _left_alone_reasons(recs)
    drawn = left_alone_by_draw(recs) or 0
    if not reasons and drawn == 0:
        reasons = [(_GENERIC_WHY, nothing)]
    notes = [str(n) for n in summary.get("notes") or []]
    if any(n.startswith("eligible for none of the ") for n in notes):
        reasons = [(r + " (see the notes below)" if r == _WHY_LEFT_ALONE["rule"] else r, n) for r, n in reasons]
    best = bool(reasons) and all(r in (_WORTH_WHY, _GENERIC_WHY) for r, _ in reasons)
    lead = f"{plural(nothing, 'customer')} {verb} {'best ' if best else ''}left alone for now"
    if drawn == 0 and len(reasons) == 1:
        return f"{lead}: {reasons[0][0]}."
    if not reasons:
        every = "it is" if drawn == 1 else f"all {drawn:,} are"
        return f"{lead}: {every} in the control cohort or an exploration draw that does nothing."
    parts = [f"for {n:,}, {r}" for r, n in reasons]
    if drawn:
        parts.append(
            f"{drawn:,} {'is' if drawn == 1 else 'are'} in the control cohort or an exploration draw that does nothing"
        )
    return f"{lead}: {'; '.join(parts)}."


def _impact_text(impact: Mapping[str, Any], currency: str) -> str:
    """``$240 (per-account 90% intervals summed: -$1.2k to $1.9k)``; the range only when both ends are known.

    The ends are each account's interval ends summed, wider than a 90% interval of the total: said so.
    """
    low, high = impact.get("low"), impact.get("high")
    band = (
        f" (per-account 90% intervals summed: {money_short(float(low), currency)} to "
        f"{money_short(float(high), currency)})"
        if low is not None and high is not None
        else ""
    )
    return f"{money_short(float(impact['value']), currency)}{band}"


def _cohorts(summary: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any] | None] | None:
    """The recommended cohort's projected impact and the control cohort's, when the run kept them apart."""
    cohorts = summary.get("projected_impact_by_cohort")
    if not isinstance(cohorts, Mapping):
        return None
    recommended, control = cohorts.get("recommended"), cohorts.get("control")
    if not isinstance(recommended, Mapping) or "value" not in recommended:
        return None
    return recommended, control if isinstance(control, Mapping) and "value" in control else None


def _impact_sentence(summary: Mapping[str, Any], currency: str) -> str | None:
    """The projected impact of the recommended cohort's actions, and the control cohort's defaults apart.

    A run stored before the two were kept apart summed every account given an action: said so.
    """
    impact = summary.get("projected_impact_usd")
    if not isinstance(impact, Mapping) or "value" not in impact:
        return None
    cohorts = _cohorts(summary)
    if cohorts is None:
        return (
            "The projected impact of the actions given (the control cohort's defaults included) is "
            f"{_impact_text(impact, currency)}."
        )
    recommended, control = cohorts
    given = int(recommended.get("accounts") or 0)
    text = (
        f"The projected impact of the recommended actions ({plural(given, 'account')} of the model and "
        f"exploration arms) is {_impact_text(recommended, currency)}."
        if given
        else "No account of the model and exploration arms is given an action: the recommendations project no impact."
    )
    if control is not None and control.get("accounts"):
        text += (
            f" The control cohort's defaults ({plural(int(control['accounts']), 'account')}) are projected at "
            f"{_impact_text(control, currency)}, apart: they are what the recommendations' lift is measured against."
        )
    return text


def _impact_note(summary: Mapping[str, Any], currency: str) -> str | None:
    """Whose actions the impact section sums (None without a projected impact)."""
    if not isinstance(summary.get("projected_impact_usd"), Mapping):
        return None
    cohorts = _cohorts(summary)
    if cohorts is None:
        return (
            "Summed over every account given an action, the control cohort's defaults included (a run made "
            "before the recommended and control cohorts were projected apart)."
        )
    text = "Projected for the recommended actions: the model's and exploration's."
    control = cohorts[1]
    if control is not None and control.get("accounts"):
        text += (
            f" The control cohort's defaults, projected at {_impact_text(control, currency)} over "
            f"{plural(int(control['accounts']), 'account')}, are not in these figures."
        )
    return text


def _no_impact_note(summary: Mapping[str, Any]) -> str:
    """What the impact section says of a run that projects nothing (every figure 0, no interval)."""
    impact = summary.get("projected_impact_usd")
    if isinstance(impact, Mapping) and impact.get("accounts") == 0:
        return "No account of the model and exploration arms is given an action: this run projects no impact."
    return "This run projects no impact: every objective's figure and interval is zero."


@dataclass(frozen=True)
class DefaultCounts:
    """Accounts against their lifecycle-stage default, over those whose default is known."""

    accounts: int
    differs: int
    left_alone_differs: int
    """Accounts left alone ("do nothing") whose default is an action: they count as differing."""
    acted: int
    """Accounts given an action."""
    acted_differs: int
    """Of those, how many got an action other than their default."""

    @property
    def acted_share(self) -> float | None:
        return self.acted_differs / self.acted if self.acted else None


def _default_counts(recs: pl.DataFrame) -> DefaultCounts | None:
    """The accounts that differ from their default, split into those left alone and those given an action.

    Over the accounts with a known default, as the summary's ``differs_from_default_share``; None
    when the recommendations do not say.
    """
    if not {"action_id", "differs_from_default"} <= set(recs.columns):
        return None
    known = recs.filter(pl.col("differs_from_default").is_not_null())
    if "default_action_id" in known.columns:
        known = known.filter(pl.col("default_action_id").is_not_null())
    differs = pl.col("differs_from_default").cast(pl.Boolean)
    nothing = pl.col("action_id").cast(pl.Utf8) == "none"
    row = known.select(
        pl.len().alias("n"),
        differs.sum().alias("d"),
        (differs & nothing).sum().alias("ld"),
        (~nothing).sum().alias("a"),
        (differs & ~nothing).sum().alias("ad"),
    ).row(0)
    return DefaultCounts(*(int(v or 0) for v in row))


def _differs_sentence(share: float, counts: DefaultCounts | None) -> str:
    """The share that differs from the default, over its base: every account, those left alone included."""
    text = f"{share:.0%} of accounts get something other than their lifecycle-stage default"
    if counts is None:
        return text + " (those left alone included, where the default is an action)."
    text += f" ({counts.left_alone_differs:,} of them nothing, where the default is an action)"
    if counts.acted_share is None:
        return text + "; no account is given an action."
    return (
        text + f"; of the {plural(counts.acted, 'account')} given an action, {counts.acted_share:.0%} "
        f"({counts.acted_differs:,}) get one other than their default."
    )


def _control_sentence(control: int, recs: pl.DataFrame) -> str:
    """The control cohort: kept to the lifecycle default, with how many actually got it and how many nothing."""
    verb = "is" if control == 1 else "are"
    text = (
        f"{plural(control, 'account')} {verb} in the randomised control cohort, kept to the lifecycle-stage "
        "default so the lift of the recommendations can be measured"
    )
    if not {"arm", "action_id", "default_action_id"} <= set(recs.columns):
        return text + "."
    cohort = recs.filter(pl.col("arm") == "control")
    action = pl.col("action_id").cast(pl.Utf8)
    default = pl.col("default_action_id").cast(pl.Utf8)
    got, blocked = cohort.select(
        (action == default).fill_null(False).sum().alias("got"),
        ((action == "none") & (default.fill_null("") != "none")).sum().alias("blocked"),
    ).row(0)
    got, blocked = int(got or 0), int(blocked or 0)
    text += f": {got:,} got their default"
    if blocked:
        text += (
            f" and {blocked:,} got nothing (their default is not allowed for them now, or no capacity was left for it)"
        )
    other = cohort.height - got - blocked
    if other > 0:
        text += f"; {other:,} got something else"
    return text + "."


def _counts(values: Sequence[str], labels: Mapping[str, str]) -> list[Count]:
    total = max(len(values), 1)
    counts: dict[str, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [Count(labels.get(k, k), n, n / total) for k, n in ordered]


def _stages(recs: pl.DataFrame) -> list[StageRow]:
    if "lifecycle_stage" not in recs.columns or "differs_from_default" not in recs.columns:
        return []
    differs = pl.col("differs_from_default").cast(pl.Boolean).fill_null(False)
    acted = pl.col("action_id").cast(pl.Utf8) != "none"
    grouped = (
        recs.group_by(pl.col("lifecycle_stage").fill_null("(none)"))
        .agg(
            pl.len().alias("n"),
            differs.sum().alias("d"),
            acted.sum().alias("a"),
            (differs & acted).sum().alias("ad"),
        )
        .sort(["n", "lifecycle_stage"], descending=[True, False])
    )
    return [
        StageRow(
            str(r["lifecycle_stage"]),
            int(r["n"]),
            int(r["d"]),
            int(r["d"]) / max(int(r["n"]), 1),
            int(r["a"]),
            int(r["ad"]),
        )
        for r in grouped.iter_rows(named=True)
    ]


def _bands(summary: Mapping[str, Any], recs: pl.DataFrame) -> list[BandRow]:
    given = summary.get("health_bands")
    if isinstance(given, Sequence) and given:
        # A book without ARR stores no ARR per band (null): its report counts accounts only.
        total = sum(float(b.get("arr_usd") or 0.0) for b in given) or 1.0
        accounts = sum(int(b["accounts"]) for b in given) or 1
        return [
            BandRow(
                str(b["band"]),
                int(b["accounts"]),
                float(b.get("arr_usd") or 0.0),
                float(b.get("arr_usd") or 0.0) / total,
                int(b["accounts"]) / accounts,
            )
            for b in given
        ]
    if "health_band" not in recs.columns:
        return []
    arr = pl.col("arr").cast(pl.Float64).fill_null(0.0) if "arr" in recs.columns else pl.lit(0.0)
    # In the order the bands come (not a hash's): the total, a float sum, is then the same on every call.
    grouped = recs.group_by(pl.col("health_band").fill_null("no score"), maintain_order=True).agg(
        pl.len().alias("n"), arr.sum().alias("a")
    )
    total = float(grouped.get_column("a").sum()) or 1.0
    order = {"Healthy": 0, "At risk": 1, "Critical": 2}
    rows = sorted(grouped.iter_rows(named=True), key=lambda r: order.get(str(r["health_band"]), 9))
    return [
        BandRow(str(r["health_band"]), int(r["n"]), float(r["a"]), float(r["a"]) / total, int(r["n"]) / recs.height)
        for r in rows
    ]


def _has_arr(summary: Mapping[str, Any], recs: pl.DataFrame) -> bool:
    """Whether the book has ARR: any non-null, non-zero ARR among the accounts or the summary's bands.

    A consumer book has none; its report then shows no ARR chart, section or column rather than $0s.
    """
    if "arr" in recs.columns and recs.select((pl.col("arr").cast(pl.Float64).fill_null(0.0) != 0).any()).item():
        return True
    bands = summary.get("health_bands")
    if isinstance(bands, Sequence) and not isinstance(bands, str):
        return any(isinstance(b, Mapping) and float(b.get("arr_usd") or 0.0) != 0 for b in bands)
    return False


def _has_owners(recs: pl.DataFrame) -> bool:
    """Whether any account has an owner (a blank one counts as none)."""
    if "owner" not in recs.columns:
        return False
    owner = pl.col("owner").cast(pl.Utf8).str.strip_chars().fill_null("")
    return bool(recs.select((owner != "").any()).item())


EvidenceSummaries = Callable[[Sequence[str]], Mapping[str, str]]
"""The "why" of each of these accounts (:func:`evidence_summary`), for recommendations without ``evidence``."""

EVIDENCE_SUMMARY_KEYS = ("summary", "signals")
"""The keys of a receipt (``evidence``) that :func:`evidence_summary` reads."""


def evidence_summary(evidence: object) -> str:
    """A receipt's "why" for the report: its ``summary``, else its signals' texts; "" without either.

    ``evidence`` is the receipt as JSON text or as parsed (a dict with at least
    :data:`EVIDENCE_SUMMARY_KEYS`).

    Examples
    --------
    >>> evidence_summary('{"summary": "renewal in 29 days"}')
    'renewal in 29 days'
    >>> evidence_summary({"summary": None, "signals": [{"text": "nps 7"}, {"text": "usage down"}]})
    'nps 7; usage down'
    """
    if isinstance(evidence, str) and evidence:
        try:
            parsed = json.loads(evidence)
        except json.JSONDecodeError:
            return ""
    else:
        parsed = evidence
    if not isinstance(parsed, dict):
        return ""
    text = parsed.get("summary")
    if isinstance(text, str) and text:
        return text
    signals = parsed.get("signals") or []
    return "; ".join(str(s.get("text")) for s in signals if isinstance(s, dict) and s.get("text"))


def _top_at_risk(
    recs: pl.DataFrame,
    labels: Mapping[str, str],
    currency: str,
    n: int = 15,
    summaries: EvidenceSummaries | None = None,
) -> list[dict[str, Any]]:
    if "arr" not in recs.columns:
        return []
    risk_col = next((c for c in ("arr_at_risk_usd", "arr_at_risk") if c in recs.columns), None)
    if risk_col is not None:
        risk = pl.col(risk_col).cast(pl.Float64)
    elif "health_band" in recs.columns:
        risk = (
            pl.when(pl.col("health_band").is_in(["At risk", "Critical"]))
            .then(pl.col("arr").cast(pl.Float64))
            .otherwise(0.0)
        )
    else:
        return []
    frame = (
        recs.with_columns(risk.fill_null(0.0).alias("_risk"))
        .filter(pl.col("_risk") > 0)
        .sort(["_risk", "account_id"], descending=[True, False])
        .head(n)
    )
    whys = _whys(frame, summaries)
    out = []
    for r in frame.iter_rows(named=True):
        out.append(
            {
                "account_id": r["account_id"],
                "name": r.get("name") or r["account_id"],
                "id": r["account_id"] if r.get("name") and r.get("name") != r["account_id"] else "",
                "arr": money_short(float(r.get("arr") or 0.0), currency),
                "at_risk": money_short(float(r["_risk"]), currency),
                "band": r.get("health_band") or "",
                "score": "" if r.get("health_score") is None else f"{float(r['health_score']):.0f}",
                "action": labels.get(str(r["action_id"]), str(r["action_id"])),
                "value": money_short(float(r.get("expected_value_usd") or 0.0), currency),
                "why": whys.get(r["account_id"], "") if whys is not None else evidence_summary(r.get("evidence")),
            }
        )
    return out


def _impact(summary: Mapping[str, Any]) -> list[ImpactRow]:
    rows = summary.get("impact_by_objective") or []
    out = [
        ImpactRow(
            str(r.get("label") or r.get("objective")),
            float(r["value_usd"]),
            float(r.get("low", r["value_usd"])),
            float(r.get("high", r["value_usd"])),
        )
        for r in rows
        if isinstance(r, Mapping) and "value_usd" in r
    ]
    total = summary.get("projected_impact_usd")
    if isinstance(total, Mapping) and "value" in total:
        value = float(total["value"])
        out.append(ImpactRow("All objectives", value, float(total.get("low", value)), float(total.get("high", value))))
    return out


def _impact_cost(impact: Sequence[ImpactRow]) -> float | None:
    """What separates the objectives' rows (gross) from "All objectives" (net of the actions' cost).

    None when there is no total or no objective row, or they agree to the dollar.
    """
    if len(impact) < 2 or impact[-1].label != "All objectives":
        return None
    gap = sum(i.value_usd for i in impact[:-1]) - impact[-1].value_usd
    return gap if abs(gap) >= 1.0 else None


def _policies(summary: Mapping[str, Any]) -> list[PolicyRow]:
    rows = summary.get("policy_values") or []
    out = []
    for r in rows:
        if not isinstance(r, Mapping):
            continue

        def number(key: str, r: Mapping[str, Any] = r) -> float | None:
            value = r.get(key)
            return float(value) if isinstance(value, int | float) and value == value else None

        estimate, note = number("estimate"), r.get("note")
        if estimate is None and not note:
            continue  # nothing to show and nothing to say
        out.append(
            PolicyRow(
                str(r.get("policy") or r.get("name")),
                str(r.get("method", "")),
                estimate,
                # An interval that could not be made is null, and its note says why: never drawn as a point.
                number("low"),
                number("high"),
                int(r.get("n", 0)),
                str(note) if note else None,
            )
        )
    return out


def policy_notes(policies: Sequence[PolicyRow]) -> list[str]:
    """The notes of the off-policy rows, each once, with the rows each is about.

    The same grouping as ``nextmove evaluate``'s (:func:`~nextmove.measure.ope.grouped_notes`).

    Examples
    --------
    >>> rows = [PolicyRow("nothing", "ips", None, None, None, 9, "never taken"),
    ...         PolicyRow("nothing", "snips", None, None, None, 9, "never taken"),
    ...         PolicyRow("learned", "dr", 1.0, 0.5, 1.5, 9)]
    >>> policy_notes(rows)
    ['nothing (IPS, SNIPS): never taken']
    """
    from nextmove.measure.ope import grouped_notes

    return grouped_notes(policies)


_TRAIT_WORDS = {"count": "{} count", "sum": "{} total", "trend": "{} trend", "touch_count": "{} touches"}


def _trait(trait: Mapping[str, Any], labels: Mapping[str, str]) -> str:
    """A segment's trait in plain words: "high payment failed count over 365 days"."""
    wording = feature_wording(str(trait.get("feature")), names=labels)
    text = _TRAIT_WORDS.get(wording.kind, "{}").format(isolated(wording.words))
    if wording.window:
        text += f" over {wording.window} days"
    z = trait.get("z")
    return f"{'high' if z >= 0 else 'low'} {text}" if isinstance(z, int | float) else text


def _segment_response(s: Mapping[str, Any], labels: Mapping[str, str], currency: str) -> str:
    """How a segment responds, with the playbook's action names (the summary's headline has action ids).

    The figures are the segment's (``nextmove.segment``): the value of its best single action for it as a
    whole, a ratio only against a book figure reliably above $0, a best family only where it pays reliably.
    """
    response = s.get("response")
    if not isinstance(response, Mapping):
        return str(s.get("headline") or (response if isinstance(response, str) else ""))
    ratio = response.get("ratio")
    value = float(response.get("value_usd") or 0.0)
    if isinstance(ratio, int | float):
        overall = f"responds {float(ratio):.1f}× the book average"
    elif value > 0:
        low, high = float(response.get("low") or 0.0), float(response.get("high") or 0.0)
        overall = (
            f"worth {money_short(value, currency)} per account ({money_short(low, currency)} to "
            f"{money_short(high, currency)}; the book average is not reliably above {money_short(0.0, currency)})"
        )
    else:
        overall = f"worth {money_short(0.0, currency)} per account (no action gains on average)"
    families = [f for f in response.get("families") or [] if isinstance(f, Mapping)]
    if not families:
        return overall
    # The summary names the best family (SegmentResponse.best_family: only one that pays reliably); older ones
    # lack the key, and then the first family is the best only when it is worth something.
    if "best_family" in response:
        named = response.get("best_family")
        best = next((f for f in families if named is not None and f.get("family") == named), None)
    else:
        best = families[0] if float(families[0].get("value_usd") or 0.0) > 0 else None
    if best is None:
        return f"{overall}; no action pays reliably here"
    action = str(best.get("best_action") or "")
    ratio = best.get("ratio")
    worth = (
        f"{float(ratio):.1f}× the book average"
        if isinstance(ratio, int | float) and best.get("material")
        else f"{money_short(float(best.get('value_usd') or 0.0), currency)} per account"
    )
    return (
        f"{overall}; best family {isolated(str(best.get('family')))} ({isolated(labels.get(action, action))}), {worth}"
    )


def _segment_details(s: Mapping[str, Any], labels: Mapping[str, str]) -> list[str]:
    details = [str(d) for d in s.get("details") or []]
    traits = [t for t in s.get("traits") or [] if isinstance(t, Mapping)]
    if traits:
        details.append("distinct by: " + ", ".join(_trait(t, labels) for t in traits[:4]))
    rates = s.get("rates")
    if isinstance(rates, Mapping):
        seen = [
            f"{isolated(str(kind))} {float(r['observed']):.0%}"
            for kind, r in rates.items()
            if isinstance(r, Mapping) and isinstance(r.get("observed"), int | float)
        ]
        if seen:
            details.append("in the last year: " + ", ".join(seen))
    health = s.get("health")
    if isinstance(health, int | float):
        details.append(f"mean health {float(health):.0f}")
    return details


def _segments(
    summary: Mapping[str, Any], labels: Mapping[str, str], currency: str
) -> tuple[list[SegmentRow], list[str]]:
    block = summary.get("segments")
    if not isinstance(block, Mapping):
        return [], []
    rows = []
    listed = [s for s in block.get("segments") or [] if isinstance(s, Mapping)]
    names = [str(s.get("name", s.get("id", ""))) for s in listed]
    for s, name in zip(listed, names, strict=True):
        if names.count(name) > 1 and s.get("id") is not None:
            name = f"{name} (segment {s['id']})"  # two segments of one name: told apart by their ids
        arr = s.get("arr_usd")
        rows.append(
            SegmentRow(
                name=name,
                accounts=int(s.get("accounts", 0)),
                arr_usd=float(arr) if isinstance(arr, int | float) else None,
                response=_segment_response(s, labels, currency),
                details=_segment_details(s, labels),
            )
        )
    notes = [str(n) for n in block.get("notes") or []]
    spend = block.get("spend")
    if isinstance(spend, Mapping) and spend.get("touches"):
        notes.append(_spend_note(spend, currency))
    notes.append(_moves_note(block))
    return rows, notes


def _spend_note(spend: Mapping[str, Any], currency: str) -> str:
    """The share of recent touches on segments that respond below the book, and what moving them is projected at.

    A gain whose interval reaches $0 is said to be not reliable (``nextmove.segment.SpendEfficiency``).
    """
    text = (
        f"{float(spend.get('share_below_average', 0.0)):.0%} of the last {spend.get('days')} days' "
        f"{int(spend['touches']):,} touches went to segments that respond below the book average"
    )
    moved = int(spend.get("moved_touches", 0))
    if not spend.get("touches_below_average", moved):
        return text + "."
    if moved == 0:
        return (
            f"{text}; none is moved: no untouched account of a segment whose best action pays reliably would gain "
            "from one."
        )
    low, high = float(spend.get("low", 0.0)), float(spend.get("high", 0.0))
    gain = (
        f"{money_short(float(spend.get('recoverable_usd', 0.0)), currency)} "
        f"({money_short(low, currency)} to {money_short(high, currency)})"
    )
    if low > 0:
        return f"{text}; moving {moved:,} of them is projected to recover {gain}."
    return f"{text}; moving {moved:,} of them is projected at {gain}, not reliably above {money_short(0.0, currency)}."


def _moves_note(block: Mapping[str, Any]) -> str:
    """How many accounts moved since the previous run of the book (named, when the run kept which it was)."""
    moves = block.get("moves")
    previous = block.get("previous_run")
    since = "the previous run"
    if isinstance(previous, Mapping) and previous.get("run_id"):
        when = _readable_date(previous.get("as_of"))
        since = f"the previous run of this book, {previous['run_id']}" + (f" (as of {when})" if when else "")
    if isinstance(moves, Mapping) and moves.get("accounts") and moves.get("reformed"):
        return (
            f"The segments were re-formed since {since} ({int(moves.get('segments_before', 0))} → "
            f"{int(moves.get('segments_after', 0))} segments): moves between segments are not comparable; "
            f"{int(moves.get('new', 0)):,} are new."
        )
    if isinstance(moves, Mapping) and moves.get("accounts"):
        return (
            f"{int(moves.get('moved', 0)):,} of {int(moves['accounts']):,} accounts "
            f"({float(moves.get('moved_share', 0.0)):.0%}) moved to another segment since {since}; "
            f"{int(moves.get('new', 0)):,} are new."
        )
    if isinstance(previous, Mapping) and previous.get("run_id"):
        return f"No account of {since} is in this run: no moves between segments to count."
    if "previous_run" in block:
        return (
            "No earlier run of this book under this playbook (one with an earlier decision time, kept in the "
            "store with its segments) to compare the segments with."
        )
    return "No previous run to compare the segments with."


_OLD_DIFFERS_METRIC = "Recommendations that differ from the lifecycle default"


def _metrics(summary: Mapping[str, Any], counts: DefaultCounts | None, currency: str) -> list[MetricRow]:
    """The summary's metric rows; the one on the lifecycle default is judged again on the recommendations.

    A run stored before the summary counted the accounts given an action judged the share of every
    account (those left alone included) against a benchmark meant for actions; the row is rebuilt
    here with both figures and the base the benchmark is about. The off-policy row is judged again
    from the stored estimates, by the rule of :func:`~nextmove.engine.run_facts.off_policy_metric`, and
    named in the run's ``currency`` ("€ per decision": the stored name says "$").
    """
    share = summary.get("differs_from_default_share")
    out = []
    for m in summary.get("metrics") or []:
        if not isinstance(m, Mapping) or "metric" not in m:
            continue
        if m["metric"] in (DIFFERS_METRIC, _OLD_DIFFERS_METRIC) and isinstance(share, int | float):
            m = differs_metric(
                float(share), *((counts.acted, counts.acted_differs) if counts is not None else (None, None))
            )
        elif m["metric"] == OFF_POLICY_METRIC:
            # A run stored before the row was judged on the paired difference and on enough evidence
            # said "On track" on the learned policy's low end alone: judged again by today's rule.
            judged = off_policy_metric(summary.get("policy_values") or [], summary.get("policy_differences") or [])
            if judged is None:
                continue  # not judged by today's rule (e.g. a default without an interval): no verdict
            m = judged
        name = str(m["metric"])
        if name == OFF_POLICY_METRIC:
            name = name.replace("$ per decision", f"{currency_unit(currency)} per decision")
        out.append(MetricRow(name, str(m.get("current", "")), str(m.get("benchmark", "")), str(m.get("status", ""))))
    return out


def _whys(frame: pl.DataFrame, summaries: EvidenceSummaries | None) -> Mapping[str, str] | None:
    """The "why" of the accounts of ``frame`` from ``summaries``; None when the frame carries the evidence itself."""
    if "evidence" in frame.columns:
        return None
    if summaries is None or frame.height == 0:
        return {}
    return summaries(frame.get_column("account_id").cast(pl.Utf8).to_list())


def _table(
    recs: pl.DataFrame, labels: Mapping[str, str], currency: str, summaries: EvidenceSummaries | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    note = None
    frame = recs
    if frame.height > MAX_TABLE_ROWS:
        frame = frame.sort(pl.col("expected_value_usd").abs(), descending=True).head(MAX_TABLE_ROWS)
        note = (
            f"The table holds the {MAX_TABLE_ROWS:,} accounts with the largest values of {recs.height:,}; "
            "recommendations.csv has every account."
        )

    def get(r: Mapping[str, Any], key: str) -> Any:
        return r.get(key) if key in r else None

    whys = _whys(frame, summaries)
    rows = []
    for r in frame.iter_rows(named=True):
        value = float(r.get("expected_value_usd") or 0.0)
        low, high = get(r, "value_low_usd"), get(r, "value_high_usd")
        name = str(get(r, "name") or "").strip()
        account_id = str(r["account_id"])
        rows.append(
            {
                "account": name or account_id,
                # The id under a name (two accounts may share a name); empty when the account has no name.
                "id": account_id if name and name != account_id else "",
                "owner": str(get(r, "owner") or ""),
                "stage": str(get(r, "lifecycle_stage") or ""),
                "health": "" if get(r, "health_score") is None else round(float(r["health_score"])),
                "band": str(get(r, "health_band") or ""),
                "action": labels.get(str(r["action_id"]), str(r["action_id"])),
                "arm": str(get(r, "arm") or ""),
                "value": round(value, 2),
                "interval": ""
                if low is None or high is None
                else f"{money_short(float(low), currency)} to {money_short(float(high), currency)}",
                "low": None if low is None or high is None else round(float(low), 2),
                "default": labels.get(str(get(r, "default_action_id")), str(get(r, "default_action_id") or "")),
                "differs": bool(get(r, "differs_from_default")),
                "why": whys.get(account_id, "") if whys is not None else evidence_summary(get(r, "evidence")),
            }
        )
    return rows, note


_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


def _readable_date(as_of: object) -> str:
    """A run's as-of instant for people: "5 January 2026"; with "14:30 UTC" when it is not midnight.

    Text that is not an ISO date is kept as it is.

    Examples
    --------
    >>> _readable_date("2026-01-05T00:00:00+00:00"), _readable_date("2026-01-05T14:30:00+00:00")
    ('5 January 2026', '5 January 2026, 14:30 UTC')
    """
    when = as_of
    if isinstance(as_of, str):
        try:
            when = datetime.fromisoformat(as_of)
        except ValueError:
            return as_of
    if not isinstance(when, datetime):
        return str(as_of or "")
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    text = f"{when.day} {_MONTHS[when.month - 1]} {when.year}"
    if (when.hour, when.minute, when.second) != (0, 0, 0):
        text += f", {when:%H:%M} UTC"
    return text


def _title(summary: Mapping[str, Any]) -> str:
    """The playbook's own name, unless it kept the schema's placeholder."""
    name = str(summary.get("playbook_name") or "").strip()
    return name if name and name != "playbook" else "Next best action playbook"


def build_report_data(
    summary: Mapping[str, Any],
    recommendations: pl.DataFrame,
    *,
    action_labels: Mapping[str, str] | None = None,
    family_of_action: Mapping[str, str] | None = None,
    title: str | None = None,
    served: bool | str | None = None,
    evidence_summaries: EvidenceSummaries | None = None,
    currency: str | None = None,
) -> ReportData:
    """The report's content from a run's ``summary`` and its ``recommendations`` (one row per account).

    ``recommendations`` needs ``account_id``, ``action_id`` and ``expected_value_usd``; the other
    columns of a run's recommendations (``lifecycle_stage``, ``health_band``, ``arr``,
    ``default_action_id``, ``differs_from_default``, ``evidence`` …) add their sections. Optional
    summary blocks (``health_bands``, ``impact_by_objective``, ``policy_values``, ``segments``,
    ``metrics``) add theirs; a missing block gives a note instead of a section. ARR (any non-null,
    non-zero ``arr``) adds the at-risk section and the ARR figures, an ``owner`` the accounts
    table's Owner column; a consumer book without them shows neither. The title is
    ``title``, else the playbook's name (``playbook_name``), else "Next best action playbook".
    ``served`` says whether online decisions come from this run: True, False, or the id of the run
    they come from (None, the default: the page does not say). Without an ``evidence`` column,
    ``evidence_summaries`` gives the "why" of the accounts the page lists (asked only for those),
    and the columns :data:`BEST_ALTERNATIVE_COLUMNS` may stand for ``alternatives``: a stored
    run's report reads no receipt whole. Amounts are written in ``currency``, by default the
    run's (the summary's ``currency``, its playbook's), else USD (a run made before runs kept it).

    Examples
    --------
    >>> recs = pl.DataFrame({"account_id": ["a", "b"], "action_id": ["call", "none"], "expected_value_usd": [10.0, 0]})
    >>> data = build_report_data({"accounts": 2, "actions": 1}, recs)
    >>> data.sentences[0].split(" and ")[0]
    'The playbook scored 2 active customers across 1 possible action'
    >>> [(c.label, c.count) for c in data.actions]
    [('call', 1), ('Do nothing', 1)]
    """
    missing = [c for c in ("account_id", "action_id", "expected_value_usd") if c not in recommendations.columns]
    if missing:
        raise ConfigError(f"the run's recommendations lack the column(s) {', '.join(missing)}; re-run `nextmove run`")
    money = run_currency(summary) if currency is None else currency_code(currency)
    labels = _labels(summary, action_labels)
    families_map = {str(k): str(v) for k, v in (summary.get("action_families") or {}).items()}
    families_map.update(family_of_action or {})
    actions = recommendations.get_column("action_id").cast(pl.Utf8).to_list()
    acted = [a for a in actions if a != "none"]
    families = [c for c in _counts([families_map.get(a, "other") for a in acted], {}) if acted]
    if not families_map:
        families = []
    segments, segment_notes = _segments(summary, labels, money)
    table, table_note = _table(recommendations, labels, money, evidence_summaries)
    notes = []
    for key, what in (
        ("policy_values", "off-policy estimates"),
        ("health_bands", "health bands"),
        ("segments", "segments"),
    ):
        if not summary.get(key) and not (key == "health_bands" and "health_band" in recommendations.columns):
            notes.append(f"This run has no {what}.")
    as_of = summary.get("as_of", "")
    impact = _impact(summary)
    impact_note = _impact_note(summary, money) if impact else None
    if impact and all(i.value_usd == i.low_usd == i.high_usd == 0 for i in impact):
        # Nothing projected: the section says so rather than drawing "All objectives $0 ($0 to $0)".
        impact, impact_note = [], _no_impact_note(summary)
    run_notes = list(dict.fromkeys(str(n) for n in summary.get("notes") or [] if str(n).strip()))
    if not acted:
        families_note: str | None = "No account was given an action."
    else:
        families_note = None if families else "The playbook groups no actions by focus."
    return ReportData(
        title=title or _title(summary),
        run_id=str(summary.get("run_id", "")),
        as_of=as_of.isoformat() if isinstance(as_of, datetime) else str(as_of),
        as_of_text=_readable_date(as_of),
        sentences=_sentences(summary, families, recommendations, money),
        actions=_counts(actions, labels),
        families=families,
        stages=_stages(recommendations),
        bands=_bands(summary, recommendations),
        top_at_risk=_top_at_risk(recommendations, labels, money, summaries=evidence_summaries),
        impact=impact,
        impact_cost_usd=_impact_cost(impact),
        policies=_policies(summary),
        segments=segments,
        segment_notes=segment_notes,
        metrics=_metrics(summary, _default_counts(recommendations), money),
        table=table,
        table_note=table_note,
        notes=notes,
        has_arr=_has_arr(summary, recommendations),
        has_owners=_has_owners(recommendations),
        run_notes=run_notes,
        families_note=families_note,
        impact_note=impact_note,
        served=_served_text(served),
        currency=money,
    )


def _served_text(served: bool | str | None) -> str | None:
    """Whether online decisions come from this run, in words (None: not known)."""
    if served is None:
        return None
    if served is True:
        return "the served run (online decisions come from it)"
    if served is False:
        return "not served (no run is)"
    return f"not served (online decisions come from run {served})"
