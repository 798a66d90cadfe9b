"""Turning the world's logs into contract-typed book tables and truth tables."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import NDArray

from nextmove.book import Book
from nextmove.book.contract import ARMS, CONTRACT
from nextmove.sim.model import (
    GROUP_DESCRIPTIONS,
    GROUPS,
    OUTCOME_KINDS,
    SEGMENTS,
    STAGES,
    STATE_NAMES,
)
from nextmove.sim.names import company_name
from nextmove.sim.world import (
    INDUSTRIES,
    PLANS,
    REGIONS,
    SIGNAL_NAMES,
    SIGNAL_SOURCES,
    DecisionRecord,
    SignalChunk,
    World,
    prob_columns,
)

UTC_US = pl.Datetime("us", "UTC")


def _ts(col: str) -> pl.Expr:
    return (pl.col(col) * 1_000_000).cast(UTC_US)


def _id(prefix: str, col: str, width: int) -> pl.Expr:
    return pl.format(prefix + "{}", (pl.col(col) + 1).cast(pl.String).str.zfill(width))


def _lookup(col: str, names: tuple[str, ...] | list[str]) -> pl.Expr:
    return pl.col(col).replace_strict(dict(enumerate(names)), default=None, return_dtype=pl.String)


def _contract_order(frame: pl.DataFrame, table: str) -> pl.DataFrame:
    spec = CONTRACT[table]
    casts = [pl.col(c.name).cast(c.type.polars) for c in spec.columns]
    extra = [c for c in frame.columns if c not in spec.column_names]
    return frame.select(*casts, *extra)


def accounts_frame(world: World) -> pl.DataFrame:
    """The accounts table as of the world's current time (churned accounts kept, stage ``churned``)."""
    a = world.accounts
    n = len(a)
    idx = np.arange(n, dtype=np.int64)
    stage = world.stage_of(idx, world.now_s)
    frame = pl.DataFrame(
        {
            "idx": idx,
            "name": [company_name(world.name_order, i) for i in range(n)],
            "segment": a.segment,
            "industry": a.industry,
            "stage": stage,
            "arr": np.round(a.arr, 2),
            "contract_start": a.contract_start_s,
            "renewal_date": a.renewal_s,
            "owner": a.owner,
            "region": a.region,
            "seats": a.seats.astype(np.int64),
            "plan": a.plan,
            "customer_since": a.created_s,
        }
    )
    frame = frame.select(
        _id("ACC-", "idx", 6).alias("account_id"),
        "name",
        _lookup("segment", SEGMENTS).alias("segment"),
        _lookup("industry", INDUSTRIES).alias("industry"),
        _lookup("stage", STAGES).alias("lifecycle_stage"),
        "arr",
        _ts("contract_start").alias("contract_start"),
        _ts("renewal_date").alias("renewal_date"),
        _lookup("owner", world.owner_names).alias("owner"),
        _lookup("region", REGIONS).alias("region"),
        "seats",
        _lookup("plan", PLANS).alias("plan"),
        _ts("customer_since").alias("customer_since"),
    )
    return _contract_order(frame, "accounts")


def signals_frame(chunks: list[SignalChunk]) -> pl.DataFrame:
    """The signals table from signal chunks (already in time order)."""
    if not chunks:
        return _contract_order(
            pl.DataFrame(schema={c.name: c.type.polars for c in CONTRACT["signals"].columns}), "signals"
        )
    idx, ts, name, value = (np.concatenate(parts) for parts in zip(*chunks, strict=True))
    frame = pl.DataFrame({"idx": idx, "ts": ts, "code": name, "value": value.astype(np.float64)})
    frame = frame.select(
        _id("ACC-", "idx", 6).alias("account_id"),
        _ts("ts").alias("ts"),
        _lookup("code", SIGNAL_NAMES).alias("name"),
        "value",
        _lookup("code", SIGNAL_SOURCES).alias("source"),
    )
    return _contract_order(frame, "signals")


def touches_frame(world: World, start: int = 0, *, with_propensities: bool = True) -> pl.DataFrame:
    """The touches logged from touch chunk ``start`` on."""
    chunks = world.touch_chunks[start:]
    if not chunks or not sum(len(c[0]) for c in chunks):
        return _contract_order(
            pl.DataFrame(schema={**{c.name: c.type.polars for c in CONTRACT["touches"].columns}, "variant": pl.String}),
            "touches",
        )
    number = np.concatenate([c[0] for c in chunks])
    idx = np.concatenate([c[1] for c in chunks])
    code = np.concatenate([c[2] for c in chunks])
    ts = np.concatenate([np.full(len(c[0]), c[3], dtype=np.int64) for c in chunks])
    propensity = np.concatenate([c[4] for c in chunks])
    arm = np.concatenate([c[5] for c in chunks])
    variant = np.concatenate([c[6] for c in chunks])
    frame = pl.DataFrame(
        {"no": number, "idx": idx, "code": code, "ts": ts, "propensity": propensity, "arm": arm, "variant": variant}
    )
    propensity_expr = (
        pl.when(pl.col("propensity").is_nan()).then(None).otherwise(pl.col("propensity"))
        if with_propensities
        else pl.lit(None, dtype=pl.Float64)
    )
    frame = frame.select(
        _id("ACC-", "idx", 6).alias("account_id"),
        _lookup("code", world.action_ids).alias("action_id"),
        _ts("ts").alias("ts"),
        _id("T-", "no", 8).alias("touch_id"),
        _lookup("arm", list(ARMS)).alias("arm"),
        propensity_expr.alias("propensity"),
        pl.when(pl.col("code") > 0).then(pl.lit("done")).otherwise(None).alias("status"),
        _lookup("variant", world.variant_names).alias("variant"),
    )
    return _contract_order(frame, "touches")


def outcomes_frame(world: World, start: int = 0) -> pl.DataFrame:
    """The outcomes realised from outcome chunk ``start`` on."""
    chunks = world.outcome_chunks[start:]
    if not chunks or not sum(len(c[0]) for c in chunks):
        return _contract_order(
            pl.DataFrame(schema={c.name: c.type.polars for c in CONTRACT["outcomes"].columns}), "outcomes"
        )
    number, idx, ts, kind, value, touch = (np.concatenate(parts) for parts in zip(*chunks, strict=True))
    frame = pl.DataFrame(
        {"no": number, "idx": idx, "ts": ts, "kind": kind, "value": value.astype(np.float64), "touch": touch}
    )
    frame = frame.select(
        _id("ACC-", "idx", 6).alias("account_id"),
        _ts("ts").alias("ts"),
        _lookup("kind", OUTCOME_KINDS).alias("kind"),
        _id("O-", "no", 7).alias("outcome_id"),
        pl.col("value").round(2),
        pl.when(pl.col("touch") >= 0).then(_id("T-", "touch", 8)).otherwise(None).alias("touch_id"),
    )
    return _contract_order(frame, "outcomes")


def build_book(world: World, *, with_propensities: bool, source: str) -> Book:
    """The book of business observable at the world's current time."""
    return Book(
        accounts=accounts_frame(world),
        signals=signals_frame(world.signal_chunks),
        touches=touches_frame(world, with_propensities=with_propensities),
        outcomes=outcomes_frame(world),
        source=source,
        as_of=world.now,
    )


# ---- truth ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Truth:
    """The ground truth of a simulated book (every frame is also written to ``truth/``)."""

    values: pl.DataFrame
    """At the book's as_of: one row per active account and candidate (every action and ``none``):
    eligibility, true outcome probabilities, expected expansion dollars, value in dollars,
    ``is_oracle``."""
    accounts: pl.DataFrame
    """Per account: group, hidden states at as_of (at churn for churned accounts), whether it has
    already decided to leave, the lifecycle default and the oracle action with their values."""
    decisions: pl.DataFrame
    """Per historical decision (touch): true outcome probabilities under the action taken and
    under ``none``, its value, the oracle and default actions at that time with their values."""
    propensities: pl.DataFrame
    """Per historical decision: the logging policy's probability of every candidate (0 when not
    eligible); rows sum to 1."""
    groups: pl.DataFrame
    """Per behavioral group: size, mean oracle value (its true response), rank, usual best action."""
    group_actions: pl.DataFrame
    """Per group and candidate: mean true value and mean change of each outcome probability."""


@dataclass(frozen=True)
class TruthSummary:
    """Headline figures of the truth at as_of (sums over active accounts)."""

    active_accounts: int
    oracle_value_usd: float
    default_value_usd: float
    do_nothing_best_share: float
    top_group: str


def _sigmoid(x: NDArray[np.float64]) -> NDArray[np.float64]:
    out: NDArray[np.float64] = 1.0 / (1.0 + np.exp(-x))
    return out


def truth_accounts_frame(world: World) -> pl.DataFrame:
    """Hidden states and groups of every account, with the oracle and default at the latest decision time."""
    a = world.accounts
    n = len(a)
    idx = np.arange(n, dtype=np.int64)
    x = world.snapshot()
    oracle_code, oracle_value = world.model.oracle(x)
    default_code = world.policy.default_codes(x)
    _, default_value = world.model.values(x, default_code)
    codes = np.full(n, -1, dtype=np.int64)
    ov = np.full(n, np.nan)
    dc = np.full(n, -1, dtype=np.int64)
    dv = np.full(n, np.nan)
    codes[x.idx], ov[x.idx], dc[x.idx], dv[x.idx] = oracle_code, oracle_value, default_code, default_value
    states = _sigmoid(a.z)
    frame = pl.DataFrame(
        {
            "idx": idx,
            "group": a.group,
            "active": a.active,
            **{name: np.round(states[:, j], 6) for j, name in enumerate(STATE_NAMES)},
            "frustrated": a.z[:, 4] > 0.9,
            "committed_to_churn": a.committed & a.active,
            "stage": world.stage_of(idx, world.now_s),
            "days_to_renewal": np.where(a.active, (a.renewal_s - world.now_s) / 86_400, np.nan),
            "default": dc,
            "default_value_usd": dv,
            "oracle": codes,
            "oracle_value_usd": ov,
        }
    )
    return frame.select(
        _id("ACC-", "idx", 6).alias("account_id"),
        _lookup("group", GROUPS).alias("group"),
        "active",
        *STATE_NAMES,
        "frustrated",
        "committed_to_churn",
        _lookup("stage", STAGES).alias("lifecycle_stage"),
        pl.col("days_to_renewal").fill_nan(None),
        _lookup("default", world.action_ids).alias("default_action"),
        pl.col("default_value_usd").fill_nan(None),
        _lookup("oracle", world.action_ids).alias("oracle_action"),
        pl.col("oracle_value_usd").fill_nan(None),
    )


def decisions_frames(world: World, records: list[DecisionRecord]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The truth of logged decisions and the logging policy's full propensities."""
    frames = []
    prop_frames = []
    for r in records:
        logged = r.touch_no >= 0
        cols = {
            "no": r.touch_no,
            "idx": r.idx,
            "ts": np.full(len(r.idx), r.t_s, dtype=np.int64),
            "code": r.code,
            "group": world.accounts.group[r.idx],
            "propensity": r.propensity,
            **prob_columns(r.probs_taken),
            **prob_columns(r.probs_none, "_none"),
            "value_usd": r.value_usd,
            "oracle": r.oracle_code,
            "oracle_value_usd": r.oracle_value_usd,
            "default": r.default_code,
            "default_value_usd": r.default_value_usd,
        }
        frames.append(pl.DataFrame(cols).filter(pl.Series(logged)))
        if r.propensities is not None:
            wide = {"no": r.touch_no, **{a: r.propensities[:, c] for c, a in enumerate(world.action_ids)}}
            prop_frames.append(pl.DataFrame(wide).filter(pl.Series(logged)))
    prob_names = [c for c in frames[0].columns if c.startswith(("p_", "expected_"))] if frames else []
    if not frames:
        empty = pl.DataFrame(schema={"touch_id": pl.String})
        return empty, empty
    decisions = pl.concat(frames).select(
        _id("T-", "no", 8).alias("touch_id"),
        _id("ACC-", "idx", 6).alias("account_id"),
        _ts("ts").alias("ts"),
        _lookup("code", world.action_ids).alias("action_id"),
        _lookup("group", GROUPS).alias("group"),
        pl.col("propensity").fill_nan(None),
        *prob_names,
        "value_usd",
        _lookup("oracle", world.action_ids).alias("oracle_action"),
        "oracle_value_usd",
        _lookup("default", world.action_ids).alias("default_action"),
        "default_value_usd",
    )
    if prop_frames:
        propensities = pl.concat(prop_frames).select(_id("T-", "no", 8).alias("touch_id"), *world.action_ids)
    else:
        propensities = pl.DataFrame(schema={"touch_id": pl.String, **dict.fromkeys(world.action_ids, pl.Float64)})
    return decisions, propensities


def _mean(values: NDArray[np.float64] | NDArray[np.bool_]) -> float:
    # numpy sums in a fixed order: polars' parallel group sums may differ in the last bit from
    # run to run, which would break byte-for-byte reproducible truth files.
    return float(np.mean(values)) if len(values) else float("nan")


def group_frames(values: pl.DataFrame, accounts: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per-group response summaries from the as-of truth."""
    active = accounts.filter(pl.col("active")).sort("account_id")
    total = max(active.height, 1)
    group_col = active.get_column("group").to_numpy()
    oracle_action = active.get_column("oracle_action").to_numpy()
    oracle_value = active.get_column("oracle_value_usd").to_numpy()
    rows = []
    for g, description in zip(GROUPS, GROUP_DESCRIPTIONS, strict=True):
        mine = group_col == g
        best, counts = np.unique(oracle_action[mine], return_counts=True)
        rows.append(
            {
                "group": g,
                "description": description,
                "accounts": int(mine.sum()),
                "share": float(mine.sum()) / total,
                "mean_oracle_value_usd": _mean(oracle_value[mine]),
                "usual_best_action": str(best[np.argmax(counts)]) if len(best) else None,
                "do_nothing_best_share": _mean(oracle_action[mine] == "none"),
            }
        )
    groups = (
        pl.DataFrame(rows)
        .sort(["mean_oracle_value_usd", "group"], descending=[True, False], nulls_last=True)
        .with_row_index("response_rank", offset=1)
        .select(
            "group",
            "description",
            "accounts",
            "share",
            "mean_oracle_value_usd",
            "response_rank",
            "usual_best_action",
            "do_nothing_best_share",
        )
    )
    none = values.filter(pl.col("action_id") == "none").select(
        "account_id", *[pl.col(f"p_{k}").alias(f"_{k}") for k in OUTCOME_KINDS]
    )
    joined = (
        values.join(active.select("account_id", "group", "oracle_action"), on="account_id")
        .join(none, on="account_id")
        .sort("account_id", "action_id")
    )
    g_col = joined.get_column("group").to_numpy()
    a_col = joined.get_column("action_id").to_numpy()
    value = joined.get_column("value_usd").to_numpy()
    eligible = joined.get_column("eligible").to_numpy()
    best_col = joined.get_column("oracle_action").to_numpy()
    effects = {k: joined.get_column(f"p_{k}").to_numpy() - joined.get_column(f"_{k}").to_numpy() for k in OUTCOME_KINDS}
    out = []
    for g in GROUPS:
        for action in sorted(set(a_col.tolist())):
            m = (g_col == g) & (a_col == action)
            if not m.any():
                continue
            out.append(
                {
                    "group": g,
                    "action_id": action,
                    "mean_value_usd": _mean(value[m]),
                    "eligible_share": _mean(eligible[m]),
                    "best_share": _mean(best_col[m] == action),
                    **{f"mean_effect_{k}": _mean(e[m]) for k, e in effects.items()},
                }
            )
    group_actions = pl.DataFrame(out).sort("group", "action_id")
    return groups, group_actions


def build_truth(world: World) -> Truth:
    """Every truth table of the world at its current time and for its logged history."""
    values = world.true_values()
    accounts = truth_accounts_frame(world)
    oracle = accounts.select("account_id", "oracle_action")
    values = (
        values.join(oracle, on="account_id", how="left")
        .with_columns((pl.col("action_id") == pl.col("oracle_action")).alias("is_oracle"))
        .drop("oracle_action")
    )
    decisions, propensities = decisions_frames(world, world.decisions)
    groups, group_actions = group_frames(values, accounts)
    return Truth(
        values=values,
        accounts=accounts,
        decisions=decisions,
        propensities=propensities,
        groups=groups,
        group_actions=group_actions,
    )


def summarize_truth(truth: Truth) -> TruthSummary:
    """Headline figures: oracle vs lifecycle-default value, share where doing nothing is best."""
    active = truth.accounts.filter(pl.col("active"))
    top = truth.groups.filter(pl.col("response_rank") == 1).get_column("group")
    return TruthSummary(
        active_accounts=active.height,
        oracle_value_usd=float(active.get_column("oracle_value_usd").sum()),
        default_value_usd=float(active.get_column("default_value_usd").sum()),
        do_nothing_best_share=float(np.mean(active.get_column("oracle_action").to_numpy() == "none"))
        if active.height
        else 0.0,
        top_group=str(top[0]) if len(top) else "",
    )
