"""The server's LightGBM calls from several threads: a batch run beside decisions never mixes thread counts.

LightGBM 4 keeps one thread count for the whole process, set by every call from the ``num_threads``
it names (none: all cores); two threads whose calls name different counts at once can crash the
process (see :func:`nextmove.models._crossfit.quiet_lightgbm`). ``POST /v1/runs`` runs a batch run
on a thread of the server while request threads rescore decisions with the served model: the
server caps every LightGBM call at one thread (:func:`~nextmove.models._crossfit.hold_one_lightgbm_thread`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from tests.lightgbm_calls import cap_now, lightgbm_calls

from nextmove.api import ApiConfig
from nextmove.api.service import Services
from nextmove.book.validate import load_book
from nextmove.engine.online import DecideRequest
from nextmove.engine.run import run
from nextmove.playbook.loader import load_playbook
from nextmove.sim import SimConfig, simulate, write_book
from nextmove.store import open_store


@pytest.mark.slow
def test_a_run_started_through_the_api_uses_one_lightgbm_thread_beside_decisions(tmp_path: Path) -> None:
    """``POST /v1/runs``'s work while decisions are rescored with fresh signals: every LightGBM call runs
    on one thread. The run's held-out scores and explanations named no thread count (all cores) before
    every call named its own (the run's ``jobs=1``): uncapped, they reset LightGBM's process-wide count
    beside the decisions' one-thread calls. A served model fitted with more jobs names more outside its
    pools (a decision's R-loss propensities), which the cap still holds to one."""
    lab = simulate(SimConfig(accounts=150, months=5, seed=1))
    folder = write_book(lab, tmp_path / "book")
    then = time.time() - 10  # written whole: the server need not wait for the files to settle
    for file in folder.iterdir():
        os.utime(file, (then, then))
    playbook = load_playbook(folder / "playbook.toml")
    book = load_book(str(folder), playbook=playbook)
    params = {"n_folds": 2, "n_estimators": 15, "n_draws": 20}
    with open_store(f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}") as store:
        served = run(book, playbook, store=store, seed=0, effect_params=params, evaluate=False, segments=False)
        accounts = served.recommendations.get_column("account_id").to_list()
        signals = sorted(book.signal_names)[:2]
        assert signals
        assert accounts
        before = cap_now()
        services = Services(ApiConfig(playbook=playbook, book=book, book_path=str(folder), refresh_s=3600), store=store)
        stop = threading.Event()
        decided: list[int] = []
        failures: list[BaseException] = []

        def decide() -> None:
            k = 0
            while not stop.is_set():
                request = DecideRequest(accounts[k % len(accounts)], signals={s: float(k) for s in signals})
                try:
                    services.decider.decide([request])
                except BaseException as exc:  # a failure must fail the test, not end the thread silently
                    failures.append(exc)
                    return
                decided.append(k)
                k += 1

        with lightgbm_calls() as calls:
            services.start()
            try:
                deciding = threading.Thread(target=decide, name="request")
                deciding.start()
                progress = services.runs.start(as_of=None, seed=1, promote=False)
                services.runs.join(timeout=600)
                stop.set()
                deciding.join(timeout=60)
            finally:
                stop.set()
                services.close()
        assert not failures, failures
        assert progress.error is None, progress.error
        assert decided, "no decision was made during the run"
    run_thread = f"nextmove-run-{progress.run_id}"
    ran = [c for c in calls if c.thread == run_thread]
    beside = [c for c in calls if c.thread != run_thread]
    # The run fitted and scored on its own thread (and its pools), the decisions projected on theirs.
    assert {"LGBM_BoosterCreate", "LGBM_BoosterPredictForMat"} <= {c.function for c in ran}
    assert "LGBM_BoosterPredictForMat" in {c.function for c in beside}
    # A call naming one thread uses one; any other uses one only under LightGBM's cap.
    kind = {run_thread: "the run", "request": "a decision"}
    many = [
        (kind.get(c.thread, "a pool"), c.function, str(c.threads), c.site)
        for c in calls
        if c.threads != "1" and c.cap != 1
    ]
    uncapped = sorted(set(many))
    assert not uncapped, f"LightGBM calls that may use more than one thread while the server ran: {uncapped}"
    # Once the server closed and its run ended, LightGBM's cap is as it was.
    assert cap_now() == before


@pytest.mark.slow
def test_the_servers_lightgbm_calls_of_other_thread_counts_side_by_side_do_not_crash(tmp_path: Path) -> None:
    """While a server's services run, one thread trains on one LightGBM thread (as a run's fold models) and
    another predicts naming no thread count (as a run's held-out scores, or a decision's R-loss propensity),
    hammered for 20 s in a child process. Without the server's cap the child died of a segmentation fault
    within 13 s (12 runs out of 12)."""
    url = f"sqlite:///{(tmp_path / 'nm.db').as_posix()}"
    script = textwrap.dedent(
        f"""
        import threading, time
        import numpy as np
        import lightgbm as lgb
        from nextmove.api import ApiConfig
        from nextmove.api.service import Services
        from nextmove.playbook.loader import load_playbook

        rng = np.random.default_rng(0)
        x = rng.normal(size=(5000, 30)).astype(np.float32)
        x[:, 10:] *= rng.random(size=(5000, 20)) < 0.02
        y = (x[:, 0] + rng.normal(size=len(x)) > 0).astype(float)
        one = {{"objective": "binary", "num_leaves": 15, "verbose": -1, "num_threads": 1, "deterministic": True}}
        booster = lgb.train(one, lgb.Dataset(x, label=y), num_boost_round=20)
        services = Services(ApiConfig(playbook=load_playbook(), store_url={url!r}))
        services.start()
        stop = time.perf_counter() + 20.0
        counts = [0, 0]

        def train():
            while time.perf_counter() < stop:
                lgb.train(one, lgb.Dataset(x, label=y), num_boost_round=5)
                counts[0] += 1

        def predict():
            while time.perf_counter() < stop:
                booster.predict(x[:4])
                counts[1] += 1

        threads = [threading.Thread(target=train), threading.Thread(target=predict)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        services.close()
        print("survived", counts)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, f"the child ended with {done.returncode} (-11: a segfault): {done.stderr[-2000:]}"
    assert "survived" in done.stdout
