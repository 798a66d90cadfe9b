"""Benchmark of features: wall time and peak memory of ``compute_features`` (and optionally a training set).

Generates (seeded, with numpy and polars) a book of ``--accounts`` accounts with ``--weeks`` weeks
of weekly values for each of five signals (100,000 × 78 × 5 = 39,000,000 signal rows at full
size), about one touch per account per 7 weeks and a few outcomes, writes it as Parquet, then
loads it and runs ``compute_features`` at the end date in a fresh child process, so that the
generation's time and memory are not counted. Peak RSS includes the book itself.

    .venv/bin/python bench/features.py                      # 100k accounts, 39M signal rows
    .venv/bin/python bench/features.py --accounts 5000 --training   # also a training set

Target: ≤ 30 s and ≤ 6 GB peak RSS on 2 cores at full size.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from _util import current_rss_bytes, fmt_bytes, machine, peak_rss_bytes, run_child, timed

END = datetime(2026, 1, 5, tzinfo=UTC)
SIGNAL_NAMES = ("active_users", "logins", "seat_utilization", "tickets_opened", "nps")
TARGET_SECONDS = 30.0
TARGET_PEAK_BYTES = 6 * 1024**3
US_PER_DAY = 86_400_000_000


def generate_book(out: Path, *, accounts: int, weeks: int, seed: int) -> dict[str, int]:
    """Write a book into ``out`` as Parquet; return the rows per table."""
    import numpy as np
    import polars as pl

    from nextmove.book.contract import NO_ACTION
    from nextmove.playbook.loader import load_playbook

    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    utc = pl.Datetime("us", "UTC")
    end_us = int(END.timestamp() * 1_000_000)
    start_us = end_us - weeks * 7 * US_PER_DAY
    n_names = len(SIGNAL_NAMES)
    ids = pl.Series("account_id", [f"acc_{i:07d}" for i in range(accounts)], dtype=pl.String)

    def pick(values: tuple[str, ...] | list[str], n: int) -> pl.Series:
        return pl.Series(np.asarray(values, dtype=object)[rng.integers(0, len(values), n)], dtype=pl.String)

    contract_start = start_us - rng.integers(0, 3 * 365, accounts, dtype=np.int64) * US_PER_DAY
    accounts_frame = pl.DataFrame(
        {
            "account_id": ids,
            "name": pl.Series([f"Customer {i}" for i in range(accounts)], dtype=pl.String),
            "segment": pick(("SMB", "Mid-Market", "Enterprise"), accounts),
            "industry": pick(("software", "retail", "health", "finance"), accounts),
            "lifecycle_stage": pick(("onboarding", "adoption", "growth", "maturity", "renewal"), accounts),
            "arr": np.round(rng.lognormal(10, 1.2, accounts), 2),
            "contract_start": pl.Series(contract_start).cast(utc),
            "renewal_date": pl.Series(contract_start + 365 * US_PER_DAY * rng.integers(1, 5, accounts)).cast(utc),
            "owner": pick([f"csm{i:03d}" for i in range(max(accounts // 60, 1))], accounts),
            "region": pick(("NA", "EMEA", "APAC"), accounts),
            "employees": rng.integers(1, 5000, accounts),
            "last_qbr": pl.Series(end_us - rng.integers(1, 400, accounts, dtype=np.int64) * US_PER_DAY).cast(utc),
        }
    )
    accounts_frame.write_parquet(out / "accounts.parquet")

    # Signals: every account, every week, every name; account-specific hour so times differ.
    n = accounts * weeks * n_names
    acc_idx = np.repeat(np.arange(accounts, dtype=np.int64), weeks * n_names)
    week = np.tile(np.repeat(np.arange(weeks, dtype=np.int64), n_names), accounts)
    ts = start_us + week * 7 * US_PER_DAY + (acc_idx % 24) * 3_600_000_000
    del week
    level = rng.gamma(2.0, 10.0, accounts)[acc_idx]
    value = np.round(level * rng.lognormal(0.0, 0.3, n), 3)
    del level
    signals = pl.DataFrame(
        {
            "account_id": ids.gather(pl.Series(acc_idx)),
            "ts": pl.Series(ts).cast(utc),
            "name": pl.Series(SIGNAL_NAMES, dtype=pl.String).gather(
                pl.Series(np.tile(np.arange(n_names), n // n_names))
            ),
            "value": value,
            "source": pl.repeat("product", n, dtype=pl.String, eager=True),
        }
    )
    del acc_idx, ts, value
    signals.write_parquet(out / "signals.parquet")
    rows = {"accounts": accounts, "signals": signals.height}
    del signals

    n_touches = accounts * weeks // 7
    actions = [*load_playbook().action_ids, NO_ACTION]
    touch_ts = start_us + rng.integers(0, weeks * 7 * US_PER_DAY, n_touches, dtype=np.int64)
    touches = pl.DataFrame(
        {
            "account_id": ids.gather(pl.Series(rng.integers(0, accounts, n_touches))),
            "action_id": pick(actions, n_touches),
            "ts": pl.Series(touch_ts).cast(utc),
            "touch_id": pl.Series([f"t{i}" for i in range(n_touches)], dtype=pl.String),
            "arm": pick(("model", "default", "control"), n_touches),
            "propensity": np.round(rng.uniform(0.05, 1.0, n_touches), 4),
            "status": pick(("done",), n_touches),
        }
    )
    touches.write_parquet(out / "touches.parquet")
    rows["touches"] = touches.height

    n_outcomes = accounts // 2
    outcomes = pl.DataFrame(
        {
            "account_id": ids.gather(pl.Series(rng.integers(0, accounts, n_outcomes))),
            "ts": pl.Series(start_us + rng.integers(0, weeks * 7 * US_PER_DAY, n_outcomes, dtype=np.int64)).cast(utc),
            "kind": pick(("churn", "renewal", "expansion", "advocacy", "recovery"), n_outcomes),
            "outcome_id": pl.Series([f"o{i}" for i in range(n_outcomes)], dtype=pl.String),
            "value": np.round(rng.normal(0, 5000, n_outcomes), 2),
            "touch_id": pl.Series([None] * n_outcomes, dtype=pl.String),
        }
    )
    outcomes.write_parquet(out / "outcomes.parquet")
    rows["outcomes"] = outcomes.height
    return rows


def features_child(folder: Path, training: bool) -> dict[str, object]:
    """Load the book and compute its features in this (fresh) process; return time and memory figures."""
    import polars as pl

    from nextmove.book import Book
    from nextmove.features import build_training_set, compute_features
    from nextmove.playbook.loader import load_playbook

    playbook = load_playbook()
    tables = {
        name: pl.read_parquet(folder / f"{name}.parquet") for name in ("accounts", "signals", "touches", "outcomes")
    }
    book = Book(**tables, source=str(folder), as_of=END)
    loaded_rss = current_rss_bytes()
    with timed() as t:
        snapshot = compute_features(book, END, playbook=playbook)
    result: dict[str, object] = {
        "seconds": t.seconds,
        "peak_rss": peak_rss_bytes(),
        "loaded_rss": loaded_rss,
        "shape": list(snapshot.shape),
    }
    if training:
        del snapshot
        with timed() as tt:
            train = build_training_set(book, playbook, as_of=END)
        result |= {
            "training_seconds": tt.seconds,
            "training_peak_rss": peak_rss_bytes(),
            "training_shape": list(train.shape),
        }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--weeks", type=int, default=78, help="weeks of history (78 = 18 months)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--training", action="store_true", help="also build a training set (use with fewer accounts)")
    parser.add_argument("--out", type=Path, default=None, help="write the book here and keep it (default: a temp dir)")
    parser.add_argument("--reuse", action="store_true", help="use the book already in --out, do not generate")
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child is not None:
        print(json.dumps(features_child(args.child, args.training)))
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="nextmove-bench-features-")) if args.out is None else None
    folder = tmp / "book" if tmp is not None else args.out
    try:
        print(f"machine: {machine()}")
        if not args.reuse:
            with timed() as g:
                rows = generate_book(folder, accounts=args.accounts, weeks=args.weeks, seed=args.seed)
            print(f"generated in {g.seconds:.1f} s: " + ", ".join(f"{k} {v:,}" for k, v in rows.items()))
        child_args = ["--child", str(folder)] + (["--training"] if args.training else [])
        res = run_child(Path(__file__), child_args)
        ok = res["seconds"] <= TARGET_SECONDS and res["peak_rss"] <= TARGET_PEAK_BYTES
        print(f"compute_features at {END:%Y-%m-%d}: {res['seconds']:.1f} s, peak RSS {fmt_bytes(res['peak_rss'])} ")
        rows, cols = res["shape"]
        print(f"  (book loaded: {fmt_bytes(res['loaded_rss'])}); snapshot {rows:,} rows × {cols} columns")
        print(f"  target ≤ {TARGET_SECONDS:.0f} s and ≤ {fmt_bytes(TARGET_PEAK_BYTES)}: {'met' if ok else 'MISSED'}")
        if args.training:
            shape = res["training_shape"]
            print(
                f"build_training_set: {res['training_seconds']:.1f} s, peak RSS {fmt_bytes(res['training_peak_rss'])}; "
                f"{shape[0]:,} rows × {shape[1]} columns"
            )
        return 0
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
