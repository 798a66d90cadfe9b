"""Which stored runs are of the same book: one notion for the notes that compare runs and for segment moves."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Protocol


class _RunLike(Protocol):
    @property
    def book_source(self) -> str: ...

    @property
    def playbook_hash(self) -> str: ...


def recorded_source(source: str) -> str:
    """A book's source as a run records it: a folder as its resolved absolute path, anything else as given.

    A relative folder means another folder from another working folder (``nextmove serve`` run
    elsewhere, a weekly job in another directory), so the store keeps where the book was read.
    """
    if "://" in source or source.startswith("<"):
        return source
    path = Path(source)
    try:
        return str(path.resolve()) if path.is_dir() else source
    except OSError:
        return source


@cache
def _default_hash() -> str:
    from nextmove.playbook.loader import load_playbook

    return load_playbook(None).content_hash()


def same_book(run: _RunLike, other: _RunLike, *, any_playbook: bool = False) -> bool:
    """Whether two runs are of the same book.

    The same recorded source (compared as given: runs recorded before sources were resolved keep
    their relative folder); or two folders in one parent folder read under the same playbook of
    their own (a weekly export into a new folder each week, ``crm/w04`` then ``crm/w05``). Two books
    without a playbook of their own share the built-in default's hash, which says nothing of
    their accounts: sibling folders under it are different books.

    With ``any_playbook``, sibling folders each read under a playbook of its own are the same book
    whether or not the two playbooks are alike (the playbook edited between two weekly exports):
    for what depends on the accounts, not on the playbook (lift's note on overlapping runs, which
    checks the accounts the runs' decisions share).
    """
    if run.book_source == other.book_source:
        return True
    default = _default_hash()
    if any_playbook:
        if default in (run.playbook_hash, other.playbook_hash):
            return False
    elif run.playbook_hash != other.playbook_hash or run.playbook_hash == default:
        return False
    if any("://" in s or s.startswith("<") for s in (run.book_source, other.book_source)):
        return False
    parent, other_parent = Path(run.book_source).parent, Path(other.book_source).parent
    return parent == other_parent and parent != Path(".")
