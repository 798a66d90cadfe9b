"""Ctrl-C and SIGTERM during `nextmove run`: a readable message, the conventional exit code, the run marked failed."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nextmove.sim import SimConfig, simulate, write_book

# The real entry point, with the run's work replaced by a wait that first makes its staging folder
# and says it is there: the signal then arrives at a known step, after the run was recorded.
BLOCKED_RUN = """
import signal, sys, time
from pathlib import Path
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, even when started in the background
import nextmove.engine.run
engine = sys.modules["nextmove.engine.run"]  # the package's `run` attribute is the function
ready = Path(sys.argv[1])

def blocked(*args, **kwargs):
    staging = next(a for a in args if hasattr(a, "publish")).folder  # the run's StagedFiles
    ready.write_text(str(staging))
    time.sleep(60)

engine._run = blocked
sys.argv = ["nextmove", *sys.argv[2:]]
from nextmove.cli import main
main()
"""


@pytest.fixture(scope="module")
def book_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("interrupt") / "book"
    write_book(simulate(SimConfig(accounts=20, months=2, seed=3)), folder)
    return folder


@pytest.mark.parametrize(
    ("sig", "code", "said", "error"),
    [
        (signal.SIGINT, 130, "interrupted: interrupted by the user (Ctrl-C)", "interrupted by the user (Ctrl-C)"),
        (signal.SIGTERM, 143, "terminated: stopped by SIGTERM", "stopped by SIGTERM"),
    ],
)
def test_a_stopped_run_says_so_exits_conventionally_and_is_marked_failed(
    book_dir: Path, tmp_path: Path, sig: signal.Signals, code: int, said: str, error: str
) -> None:
    ready = tmp_path / "ready"
    out = tmp_path / "out"
    url = f"sqlite:///{tmp_path / 'store.db'}"
    args = ["run", "--book", str(book_dir), "--out", str(out), "--store", url]
    proc = subprocess.Popen(
        [sys.executable, "-c", BLOCKED_RUN, str(ready), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists(), "the run never reached its work"
        assert Path(ready.read_text()).is_dir()
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()  # its pipes closed, whatever happened (an open one warns in a later test)
    assert proc.returncode == code, stderr
    assert said in " ".join(stderr.split())
    assert "Traceback" not in stderr
    assert not out.exists()  # the staging folder and the --out it made are removed
    from nextmove.store import open_store

    (record,) = open_store(url).list_runs()
    assert record.status == "failed"
    assert record.summary["error"].startswith(error)
