"""A write that fails (a full disk) is one clear message and exit 5, never a traceback, never a .tmp file left.

The disk is made full where a command writes: its temporary file is a link to ``/dev/full``, where
every write fails with "No space left on device", as on a full disk. A run's own files are written
into a staging folder of a random name; there a size limit on the files the process writes
(``RLIMIT_FSIZE``) makes the write fail instead ("File too large").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nextmove.cli import app
from nextmove.sim import SimConfig, simulate, write_book
from nextmove.store import open_store

runner = CliRunner()

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")


@pytest.fixture(scope="module")
def book_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("full-disk") / "book"
    write_book(simulate(SimConfig(accounts=150, months=9, seed=7)), folder)
    return folder


def _full(path: Path) -> Path:
    """Make ``path`` a file on a full disk: every write to it fails with ENOSPC."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to("/dev/full")
    return path


def _said(output: str) -> str:
    return " ".join(output.split())  # Rich wraps long lines


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".tmp") or ".nextmove-staging-" in str(p))


def test_a_run_saved_before_its_report_hit_a_full_disk_says_it_is_saved_and_how_to_render_it(
    book_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nextmove.cli.run as cli_run

    write = cli_run._write_report

    def on_a_full_disk(result: object, folder: Path) -> None:
        _full(folder / "report.html.tmp")
        write(result, folder)  # type: ignore[arg-type]

    monkeypatch.setattr(cli_run, "_write_report", on_a_full_disk)
    out = tmp_path / "out"
    url = f"sqlite:///{tmp_path / 'store.db'}"
    args = ["run", "--book", str(book_dir), "--out", str(out), "--store", url, "--jobs", "1", "--trees", "20"]
    result = runner.invoke(app, args)
    assert result.exit_code == 5, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback
    said = _said(result.output)
    (run,) = open_store(url).list_runs()
    assert run.status == "succeeded"
    assert f"cannot write the run's files into {out}: no space left on device" in said
    assert f"run {run.run_id} is saved in the store and served" in said
    # Into a folder of its own, not --out, where an earlier run's recommendations would sit beside it.
    fresh = tmp_path / f"out-{run.run_id}" / "report.html"
    assert f"`nextmove report --run {run.run_id} --store {url} --out {fresh}` writes its report into a folder" in said
    assert "Writing the files: failed" in said
    assert "Saving the run: failed" not in said
    assert not out.exists()  # no staging folder left, nor the --out it made

    # The report from the store: on a full disk too, then with room.
    report = out / "report.html"
    _full(out / "report.html.tmp")
    full = runner.invoke(app, ["report", "--run", run.run_id, "--store", url, "--out", str(report)])
    assert full.exit_code == 5, full.output
    assert f"cannot write the report {report}: no space left on device; no file was written" in _said(full.output)
    assert _leftovers(out) == []
    assert not report.exists()
    done = runner.invoke(app, ["report", "--run", run.run_id, "--store", url, "--out", str(report)])
    assert done.exit_code == 0, done.output
    assert report.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_a_run_whose_files_cannot_be_written_says_so_and_leaves_out_as_it_was(book_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "recommendations.csv").write_text("earlier\n", encoding="utf-8")
    limit = 20_000  # bytes any one file may reach: the run's recommendations.csv is larger
    limited = (
        "import resource, runpy, sys; "
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
        "sys.argv = ['nextmove', *sys.argv[1:]]; runpy.run_module('nextmove', run_name='__main__')"
    )
    args = ["run", "--book", str(book_dir), "--out", str(out), "--no-store", "--jobs", "1", "--trees", "20"]
    proc = subprocess.run(
        [sys.executable, "-c", limited, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=600,
        check=False,
    )
    assert proc.returncode == 5, proc.stderr
    assert "Traceback" not in proc.stderr
    said = _said(proc.stderr)
    assert f"cannot write the run's files into {out}: file too large; {out} is left as it was" in said
    assert sorted(p.name for p in out.iterdir()) == ["recommendations.csv"]
    assert (out / "recommendations.csv").read_text(encoding="utf-8") == "earlier\n"


def test_health_on_a_full_disk_says_so_and_saves_no_model(book_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "h" / "health.csv"
    _full(out.with_name(".health.csv.tmp"))
    url = f"sqlite:///{tmp_path / 'store.db'}"
    result = runner.invoke(app, ["health", "--book", str(book_dir), "--out", str(out), "--store", url, "--jobs", "1"])
    assert result.exit_code == 5, result.output
    said = _said(result.output)
    assert f"cannot write --out {out}: no space left on device; no file was written; no outcome model was saved" in said
    assert _leftovers(out.parent) == []
    assert not out.exists()
    with open_store(url) as store:
        assert store.list_models("outcome") == []  # the store's active models are as they were
    done = runner.invoke(app, ["health", "--book", str(book_dir), "--out", str(out), "--store", url, "--jobs", "1"])
    assert done.exit_code == 0, done.output
    with open_store(url) as store:
        (model,) = store.list_models("outcome")
    assert model.active
    assert f"Saved outcome model version {model.model_id}" in _said(done.output)


def test_segment_on_a_full_disk_says_so_and_keeps_the_earlier_segments(book_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "seg"
    out.mkdir()
    earlier = {"segments.csv": "account_id,segment_id,segment\n", "segments.json": "{}"}
    for name, text in earlier.items():
        (out / name).write_text(text, encoding="utf-8")
    _full(out / ".segments.csv.tmp")
    result = runner.invoke(app, ["segment", "--book", str(book_dir), "--out", str(out), "--no-response"])
    assert result.exit_code == 5, result.output
    said = _said(result.output)
    assert f"cannot write the segments into {out}: no space left on device; segments.csv and segments.json in" in said
    assert _leftovers(out) == []
    assert {n: (out / n).read_text(encoding="utf-8") for n in earlier} == earlier


def test_a_json_output_on_a_full_disk_is_a_write_error_and_leaves_no_tmp(tmp_path: Path) -> None:
    from nextmove.cli.evaluate import write_json
    from nextmove.errors import WriteError

    out = tmp_path / "lift.json"
    out.write_text(json.dumps({"earlier": True}), encoding="utf-8")
    _full(tmp_path / ".lift.json.tmp")
    with pytest.raises(WriteError, match=f"cannot write --out {out}: no space left on device; {out} is left as it"):
        write_json(out, {"lift": 1})
    assert json.loads(out.read_text(encoding="utf-8")) == {"earlier": True}
    assert _leftovers(tmp_path) == []
