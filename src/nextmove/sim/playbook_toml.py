"""Writing a :class:`~nextmove.playbook.Playbook` back to TOML, so a simulated book carries its playbook."""

from __future__ import annotations

import json
import re
from typing import Any

from nextmove.playbook import Playbook

_BARE = re.compile(r"^[A-Za-z0-9_\-]+$")


def _key(key: str) -> str:
    return key if _BARE.match(key) else json.dumps(key)


def _inline(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        # JSON string escapes are valid TOML basic-string escapes.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    if isinstance(value, dict):
        items = [f"{_key(k)} = {_inline(v)}" for k, v in value.items() if v is not None]
        return "{ " + ", ".join(items) + " }" if items else "{}"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _table(lines: list[str], header: str, data: dict[str, Any]) -> None:
    lines.append("")
    lines.append(header)
    lines.extend(f"{_key(k)} = {_inline(v)}" for k, v in data.items() if v is not None)


def dump_playbook(playbook: Playbook) -> str:
    """The TOML text of ``playbook``; :func:`nextmove.playbook.loader.parse_playbook` reads it back equal.

    Examples
    --------
    >>> from nextmove.playbook.loader import load_playbook, parse_playbook
    >>> pb = load_playbook()
    >>> parse_playbook(dump_playbook(pb)) == pb
    True
    """
    data: dict[str, Any] = playbook.model_dump(mode="json")
    lines = ["# Playbook written by nextmove.sim"]

    def is_tables(v: Any) -> bool:
        return isinstance(v, dict) or (isinstance(v, list) and bool(v) and all(isinstance(i, dict) for i in v))

    # Plain keys first: after the first [table] header they would land inside that table.
    lines.extend(f"{_key(k)} = {_inline(v)}" for k, v in data.items() if v is not None and not is_tables(v))
    for key, value in data.items():
        if isinstance(value, dict):
            if value and all(isinstance(v, dict) for v in value.values()):
                for sub, table in value.items():
                    _table(lines, f"[{_key(key)}.{_key(sub)}]", table)
            else:
                _table(lines, f"[{_key(key)}]", value)
        elif is_tables(value):
            for table in value:
                _table(lines, f"[[{_key(key)}]]", table)
    return "\n".join(lines) + "\n"
