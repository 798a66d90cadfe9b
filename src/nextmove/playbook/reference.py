"""The playbook reference page, generated from the schema's field docstrings (one source of truth)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from nextmove.playbook.expr import MAX_EXPRESSION_CHARS, MAX_EXPRESSION_DEPTH
from nextmove.playbook.loader import allowed_range
from nextmove.playbook.money import CURRENCY_SYMBOLS, ZERO_DECIMAL_CURRENCIES
from nextmove.playbook.schema import (
    ID_PATTERN,
    MAX_DAYS,
    MAX_HOURS,
    MAX_PLAYS,
    MAX_USD,
    MAX_WEIGHT,
    Action,
    Capacity,
    ChannelCap,
    ContactPolicy,
    Exploration,
    Features,
    Health,
    HealthComponent,
    Measure,
    Objective,
    Playbook,
    SignalKinds,
    SignalRoles,
    Variant,
)

_SECTIONS: list[tuple[str, type[BaseModel]]] = [
    ("Top level", Playbook),
    ("`[objectives.<id>]`", Objective),
    ("`[[actions]]`", Action),
    ("`variants` of an action", Variant),
    ("`[contact_policy]`", ContactPolicy),
    ("`caps` of the contact policy", ChannelCap),
    ("`[capacity]`", Capacity),
    ("`[exploration]`", Exploration),
    ("`[signal_roles]`", SignalRoles),
    ("`[signal_kinds]`", SignalKinds),
    ("`[health]`", Health),
    ("`[health.components.<id>]`", HealthComponent),
    ("`measures` of a health component", Measure),
    ("`[features]`", Features),
]


def _default(info: Any) -> str:
    if info.is_required():
        return "required"
    if info.default_factory is not None:
        sections = (ContactPolicy, Capacity, Exploration, SignalRoles, SignalKinds, Health, Features)
        return "see below" if info.annotation in sections else "empty"
    value = info.default
    if value is None:
        return "unset"
    if hasattr(value, "value"):
        value = value.value
    if isinstance(value, tuple):
        value = list(value)  # written as a TOML array
    return f"`{value!r}`" if isinstance(value, str) else f"`{value}`"


def playbook_markdown() -> str:
    """The playbook reference as Markdown (``docs/playbook.md`` is generated from it)."""
    symbols = ", ".join(f"{code} `{symbol}`" for code, symbol in CURRENCY_SYMBOLS.items())
    zero_decimal = ", ".join(sorted(ZERO_DECIMAL_CURRENCIES))
    lines = [
        "# Playbook reference (`playbook.toml`)",
        "",
        "<!-- Generated from src/nextmove/playbook/schema.py by `python docs/generate.py`; do not edit. -->",
        "",
        "The playbook says what nextmove optimises (objectives), what the teams may do (the action",
        "catalog), and under which limits (contact policy, capacities, control cohort, exploration).",
        "`nextmove init DIR` writes a complete example as `DIR/book/playbook.toml`, the file a command",
        "given `--book DIR/book` reads unless `--playbook` names another; the built-in default has 14",
        "actions across customer success, sales, marketing and support. Unknown keys are errors, so a",
        "typo never passes silently (the message names the key it most resembles: `cooldown = 30` reads",
        '"unknown key; did you mean cooldown_days?").',
        "",
        '**Numbers.** A number is written as a TOML number: `cooldown_days = 30`, not `"30"` nor `true`',
        "(both are refused, not read as 30 or 1). Each bounded key says what it allows below: day",
        f"counts (windows, cooldowns) are at most {MAX_DAYS:,} days (100 years), amounts of money (costs, budgets,",
        f"values) at most {MAX_USD:,.0f} in the playbook's currency, hours at most {MAX_HOURS:,.0f}, weights at",
        f"most {MAX_WEIGHT:,.0f}, counts of plays (`max_per_run`, `max_touches`, `max_actions_per_window`) at most",
        f"{MAX_PLAYS:,}.",
        "`nextmove validate` refuses a playbook beyond them (exit 2), naming the key and its range.",
        "",
        "**Ids and names.** Ids (objective ids, action and variant ids, teams, health component ids) are",
        "ASCII: a letter or `_`, then letters, digits, `_` or `-`, at most 64 characters",
        f"(`{ID_PATTERN}`): `winback_offer`, not `Rückgewinnung`. They are how touches, rules, caps",
        "and budgets name things. `name` may be any text, in any language and with any characters",
        '(`name = "Rückgewinnungs-Angebot 🎁"`): it is what reports and evidence show. The file is UTF-8',
        "(a byte order mark at its start, as some Windows editors write, is skipped), read in Unicode NFC,",
        "as a book's names are ([data-contract.md](data-contract.md)): an `outcome`, a stage of",
        "`default_for_stages`, an owner of `[capacity.owner_hours]` or a signal of `[signal_roles]` written with",
        "combining accents (`u` + U+0308, as some editors write `ü`) is the book's name written with the",
        "precomposed letter.",
        "",
        "**Money.** Every amount of the book and the playbook (ARR, outcome values, `value_usd`, `cost_usd`,",
        'the budgets) is in the playbook\'s `currency` (default `USD`; e.g. `currency = "EUR"`); nextmove',
        "converts nothing. Receipts, reports and the CLI write amounts in it: with its symbol, before the",
        f"amount, for {symbols} (`€1,235`, `-€40`); with its code for any other",
        "(`CHF 1,235`, `-CHF 40`). A currency without minor units is never written with cents",
        f"({zero_decimal}: 0.86 yen is `¥1`). Keys and columns keep",
        "their `_usd` suffix (`value_usd`, `cost_usd`, `expected_value_usd`, `budget_usd_per_team`) whatever",
        "the currency: they name stored data and the API's fields, and are kept for compatibility.",
        "",
    ]
    for title, model in _SECTIONS:
        doc = (model.__doc__ or "").strip().splitlines()[0]
        lines += [f"## {title}", "", doc, "", "| key | default | meaning |", "| --- | --- | --- |"]
        for name, info in model.model_fields.items():
            desc = " ".join((info.description or "").split()).replace("``", "`")
            if (allowed := allowed_range(model, name)) is not None:
                desc += f" Allowed: {allowed}."
            lines.append(f"| `{name}` | {_default(info)} | {desc} |")
        lines.append("")
    lines += [
        "## Retiring or renaming an action",
        "",
        "An action's `id` is how touches, stored runs, holds and the effect model name it, so a play",
        'you stop using stays in the catalog, retired with `eligibility = "false"` (its plays still',
        "count for its cooldown, the contact caps and plays in flight, and the model learns from them).",
        "There is no rename: to change what people see, change `name` and keep the `id`. A new `id`",
        "for the same play (the old one retired) starts with no history of its own (valued at the",
        "pooled effect of all actions, `pooled: true` in its receipts), and the old action's cooldown",
        "does not hold it back: an account given the old one 15 days ago may get the new one at once,",
        "though both have a 45-day cooldown (contact caps and plays in flight still count the old plays);",
        "snoozes and dismissals of the old id do not hold the new one. Rewriting the old id to the new",
        "one in `touches.action_id` carries the book's history over. What each path keeps:",
        "[decide.md](decide.md#renaming-an-action).",
        "",
        "## Eligibility expressions",
        "",
        "An action's `eligibility` is a condition over feature names (see docs/features.md), e.g.",
        "`days_to_renewal <= 120 and segment in ['SMB', 'Mid-Market']`; a name of another script is",
        "written as its stem (`ログイン回数_mean_28d > 3`). It may use numbers, 'text',",
        "`true`/`false`, the comparisons `== != < <= > >=` (chains like `10 < x <= 20` work),",
        "`in [...]` / `not in [...]`, `and`, `or`, `not`, parentheses, `+ - * /`, and the functions",
        "`missing(x)`, `present(x)`, `abs(x)`, `min(a, b)`, `max(a, b)`. Text compares only with `==`",
        "and `!=`; numbers in a list (`-1` included) match whole-number and fractional features alike",
        "(`tickets_count_90d in [0, 1]`).",
        "Expressions are parsed, never run as Python; an unknown feature, a syntax error or a type",
        "mismatch is reported with the action id and the position in the expression (in characters,",
        "with a caret under it): by",
        "`nextmove validate`, and by `nextmove run` as soon as the features are computed, before the",
        f"models are fitted. An expression is at most {MAX_EXPRESSION_CHARS:,} characters long and "
        f"{MAX_EXPRESSION_DEPTH} levels",
        "deep (each operator, comparison or call within another is a level; `a + b + c` is a level a",
        "term, the terms of `and` and `or` one level whatever their number); `min()` and `max()` nested",
        "about ten deep are refused as too complex.",
        "",
        "**Missing values.** A feature an account has no data for is *missing*, and so is a ratio whose",
        "denominator is 0 (`tickets_count_90d / admin_count` with no admins) and any result that is not",
        "a number (NaN). Missing is neither true nor false (three-valued logic):",
        "",
        "- `+ - * /`, `abs`, `min`, `max`, a comparison, and `in` / `not in` with a missing value give missing;",
        "- `not` missing is missing, so `not (csat_last > 3)` does **not** hold where `csat_last` is missing;",
        "- `missing and false` is false, `missing or true` is true; otherwise `and` / `or` give missing;",
        "- an expression whose result is missing is not eligible, so `a > 3 or not (a > 3)` excludes",
        "  accounts with no `a`.",
        "",
        "`missing(x)` and `present(x)` are always true or false: say what a missing value should do.",
        '"Missing or below 3" is `missing(csat_last) or csat_last < 3`; "known and below 3" is just',
        "`csat_last < 3`.",
        "",
        "A boolean account column is a number feature, 1 for true and 0 for false (docs/features.md):",
        "write `has_sso == 1` or `has_sso > 0`, not `has_sso == true` or a bare `has_sso`.",
        "",
    ]
    return "\n".join(lines)
