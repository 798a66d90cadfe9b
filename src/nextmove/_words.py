"""Words shared by every layer's messages."""

from __future__ import annotations


def plural(n: int, word: str, many: str | None = None) -> str:
    """``n`` and ``word``, in the plural unless ``n`` is 1 (``many``: the plural, default ``word + "s"``).

    Examples
    --------
    >>> plural(1, "action"), plural(14, "action"), plural(2, "eligibility expression"), plural(3, "entry", "entries")
    ('1 action', '14 actions', '2 eligibility expressions', '3 entries')
    >>> plural(1_200, "account")
    '1,200 accounts'
    """
    return f"{n:,} {word}" if n == 1 else f"{n:,} {many or word + 's'}"
