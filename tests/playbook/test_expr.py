"""Tests of eligibility expressions: safe parsing, vectorised evaluation, located errors."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nextmove.playbook.expr import ExpressionError, check_playbook_expressions, compile_eligibility

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
