"""The one Settings object: store URL, workspace and other knobs, read from NEXTMOVE_* variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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

    def resolved_store_url(self) -> str:
        """The store URL to use: ``store_url`` if set, else the workspace's SQLite file."""
        if self.store_url:
            return self.store_url
        return f"sqlite:///{(self.workspace / 'nextmove.db').as_posix()}"
