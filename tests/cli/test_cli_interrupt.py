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


# The run's work replaced by Polars queries, one after the other, once its staging folder holds a
# file: Ctrl-C lands in Polars' own code, which raises a KeyboardInterrupt of its own and leaves
# Python's to be raised at the next call, in the cleanup.
RUN_IN_POLARS = """
import signal, sys
from pathlib import Path
signal.signal(signal.SIGINT, signal.default_int_handler)
import polars as pl
import nextmove.engine.run
engine = sys.modules["nextmove.engine.run"]
ready = Path(sys.argv[1])
query = (
    pl.LazyFrame({"a": range(2_000_000)})
    .with_columns(b=pl.col("a") % 1000)
    .group_by("b")
    .agg(pl.col("a").sum().alias("s"), pl.col("a").std().alias("t"))
)

def in_polars(*args, **kwargs):
    staging = next(a for a in args if hasattr(a, "publish")).folder
    (staging / "recommendations.csv").write_text("account_id\\nA1\\n")
    query.collect()
    ready.write_text(str(staging))
    while True:
        query.collect()

engine._run = in_polars
sys.argv = ["nextmove", *sys.argv[2:]]
from nextmove.cli import main
main()
"""


def test_ctrl_c_in_polars_code_still_cleans_up(book_dir: Path, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    out = tmp_path / "out"
    url = f"sqlite:///{tmp_path / 'store.db'}"
    args = ["run", "--book", str(book_dir), "--out", str(out), "--store", url]
    proc = subprocess.Popen(
        [sys.executable, "-c", RUN_IN_POLARS, str(ready), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists(), "the run never reached its work"
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert not out.exists()  # no staging folder with the run's files left behind
    from nextmove.store import open_store

    (record,) = open_store(url).list_runs()
    assert (record.status, record.summary["error"]) == ("failed", "interrupted by the user (Ctrl-C)")


# `nextmove simulate` with its truth tables' writing replaced by Polars queries, once the book's own
# files are in their staging folder.
SIMULATE_IN_POLARS = """
import signal, sys
from pathlib import Path
signal.signal(signal.SIGINT, signal.default_int_handler)
import polars as pl
import nextmove.sim.io as io
ready = Path(sys.argv[1])
query = (
    pl.LazyFrame({"a": range(2_000_000)})
    .with_columns(b=pl.col("a") % 1000)
    .group_by("b")
    .agg(pl.col("a").sum().alias("s"), pl.col("a").std().alias("t"))
)
write = io._write

def in_polars(frame, path):
    write(frame, path)
    if path.parent.parent.name == "truth":  # in the truth tables' staging folder
        ready.write_text(str(path))
        while True:
            query.collect()

io._write = in_polars
sys.argv = ["nextmove", *sys.argv[2:]]
from nextmove.cli import main
main()
"""


def test_ctrl_c_in_polars_code_while_simulating_leaves_no_staging_folder(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    out = tmp_path / "book"
    args = ["simulate", "--out", str(out), "--accounts", "20", "--months", "2"]
    proc = subprocess.Popen(
        [sys.executable, "-c", SIMULATE_IN_POLARS, str(ready), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists(), "the book was never written"
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert not out.exists()  # neither staging folder (the book's, its truth's) is left
