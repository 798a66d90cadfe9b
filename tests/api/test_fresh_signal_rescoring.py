"""Decisions rescored with fresh signals: the batch rescoring's values, at a fraction of what it cost.

A rescoring with fresh signals reads its account's rows of the book through an index made once per
book (not a scan of every table per decision), and its features' trends read their window means
by name (Polars planned the trends written out in full, six copies of the means each and again in
each role trend, in about 35 ms for one account). Neither changes a value: the options of an
account rescored alone are those of the whole book rescored at once, and a changed book is
rescored from its new rows. One account's projection runs on the decision's own thread (the
run's model would start a pool of two threads for it on each decision).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from nextmove.api import ApiConfig
from nextmove.api.auth import Principal
from nextmove.api.routes import decide_now
from nextmove.api.schemas import DecideIn
from nextmove.api.service import Services
from nextmove.book import NO_ACTION, Book
from nextmove.book.validate import load_book
from nextmove.decide.policy import value_matrices
from nextmove.decide.rules import Why, check_rules
from nextmove.engine.online import DecideRequest, FreshScorer, OnlineDecider
from nextmove.engine.run import run
from nextmove.features import compute_features, feature_schema
from nextmove.features.signals import role_trend, signal_mean, signal_trend
from nextmove.playbook import Playbook
from nextmove.playbook.loader import load_playbook
from nextmove.sim import SimConfig, simulate, write_book
from nextmove.store import AuditEntry, open_store


@dataclass
class Lab:
    """A lab book in a folder and a store whose served run left its effect model."""

    folder: Path
    playbook: Playbook
    store_url: str


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    work = tmp_path_factory.mktemp("fresh-signals")
    folder = write_book(simulate(SimConfig(accounts=150, months=6, seed=3)), work / "book")
    playbook = load_playbook(folder / "playbook.toml")
    url = f"sqlite:///{(work / 'nextmove.db').as_posix()}"
    with open_store(url) as store:
        run(load_book(folder, playbook=playbook), playbook, store=store, seed=0)
    return Lab(folder, playbook, url)


def _as_of(decider: OnlineDecider) -> datetime:
    assert decider.snapshot is not None
    run_record = decider.snapshot.run
    return run_record.as_of or run_record.created_at


def _fresh_rows(book: Book, signals: dict[str, dict[str, float]], as_of: datetime) -> pl.DataFrame:
    """The fresh values of each account as rows of the book's signals, seen just before ``as_of``."""
    seen = as_of - timedelta(microseconds=1)
    rows = pl.DataFrame(
        {
            "account_id": [a for a, values in signals.items() for _ in values],
            "ts": [seen for values in signals.values() for _ in values],
            "name": [n for values in signals.values() for n in values],
            "value": [v for values in signals.values() for v in values.values()],
        }
    )
    return rows.select(
        [
            (pl.col(c) if c in rows.columns else pl.lit(None)).cast(book.signals.schema[c]).alias(c)
            for c in book.signals.columns
        ]
    )


def _batch_rescoring(
    scorer: FreshScorer, book: Book, signals: dict[str, dict[str, float]], as_of: datetime
) -> dict[str, dict[tuple[str, str | None], tuple[float, Why]]]:
    """Every candidate's value and rule code for each account of ``signals``, the whole book rescored at once.

    The batch run's way: the book's every account's features in one frame (the fresh values added
    to the accounts' rows), projected together, the rules checked on all.
    """
    whole = Book(
        book.accounts, pl.concat([book.signals, _fresh_rows(book, signals, as_of)]), book.touches, book.outcomes
    )
    snapshot = compute_features(whole, as_of, playbook=scorer.playbook, vocabulary=scorer.vocabulary)
    ids = snapshot.get_column("account_id").to_list()
    rules = check_rules(snapshot, book.touches, scorer.playbook, as_of, feature_schema(snapshot))
    costs = {a.id: a.cost_usd for a in scorer.playbook.actions}
    values = value_matrices(scorer.model.project(snapshot).values, ids, rules.candidates, action_cost_usd=costs)[0]
    out = {}
    for account in signals:
        i = ids.index(account)
        out[account] = {
            (c.action_id, c.variant): (
                float(values[i, k]) if np.isfinite(values[i, k]) else 0.0,
                Why(int(rules.why[i, k])),
            )
            for k, c in enumerate(rules.candidates)
        }
    return out


def _check_options_are_the_batch_s(
    scorer: FreshScorer, book: Book, signals: dict[str, dict[str, float]], as_of: datetime
) -> None:
    batch = _batch_rescoring(scorer, book, signals, as_of)
    for account, fresh in signals.items():
        options = scorer.options(account, fresh, as_of)
        expected = batch[account]
        shown = {(o.action_id, o.variant): o.value_usd for o in options if o.action_id != NO_ACTION}
        assert shown == {key: value for key, (value, _why) in expected.items()}, account
        allowed = {key: value for key, (value, why) in expected.items() if why == Why.ALLOWED}
        best = max(allowed, key=lambda key: allowed[key]) if allowed else None
        chosen = (options[0].action_id, options[0].variant)
        if best is None or allowed[best] <= 0:
            assert chosen == (NO_ACTION, None) or allowed.get(chosen) == 0.0, account
        else:
            assert chosen == best, account
        assert {(o.action_id, o.variant) for o in options if o.blocked_by_run and o.action_id != NO_ACTION} == {
            key for key, (_value, why) in expected.items() if why != Why.ALLOWED
        }, account


def _accounts(book: Book) -> list[str]:
    """Accounts of the book with touches and without, a few of each."""
    touched = set(book.touches.get_column("account_id").to_list())
    ids = book.accounts.get_column("account_id").to_list()
    return [a for a in ids if a in touched][:3] + [a for a in ids if a not in touched][:1]


def test_an_account_rescored_alone_has_the_options_of_the_whole_book_rescored_at_once(lab: Lab) -> None:
    book = load_book(lab.folder, playbook=lab.playbook)
    with open_store(lab.store_url) as store:
        decider = OnlineDecider(store, lab.playbook, book=book)
        scorer = decider.fresh_scorer()
        assert scorer is not None
        as_of = _as_of(decider)
        names = book.signal_names
        signals = {
            a: {names[i % len(names)]: 3.0 * i, names[(i + 5) % len(names)]: 0.5} for i, a in enumerate(_accounts(book))
        }
        _check_options_are_the_batch_s(scorer, book, signals, as_of)
        # Decided and logged: the receipt's values are the rescoring's (to the cent, before any feedback).
        account, fresh = next(iter(signals.items()))
        (decision,) = decider.decide([DecideRequest(account, fresh)])
        assert decision.evidence["rescored_with_fresh_signals"] is True
        batch = _batch_rescoring(scorer, book, {account: fresh}, as_of)[account]
        shown = {(a["action_id"], a["variant"]): a["value_usd"] for a in decision.alternatives}
        shown[(decision.action_id, decision.variant)] = decision.evidence["value_usd"]
        for key, (value, _why) in batch.items():
            assert shown[key] == pytest.approx(value, abs=0.006), key
        decider.close()


def test_an_account_s_rows_are_found_once_per_book_not_by_a_scan_of_its_tables(lab: Lab) -> None:
    book = load_book(lab.folder, playbook=lab.playbook)
    with open_store(lab.store_url) as store:
        decider = OnlineDecider(store, lab.playbook, book=book)
        scorer = decider.fresh_scorer()
        assert scorer is not None
        # Its projection runs on the decision's thread: no pool of the run's two threads per decision.
        assert scorer.model.n_jobs == 1
        for account in [*_accounts(book), "no-such-account"]:
            for table in ("accounts", "signals", "touches", "outcomes"):
                frame = book.table(table)
                expected = frame.filter(pl.col("account_id") == account)
                found = scorer.rows[table].of(account)
                assert found.schema == frame.schema
                assert found.equals(expected, null_equal=True), (account, table)
        decider.close()


def test_trends_read_their_window_means_by_name() -> None:
    # The means are columns the snapshot adds once (signal_means): a trend is a small expression.
    assert set(signal_trend("logins", 28).meta.root_names()) == {"mean_28d|logins", "prev_mean_28d|logins"}
    assert set(signal_mean("logins", 28).meta.root_names()) == {"mean_28d|logins"}
    assert set(role_trend("usage", ["logins", "seats"], 7).meta.root_names()) == {
        "mean_7d|logins",
        "prev_mean_7d|logins",
        "mean_7d|seats",
        "prev_mean_7d|seats",
    }


def _settled(folder: Path) -> None:
    """Date the book's files 10 s back: written whole, so that the server need not wait for them to settle."""
    then = time.time() - 10
    for file in folder.iterdir():
        if file.is_file():
            os.utime(file, (then, then))


def test_a_changed_book_is_rescored_from_its_new_rows(lab: Lab, tmp_path: Path) -> None:
    folder = tmp_path / "book"
    folder.mkdir()
    for file in lab.folder.iterdir():
        if file.is_file():
            (folder / file.name).write_bytes(file.read_bytes())
    _settled(folder)
    book = load_book(folder, playbook=lab.playbook)
    account = _accounts(book)[0]
    fresh = {book.signal_names[0]: 4.0}
    with open_store(lab.store_url) as store:
        services = Services(ApiConfig(playbook=lab.playbook, book=book, book_path=str(folder)), store=store)
        try:
            before = services.decider.fresh_scorer()
            assert before is not None
            as_of = _as_of(services.decider)
            old_values = {(o.action_id, o.variant): o.value_usd for o in before.options(account, fresh, as_of)}
            # The account's signals change in the book's file: its every value three times what it was.
            signals_file = next(folder.glob("signals.*"))
            assert signals_file.suffix == ".parquet"
            mine = pl.col("account_id") == account
            pl.read_parquet(signals_file).with_columns(
                pl.when(mine).then(pl.col("value") * 3.0).otherwise(pl.col("value")).alias("value")
            ).write_parquet(signals_file)
            _settled(folder)
            assert services.refresh_book(fresh=True)
            new_book = services.config.book
            assert new_book is not None
            assert new_book is not book
            after = services.decider.fresh_scorer()
            assert after is not None
            assert after is not before
            assert after.book is new_book
            assert after.rows["signals"].of(account).equals(new_book.signals.filter(mine))
            new_values = {(o.action_id, o.variant): o.value_usd for o in after.options(account, fresh, as_of)}
            assert new_values != old_values
            _check_options_are_the_batch_s(after, new_book, {account: fresh}, as_of)
        finally:
            services.decider.close()


def test_the_server_rescores_at_most_one_decision_per_core_at_once(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    # More rescorings than cores at once only share the cores (and each holds its frames): on a
    # 2-core machine, 20 a second were answered at 80 ms of CPU each instead of 61 ms.
    book = load_book(lab.folder, playbook=lab.playbook)
    with open_store(lab.store_url) as store:
        services = Services(ApiConfig(playbook=lab.playbook, book=book, book_path=str(lab.folder)), store=store)
        try:
            real = services.decider.decide
            guard = threading.Lock()
            running, most = [0], [0]

            def counted(*args: object, **kwargs: object) -> object:
                with guard:
                    running[0] += 1
                    most[0] = max(most[0], running[0])
                try:
                    time.sleep(0.05)  # long enough for the others to start, were they let
                    return real(*args, **kwargs)  # type: ignore[arg-type]
                finally:
                    with guard:
                        running[0] -= 1

            monkeypatch.setattr(services.decider, "decide", counted)
            cores = os.cpu_count() or 1
            accounts = book.accounts.get_column("account_id").to_list()[: cores + 3]
            signal = book.signal_names[0]

            async def all_at_once() -> list[bytes]:
                return await asyncio.gather(
                    *(
                        decide_now(
                            services,
                            Principal("k-admin", "admin", frozenset()),
                            DecideIn(account_id=a, signals={signal: 1.0}),
                            AuditEntry(action="change", method="POST", path="/v1/decide", status=200),
                        )
                        for a in accounts
                    )
                )

            answers = asyncio.run(all_at_once())
            assert all(b'"rescored_with_fresh_signals":true' in a for a in answers)
            assert 1 <= most[0] <= cores
        finally:
            services.decider.close()
