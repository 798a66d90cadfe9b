"""Tests of eligibility expressions: safe parsing, vectorised evaluation, located errors."""

from __future__ import annotations

import math
import operator

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nextmove.playbook.expr import ExpressionError, FeatureKinds, check_playbook_expressions, compile_eligibility

SCHEMA = {"arr": "number", "days_to_renewal": "number", "segment": "text", "seat_utilization_last": "number"}
FRAME = pl.DataFrame(
    {
        "arr": [5_000.0, 20_000.0, None, 50_000.0],
        "days_to_renewal": [30.0, 200.0, 10.0, None],
        "segment": ["SMB", "Enterprise", "SMB", None],
        "seat_utilization_last": [0.4, 0.9, None, 0.5],
    }
)


def _eval(text: str) -> list[bool]:
    return FRAME.with_columns(compile_eligibility(text, SCHEMA)).get_column("eligible").to_list()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", [True, True, True, True]),
        ("arr >= 10000", [False, True, False, True]),
        ("days_to_renewal <= 120 and seat_utilization_last < 0.6", [True, False, False, False]),
        ("segment == 'SMB' or arr > 40000", [True, False, True, True]),
        ("segment in ['SMB', 'Mid-Market']", [True, False, True, False]),
        ("segment not in ['SMB']", [False, True, False, False]),
        ("not (arr > 10000)", [True, False, False, False]),
        ("missing(arr)", [False, False, True, False]),
        ("present(days_to_renewal) and 10 < days_to_renewal <= 200", [True, True, False, False]),
        ("arr / 1000 + 1 > 21", [False, False, False, True]),
        ("abs(days_to_renewal - 100) < 80", [True, False, False, False]),
        ("max(arr, 30000) == 30000", [True, True, False, False]),
        ("true", [True, True, True, True]),
    ],
)
def test_compile_eligibility_evaluates_vectorised(text: str, expected: list[bool]) -> None:
    assert _eval(text) == expected


def test_compile_eligibility_missing_value_is_not_eligible() -> None:
    # Row 3 has no arr: a comparison with a missing value must not make the action eligible.
    assert _eval("arr < 1e9")[2] is False


@pytest.mark.parametrize(
    ("text", "fragment", "position"),
    [
        ("arx > 5", "unknown feature 'arx' (did you mean 'arr'?)", 1),
        ("arr = 5", "use == to compare", 5),
        ("arr > 5 and", "syntax error", 12),
        ("segment > 'A'", "text can only be compared with == or !=", 1),
        ("segment == 3", "type mismatch: 'segment' is text but '3' is number", 12),
        ("arr in ['a']", "the list holds texts", 9),
        ("arr in 5", "needs a list of values", 8),
        ("__import__('os').system('x')", "unknown function", 1),
        ("open('f')", "unknown function", 1),
        ("arr", "not a condition", 1),
        ("arr ** 2 > 1", "only + - * / are allowed", 1),
        ("segment + 1 > 2", "'segment' is text, not a number", 1),
        ("lambda: 1", "is not allowed", 1),
        ("missing(arr, segment)", "takes 1 argument", 1),
    ],
)
def test_compile_eligibility_errors_name_position(text: str, fragment: str, position: int) -> None:
    with pytest.raises(ExpressionError) as info:
        compile_eligibility(text, SCHEMA, action_id="upsell_call")
    assert fragment in str(info.value)
    assert info.value.position == position
    assert "action 'upsell_call'" in str(info.value)


@pytest.mark.parametrize(
    ("text", "name", "caret"),
    [
        ("lifecycle_stage == '休眠' and foo > 3", "foo", 30),  # each kanji is two columns of a terminal
        ("lifecycle_stage == 'Gefährdet' and foo > 3", "foo", 35),
        ("ログイン回数_mean_28d > 3 and foo > 1", "foo", 30),
    ],
)
def test_compile_eligibility_positions_count_characters(text: str, name: str, caret: int) -> None:
    # ast counts UTF-8 bytes: an unknown name after '休眠' was reported 4 characters too far.
    schema = {"lifecycle_stage": "text", "ログイン回数_mean_28d": "number"}
    with pytest.raises(ExpressionError) as info:
        compile_eligibility(text, schema, action_id="a")
    assert info.value.position == text.index(name) + 1
    assert str(info.value).splitlines()[-1] == " " * 4 + " " * caret + "^"


def test_compile_eligibility_reads_non_latin_feature_names() -> None:
    frame = pl.DataFrame({"ログイン回数_mean_28d": [1.0, 5.0], "lifecycle_stage": ["休眠", "稼働"]})
    schema = {"ログイン回数_mean_28d": "number", "lifecycle_stage": "text"}
    expr = compile_eligibility("ログイン回数_mean_28d > 3 or lifecycle_stage == '休眠'", schema)
    assert frame.select(expr).to_series().to_list() == [True, True]


def test_compile_eligibility_without_schema_checks_syntax_only() -> None:
    compile_eligibility("anything_goes > 3 and other == 'x'")
    with pytest.raises(ExpressionError, match="syntax error"):
        compile_eligibility("anything_goes >")


def test_compile_eligibility_never_evaluates_python() -> None:
    # A payload that would have side effects under eval() must be refused before anything runs.
    with pytest.raises(ExpressionError):
        compile_eligibility("[x for x in ().__class__.__bases__[0].__subclasses__()]", SCHEMA)


def test_check_playbook_expressions_collects_every_error() -> None:
    errors = check_playbook_expressions([("a", "arr > 1"), ("b", "nope > 1"), ("c", "segment > 1")], SCHEMA)
    assert [e.action_id for e in errors] == ["b", "c"]


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12))
def test_compile_eligibility_threshold_matches_python(threshold: float) -> None:
    values = [-1.0, 0.0, 5_000.0, 1e9]
    frame = pl.DataFrame({"arr": values})
    got = frame.select(compile_eligibility(f"arr >= {threshold!r}", {"arr": "number"})).to_series().to_list()
    assert got == [v >= threshold for v in values]


@pytest.mark.parametrize("dtype", [pl.Int64, pl.Int32, pl.UInt8, pl.Float32, pl.Float64])
def test_compile_eligibility_membership_matches_any_number_dtype(dtype: pl.DataType) -> None:
    # Count features are Int64; `in [0, 1]` used to die in Polars' is_in (Int64 vs List(Float64)).
    frame = pl.DataFrame({"tickets_count_90d": pl.Series([0, 1, 2, None], dtype=dtype)})
    kinds = {"tickets_count_90d": "number"}
    inside = frame.select(compile_eligibility("tickets_count_90d in [0, 1]", kinds)).to_series().to_list()
    outside = frame.select(compile_eligibility("tickets_count_90d not in [0, 1.0]", kinds)).to_series().to_list()
    assert inside == [True, True, False, False]
    assert outside == [False, False, True, False]


def test_compile_eligibility_membership_takes_signed_numbers() -> None:
    frame = pl.DataFrame({"nps": [-1.0, 0.0, 2.0, None]})
    kinds = {"nps": "number"}
    inside = frame.select(compile_eligibility("nps in [-1, +2]", kinds)).to_series().to_list()
    assert inside == [True, False, True, False]
    with pytest.raises(ExpressionError, match="only numbers or strings"):
        compile_eligibility("nps in [-nps]", kinds)
    with pytest.raises(ExpressionError):
        compile_eligibility("nps in [-true]", kinds)


def test_compile_eligibility_membership_refuses_a_mixed_list() -> None:
    with pytest.raises(ExpressionError, match="mixes numbers and texts"):
        compile_eligibility("anything in [1, 'a']")


def test_compile_eligibility_zero_denominator_is_missing() -> None:
    # 0 / 0 is NaN and 1 / 0 is inf, both above every number in Polars: the ratio must be missing instead.
    frame = pl.DataFrame({"tickets": pl.Series([0, 0, 3, 1], dtype=pl.Int64), "admins": [0.0, 2.0, 1.0, 0.0]})
    kinds = {"tickets": "number", "admins": "number"}

    def run(text: str) -> list[bool]:
        return frame.select(compile_eligibility(text, kinds)).to_series().to_list()

    assert run("tickets / admins > 1") == [False, False, True, False]
    assert run("tickets / admins >= 1000000") == [False, False, False, False]
    assert run("-tickets / admins < -1") == [False, False, True, False]
    assert run("missing(tickets / admins)") == [True, False, False, True]


_OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}
_MAYBE_NUMBER = st.none() | st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, -0.0, 1e308])


@given(a=_MAYBE_NUMBER, b=_MAYBE_NUMBER, op=st.sampled_from(["+", "-", "*", "/"]))
def test_compile_eligibility_nan_never_compares_true(a: float | None, b: float | None, op: str) -> None:
    # Whatever the data (NaN, ±inf, 0) and the arithmetic (0 * inf, inf - inf, x / 0), a result that
    # is not a number is missing: neither `> 0` nor `<= 0` holds, and missing() does.
    result: float | None = None
    if a is not None and b is not None and not (op == "/" and b == 0):
        result = _OPS[op](a, b)
        result = None if math.isnan(result) else result
    frame = pl.DataFrame({"a": [a], "b": [b]}, schema={"a": pl.Float64, "b": pl.Float64})
    kinds = {"a": "number", "b": "number"}
    texts = [f"a {op} b > 0", f"a {op} b <= 0", f"a {op} b == a {op} b", f"missing(a {op} b)"]
    got = [frame.select(compile_eligibility(t, kinds)).item() for t in texts]
    if result is None:
        assert got == [False, False, False, True]
    else:
        assert got == [result > 0, result <= 0, True, False]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("csat_last > 3", [True, False, False]),
        ("not (csat_last > 3)", [False, True, False]),
        ("csat_last > 3 or not (csat_last > 3)", [True, True, False]),
        ("not (csat_last > 3 and false)", [True, True, True]),
        ("csat_last > 3 or true", [True, True, True]),
        ("csat_last not in [5]", [False, True, False]),
        ("missing(csat_last) or csat_last < 3", [False, True, True]),
    ],
)
def test_compile_eligibility_missing_is_three_valued(text: str, expected: list[bool]) -> None:
    # As docs/playbook.md says: missing is neither true nor false, `not` keeps it missing, and a
    # missing result is not eligible.
    frame = pl.DataFrame({"csat_last": [5.0, 2.0, None]})
    assert frame.select(compile_eligibility(text, {"csat_last": "number"})).to_series().to_list() == expected


@pytest.mark.parametrize(("text", "write"), [("has_sso == 'true'", "== 1"), ("has_sso == false", "== 0")])
def test_compile_eligibility_hints_that_true_false_columns_are_numbers(text: str, write: str) -> None:
    # A CSV column of true/false is the number feature 1/0: comparing it with 'true' or true was a bare mismatch.
    with pytest.raises(ExpressionError, match=f"1 for true and 0 for false: write {write}"):
        compile_eligibility(text, {"has_sso": "number"})


def _nesting(expr: pl.Expr) -> int:
    """How deep the brackets of a Polars expression's text nest: how deep the query is."""
    depth = deepest = 0
    for char in str(expr):
        depth += char in "(["
        depth -= char in ")]"
        deepest = max(deepest, depth)
    return deepest


def test_arithmetic_builds_a_query_linear_in_its_terms() -> None:
    # Each partial sum was read twice (fill_nan is when(is_nan) … otherwise): 8 features summed made a
    # query of a million nodes, 3 s for 10,000 accounts, and 12 never ended. So were nested denominators.
    total = compile_eligibility(" + ".join(["arr"] * 10) + " > 100000", SCHEMA)
    assert len(str(total)) < 5_000
    assert FRAME.select(total).to_series().to_list() == [False, True, False, True]
    ratio = compile_eligibility("arr / (arr / (arr / (arr / (arr / (arr / (arr / (arr / arr))))))) > 1", SCHEMA)
    assert len(str(ratio)) < 5_000
    assert FRAME.select(ratio).to_series().to_list() == [True, True, False, True]  # 9 arr so divided: arr


def test_a_long_chain_of_and_builds_a_shallow_query() -> None:
    # A left-deep chain: 300 terms took Polars 19 s, 1,000 several minutes.
    chain = compile_eligibility(" and ".join(f"arr > {i}" for i in range(300)), SCHEMA)
    assert _nesting(chain) < 60
    assert FRAME.select(chain).to_series().to_list() == [True, True, False, True]
    either = compile_eligibility(" or ".join(f"arr > {i}" for i in range(10_000, 10_300)), SCHEMA)
    assert _nesting(either) < 60
    assert FRAME.select(either).to_series().to_list() == [False, True, False, True]


def test_a_zero_denominator_of_either_sign_is_missing() -> None:
    frame = pl.DataFrame({"x": [1.0, 1.0, 1.0], "z": [0.0, -0.0, 2.0]})
    kinds: FeatureKinds = {"x": "number", "z": "number"}
    assert frame.select(compile_eligibility("missing(x / z)", kinds)).to_series().to_list() == [True, True, False]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("not " * 3000 + "arr >= 10000", "the expression is nested too deeply"),
        (" + ".join(["arr"] * 150) + " > 1", "the expression is nested too deeply (151 levels; at most 100)"),
        ("+".join(["arr"] * 20_000) + " > 1", "the expression is too long (80,003 characters; at most 20,000)"),
        ("min(" * 12 + "arr" + ", 1)" * 12 + " > 0", "the expression is too complex (20,479 terms"),
        ("max(" * 45 + "arr" + ", 1)" * 45 + " > 0", "the expression is too complex ("),
    ],
)
def test_an_expression_too_deep_long_or_complex_is_an_expression_error(text: str, fragment: str) -> None:
    # Python's parser raised a RecursionError for the first and third; the others made the compiler
    # recurse as deep, or Polars plan for minutes.
    with pytest.raises(ExpressionError) as info:
        compile_eligibility(text, SCHEMA, action_id="deep")
    message = str(info.value)
    assert message.startswith("action 'deep': eligibility ")
    assert fragment in message
    assert len(message) < 400  # a long one quoted by its start


def test_the_deepest_expression_allowed_compiles() -> None:
    # 98 `not`, the comparison and its feature: 100 levels.
    text = "not " * 98 + "arr >= 10000"
    assert FRAME.select(compile_eligibility(text, SCHEMA)).to_series().to_list() == [False, True, False, True]
