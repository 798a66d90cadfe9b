"""Benchmark of the feedback holds reads: the batch run's feedback step and an online decision's hold read.

Fills a store (a temporary SQLite file, or ``--store URL``) with a served run of ``--accounts``
recommendations, ``--events`` snoozes and dismissals (a third of the dismissals name a logged
decision, a third nothing; a tenth of the snoozes the whole account) and as many ``done`` and
``outcome`` events, then times:

- the run's feedback step, :func:`nextmove.engine.holds.read_holds` (every account's holds at once);
- one account's hold read per online decision: ``Store.hold_events(account_id)`` (now) against
  what ``OnlineDecider._holds`` read before, the account's whole feedback through SQLAlchemy and
  one ``get_decision`` per event naming a decision; for accounts with events and without.

    .venv/bin/python bench/holds.py                         # 100k accounts, 10k events, SQLite
    .venv/bin/python bench/holds.py --store postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from nextmove.engine.holds import HOLD_WHY, read_holds
from nextmove.errors import NotFoundError
from nextmove.playbook.loader import load_playbook
from nextmove.store import DecisionRecord, FeedbackEvent, RecommendationRecord, RunRecord, Store, open_store

AS_OF = datetime(2026, 6, 1, tzinfo=UTC)


def fill(store: Store, accounts: int, events: int) -> list[str]:
    """Store the run, decisions and feedback; return the ids of accounts that have hold events."""
    playbook = load_playbook()
    actions = playbook.action_ids
    ids = [f"acct-{i:06d}" for i in range(accounts)]
    run = RunRecord(
        run_id="run-1",
        book_source="bench",
        playbook_hash=playbook.content_hash(),
        status="succeeded",
        as_of=AS_OF,
        created_at=AS_OF,
        finished_at=AS_OF + timedelta(minutes=5),
    )
    store.save_run(
        run,
        (
            RecommendationRecord(
                run_id="run-1",
                account_id=a,
                action_id=actions[i % len(actions)],
                arm="model",
                propensity=0.9,
                expected_value_usd=100.0,
            )
            for i, a in enumerate(ids)
        ),
    )
    step = max(accounts // events, 1)
    held = [ids[(i * step) % accounts] for i in range(events)]
    decisions, feedback = [], []
    for i, account in enumerate(held):
        ts = AS_OF - timedelta(days=i % 10)
        action = actions[i % len(actions)]
        if i % 2 == 0:  # snoozes: a tenth of them of the whole account
            feedback.append(
                FeedbackEvent(
                    event_id=f"s-{i}",
                    account_id=account,
                    kind="snoozed",
                    ts=ts,
                    action_id=None if i % 20 == 0 else action,
                    reason="customer on holiday",
                    payload={"snoozed_until": (AS_OF + timedelta(days=14)).isoformat()},
                )
            )
        elif i % 3 == 0:  # dismissals of an online decision
            decisions.append(
                DecisionRecord(
                    decision_id=f"d-{i}",
                    account_id=account,
                    action_id=action,
                    arm="model",
                    propensity=0.9,
                    expected_value_usd=1.0,
                    ts=ts,
                )
            )
            feedback.append(
                FeedbackEvent(
                    event_id=f"x-{i}",
                    account_id=account,
                    kind="dismissed",
                    ts=ts,
                    reason="already in touch",
                    payload={"decision_id": f"d-{i}"},
                )
            )
        else:  # dismissals of an action, or naming nothing (the served run's recommendation)
            feedback.append(
                FeedbackEvent(
                    event_id=f"x-{i}",
                    account_id=account,
                    kind="dismissed",
                    ts=ts,
                    action_id=action if i % 3 == 1 else None,
                    reason="already in touch",
                )
            )
        other = "done" if i % 2 else "outcome"
        feedback.append(FeedbackEvent(event_id=f"o-{i}", account_id=account, kind=other, ts=ts, action_id=action))
    store.log_decisions(decisions)
    store.add_feedback(feedback)
    return held


def old_read(store: Store, account_id: str) -> list[FeedbackEvent]:
    """What ``OnlineDecider._holds`` read before ``hold_events``: the whole feedback, and each decision named."""
    events = [e for e in store.feedback(account_id=account_id) if e.kind in HOLD_WHY]
    for e in events:
        decision_id = e.payload.get("decision_id")
        if isinstance(decision_id, str):
            with contextlib.suppress(NotFoundError):
                store.get_decision(decision_id)
    return events


def per_call_us(read: Callable[[Store, str], object], store: Store, accounts: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        for account in accounts:
            read(store, account)
        times.append((time.perf_counter() - started) / len(accounts) * 1e6)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--store", default=None, help="store URL (default: a temporary SQLite file)")
    parser.add_argument("--reads", type=int, default=500, help="accounts read per timing of the online read")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.store or f"sqlite:///{Path(folder, 'bench.db').as_posix()}"
        with open_store(url) as store:
            started = time.perf_counter()
            held = fill(store, args.accounts, args.events)
            print(
                f"filled {url.split('://')[0]} store in {time.perf_counter() - started:.1f} s: {args.accounts:,} "
                f"recommendations, {store.count_feedback():,} feedback events ({args.events:,} snoozes and dismissals)"
            )
            playbook = load_playbook()
            runs, cpu = [], []
            for _ in range(3):
                started, used = time.perf_counter(), time.process_time()
                frame = read_holds(store, playbook, AS_OF)
                runs.append(time.perf_counter() - started)
                cpu.append(time.process_time() - used)
            print(
                f"run's feedback step (read_holds): {statistics.median(runs) * 1000:.0f} ms "
                f"({statistics.median(cpu) * 1000:.0f} ms CPU) median of 3, {frame.height:,} held (account, action)"
            )
            sample = held[: args.reads]
            quiet = [f"acct-{i:06d}" for i in range(1, args.accounts, max(args.accounts // args.reads, 1))]
            quiet = [a for a in quiet if a not in set(held)][: args.reads]
            for name, accounts in (("with events", sample), ("without", quiet)):
                before = per_call_us(old_read, store, accounts, 5)
                after = per_call_us(lambda s, a: s.hold_events(a), store, accounts, 5)
                print(f"online hold read, accounts {name}: before {before:.0f} µs, now {after:.0f} µs per decision")


if __name__ == "__main__":
    main()
