"""Steps held against Ctrl-C and SIGTERM: they run whole, and the signal is raised after them or dropped."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from nextmove._signals import clean_up, signals_held
from nextmove.errors import Terminated

pytestmark = pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="signal handlers run in the main thread only"
)


def test_a_held_signal_is_raised_once_the_block_has_run_whole() -> None:
    steps: list[str] = []

    def held() -> None:
        with signals_held() as came:
            os.kill(os.getpid(), signal.SIGINT)
            steps.append("after the signal")
        steps.append(f"after the block, {came}")  # never: the signal is raised first

    with pytest.raises(KeyboardInterrupt):
        held()
    assert steps == ["after the signal"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_held_sigterm_reaches_its_own_handler_after_the_block() -> None:
    def terminate(signum: int, _frame: object) -> None:
        raise Terminated(signal.Signals(signum).name)

    before = signal.signal(signal.SIGTERM, terminate)
    try:
        done = []

        def held() -> None:
            with signals_held():
                os.kill(os.getpid(), signal.SIGTERM)
                done.append(True)

        with pytest.raises(Terminated):
            held()
        assert done == [True]
        assert signal.getsignal(signal.SIGTERM) is terminate
    finally:
        signal.signal(signal.SIGTERM, before)


def test_a_cleanup_runs_whole_through_ctrl_c_which_it_drops() -> None:
    steps: list[str] = []

    def step() -> None:
        os.kill(os.getpid(), signal.SIGINT)
        steps.append("cleaned up")

    clean_up(step)  # no KeyboardInterrupt, during the step or after it
    steps.append("went on")
    assert steps == ["cleaned up", "went on"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
