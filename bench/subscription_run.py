"""Benchmark of `nextmove run` on a large B2C subscription book that the lab did not make.

A streaming service's subscribers (``--accounts``, default 100,000): a weekly ``minutes_watched``
signal and occasional ``payment_failed`` ones, a logged decision every two weeks among doing
nothing, a discount, a push and a premium trial (confounded by engagement, no propensities
logged), cancellations that end a subscription and upgrades. Its playbook has its own teams and
channels. The book is written once as Parquet (not counted); a child process then loads it and
runs the whole job as ``nextmove run`` does (features, effect model, projection, decision,
evidence, evaluation), and reports each stage's time and the peak memory (``VmHWM``).

    .venv/bin/python bench/subscription_run.py                      # 100,000 subscribers, 30 weeks
    .venv/bin/python bench/subscription_run.py --accounts 400000    # about 4.6M decisions

There is no target in an issue for this size; the figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from _util import fmt_bytes, machine, peak_rss_bytes, run_child
from nextmove.testing.subscriptions import SUBSCRIPTION_PLAYBOOK, write_subscription_book

# The shared book's playbook with the bench's settings: budgets for a large book, no contact cap, and
# signal roles (so the health score reads the signals).
PLAYBOOK = (
    SUBSCRIPTION_PLAYBOOK.replace("{ retention = 300, crm = 400 }", "{ retention = 20000, crm = 30000 }").replace(
        'caps = [{ team = "crm", channel = "push", max_touches = 1, window_days = 28 }]\n', ""
    )
    + '\n[signal_roles]\nusage = ["minutes_watched"]\nsupport = ["payment_failed"]\n'
)
assert "20000" in PLAYBOOK
assert "caps" not in PLAYBOOK


def child(folder: Path) -> dict[str, Any]:
    """Load the book and run the whole job, timed stage by stage."""
    from nextmove.book.validate import load_book
    from nextmove.engine.run import run
    from nextmove.playbook.loader import load_playbook

    started = time.perf_counter()
    playbook = load_playbook(folder / "playbook.toml")
    book = load_book(folder, playbook=playbook)
    loaded = time.perf_counter() - started
    result = run(book, playbook, out_dir=None, store=None)
    timings = {k: round(v, 2) for k, v in result.summary["timings_s"].items()}
    return {
        "load_s": round(loaded, 2),
        "timings_s": timings,
        "wall_s": round(time.perf_counter() - started, 2),
        "peak_rss_bytes": peak_rss_bytes(),
        "accounts": result.summary["accounts"],
        "acting": result.summary["accounts"] - result.summary["do_nothing"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000, help="subscribers (default 100,000)")
    parser.add_argument("--weeks", type=int, default=30, help="weeks of history (default 30)")
    parser.add_argument("--cache", type=Path, default=Path("bench/out/subscriptions"), help="where the book is kept")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(args.child)))
        return 0
    print(f"machine: {machine()}")
    folder = args.cache / f"book_{args.accounts}_{args.weeks}"
    if not (folder / "playbook.toml").exists():
        print(f"writing the book ({args.accounts:,} subscribers, {args.weeks} weeks; not counted)…", flush=True)
        counts = write_subscription_book(folder, args.accounts, args.weeks, playbook=PLAYBOOK)
        print("  " + ", ".join(f"{name} {n:,}" for name, n in counts.items()), flush=True)
    result = run_child(Path(__file__), ["--child", str(folder)])
    print(json.dumps(result, indent=2))
    print(
        f"{args.accounts:,} subscribers ({result['accounts']:,} active): {result['wall_s']:.1f} s "
        f"(load {result['load_s']:.1f} s, run {result['timings_s']['total']:.1f} s), "
        f"peak {fmt_bytes(result['peak_rss_bytes'])}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
