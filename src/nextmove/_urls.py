"""Database URLs as shown to people (messages, logs, API answers): every password hidden."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

HIDDEN = "***"

# libpq and most drivers also take a password as a query parameter (?password=…, ?sslpassword=…);
# SQLAlchemy's hide_password only hides the one in user:password@.
_SECRET_QUERY = re.compile(r"([?&][^=&#]*(?:pass|pwd|secret|token)[^=&#]*=)[^&#]*", re.IGNORECASE)


def mask_url(url: str | URL) -> str:
    """``url`` as shown to people: the password of ``user:password@`` and of the query string hidden.

    Text that is not a URL (a book's folder) comes back as it is. A URL SQLAlchemy cannot read
    hides its whole ``user:password`` part, since user and password cannot be told apart.

    Parameters
    ----------
    url
        A database URL (text or SQLAlchemy ``URL``), or a folder.

    Returns
    -------
    str
        The text to show.

    Examples
    --------
    >>> mask_url("postgresql://me:S3cret@db:5432/crm?password=S3cret&sslmode=require")
    'postgresql://me:***@db:5432/crm?password=***&sslmode=require'
    >>> mask_url("books/acme")
    'books/acme'
    """
    if not isinstance(url, str):
        return _mask_query(url.render_as_string(hide_password=True))
    if "://" not in url:
        return url
    from sqlalchemy import exc
    from sqlalchemy.engine import make_url

    try:
        return _mask_query(make_url(url).render_as_string(hide_password=True))
    except (exc.ArgumentError, ValueError):  # ValueError: a port that is not a number
        return mask_unparsed_url(url)


def url_secrets(url: URL) -> list[str]:
    """The passwords ``url`` holds (``user:password@`` and query parameters), to scrub from a driver's message."""
    found = [str(url.password)] if url.password else []
    for key, value in url.query.items():
        if _SECRET_QUERY.fullmatch(f"?{key}=x") is None:
            continue
        found.extend(v for v in ((value,) if isinstance(value, str) else value) if v)
    return found


def _mask_query(text: str) -> str:
    return _SECRET_QUERY.sub(lambda m: m.group(1) + HIDDEN, text)


def mask_unparsed_url(raw: str) -> str:
    """A URL SQLAlchemy cannot read, as shown: all before its last ``@`` but the scheme hidden, and query passwords.

    User and password cannot be told apart in such text, so both are hidden.

    Examples
    --------
    >>> mask_unparsed_url("::bob:hunter2@nowhere")
    '***@nowhere'
    """
    head, at, host = raw.rpartition("@")
    if at:
        scheme = head.split("://", 1)[0] + "://" if "://" in head else ""
        raw = f"{scheme}{HIDDEN}@{host}"
    return _mask_query(raw)
