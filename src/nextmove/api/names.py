"""Accounts named in free text (a run's notes), and withholding those a key may not see."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, Final

_LEFT: Final[str] = "([{,;:'\"“‘"
"""Characters after which an account's id may start in a text (besides white space and the text's start)."""
_RIGHT: Final[str] = ")]},;:'\"”’.!?"
"""Characters before which an account's id may end in a text (besides white space and the text's end)."""
_LIST_LEFT: Final[tuple[str, ...]] = ("(", "[", "'", '"', ", ", ": ")
_LIST_RIGHT: Final[tuple[str, ...]] = (")", "]", ",", ";", "'", '"', " and ", " (")
"""Where an id without a letter (``30``, ``..``) is taken as named: in a list, as ``(30, 31 and 5 more)``.
Elsewhere such text is a count or punctuation (``30 days``, ``care.``), not an account."""
_MARK: Final[str] = "\ue000"
"""Stands for a withheld account while a text is rewritten (a private-use character: in no note)."""
_MARKS: Final = re.compile(f"['\"]?{_MARK}['\"]?(?:(?:, | and )['\"]?{_MARK}['\"]?)*")


class AccountIndex:
    """The account ids a server knows, to find where a text names one.

    An id is found where it stands as a word of the text: after white space, an opening bracket,
    a comma, a colon or a quote (or at the text's start), before white space, a closing bracket,
    punctuation or a quote (or at its end). An id with no letter (``30``) is found only in a list
    (``(30, 31 and 5 more)``), never as a count (``30 days``).

    Examples
    --------
    >>> index = AccountIndex(["K1", "K10", "30", "E 5"])
    >>> index.named("gone: (K10, E 5, K1 and 3 more) for 30 days")
    ['K10', 'E 5', 'K1']
    >>> index.named("K100 and (30, K1)")
    ['30', 'K1']
    """

    def __init__(self, account_ids: Iterable[str]) -> None:
        self.ids = frozenset(a for a in account_ids if a)
        lengths: dict[str, set[int]] = {}
        for account_id in self.ids:
            lengths.setdefault(account_id[0], set()).add(len(account_id))
        self._lengths = {first: sorted(found, reverse=True) for first, found in lengths.items()}

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Where ``text`` names a known account: (start, end) of each, in order, the longest at each place."""
        out: list[tuple[int, int]] = []
        i, n = 0, len(text)
        while i < n:
            lengths = self._lengths.get(text[i])
            if lengths is not None and (i == 0 or text[i - 1].isspace() or text[i - 1] in _LEFT):
                end = next((i + size for size in lengths if self._names(text, i, i + size)), None)
                if end is not None:
                    out.append((i, end))
                    i = end
                    continue
            i += 1
        return out

    def named(self, text: str) -> list[str]:
        """The known accounts ``text`` names, in order."""
        return [text[i:j] for i, j in self.spans(text)]

    def _names(self, text: str, i: int, j: int) -> bool:
        if j > len(text) or text[i:j] not in self.ids:
            return False
        if not (j == len(text) or text[j].isspace() or text[j] in _RIGHT):
            return False
        if any(c.isalpha() for c in text[i:j]):
            return True
        left = i == 0 or text[:i].endswith(_LIST_LEFT)
        return left and (j == len(text) or text[j:].startswith(_LIST_RIGHT))


def withhold_accounts(text: str, index: AccountIndex, visible: Callable[[str], bool]) -> str:
    """``text`` with each account it names that ``visible`` refuses replaced by a count of them.

    Examples
    --------
    >>> index = AccountIndex(["K1", "K2", "K3", "K4"])
    >>> mine = {"K3"}.__contains__
    >>> withhold_accounts("4 accounts are gone (K1, K2, K3 and 1 more)", index, mine)
    "4 accounts are gone (2 accounts outside this key's scope, K3 and 1 more)"
    >>> withhold_accounts("the first: 'K4' on 2026-01-05", index, mine)
    "the first: an account outside this key's scope on 2026-01-05"
    """
    spans = [(i, j) for i, j in index.spans(text) if not visible(text[i:j])]
    if not spans:
        return text
    parts = []
    last = 0
    for i, j in spans:
        parts += [text[last:i], _MARK]
        last = j
    marked = "".join(parts) + text[last:]
    return _MARKS.sub(_count, marked)


def _count(found: re.Match[str]) -> str:
    n = found.group(0).count(_MARK)
    return "an account outside this key's scope" if n == 1 else f"{n} accounts outside this key's scope"


def withhold_in(value: Any, index: AccountIndex, visible: Callable[[str], bool]) -> Any:
    """``value`` (JSON: objects, lists, text) with :func:`withhold_accounts` applied to every text in it, keys too.

    Examples
    --------
    >>> withhold_in({"notes": ["gone: (K1, K2)"], "n": 2}, AccountIndex(["K1", "K2"]), {"K2"}.__contains__)
    {'notes': ["gone: (an account outside this key's scope, K2)"], 'n': 2}
    """
    if isinstance(value, str):
        return withhold_accounts(value, index, visible)
    if isinstance(value, dict):
        return {withhold_in(k, index, visible): withhold_in(v, index, visible) for k, v in value.items()}
    if isinstance(value, list):
        return [withhold_in(v, index, visible) for v in value]
    return value
