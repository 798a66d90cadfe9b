"""Ctrl-C and SIGTERM during `nextmove run`: a readable message, the conventional exit code, the run marked failed;
and during its final moves, too late to stop it: the run complete, saying so, exit 0."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.cli.test_final_moves import stopped_in_the_moves

from nextmove.sim import SimConfig, simulate, write_book
from nextmove.store import open_store

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


def _stopped_when_ready(
    script: str,
    ready: Path,
    sig: signal.Signals,
    args: list[str],
    *,
    wait_s: float = 30,
    settle_s: float = 0,
    check: Callable[[], None] | None = None,
) -> tuple[int, str]:
    """Start ``nextmove ARGS`` through ``script``, send it ``sig`` once ``script`` wrote ``ready`` (``settle_s``
    later, after ``check``), and wait for it to end: its exit code and stderr."""
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(ready), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + wait_s
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists(), "the command never reached the step to stop it at"
        if check is not None:
            check()
        time.sleep(settle_s)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()  # its pipes closed, whatever happened (an open one warns in a later test)
    return proc.returncode, stderr


def _run_args(book: Path, out: Path, url: str) -> list[str]:
    return ["run", "--book", str(book), "--out", str(out), "--store", url]


@pytest.mark.parametrize(
    ("sig", "code", "error"),
    [
        (signal.SIGINT, 130, "interrupted by the user (Ctrl-C)"),
        (signal.SIGTERM, 143, "stopped by SIGTERM (a timeout, or a service manager stopping it)"),
    ],
)
def test_a_stopped_run_says_so_exits_conventionally_and_is_marked_failed(
    book_dir: Path, tmp_path: Path, sig: signal.Signals, code: int, error: str
) -> None:
    ready = tmp_path / "ready"
    out = tmp_path / "out"
    url = f"sqlite:///{tmp_path / 'store.db'}"

    def staging_made() -> None:
        assert Path(ready.read_text()).is_dir()

    code_got, stderr = _stopped_when_ready(BLOCKED_RUN, ready, sig, _run_args(book_dir, out, url), check=staging_made)
    assert code_got == code, stderr
    assert "Traceback" not in stderr
    assert not out.exists()  # the staging folder and the --out it made are removed
    (record,) = open_store(url).list_runs()
    assert record.status == "failed"
    assert record.summary["error"] == error
    # One line: the stop, then what it left (not "interrupted: interrupted by the user").
    said = " ".join(stderr.split())
    assert f"{error}: run {record.run_id} is recorded as failed, {out} is left as it was" in said
    assert "interrupted: " not in said
    assert "terminated: " not in said


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
    args = _run_args(book_dir, out, url)
    code, stderr = _stopped_when_ready(RUN_IN_POLARS, ready, signal.SIGINT, args, wait_s=60, settle_s=0.2)
    assert code == 130, stderr
    assert "Traceback" not in stderr
    assert not out.exists()  # no staging folder with the run's files left behind
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
    code, stderr = _stopped_when_ready(SIMULATE_IN_POLARS, ready, signal.SIGINT, args, wait_s=60, settle_s=0.2)
    assert code == 130, stderr
    assert "Traceback" not in stderr
    assert not out.exists()  # neither staging folder (the book's, its truth's) is left


EARLIER = "earlier\n"


@pytest.fixture(scope="module")
def runnable_book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A book with history enough for a whole run (the 20 accounts of ``book_dir`` have none to learn from)."""
    folder = tmp_path_factory.mktemp("final-moves") / "book"
    write_book(simulate(SimConfig(accounts=150, months=9, seed=7)), folder)
    return folder


@pytest.mark.parametrize(("sig", "what"), [(signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "Ctrl-C")])
def test_a_stop_during_a_runs_final_moves_lands_all_its_files_and_exits_0_saying_it_is_complete(
    runnable_book: Path, tmp_path: Path, sig: signal.Signals, what: str
) -> None:
    """The stop waits for the moves, after the run was saved and served: it stops nothing, so the command does not
    exit 130 or 143, which a script reads as a run that failed."""
    out = tmp_path / "out"
    out.mkdir()
    names = ("recommendations.csv", "recommendations.parquet", "report.html", "summary.json")
    for name in names:
        (out / name).write_text(EARLIER, encoding="utf-8")  # an earlier run's files
    url = f"sqlite:///{tmp_path / 'store.db'}"
    args = [*_run_args(runnable_book, out, url), "--jobs", "1", "--trees", "20"]
    # The signal comes right after the first move into place: the run is saved and served, the moves
    # of its other files are still to come.
    proc = stopped_in_the_moves(sig, "recommendations.csv", *args)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    (run,) = open_store(url).list_runs()
    assert run.status == "succeeded"
    said = " ".join(proc.stderr.split())
    assert f"a stop ({what}) came while the run's files were being moved into" in said
    assert f"the run is complete (run {run.run_id} is saved in the store and served," in said
    assert f"Run {run.run_id} is now the served run" in " ".join(proc.stdout.split())
    assert sorted(p.name for p in out.iterdir()) == sorted(names)  # no staging folder left
    assert [n for n in names if (out / n).read_text(encoding="utf-8", errors="replace") == EARLIER] == []
    assert json.loads((out / "summary.json").read_text(encoding="utf-8"))["run_id"] == run.run_id


def _invoke(args: list[str]) -> tuple[int, str]:
    from typer.testing import CliRunner

    from nextmove.cli import app

    result = CliRunner().invoke(app, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception  # no traceback
    return result.exit_code, " ".join(result.output.split())


def test_a_stop_while_a_finished_run_prints_its_summary_exits_0_saying_the_run_is_complete(
    runnable_book: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C after the run was saved, served and its files moved into --out: exit 130 would tell a scheduler the
    run failed (README), and it would run it again."""
    import nextmove.cli.run as cli_run

    def stopped_while_printing(*_: object, **__: object) -> None:
        raise KeyboardInterrupt()

    monkeypatch.setattr(cli_run, "render_run", stopped_while_printing)
    out = tmp_path / "out"
    url = f"sqlite:///{tmp_path / 'store.db'}"
    code, said = _invoke([*_run_args(runnable_book, out, url), "--jobs", "1", "--trees", "20"])
    assert code == 0, said
    with open_store(url) as store:
        (run,) = store.list_runs()
    assert run.status == "succeeded"
    assert (
        f"note: a stop (Ctrl-C) came after run {run.run_id} had finished (saved in the store and served, its files "
        f"all in {out}), so it cut short only the printing of its summary ({out / 'report.html'} holds it)"
    ) in said
    assert "interrupted" not in said
    assert json.loads((out / "summary.json").read_text(encoding="utf-8"))["run_id"] == run.run_id


def test_a_stop_before_promotion_says_the_run_is_not_served_and_a_promotion_cut_short_after_is_done(
    runnable_book: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C between the run's save and its promotion: the old run stays served, and the message says so (it said
    "saved in the store and served"), with the command that serves it; that command, stopped once it has promoted
    the run, exits 0 saying it was done."""
    import nextmove.cli.models as cli_models
    from nextmove.engine.online import served_run

    engine = sys.modules["nextmove.engine.run"]  # the package's `run` attribute is the function
    out = tmp_path / "out"
    url = f"sqlite:///{tmp_path / 'store.db'}"
    args = [*_run_args(runnable_book, out, url), "--jobs", "1", "--trees", "20"]
    code, said = _invoke(args)
    assert code == 0, said
    with open_store(url) as store:
        (first,) = store.list_runs()

    def stopped_before_promoting(*_: object, **__: object) -> None:
        raise KeyboardInterrupt()  # Ctrl-C right after the save committed, before the promotion's transaction

    with monkeypatch.context() as patched:
        patched.setattr(engine, "promote_run", stopped_before_promoting)
        code, said = _invoke(args)
    assert code == 130, said
    with open_store(url) as store:
        second = store.list_runs()[0]
        assert second.status == "succeeded"
        assert served_run(store).run_id == first.run_id  # type: ignore[union-attr]
    assert (
        f"interrupted by the user (Ctrl-C) after run {second.run_id} was saved in the store but not served (the "
        f"served run is still {first.run_id}; `nextmove models promote {second.run_id}` serves it); its files were "
        f"not written, so {out} is left as it was"
    ) in said
    assert json.loads((out / "summary.json").read_text(encoding="utf-8"))["run_id"] == first.run_id

    class StoppedWhilePrinting:
        def print(self, *_: object, **__: object) -> None:
            raise KeyboardInterrupt()

    monkeypatch.setattr(cli_models, "console", StoppedWhilePrinting())
    code, said = _invoke(["models", "promote", second.run_id, "--store", url])
    assert code == 0, said
    with open_store(url) as store:
        assert served_run(store).run_id == second.run_id  # type: ignore[union-attr]
        policy = store.active_model("policy")
    assert policy is not None
    assert (
        f"note: a stop (Ctrl-C) came after run {second.run_id} was promoted (policy {policy.model_id} serves it), so "
        "it cut short only its printing"
    ) in said
