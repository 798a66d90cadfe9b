"""Benchmark of the health bands: how the accounts spread over them, and how churn went in each on later decisions.

For one book it runs ``score_health`` and compares the fixed 30/70 cut-offs with the bands it learned
from the terminal outcome's history: each band's share of the active accounts and its outcome rate
on the history's later window (the latest quarter of decision times, which set no cut-off), with
that rate over the window's.

    .venv/bin/python bench/health_bands.py --lab                        # lab book, 2,000 accounts, 12 months
    .venv/bin/python bench/health_bands.py --consumers                  # a consumer book the lab did not make
    .venv/bin/python bench/health_bands.py --subscriptions              # the streaming book, its signals in roles
    .venv/bin/python bench/health_bands.py --book DIR                   # any book folder with its playbook.toml

The figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import polars as pl

from nextmove.book import Book
from nextmove.book.validate import load_book
from nextmove.engine import score_health
from nextmove.features import build_training_set
from nextmove.models.health import BANDS, FIXED_BANDS, HealthBands, band_expr
from nextmove.models.health_optimizer import later_window_start
from nextmove.models.outcome import OutcomeModel
from nextmove.playbook import Playbook
from nextmove.playbook.loader import load_playbook

ORDER = [b for b, _ in reversed(BANDS)]


def _rows(bands: HealthBands, scores: pl.Series, later: pl.DataFrame, label: str) -> list[str]:
    now = pl.DataFrame({"s": scores}).select(band_expr(pl.col("s"), bands)).get_column("health_band")
    banded = later.select(band_expr(pl.col("health_score"), bands), pl.col(label))
    book = float(banded.get_column(label).mean())  # type: ignore[arg-type]
    cells = []
    for band in ORDER:
        share = float((now == band).mean())  # type: ignore[arg-type]
        y = banded.filter(pl.col("health_band") == band).get_column(label)
        rate = f"{float(y.mean()):.2%} ({float(y.mean()) / book:.1f}×)" if y.len() else "–"  # type: ignore[arg-type]
        cells.append(f"{share:.1%} · {rate}")
    return cells


def measure(book: Book, playbook: Playbook) -> None:
    """Print the table of one book: fixed and learned bands, shares and later-window rates."""
    started = time.perf_counter()
    result = score_health(book, playbook, template=OutcomeModel(n_estimators=100, early_stopping_rounds=10, n_jobs=1))
    took = time.perf_counter() - started
    report = result.bands_report
    if report is None:
        print("no learned bands:", *result.notes, sep="\n  ")
        return
    label = report.label
    training = build_training_set(book, playbook, as_of=result.as_of).filter(~pl.col("censored"))
    cut = later_window_start(training.get_column("decision_ts"), 0.25)
    later_rows = training.filter(pl.col("decision_ts") >= cut)
    later = pl.DataFrame(
        {
            "health_score": result.scorecard.score(later_rows).get_column("health_score"),
            label: later_rows.get_column(label).cast(pl.Float64).fill_null(0.0),
        }
    ).drop_nulls("health_score")
    scores = result.accounts.get_column("health_score").drop_nulls()
    auc = result.optimizer.auc_hand_set if result.optimizer is not None else None
    print(
        f"{scores.len():,} active accounts as of {result.as_of:%Y-%m-%d}; score mean {scores.mean():.1f}, "
        f"sd {scores.std():.1f}, 10th–90th percentile {scores.quantile(0.1):.1f}–{scores.quantile(0.9):.1f}; "
        f"hand-set AUC {'n/a' if auc is None else f'{auc:.3f}'} on the optimizer's later window"
    )
    print(
        f"later window from {str(cut)[:10]}: {later.height:,} decisions, {int(later[label].sum()):,} "
        f"{label.removeprefix('y_')} ({float(later[label].mean()):.2%}); slope {report.slope_per_point:+.4f} "  # type: ignore[arg-type]
        f"log-odds per point (z {report.slope_z:.1f}); health job {took:.0f} s\n"
    )
    print(
        "| bands | cut-offs | " + " | ".join(f"{b}: share · {label.removeprefix('y_')} rate (×)" for b in ORDER) + " |"
    )
    print("| --- | --- | " + " | ".join("---" for _ in ORDER) + " |")
    for name, bands in (("fixed 30/70", FIXED_BANDS), ("learned", result.health_bands)):
        print(f"| {name} | {bands.describe()} | " + " | ".join(_rows(bands, scores, later, label)) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--lab", action="store_true", help="a lab book (simulate)")
    which.add_argument("--consumers", action="store_true", help="the consumer meal-kit book of nextmove.testing")
    which.add_argument("--subscriptions", action="store_true", help="the streaming book of nextmove.testing")
    which.add_argument("--book", type=Path, help="a book folder with its playbook.toml")
    parser.add_argument("--accounts", type=int, default=None)
    parser.add_argument("--months", type=int, default=12, help="lab: months of history")
    parser.add_argument("--weeks", type=int, default=None, help="consumers (52), subscriptions (40): weeks")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.lab:
        from nextmove.sim import SimConfig, simulate

        lab = simulate(SimConfig(accounts=args.accounts or 2000, months=args.months, seed=args.seed))
        measure(lab.book, lab.config.resolved_playbook())
        return
    if args.consumers:
        from nextmove.testing.consumers import write_consumer_book

        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "book"
            write_consumer_book(folder, args.accounts or 6000, args.weeks or 52, seed=args.seed)
            playbook = load_playbook(folder / "playbook.toml")
            measure(load_book(folder, playbook=playbook), playbook)
        return
    if args.subscriptions:
        from nextmove.testing.subscriptions import SUBSCRIPTION_PLAYBOOK, write_subscription_book

        roles = '\n[signal_roles]\nusage = ["minutes_watched"]\nsupport = ["payment_failed"]\n'
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "book"
            write_subscription_book(
                folder, args.accounts or 5000, args.weeks or 40, playbook=SUBSCRIPTION_PLAYBOOK + roles
            )
            playbook = load_playbook(folder / "playbook.toml")
            measure(load_book(folder, playbook=playbook), playbook)
        return
    playbook = load_playbook(args.book / "playbook.toml")
    measure(load_book(args.book, playbook=playbook), playbook)


if __name__ == "__main__":
    main()
