"""The one Settings object: store URL, workspace and other knobs, read from NEXTMOVE_* variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

AUTH_FAILURES_BURST = 60
"""Requests without a valid API key one client may make at once before the API answers 429."""
AUTH_FAILURES_PER_MINUTE = 30.0
"""How fast a client's allowance of requests without a valid API key comes back, per minute."""


class Settings(BaseSettings):
    """Process-wide settings, read from environment variables with the prefix ``NEXTMOVE_``.

    Examples
    --------
    >>> Settings(workspace=Path("ws")).resolved_store_url()
    'sqlite:///ws/nextmove.db'
    """

    model_config = SettingsConfigDict(env_prefix="NEXTMOVE_", extra="ignore")

    workspace: Path = Field(
        default=Path("."),
        description="Folder that holds the default SQLite store and run outputs.",
    )
    store_url: str | None = Field(
        default=None,
        description=(
            "SQLAlchemy URL of the store, e.g. ``postgresql+psycopg://user@host/db``. "
            "Unset: a SQLite file ``nextmove.db`` in the workspace."
        ),
    )

    auth_failures_burst: int = Field(
        default=AUTH_FAILURES_BURST,
        ge=0,
        description=(
            "Requests without a valid API key (none, unknown, revoked, a wrong secret) one client (IP address) "
            "may make at once before the API answers them 429 with Retry-After and summarises them in the "
            "audit trail; 0 turns the limit off. Requests with a valid key are never limited by it."
        ),
    )
    auth_failures_per_minute: float = Field(
        default=AUTH_FAILURES_PER_MINUTE,
        gt=0,
        description="How fast a client's allowance of requests without a valid API key comes back, per minute.",
    )

    def resolved_store_url(self) -> str:
        """The store URL to use: ``store_url`` if set, else the workspace's SQLite file."""
        if self.store_url:
            return self.store_url
        return f"sqlite:///{(self.workspace / 'nextmove.db').as_posix()}"
