"""Benchmark of the run's summary columns on a large projection: time and the memory they add.

``nextmove run`` writes, beside each recommendation, the projected outcome of every objective with the
recommended action, the ARR at risk, the projected impact by objective, and (for the loop) each
account's do-nothing dollars. They read the projection. This bench takes `bench/decide.py`'s cached
base (a 3,000-account lab book and its fitted effect model), tiles its snapshot to ``--accounts``
accounts, projects every action (20 draws: the draws do not matter here), decides, and then times
those four functions alone, printing their wall time and the peak RSS before and after them.

    .venv/bin/python bench/run_facts.py --accounts 200000 --cache /tmp/decide-base

There is no target in an issue for this step; the figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import gc
import pickle
import sys
import time
from datetime import datetime
from pathlib import Path

from _util import current_rss_bytes, fmt_bytes, machine, peak_rss_bytes
from decide import _tile, build_base


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=200_000)
    parser.add_argument("--base", type=int, default=3_000, help="lab accounts the large book is copied from")
    parser.add_argument("--cache", type=Path, required=True, help="where the base is kept (made when missing)")
    args = parser.parse_args(argv)

    import polars as pl

    from nextmove.decide.policy import decide
    from nextmove.decide.rules import check_rules
    from nextmove.engine.loop import baseline_usd
    from nextmove.engine.run import _projected_columns
    from nextmove.engine.run_facts import arr_at_risk, impact_by_objective
    from nextmove.features import feature_schema
    from nextmove.playbook.loader import parse_playbook

    folder = args.cache
    if not (folder / "model.pkl").exists():
        build_base(folder, args.base, 0)
    playbook = parse_playbook((folder / "playbook.toml").read_text(encoding="utf-8"))
    as_of = datetime.fromisoformat((folder / "as_of.txt").read_text(encoding="utf-8"))
    model = pickle.loads((folder / "model.pkl").read_bytes())
    model.n_draws, model.n_jobs = 20, 2
    base = pl.read_parquet(folder / "snapshot.parquet")
    reps = -(-args.accounts // base.height)
    snapshot = _tile(base, reps).head(args.accounts)
    ids = snapshot.select("account_id")
    touches = _tile(pl.read_parquet(folder / "touches.parquet"), reps).join(ids, on="account_id", how="semi")
    info = ids.join(
        _tile(pl.read_parquet(folder / "accounts.parquet"), reps), on="account_id", how="left", maintain_order="left"
    )
    projection = model.project(snapshot)
    rules = check_rules(snapshot, touches, playbook, as_of, feature_schema(snapshot))
    owners = [f"owner-{i // 60:05d}" for i in range(snapshot.height)]
    stages = info.get_column("lifecycle_stage").to_list()
    decided = decide(rules, projection.values, playbook, owners=owners, stages=stages, run_key=as_of.isoformat())
    frame = decided.frame()
    del touches, rules, decided
    gc.collect()
    before, peak_before = current_rss_bytes(), peak_rss_bytes()
    started = time.perf_counter()
    recs = frame.select("account_id").with_columns(pl.lit(1000.0).alias("arr"))
    _projected_columns(projection, frame, playbook)
    arr_at_risk(projection, recs, playbook)
    impact_by_objective(projection, frame.filter(pl.col("arm") != "control"), playbook)
    baseline_usd(projection, playbook, recs)
    seconds = time.perf_counter() - started
    print(f"machine: {machine()}")
    print(
        f"{snapshot.height:,} accounts: the summary columns took {seconds:.1f} s; RSS before {fmt_bytes(before)} "
        f"(peak so far {fmt_bytes(peak_before)}), peak after {fmt_bytes(peak_rss_bytes())}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
