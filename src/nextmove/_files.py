"""Output folders, checked before any long work starts (nothing is created until there is something to write)."""

from __future__ import annotations

import os
from pathlib import Path

from nextmove.errors import ConfigError


def check_folder(folder: Path, label: str) -> Path:
    """Check that ``folder`` is, or can be made, a folder to write into; ``label`` names it in errors.

    Nothing is created: a run that fails later leaves no empty folder behind.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     check_folder(Path(d) / "run" / "2026", "--out").exists()
    False
    """
    existing = folder.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "it" if existing == folder.absolute() else str(existing)
        raise ConfigError(f"cannot make {label} {folder}: {where} is a file, not a folder; give a folder to write into")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(
            f"cannot write into {label} {folder}: {existing} is not writable; give a folder you can write to"
        )
    return folder
