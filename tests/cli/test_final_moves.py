"""SIGTERM or Ctrl-C while a command moves its files into place waits until they are all moved: never two runs mixed.

`nextmove run`'s, which then exits 0 saying the run is complete, is tested in test_cli_interrupt.py."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from nextmove.sim import SimConfig, simulate, write_book

# The real command, with the signal sent to itself right after its first move into place (the
# first os.replace onto `first`): the moves of the other files are still to come.
STOPPED_IN_THE_MOVES = """
import os, signal, sys
from pathlib import Path
signal.signal(signal.SIGINT, signal.default_int_handler)
sig, first = int(sys.argv[1]), sys.argv[2]
replace = os.replace
sent = []

def replace_then_stop(src, dst, *args, **kwargs):
    replace(src, dst, *args, **kwargs)
    if Path(dst).name == first and not sent:
        sent.append(True)
        os.kill(os.getpid(), sig)

os.replace = replace_then_stop
sys.argv = ["nextmove", *sys.argv[3:]]
from nextmove.cli import main
main()
"""


@pytest.fixture(scope="module")
def book_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("final-moves") / "book"
    write_book(simulate(SimConfig(accounts=150, months=9, seed=7)), folder)
    return folder


def stopped_in_the_moves(sig: signal.Signals, first: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", STOPPED_IN_THE_MOVES, str(int(sig)), first, *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_segment_stopped_during_its_final_moves_writes_both_files(book_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "seg"
    out.mkdir()
    earlier = {"segments.csv": "account_id,segment_id,segment\n", "segments.json": "{}"}
    for name, text in earlier.items():
        (out / name).write_text(text, encoding="utf-8")
    proc = stopped_in_the_moves(signal.SIGTERM, "segments.csv", "segment", "--book", str(book_dir), "--out", str(out))
    assert proc.returncode == 143, proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["segments.csv", "segments.json"]  # no .tmp left
    summary = json.loads((out / "segments.json").read_text(encoding="utf-8"))
    assert summary["accounts"] == len((out / "segments.csv").read_text(encoding="utf-8").splitlines()) - 1 > 0
