"""Reading ``playbook.toml`` files (and the built-in default) into a checked :class:`Playbook`."""

from __future__ import annotations

import tomllib
import unicodedata
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
    data = _nfc(data, source)
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


def _nfc(value: Any, source: str, where: str = "") -> Any:
    """``value`` (parsed TOML) with every text and key in Unicode NFC, as a book's names are read.

    An action id, outcome kind, stage or signal name written with a combining accent (``u`` + U+0308,
    as some editors and macOS write it) is then the name the book writes with ``ü``.

    Raises
    ------
    PlaybookError
        If two keys of one table differ only by their Unicode form: they would be one key.
    """
    if isinstance(value, str):
        return value if value.isascii() else unicodedata.normalize("NFC", value)
    if isinstance(value, list):
        return [_nfc(v, source, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, v in value.items():
            name = _nfc(key, source)
            if name in out:
                raise PlaybookError(
                    f"{source}: {where or '(top level)'} has the keys {name!a} and {key!a}, which differ "
                    "only by Unicode normalisation (NFC vs NFD) and are read as one: keep one"
                )
            out[name] = _nfc(v, source, f"{where}.{name}" if where else name)
        return out
    return value


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
