"""Reading ``playbook.toml`` files (and the built-in default) into a checked :class:`Playbook`."""

from __future__ import annotations

import difflib
import json
import tomllib
import types
import unicodedata
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from nextmove._words import plural
from nextmove.errors import PlaybookError
from nextmove.playbook.schema import ID_MAX_CHARS, ID_PATTERN, ID_RULE, Playbook

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
        # A byte order mark (Windows editors save one) is no TOML: the file's text starts after it.
        data: dict[str, Any] = tomllib.loads(text.removeprefix("\ufeff"))
    except tomllib.TOMLDecodeError as exc:
        raise PlaybookError(f"{source}: not valid TOML: {exc}") from None
    data = _nfc(data, source)
    try:
        return Playbook.model_validate(data)
    except ValidationError as exc:
        lines = [f"  {_where(err['loc'], data)}: {_message(err)}" for err in exc.errors()]
        problems = plural(len(lines), "problem")
        raise PlaybookError(f"{source}: the playbook has {problems}:\n" + "\n".join(lines)) from None


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
        text = p.read_text("utf-8-sig")  # a leading byte order mark is no part of the TOML
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


def _message(err: ErrorDetails) -> str:
    """A pydantic error's message in the playbook author's words: what to write instead."""
    kind, loc = err["type"], err["loc"]
    if kind == "extra_forbidden":
        keys = _keys_at(loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), keys, n=1, cutoff=0.6)
        if close:
            return f"unknown key; did you mean {close[0]}?"
        return f"unknown key (the keys here: {', '.join(keys)})" if keys else "unknown key"
    ctx = err.get("ctx") or {}
    if kind == "string_pattern_mismatch" and ctx.get("pattern") == ID_PATTERN:
        return f"{err['input']!r} is not an id: {ID_RULE}"
    if kind == "string_too_long" and ctx.get("max_length") == ID_MAX_CHARS:
        return f"an id is at most {ID_MAX_CHARS} characters; this one has {len(err['input'])}"
    if kind in {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}:
        expected, bounds = _expected_at(loc)
        if (allowed := _allowed_range(expected, bounds, _unit(loc))) is not None:
            return f"must be {allowed}; got {_number_text(err['input'])}"
    return err["msg"].removeprefix("Value error, ")


def allowed_range(model: type[BaseModel], key: str) -> str | None:
    """The numbers key ``key`` of ``model`` allows, in words (None: no bound); a table's values for a table of ids.

    Examples
    --------
    >>> from nextmove.playbook.schema import ContactPolicy
    >>> allowed_range(ContactPolicy, "window_days")
    'a whole number from 1 to 36,500 days'
    """
    info = model.model_fields[key]
    expected, constraints = _unwrap(info.annotation, list(info.metadata))
    if get_origin(expected) is dict:
        expected, constraints = _unwrap(get_args(expected)[1], [])
    return _allowed_range(expected, constraints, _unit((key,)))


def _keys_at(loc: tuple[int | str, ...]) -> list[str]:
    """The keys the table at ``loc`` may have (empty: not a table of the schema)."""
    expected, _ = _expected_at(loc)
    return list(expected.model_fields) if isinstance(expected, type) and issubclass(expected, BaseModel) else []


def _expected_at(loc: tuple[int | str, ...]) -> tuple[Any, list[Any]]:
    """The type the schema expects at ``loc`` (None: not known) and its constraints (``Ge``, ``Le`` …)."""
    expected: Any = Playbook
    constraints: list[Any] = []
    for item in loc:
        expected, _ = _unwrap(expected, [])
        origin = get_origin(expected)
        if isinstance(expected, type) and issubclass(expected, BaseModel):
            info = expected.model_fields.get(str(item))
            if info is None:
                return None, []
            expected, constraints = info.annotation, list(info.metadata)
        elif origin is list or origin is tuple:
            args = [a for a in get_args(expected) if a is not Ellipsis]
            index = item if isinstance(item, int) and origin is tuple and item < len(args) else 0
            expected, constraints = (args[index], []) if args else (None, [])
        elif origin is dict:
            expected, constraints = get_args(expected)[1], []
        else:
            return None, []
    return _unwrap(expected, constraints)


def _unwrap(expected: Any, constraints: list[Any]) -> tuple[Any, list[Any]]:
    """``expected`` without ``Annotated`` and ``| None``, and the constraints its ``Annotated`` adds."""
    while True:
        if get_origin(expected) is Annotated:
            expected, *extra = get_args(expected)
            for item in extra:
                constraints = [*constraints, *(item.metadata if isinstance(item, FieldInfo) else [item])]
        elif get_origin(expected) in (Union, types.UnionType):
            kept = [a for a in get_args(expected) if a is not type(None)]
            if len(kept) != 1:
                return expected, constraints
            expected = kept[0]
        else:
            return expected, constraints


def _allowed_range(expected: Any, constraints: list[Any], unit: str) -> str | None:
    """The numbers ``constraints`` allow, in words (``from 1 to 36,500 days``); None without any."""
    low = high = None
    for c in constraints:
        if isinstance(c, annotated_types.Ge):
            low = f"{_number_text(c.ge)}"
        elif isinstance(c, annotated_types.Gt):
            above: Any = c.gt
            # A whole number above 0 is at least 1.
            low = _number_text(above + 1) if expected is int else f"more than {_number_text(above)}"
        elif isinstance(c, annotated_types.Le):
            high = _number_text(c.le)
        elif isinstance(c, annotated_types.Lt):
            high = f"less than {_number_text(c.lt)}"
    if low is None and high is None:
        return None
    unit = f" {unit}" if unit else ""
    if low is not None and high is not None and not low.startswith("more") and not high.startswith("less"):
        return f"{'a whole number ' if expected is int else ''}from {low} to {high}{unit}"
    sides = [
        *([] if low is None else [low if low.startswith("more") else f"at least {low}"]),
        *([] if high is None else [high if high.startswith("less") else f"at most {high}"]),
    ]
    return ("a whole number, " if expected is int else "") + " and ".join(sides) + unit


def _unit(loc: tuple[int | str, ...]) -> str:
    """The unit of the key at ``loc`` as its name says it (``cooldown_days``: days)."""
    if len(loc) > 1 and get_origin(_expected_at(loc[:-1])[0]) is dict:
        loc = loc[:-1]  # a value of a table of ids (budget_usd_per_team.cs): the table's name says the unit
    name = str(loc[-1]) if loc else ""
    money = "(in the playbook's currency)"
    for part, unit in (("_days", "days"), ("_weeks", "weeks"), ("hours", "hours"), ("_usd", money)):
        if part in name:
            return unit
    return ""


def _number_text(value: Any) -> str:
    """A bound or a given number as a person reads it: ``36,500``, ``1,000,000,000,000``, ``1e+308``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return repr(value)
    if float(value).is_integer() and abs(value) < 1e16:
        return f"{int(value):,}"
    return f"{value:g}"


def toml_string(text: str) -> str:
    r"""``text`` as a TOML basic string, for a playbook line a note suggests (JSON's escapes are TOML's).

    Examples
    --------
    >>> print(toml_string('exit "why"'))
    "exit \"why\""
    >>> tomllib.loads("k = " + toml_string("a\\b"))["k"] == "a\\b"
    True
    """
    return json.dumps(text, ensure_ascii=False)
