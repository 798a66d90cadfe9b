"""Vectorised evaluation of the playbook's eligibility expressions over the lab's account features."""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nextmove.errors import ConfigError

SIM_FEATURES = ("arr", "tenure_days", "days_to_renewal", "seats")
"""Feature names the lab can evaluate in an eligibility expression."""

_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def evaluate_eligibility(
    expression: str, features: Mapping[str, NDArray[np.float64]], *, action_id: str = "?"
) -> NDArray[np.bool_]:
    """Evaluate ``expression`` (e.g. ``"days_to_renewal <= 120 and arr > 10000"``) per account.

    Parameters
    ----------
    expression
        The action's ``eligibility``; empty means always eligible.
    features
        One array per feature name, all of the same length.
    action_id
        Named in error messages.

    Returns
    -------
    numpy.ndarray
        Boolean mask, one entry per account.

    Raises
    ------
    ConfigError
        If the expression is not a comparison over the lab's features.

    Examples
    --------
    >>> import numpy as np
    >>> evaluate_eligibility("arr >= 15000", {"arr": np.array([1e4, 2e4])}).tolist()
    [False, True]
    """
    n = len(next(iter(features.values())))
    if not expression.strip():
        return np.ones(n, dtype=bool)
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as exc:
        raise ConfigError(
            f"action {action_id!r}: eligibility {expression!r} is not a valid expression ({exc.msg})"
        ) from None

    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.BoolOp):
            values = [np.asarray(ev(v), dtype=bool) for v in node.values]
            combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
            out = values[0]
            for v in values[1:]:
                out = combine(out, v)
            return out
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return np.logical_not(ev(node.operand))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        if isinstance(node, ast.Compare):
            left = ev(node.left)
            out = np.ones(n, dtype=bool)
            for op, right_node in zip(node.ops, node.comparators, strict=True):
                right = ev(right_node)
                fn = _COMPARE.get(type(op))
                if fn is None:
                    break
                out = out & fn(left, right)
                left = right
            else:
                return out
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return _BINARY[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        if isinstance(node, ast.Name):
            if node.id not in features:
                raise ConfigError(
                    f"action {action_id!r}: eligibility {expression!r} uses {node.id!r}, which the "
                    f"lab does not simulate (it knows {', '.join(SIM_FEATURES)})"
                )
            return features[node.id]
        raise ConfigError(
            f"action {action_id!r}: eligibility {expression!r} uses {ast.unparse(node)!r}; the lab "
            "evaluates only comparisons, and/or/not and arithmetic over its features"
        )

    result = np.broadcast_to(np.asarray(ev(tree), dtype=bool), (n,))
    return np.array(result, dtype=bool)
