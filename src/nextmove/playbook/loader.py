"""Reading ``playbook.toml`` files (and the built-in default) into a checked :class:`Playbook`."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from nextmove.errors import PlaybookError
from nextmove.playbook.schema import Playbook

DEFAULT_PLAYBOOK_NAME = "default_playbook.toml"


def default_playbook_text() -> str:
    """The text of the built-in default playbook (14 actions across four teams)."""
    return resources.files("nextmove.playbook").joinpath(DEFAULT_PLAYBOOK_NAME).read_text("utf-8")


def parse_playbook(text: str, *, source: str = "<text>") -> Playbook:
    """Parse playbook TOML text.

    Raises
    ------
    PlaybookError
        If the text is not TOML or does not fit the schema; the message names each bad field.

    Examples
    --------
    >>> pb = parse_playbook(default_playbook_text())
    >>> len(pb.actions)
    14
    """
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PlaybookError(f"{source}: not valid TOML: {exc}") from None
    try:
        return Playbook.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = _where(err["loc"], data)
            lines.append(f"  {where}: {err['msg'].removeprefix('Value error, ')}")
        raise PlaybookError(f"{source}: the playbook has {len(lines)} problem(s):\n" + "\n".join(lines)) from None


def load_playbook(path: str | Path | None = None) -> Playbook:
    """Load a playbook from ``path``, or the built-in default when ``path`` is None.

    Raises
    ------
    PlaybookError
        If the file is missing, not TOML, or breaks the schema.

    Examples
    --------
    >>> load_playbook().horizon_days
    90
    """
    if path is None:
        return parse_playbook(default_playbook_text(), source="<default playbook>")
    p = Path(path)
    if not p.is_file():
        raise PlaybookError(f"{p}: no such playbook file; create one with `nextmove init DIR`")
    try:
        text = p.read_text("utf-8")
    except UnicodeDecodeError:
        raise PlaybookError(f"{p}: not UTF-8 text; save the playbook as UTF-8") from None
    return parse_playbook(text, source=str(p))


def _where(loc: tuple[int | str, ...], data: dict[str, Any]) -> str:
    """Render a pydantic error location the way a playbook author reads it (``actions[3] (id=x).cost_usd``)."""
    parts: list[str] = []
    node: Any = data
    for item in loc:
        if isinstance(item, int):
            label = f"[{item}]"
            if isinstance(node, list) and 0 <= item < len(node) and isinstance(node[item], dict):
                ident = node[item].get("id")
                if ident is not None:
                    label += f" (id={ident!r})"
            parts.append(label)
            node = node[item] if isinstance(node, list) and 0 <= item < len(node) else None
        else:
            parts.append(("." if parts else "") + str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return "".join(parts) or "(top level)"
