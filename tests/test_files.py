"""Staged output files: a staging folder left by a killed process is swept up by the next one."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from nextmove._files import OWNERLESS_STAGING_AGE_S, STAGING_PREFIX, StagedFiles, _host, sweep_stale_staging


def _dead_pid() -> int:
    """The id of a process that has ended (a child run to completion and reaped)."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(child.stdout)


def test_a_killed_process_staging_folder_is_removed_by_the_next_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    left = out / f"{STAGING_PREFIX}{_host()}-{_dead_pid()}-abc123.tmp"
    left.mkdir()
    (left / "recommendations.csv").write_text("account_id,email\nA1,someone@example.com\n")
    staged = StagedFiles(out)
    (staged.folder / "summary.json").write_text("{}")
    staged.publish()
    assert sorted(p.name for p in out.iterdir()) == ["summary.json"]


def test_folders_of_live_processes_other_hosts_and_other_names_are_left(tmp_path: Path) -> None:
    dead = _dead_pid()
    keep = [
        tmp_path / f"{STAGING_PREFIX}{_host()}-{os.getppid()}-live.tmp",  # a live process of this host
        tmp_path / f"{STAGING_PREFIX}otherhost-{dead}-xyz.tmp",  # another machine on a shared drive
        tmp_path / f"{STAGING_PREFIX}old_style_name.tmp",  # an older nextmove's folder, less than a day old
        tmp_path / f"{_host()}-{dead}-mine.tmp",  # the user's own folder
    ]
    for folder in keep:
        folder.mkdir()
    gone = tmp_path / f"{STAGING_PREFIX}{_host()}-{dead}-xyz.tmp"
    gone.mkdir()
    assert sweep_stale_staging(tmp_path) == [gone]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in keep)


def test_the_staging_folder_names_its_host_and_process(tmp_path: Path) -> None:
    staged = StagedFiles(tmp_path / "out")
    assert staged.folder.name.startswith(f"{STAGING_PREFIX}{_host()}-{os.getpid()}-")
    staged.discard()
    assert not (tmp_path / "out").exists()


def test_a_staging_folder_of_an_older_version_is_removed_once_a_day_old(tmp_path: Path) -> None:
    # Versions before folders named their writer left `.nextmove-staging-XXXXXXXX.tmp`: no process to ask.
    old = tmp_path / f"{STAGING_PREFIX}mj4fqfri.tmp"
    old.mkdir()
    (old / "recommendations.csv").write_text("account_id\nA1\n")
    assert sweep_stale_staging(tmp_path) == []
    day_ago = time.time() - OWNERLESS_STAGING_AGE_S - 60
    os.utime(old, (day_ago, day_ago))
    assert sweep_stale_staging(tmp_path) == [old]
    assert not old.exists()


def test_a_folder_left_under_this_process_id_before_it_started_is_removed(tmp_path: Path) -> None:
    # A restarted container's nextmove may have the killed one's pid (often 1): the folder is older than it.
    mine = tmp_path / f"{STAGING_PREFIX}{_host()}-{os.getpid()}-old.tmp"
    mine.mkdir()
    long_ago = time.time() - 10 * 24 * 3600
    os.utime(mine, (long_ago, long_ago))
    fresh = tmp_path / f"{STAGING_PREFIX}{_host()}-{os.getpid()}-now.tmp"
    fresh.mkdir()  # written by this very process: in use
    other = tmp_path / f"{STAGING_PREFIX}container_a-{os.getpid()}-x.tmp"  # another host name, a week old
    other.mkdir()
    os.utime(other, (long_ago, long_ago))
    assert sorted(sweep_stale_staging(tmp_path)) == sorted([mine, other])
    assert fresh.exists()
