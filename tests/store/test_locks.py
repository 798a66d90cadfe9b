"""The account locks shared by a store's processes: errors that must not read as "held elsewhere"."""

from __future__ import annotations

from pathlib import Path

import pytest

from nextmove.errors import StoreError
from nextmove.store.locks import AccountLocks, FileStripes


def test_a_lock_file_that_cannot_be_opened_is_a_store_error_not_a_wait(tmp_path: Path) -> None:
    # A folder in place of the lock file: opening it fails every time, so waiting would never end.
    (tmp_path / "nextmove.db-decide.lock").mkdir()
    stripes = FileStripes(str(tmp_path / "nextmove.db-decide.lock"))
    with pytest.raises(StoreError, match="cannot open the lock file"):
        stripes.try_acquire(3)
    locks = AccountLocks(stripes)
    with pytest.raises(StoreError):
        locks.lock(3)
    # The in-process lock was given back: once the file can be opened, the stripe is taken at once.
    (tmp_path / "nextmove.db-decide.lock").rmdir()
    assert locks.try_lock(3)
    locks.unlock([3])
    stripes.close()


def test_file_stripes_are_taken_released_and_taken_again(tmp_path: Path) -> None:
    stripes = FileStripes(str(tmp_path / "store.db-decide.lock"))
    locks = AccountLocks(stripes)
    locks.lock(5)
    locks.unlock([5])
    locks.lock(5)
    locks.unlock([5])
    stripes.close()
