"""Eligibility expressions: a small, safe language over feature names, compiled to Polars expressions.

``days_to_renewal <= 120 and seat_utilization_last < 0.6`` is parsed with Python's ``ast``
module (never evaluated), checked node by node against a whitelist, and turned into one
vectorised ``pl.Expr``. Unknown features, syntax errors and type mismatches are reported with
the action id and the position in the expression.

Numbers are evaluated as Float64 whatever the feature's dtype, and a value that is not a number
(NaN, from ``0 * inf`` or in the data) or a ratio with a zero denominator is missing: Polars
orders NaN above every number, so a NaN left in place would make ``x / y > 2`` true.

An expression is at most :data:`MAX_EXPRESSION_CHARS` characters long,
:data:`MAX_EXPRESSION_DEPTH` levels deep and :data:`MAX_EXPRESSION_SIZE` terms once expanded:
past that, Python's parser recursed until a ``RecursionError`` (3,000 ``not`` or 20,000 ``+``
terms) and Polars took minutes to plan the query; such an expression is an
:class:`ExpressionError` like any other.
"""

from __future__ import annotations

import ast
import difflib
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import polars as pl

from nextmove.errors import PlaybookError

Kind = Literal["number", "text", "bool", "null"]
FeatureKinds = Mapping[str, Literal["number", "text"]]
"""Feature name → ``number`` or ``text``: what eligibility expressions are checked against."""

_CMP: dict[type[ast.cmpop], str] = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.In: "in",
    ast.NotIn: "not in",
}
_FUNCS = {"missing": 1, "present": 1, "abs": 1, "min": 2, "max": 2}

MAX_EXPRESSION_CHARS = 20_000
"""The longest eligibility expression, in characters (a list after ``in`` of a thousand values fits)."""

MAX_EXPRESSION_DEPTH = 100
"""How deep an eligibility expression may nest: each operator, comparison or call within another
is one level (the feature or number at the bottom one more), and ``a + b + c`` is ``(a + b) + c``,
a level per term; the terms of ``and`` and ``or`` are one level whatever their number."""

MAX_EXPRESSION_SIZE = 10_000
"""How many terms an eligibility expression may expand to (see :func:`_size`): ``min()`` nested 10
deep is 5,000 (Polars took 1.3 s over it), 12 deep 20,000 (4.8 s); a chain of 1,600 ``and`` is 6,600."""

_SHOWN_CHARS = 80
"""How much of an expression too long or too deep an error quotes."""
_LITERALS = {"true": True, "false": False, "True": True, "False": False}
_NAN = float("nan")


class ExpressionError(PlaybookError):
    """An eligibility expression that cannot be compiled; says where and why."""

    def __init__(
        self, text: str, message: str, position: int | None, action_id: str | None, *, source: str | None = None
    ) -> None:
        who = (f"{source}: " if source else "") + (f"action {action_id!r}: " if action_id else "")
        at = f" at position {position}" if position is not None else ""
        pointer = ""
        quoted = repr(text)
        if position is None and len(text) > 2 * _SHOWN_CHARS:
            # An expression too long or too deep to compile is quoted by its start, not whole.
            quoted = f"{text[:_SHOWN_CHARS]!r}… ({len(text):,} characters)"
        if position is not None:
            # Wide characters (kanji, kana) take two columns of a terminal: the caret lines up under them.
            pad = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text[: position - 1])
            pointer = f"\n    {text}\n    {' ' * pad}^"
        super().__init__(f"{who}eligibility {quoted}: {message}{at}{pointer}")
        self.text = text
        self.message = message
        self.position = position
        self.action_id = action_id
        self.source = source

    def in_file(self, source: str) -> ExpressionError:
        """This error, saying first the playbook file it comes from (``playbook.toml: action 'x': …``)."""
        return ExpressionError(self.text, self.message, self.position, self.action_id, source=source)


def _as_number(expr: pl.Expr) -> pl.Expr:
    """``expr`` as Float64 with NaN made missing (integer, boolean and decimal features alike).

    ``replace`` reads ``expr`` once where ``fill_nan`` reads it twice (``when(is_nan) … otherwise``):
    wrapped around each term, that doubled the expression per ``+``, so that 8 features summed
    made a query of a million nodes (3 s for 10,000 accounts) and 12 never ended.
    """
    return expr.cast(pl.Float64).replace(_NAN, None)


def _balanced(parts: list[pl.Expr], *, both: bool) -> pl.Expr:
    """``parts`` joined by ``&`` (``both``) or ``|``, paired as a balanced tree.

    A left-deep chain of 300 terms took Polars 19 s to plan, of 1,000 several minutes.
    """
    while len(parts) > 1:
        joined = [a & b if both else a | b for a, b in zip(parts[::2], parts[1::2], strict=False)]
        parts = joined + parts[len(joined) * 2 :]
    return parts[0]


@dataclass(frozen=True)
class _Typed:
    expr: pl.Expr
    kind: Kind
    node: ast.AST


def _truth_hint(left: _Typed, right: _Typed) -> str:
    """For a number compared with true/false or 'true'/'false': the book's true/false columns are 1 and 0."""
    for number, other in ((left, right), (right, left)):
        node = other.node
        word = ""
        if isinstance(node, ast.Constant):
            word = str(node.value).strip().lower()
        elif isinstance(node, ast.Name):
            word = node.id.lower()
        if number.kind == "number" and other.kind in ("bool", "text") and word in ("true", "false"):
            one = "1" if word == "true" else "0"
            return f"; a true/false column of the book is a number feature, 1 for true and 0 for false: write == {one}"
    return ""


def _list_constant(node: ast.AST) -> float | int | str | None:
    """The number or text an item of an ``in`` list is (``-1`` and ``+2`` included), or None for anything else."""
    sign = 1
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        sign = -1 if isinstance(node.op, ast.USub) else 1
        node = node.operand
        if not isinstance(node, ast.Constant) or not isinstance(node.value, int | float):
            return None
    if not isinstance(node, ast.Constant) or isinstance(node.value, bool):
        return None
    value = node.value
    if isinstance(value, int | float):
        return sign * value
    return value if isinstance(value, str) else None


class _Compiler:
    def __init__(self, text: str, schema: FeatureKinds | None, action_id: str | None) -> None:
        self.text = text
        self.schema = schema
        self.action_id = action_id

    def error(self, message: str, node: ast.AST | None) -> ExpressionError:
        offset = getattr(node, "col_offset", None)
        # ast counts UTF-8 bytes; positions in messages count characters, as syntax errors do.
        pos = None if offset is None else len(self.text.encode()[:offset].decode(errors="ignore"))
        return ExpressionError(self.text, message, None if pos is None else pos + 1, self.action_id)

    def compile(self, node: ast.AST) -> _Typed:
        if isinstance(node, ast.BoolOp):
            parts = [self.boolean(v) for v in node.values]
            return _Typed(_balanced(parts, both=isinstance(node.op, ast.And)), "bool", node)
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.Not):
                return _Typed(~self.boolean(node.operand), "bool", node)
            operand = self.number(node.operand)
            return _Typed(-operand if isinstance(node.op, ast.USub) else operand, "number", node)
        if isinstance(node, ast.BinOp):
            ops = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
            if type(node.op) not in ops:
                raise self.error("only + - * / are allowed in arithmetic", node)
            left, right = self.number(node.left), self.number(node.right)
            if isinstance(node.op, ast.Div):
                # x / 0 has no value: missing, never ±inf or NaN that a comparison could pass (0 and -0
                # alike). ``right`` is read once, as in _as_number.
                result = left / right.replace(0.0, None)
            else:
                result = {ast.Add: left + right, ast.Sub: left - right, ast.Mult: left * right}[type(node.op)]
            # inf - inf, 0 * inf …: NaN is missing too.
            return _Typed(_as_number(result), "number", node)
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool):
                return _Typed(pl.lit(value), "bool", node)
            if isinstance(value, int | float):
                return _Typed(pl.lit(float(value)), "number", node)
            if isinstance(value, str):
                return _Typed(pl.lit(value), "text", node)
            raise self.error(f"the literal {value!r} is not allowed", node)
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.Call):
            return self.call(node)
        raise self.error(f"{type(node).__name__.lower()} is not allowed in an eligibility expression", node)

    def name(self, node: ast.Name) -> _Typed:
        if node.id in _LITERALS:
            return _Typed(pl.lit(_LITERALS[node.id]), "bool", node)
        if self.schema is None:
            return _Typed(pl.col(node.id), "null", node)
        if node.id not in self.schema:
            close = difflib.get_close_matches(node.id, list(self.schema), n=3)
            hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
            raise self.error(f"unknown feature {node.id!r}{hint}", node)
        kind = self.schema[node.id]
        column = pl.col(node.id)
        return _Typed(_as_number(column) if kind == "number" else column, kind, node)

    def call(self, node: ast.Call) -> _Typed:
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCS:
            raise self.error(f"unknown function; allowed: {', '.join(sorted(_FUNCS))}", node)
        fname = node.func.id
        if node.keywords or len(node.args) != _FUNCS[fname]:
            raise self.error(f"{fname}() takes {_FUNCS[fname]} argument(s)", node)
        if fname in ("missing", "present"):
            arg = self.compile(node.args[0])
            test = arg.expr.is_null() if fname == "missing" else arg.expr.is_not_null()
            return _Typed(test, "bool", node)
        args = [self.number(a) for a in node.args]
        if fname == "abs":
            return _Typed(args[0].abs(), "number", node)
        fn = pl.min_horizontal if fname == "min" else pl.max_horizontal
        # Horizontal min/max skip nulls; in eligibility a missing input must stay missing.
        either_missing = args[0].is_null() | args[1].is_null()
        return _Typed(pl.when(either_missing).then(None).otherwise(fn(args)), "number", node)

    def compare(self, node: ast.Compare) -> _Typed:
        left = self.compile(node.left)
        parts: list[pl.Expr] = []
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            symbol = _CMP.get(type(op))
            if symbol is None:
                raise self.error("this comparison is not allowed (use == != < <= > >= in)", node)
            if symbol in ("in", "not in"):
                part = self.membership(left, comparator, symbol)
                right_for_chain = left
            else:
                right = self.compile(comparator)
                self.check_comparable(left, right, symbol, node)
                part = {
                    "==": left.expr == right.expr,
                    "!=": left.expr != right.expr,
                    "<": left.expr < right.expr,
                    "<=": left.expr <= right.expr,
                    ">": left.expr > right.expr,
                    ">=": left.expr >= right.expr,
                }[symbol]
                right_for_chain = right
            parts.append(part)
            left = right_for_chain
        return _Typed(_balanced(parts, both=True), "bool", node)

    def membership(self, left: _Typed, comparator: ast.AST, symbol: str) -> pl.Expr:
        if not isinstance(comparator, ast.List | ast.Tuple | ast.Set):
            raise self.error(
                f"'{symbol}' needs a list of values, e.g. segment in ['SMB', 'Mid-Market']",
                comparator,
            )
        items = [self.compile(e) for e in comparator.elts]
        values: list[float | str] = []
        for item in items:
            constant = _list_constant(item.node)
            if constant is None:
                raise self.error("the list after 'in' may hold only numbers or strings", item.node)
            if left.kind not in ("null", item.kind):
                raise self.error(
                    f"type mismatch: {self.describe(left)} is {left.kind}, the list holds {item.kind}s",
                    item.node,
                )
            if item.kind != items[0].kind:
                raise self.error("the list after 'in' mixes numbers and texts", item.node)
            values.append(float(constant) if isinstance(constant, int | float) else str(constant))
        # The list is Float64; is_in refuses to look for an Int64 (or Boolean …) value in it.
        numbers = bool(items) and items[0].kind == "number"
        test = (_as_number(left.expr) if numbers else left.expr).is_in(values)
        return ~test if symbol == "not in" else test

    def check_comparable(self, left: _Typed, right: _Typed, symbol: str, node: ast.AST) -> None:
        kinds = {left.kind, right.kind} - {"null"}
        if len(kinds) > 1:
            raise self.error(
                f"type mismatch: {self.describe(left)} is {left.kind} but {self.describe(right)} is {right.kind}"
                + _truth_hint(left, right),
                right.node,
            )
        if kinds == {"text"} and symbol not in ("==", "!="):
            raise self.error(f"text can only be compared with == or !=, not {symbol}", node)
        if kinds == {"bool"} and symbol not in ("==", "!="):
            raise self.error(f"true/false can only be compared with == or !=, not {symbol}", node)

    def describe(self, typed: _Typed) -> str:
        seg = ast.get_source_segment(self.text, typed.node)
        return repr(seg) if seg else "the value"

    def boolean(self, node: ast.AST) -> pl.Expr:
        typed = self.compile(node)
        if typed.kind not in ("bool", "null"):
            raise self.error(
                f"{self.describe(typed)} is {typed.kind}, not a condition (compare it, e.g. > 0)",
                node,
            )
        return typed.expr

    def number(self, node: ast.AST) -> pl.Expr:
        typed = self.compile(node)
        if typed.kind not in ("number", "null"):
            raise self.error(f"{self.describe(typed)} is {typed.kind}, not a number", node)
        return typed.expr


def compile_eligibility(text: str, schema: FeatureKinds | None = None, *, action_id: str | None = None) -> pl.Expr:
    """Compile an eligibility expression to a boolean Polars expression.

    Missing values follow three-valued logic: arithmetic, a comparison or ``in`` with a missing
    value is missing, ``not`` of missing is missing, ``missing and false`` is false and
    ``missing or true`` is true; an expression that ends up missing is not eligible. So
    ``not (x > 3)`` is not eligible where ``x`` is missing; write ``missing(x) or x <= 3``.
    A ratio with a zero denominator, and any NaN, is missing. An empty expression is always
    true.

    Parameters
    ----------
    text
        The expression, e.g. ``"days_to_renewal <= 120 and segment in ['SMB']"``.
    schema
        Feature name → ``"number"`` or ``"text"``. When given, names and types are checked;
        when None, only the syntax is.
    action_id
        Named in error messages.

    Raises
    ------
    ExpressionError
        On a syntax error, an unknown feature or function, or a type mismatch; the message gives
        the position.

    Examples
    --------
    >>> df = pl.DataFrame({"arr": [5000.0, 20000.0, None], "segment": ["SMB", "Enterprise", "SMB"]})
    >>> expr = compile_eligibility("arr >= 10000 or segment == 'SMB'", {"arr": "number", "segment": "text"})
    >>> df.select(expr).to_series().to_list()
    [True, True, True]
    >>> try:
    ...     compile_eligibility("arr >= 'big'", {"arr": "number"}, action_id="upsell")
    ... except ExpressionError as exc:
    ...     print(exc.position, exc.action_id)
    8 upsell
    """
    stripped = text.strip()
    if not stripped:
        return pl.lit(True).alias("eligible")
    if len(stripped) > MAX_EXPRESSION_CHARS:
        raise ExpressionError(
            stripped,
            f"the expression is too long ({len(stripped):,} characters; at most {MAX_EXPRESSION_CHARS:,}): "
            "write it shorter, e.g. with a feature of the book for a long list",
            None,
            action_id,
        )
    try:
        tree = ast.parse(stripped, mode="eval")
    except (RecursionError, MemoryError):
        raise ExpressionError(stripped, _too_deep(), None, action_id) from None
    except SyntaxError as exc:
        message, offset = exc.msg, exc.offset
        lone_equals = re.search(r"(?<![=!<>])=(?!=)", stripped)
        if lone_equals:
            message, offset = "use == to compare, not =", lone_equals.start() + 1
        elif offset is None or offset < 1 or offset > len(stripped):
            message, offset = f"{message} (the expression ends too early?)", len(stripped) + 1
        raise ExpressionError(stripped, f"syntax error: {message}", offset, action_id) from None
    depth = _depth(tree.body)
    if depth > MAX_EXPRESSION_DEPTH:
        raise ExpressionError(stripped, _too_deep(depth), None, action_id)
    size = _size(tree.body)
    if size > MAX_EXPRESSION_SIZE:
        raise ExpressionError(
            stripped,
            f"the expression is too complex ({size:,} terms once expanded; at most {MAX_EXPRESSION_SIZE:,}: "
            "min() and max() count what is inside them twice, a chained comparison its middle terms)",
            None,
            action_id,
        )
    compiler = _Compiler(stripped, schema, action_id)
    typed = compiler.compile(tree.body)
    if typed.kind not in ("bool", "null"):
        raise compiler.error(f"the expression is a {typed.kind}, not a condition", tree.body)
    return typed.expr.fill_null(False).alias("eligible")


def _depth(root: ast.AST) -> int:
    """How deep ``root`` nests, in nodes (contexts such as ``Load`` left out); walked without recursing."""
    deepest = 0
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend(
            (child, depth + 1) for child in ast.iter_child_nodes(node) if not isinstance(child, ast.expr_context)
        )
    return deepest


def _size(node: ast.AST) -> int:
    """Roughly how many nodes the Polars expression ``node`` compiles to has, as Polars expands it.

    ``min()`` and ``max()`` read their arguments twice (for the missing check), a chained comparison
    its middle terms: nested, each doubles what is inside it. Recursive: only on a tree at most
    :data:`MAX_EXPRESSION_DEPTH` deep.
    """
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        return 1  # the values after ``in``: one list
    children = [c for c in ast.iter_child_nodes(node) if not isinstance(c, ast.expr_context)]
    sizes = [_size(c) for c in children]  # each once: counted again below, never walked again
    twice: list[ast.AST] = []
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("min", "max"):
        twice = list(node.args)
    elif isinstance(node, ast.Compare):
        twice = list(node.comparators[:-1])
    return 1 + sum(sizes) + sum(s for c, s in zip(children, sizes, strict=True) if any(c is t for t in twice))


def _too_deep(depth: int | None = None) -> str:
    levels = "" if depth is None else f"{depth:,} levels; "
    return (
        f"the expression is nested too deeply ({levels}at most {MAX_EXPRESSION_DEPTH}): "
        "write it with fewer operators within one another"
    )


def check_playbook_expressions(
    actions: list[tuple[str, str]], schema: FeatureKinds | None = None
) -> list[ExpressionError]:
    """Compile every ``(action_id, eligibility)`` pair; return the errors (empty when all compile)."""
    errors: list[ExpressionError] = []
    for action_id, text in actions:
        try:
            compile_eligibility(text, schema, action_id=action_id)
        except ExpressionError as exc:
            errors.append(exc)
    return errors
