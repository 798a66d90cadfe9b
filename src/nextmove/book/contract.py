"""The book-of-business data contract as data: tables, columns, types, keys and references.

Validation, loaders and the docs all read this one source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import polars as pl


class ColumnType(StrEnum):
    """The logical type of a contract column."""

    STRING = "string"
    FLOAT = "float"
    TIMESTAMP = "timestamp"

    @property
    def polars(self) -> pl.DataType:
        """The Polars dtype a loaded column has."""
        if self is ColumnType.STRING:
            return pl.String()
        if self is ColumnType.FLOAT:
            return pl.Float64()
        return pl.Datetime("us", "UTC")

    @property
    def expected(self) -> str:
        """How the type is described to a user in an error message."""
        return {
            ColumnType.STRING: "text",
            ColumnType.FLOAT: "a finite number",
            ColumnType.TIMESTAMP: "an ISO 8601 timestamp such as 2024-05-01 or 2024-05-01T09:30:00Z",
        }[self]


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a contract table."""

    name: str
    type: ColumnType
    required: bool
    description: str
    nonnegative: bool = False
    unit_interval: bool = False
    allowed: tuple[str, ...] | None = None
    references: str | None = None
    """``table.column`` every non-empty value must exist in."""
    identifier: bool = False
    """An id (``account_id``, ``touch_id``, ``outcome_id``): kept byte for byte as written, as the systems that
    join back on it compare it. The other text columns are names, read in Unicode NFC (:mod:`nextmove.book.nfc`)."""


@dataclass(frozen=True)
class TableSpec:
    """One table of the contract."""

    name: str
    description: str
    required: bool
    columns: tuple[ColumnSpec, ...]
    key: str | None = None
    time_column: str | None = None
    """The column of each row's time: not after a given as-of time, and left out while after now."""
    column_order_checks: tuple[tuple[str, str], ...] = field(default=())
    """Pairs ``(earlier, later)``: where both are set, ``later`` must not precede ``earlier``."""

    def column(self, name: str) -> ColumnSpec:
        """The spec of column ``name``."""
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    @property
    def column_names(self) -> tuple[str, ...]:
        """Names of the contract columns, in contract order."""
        return tuple(c.name for c in self.columns)

    @property
    def required_columns(self) -> tuple[str, ...]:
        """Names of the columns every file of this table must have."""
        return tuple(c.name for c in self.columns if c.required)


S, F, T = ColumnType.STRING, ColumnType.FLOAT, ColumnType.TIMESTAMP

ARMS = ("model", "default", "control", "explore", "manual")
"""Values the ``touches.arm`` column may take."""

NO_ACTION = "none"
"""The ``action_id`` of a logged decision to do nothing."""

ACCOUNTS = TableSpec(
    name="accounts",
    description="One row per customer account. Extra columns are kept and used as features.",
    required=True,
    key="account_id",
    columns=(
        ColumnSpec("account_id", S, True, "Unique id of the account.", identifier=True),
        ColumnSpec("name", S, False, "Display name."),
        ColumnSpec("segment", S, False, "Commercial segment or tier (e.g. SMB, Enterprise)."),
        ColumnSpec("industry", S, False, "Industry."),
        ColumnSpec(
            "lifecycle_stage",
            S,
            False,
            "Stage in the customer journey (onboarding, adoption, …), as it is where the book's data end "
            "(the table has no history). The playbook's `default_for_stages` read it, and its `gone_stages` "
            "(e.g. `churned`) make the accounts at them gone.",
        ),
        ColumnSpec("arr", F, False, "Annual recurring revenue, in the playbook's currency.", nonnegative=True),
        ColumnSpec(
            "contract_start",
            T,
            False,
            "Start of the current contract. After the account's churn (a terminal outcome), it marks a "
            "win-back: the account is active again from then.",
        ),
        ColumnSpec(
            "customer_since",
            T,
            False,
            "When the account first became a customer (tenure counts from it; default: contract_start). "
            "A book that sets it anew when a customer comes back marks a win-back as contract_start does.",
        ),
        ColumnSpec("renewal_date", T, False, "Date the current contract renews."),
        ColumnSpec("owner", S, False, "The CSM or account manager who owns the account."),
        ColumnSpec("region", S, False, "Region."),
    ),
    column_order_checks=(("contract_start", "renewal_date"), ("customer_since", "contract_start")),
)

SIGNALS = TableSpec(
    name="signals",
    description=(
        "Observations in long format: any usage, support, engagement, survey or billing signal, "
        "one row per account, time and signal name."
    ),
    required=False,
    time_column="ts",
    columns=(
        ColumnSpec("account_id", S, True, "The account observed.", references="accounts.account_id", identifier=True),
        ColumnSpec("ts", T, True, "When the value was observed (UTC if no offset is given)."),
        ColumnSpec("name", S, True, "Signal name, e.g. active_users or ticket_severity."),
        ColumnSpec("value", F, True, "Numeric value of the signal."),
        ColumnSpec("source", S, False, "System the signal came from."),
    ),
)

TOUCHES = TableSpec(
    name="touches",
    description=(
        "Actions done to accounts. A logged decision to do nothing is a touch with action_id 'none'. "
        "An optional `variant` column (an extra column: kept, not checked) says which of its action's "
        "`variants` a touch was: a contact cap counts the touch on that variant's channel; empty, or a "
        "variant the playbook does not know, counts on the action's channel."
    ),
    required=False,
    key="touch_id",
    time_column="ts",
    columns=(
        ColumnSpec("account_id", S, True, "The account touched.", references="accounts.account_id", identifier=True),
        ColumnSpec("action_id", S, True, "Id of the action in the playbook's catalog, or 'none'."),
        ColumnSpec("ts", T, True, "When the action was done."),
        ColumnSpec("touch_id", S, False, "Unique id of the touch.", identifier=True),
        ColumnSpec(
            "arm",
            S,
            False,
            "Who chose it: model, default, control, explore or manual.",
            allowed=ARMS,
        ),
        ColumnSpec(
            "propensity",
            F,
            False,
            "Probability with which the logging policy chose this action, in [0, 1]. Where absent, nextmove "
            "estimates it from the logged actions (slower, and only as good as the features explain the policy).",
            unit_interval=True,
        ),
        ColumnSpec("status", S, False, "Status of the touch (e.g. done, dismissed)."),
    ),
)

OUTCOMES = TableSpec(
    name="outcomes",
    description="Things that happened to accounts: churn, renewal, expansion, … or user-defined kinds.",
    required=False,
    key="outcome_id",
    time_column="ts",
    columns=(
        ColumnSpec("account_id", S, True, "The account.", references="accounts.account_id", identifier=True),
        ColumnSpec("ts", T, True, "When the outcome happened."),
        ColumnSpec(
            "kind",
            S,
            True,
            "churn, renewal, expansion, contraction, advocacy, recovery, or your own.",
        ),
        ColumnSpec("outcome_id", S, False, "Unique id of the outcome.", identifier=True),
        ColumnSpec(
            "value",
            F,
            False,
            "Size of the outcome, e.g. the ARR delta (in the playbook's currency; negative for a loss, such as a "
            "refund or a downgrade); 1 for an event.",
        ),
        ColumnSpec(
            "touch_id",
            S,
            False,
            "The touch this outcome is attributed to.",
            references="touches.touch_id",
            identifier=True,
        ),
    ),
)

CONTRACT: dict[str, TableSpec] = {t.name: t for t in (ACCOUNTS, SIGNALS, TOUCHES, OUTCOMES)}
"""Every table of the book of business, by name."""

FILE_SUFFIXES = (".csv", ".parquet")
"""File endings a book folder's tables may have."""


def contract_markdown() -> str:
    """The data contract as a Markdown reference page (``docs/data-contract.md`` is generated from it)."""
    lines = [
        "# The data contract (book of business)",
        "",
        "<!-- Generated from src/nextmove/book/contract.py by `python docs/generate.py`; do not edit. -->",
        "",
        "A book of business is a folder of files named after the tables (`accounts.csv` or",
        "`accounts.parquet`, …; names and endings in any case, so `Accounts.CSV` is the accounts table,",
        "and two files for one table are an error; a file named after a table that is not read, as",
        "`signals.csv.gz`, `signals.tsv` or `outcomes (1).csv`, is noted with what to do, or named in the",
        "error when `accounts` is missing), a SQL database with tables or views of those names (pass its",
        "URL: `sqlite:///book.db`, `postgresql+psycopg://user@host/db`; see [A book in a",
        "database](#a-book-in-a-database)), or frames by table name from Python",
        "(Polars frames, or pandas ones, converted by `pl.from_pandas`; a table of no rows may have",
        'columns of no type, as `pl.DataFrame({"ts": []})` makes). Only `accounts` is required; a',
        "missing optional table is empty. Extra columns are kept; those of `accounts` are features when they",
        "hold numbers, true/false, text or times, and `nextmove validate` notes one that holds anything else",
        "(lists, structs, durations, binary data, as a Parquet file or a frame may), kept but no feature.",
        "The models leave out an accounts column whose values today tell the accounts gone by a churn from",
        "the others almost perfectly, as one written when an account leaves does, and say so in a note",
        "([features.md](features.md#columns-that-leak-the-outcome)).",
        "Column names are",
        "matched exactly, so a contract column named another way (`ARR`, `Renewal Date`, `Lifecycle-Stage`:",
        "the contract's name but for its case, or spaces or hyphens for its underscores) would be read as",
        "an extra column, and the contract's as absent: it is an error (`misnamed_column`; for a required",
        "column, the `missing_column` error names it) that says to rename it. Timestamps are",
        "ISO 8601 (`2024-05-01`, `2024-05-01T09:30:00Z`,",
        "`2024-05-01T11:30:00+02:00`); naive ones are UTC. An offset may also be written `+0200` or",
        "`+02`, and a trailing `UTC` means UTC (`2024-05-01 09:30:00 UTC`, as BigQuery and Snowflake",
        "write it); `--as-of` and `--until` take the same forms (a date alone is its midnight for `--as-of`, and",
        "the whole day for the cut-offs `--until` and `--outcomes-until`). The year has four digits: `24-01-06` is",
        "an error, never read as the year 24 nor guessed to be 2024 (it may be the 24th of January 2006).",
        "A time column of numbers in Parquet or SQL (epoch seconds or milliseconds) is an error: store a",
        "timestamp type, or ISO 8601 text. A Parquet timestamp with a time zone is read as the instant it holds,",
        "whatever the zone (`Europe/Paris`, or `+05:30` and `Z` as pandas and other tools write them).",
        "CSV files are UTF-8 and comma-separated,",
        'their lines ending with LF or CRLF (not with CR alone, as Excel for Mac\'s "CSV (Macintosh)" writes:',
        'save as "CSV UTF-8"), and quoted as RFC 4180 has it: a value holding a comma, a quote or a line',
        'break is quoted, a quote inside it doubled (`"Beta ""Best"" Ltd"`); quotes inside an unquoted value',
        'are read as written only in pairs on a line (`5" x 7" frame`). Every file is checked whole, in',
        "chunks: a quoted value that runs on over 1,000 lines or 1 MiB, or whose every line reads as a",
        "whole row of the header's width (three columns or more), is taken for a quote left open, which",
        "would read the rows after it as one value, and refused with the line it starts on.",
        "A row whose every cell is empty (the `,,,` lines a spreadsheet writes below its data) is skipped,",
        "and a column without a name in the header that holds nothing (a trailing comma) is left out;",
        "`nextmove validate` notes both. A column without a name that holds values is an error. The",
        "columns pandas writes for a frame's index (`__index_level_0__`, …) are not data: they are left",
        "out, with a note. Accounts are read in the order of their `account_id`, so the order of a",
        "file's rows changes no recommendation.",
        "",
        "An empty cell is a missing value. So are the words exports write for one, `NA`, `N/A`, `null`,",
        "`None` and `NaN` (in any case, blanks around them ignored), in the optional number and timestamp",
        "columns and in extra columns: an extra column of numbers with a few `NA` is still numbers. In a",
        "required column a missing value is an error, and `inf` (or `-inf`, `Infinity`) is an error in",
        "any number column, extra columns of numbers included; so is a NaN stored as a number (Parquet,",
        "SQL) rather than written as text. An extra column of numbers written with leading zeros",
        "(`01000`, zip codes) is kept as text, and `nextmove validate` notes an extra column made text",
        "by a few values that are not numbers. An extra column whose values are all `true` or `false`",
        "(in any case, as Polars and pandas write booleans; missing values aside) is boolean, as a",
        "boolean Parquet or SQL column is: a feature of 1 and 0 (see docs/features.md). `1`/`0` are",
        "numbers already; `yes`/`no` and `t`/`f` stay text. Numbers are written with a decimal point:",
        "one written with a decimal comma (`1,5`, `1.234,56`, as a German export writes them) is never",
        "converted; it is an error in a contract number column, and makes an extra column text, and",
        "`nextmove validate` says it looks like a decimal comma in either case. Numbers are written without",
        "thousands separators: `1.234.567` is no number (an error that says so), and `85.360`, as a German",
        "export writes 85,360, reads as 85.36, a thousand times too small. That cannot be told from a number",
        "with three decimals, so it is not refused, but when at least five values of a number column (`arr`,",
        "a signal's or an outcome's `value`, an extra column of accounts), and 80 % of those present, are",
        "written so and every other is a whole number below 1,000, `nextmove validate` (and a run) notes it,",
        "naming the file, the column and the first such row.",
        "",
        "Ids are text. Ids stored as numbers (Parquet, SQL) are read as text too, and whole numbers stored",
        "as floats as the whole numbers: an `account_id` of `1.0` is `1` (and `1e16` is `10000000000000000`),",
        "matching `1` in a CSV table. An id stored as a float NaN (pandas' missing value) is a missing id.",
        "",
        "The contract's text columns (the ids, `name`, `kind`, `action_id`, `owner`, `lifecycle_stage`, …)",
        "lose their white space at either end when a book is read, in every table and whatever the file",
        "format (a Parquet column of categories, as a pandas export writes one, included): `' ACC-17'` in",
        "the signals is the account `'ACC-17 '` of the accounts file, `'ACC-17'` in both, and a value of",
        "white space alone is a missing value. A space inside a value stays (`E 5`). Extra text columns",
        "are kept as written. The API reads an `account_id` sent to it the same way",
        "([api.md](api.md#account-ids-in-paths)).",
        "",
        "Names are compared after Unicode NFC normalisation. The same letter can be written as one code point",
        "(`ü`, NFC, as most systems write it) or as a letter and a combining accent (`u` + U+0308, NFD, as macOS",
        "and some exports write it): both print alike. So every contract text column but the ids (`name`,",
        "`kind`, `action_id`, `lifecycle_stage`, `owner`, `segment`, …) is read in NFC, and an outcome kind",
        "`Kündigung` written both ways is one kind, a signal one signal; so are the playbook's names (action",
        "ids, outcome kinds, stages, teams, signal names: the whole file is read in NFC) and those sent to the",
        "API (fresh signals' names, feedback's outcome kinds and action ids). Extra text columns are kept as",
        "written. Ids (`account_id`, `touch_id`, `outcome_id`) are never rewritten, since the systems that join",
        "back on them compare them byte for byte: a reference that is unknown only because it is written in",
        "another form than a known id is an error that says so, showing both with escapes (`'mu\\u0308ller-1'",
        "differs from 'm\\xfcller-1' in accounts.csv only by Unicode normalisation`), as is the API's 404 for",
        "such an id; two `account_id`s of the accounts table that differ only so are two accounts, which",
        "`nextmove validate` notes, as they print alike in every report.",
        "",
        f"A logged decision to do nothing is a touch with `action_id` `{NO_ACTION}`.",
        "",
        "Amounts (`arr`, an outcome's `value`) are in one currency, the playbook's `currency` (default USD;",
        "[playbook.md](playbook.md)); nothing is converted. The outputs write them in it (`€1,235`), and",
        "the names of their columns and keys keep the `_usd` suffix whatever the currency",
        "(`expected_value_usd`, `value_usd`, `arr_at_risk_usd`), for compatibility with stored runs and",
        "the API.",
        "",
        "An account is gone after an outcome of a kind that ends accounts (a churn: the outcome of the",
        "playbook's objectives with `ends_account`): no command decides on it, scores it or learns from its",
        "later days. A customer that comes back (a win-back) is active again from its new start: write the",
        "day it re-signed as its `contract_start` (or `customer_since`), after the churn. Its churn stays",
        "in its history, the outcome of the decisions before it. `nextmove validate` and `nextmove run`",
        "note, with a few ids, the accounts gone by a churn that show signals or touches 30 days or more",
        "after it and no later start (a win-back not marked), and those whose start after their churn is",
        "30 days old or more with no signal or touch since (a start dated after the churn by mistake).",
        "",
        "A book whose outcomes cover recent months alone lacks the churn of the accounts that left before:",
        "they count as active, and get actions, unless the playbook names their `lifecycle_stage` in",
        '`gone_stages` (`gone_stages = ["churned"]`, [playbook.md](playbook.md)). The stage is the one where',
        "the book's data end, so it makes accounts gone at an as-of no more than a day before that end or",
        "after it (the default); a",
        "backtest at an earlier as-of reads terminal outcomes alone, and no training row reads the stage.",
        "`nextmove validate` and `nextmove run` name a stage that looks gone and is not in `gone_stages`: one",
        "that holds nearly all the accounts gone by a churn, whose other accounts show no signal or touch in",
        "the 90 days before the as-of.",
        "",
        "## A book in a database",
        "",
        "A database's tables and views (on PostgreSQL, materialized views and foreign tables too) are matched",
        'to the contract\'s tables by name in any case, as files are (`"Touches"`, `SIGNALS`); two for one',
        "table are an error, and one named after a table that is not read (`signals_2024`) is noted. On",
        "PostgreSQL they are looked for in the first schema of the `search_path` that the user may use: for a",
        "book in schema `crm`, add `?options=-csearch_path%3Dcrm` to the URL. When `accounts` is missing, the",
        "error lists what the schema searched holds and names a schema that has an `accounts` (and the",
        "`GRANT USAGE` to run, if the user may not use it). `postgres://` (as Heroku and Supabase write it) is",
        "read as `postgresql+psycopg://`; a password holding `@`, `:`, `/`, `?`, `#` or `%` is percent-encoded in",
        "the URL (`@` as `%40`). Every table is read in one read-only transaction (PostgreSQL: `REPEATABLE",
        "READ`; SQLite: one read transaction), so a load committed while the book is read is seen whole or not",
        "at all. PostgreSQL columns keep their types (`numeric(p, s)` as exact decimals); those Polars has no",
        "type for (`uuid`, `inet`, `json`, `jsonb`, arrays, intervals …) are read as the text PostgreSQL writes",
        "for them, as a CSV export of the table holds them (a `jsonb` column of accounts is a text feature, as",
        "in CSV), and a value that cannot be held in its column's type (a timestamp `infinity`, a date BC) is an",
        "error naming its table, row and column. A table the user may not read is an error saying what to",
        "grant (`GRANT SELECT ON crm.signals TO reader`, and `GRANT USAGE ON SCHEMA crm TO reader`).",
        "",
    ]
    for spec in CONTRACT.values():
        lines += [f"## `{spec.name}`{' (required)' if spec.required else ''}", "", spec.description, ""]
        if spec.key:
            lines += [f"Key: `{spec.key}` (unique when given).", ""]
        lines += ["| column | type | required | rules | meaning |", "| --- | --- | --- | --- | --- |"]
        for col in spec.columns:
            rules = []
            if col.nonnegative:
                rules.append("≥ 0")
            if col.unit_interval:
                rules.append("in [0, 1]")
            if col.allowed:
                rules.append("one of " + ", ".join(f"`{a}`" for a in col.allowed))
            if col.references:
                rules.append(f"must exist in `{col.references}`")
            if spec.time_column == col.name:
                rules.append("after now: left out until then")
            if col.type is ColumnType.FLOAT:
                rules.append("finite")
            for earlier, later in spec.column_order_checks:
                if col.name == later:
                    rules.append(f"not before `{earlier}`")
            lines.append(
                f"| `{col.name}` | {col.type.value} | {'yes' if col.required else 'no'} | "
                f"{'; '.join(rules)} | {col.description} |"
            )
        lines.append("")
    lines += [
        "## What validation reports",
        "",
        "`nextmove validate` (and `nextmove.validate_book` from Python) collects every problem, not only",
        "the first, each with the table, file, row (1 = the first row after the header; a row whose quoted",
        "fields hold line breaks is one row, and a CSV file's quoting or encoding error names its line",
        "too), column, the bad value and what was expected. Rules: a missing required table or column, an",
        "optional column named as the contract's but for its case, spaces or hyphens (`ARR`), a",
        "file that is not UTF-8 comma-separated CSV or not Parquet, a CSV row with more or fewer fields than",
        "the header names (fewer: an export cut off, or a value holding a line break without quotes; a row",
        "may leave out the columns without a name a header ends with), a column without a name holding values,",
        "a value that does not parse as its type, an empty required value, infinite numbers in any number",
        "column, extra ones included (and NaN where a number is required, or in a native number column),",
        "negative ARR, a propensity outside [0, 1], an `arm` outside its values, duplicate `account_id` /",
        "`touch_id` / `outcome_id`, a child row whose `account_id` is not in `accounts`, an outcome whose",
        "`touch_id` is not in `touches`, an `action_id` not in the playbook's catalog (an action you",
        'stop using stays in the playbook, retired with `eligibility = "false"`:',
        "[decide.md](decide.md#retiring-an-action)), `renewal_date`",
        "before `contract_start`, and (from Python) a timestamp after the `as_of` given to `validate_book`",
        "or `load_book` (a datetime, or a date for its midnight UTC), the book's own time. A book with any",
        "problem is not loaded at all, and what is loaded is what was validated: a file is read more than",
        "once (validation's passes, then loading, or `nextmove validate`'s notes), and one that changes",
        "meanwhile (an export still writing",
        "it, or another file moved into its place) is refused, named, until it stays as it is: run again",
        "when the export has finished. A database's tables are read once, in one transaction. A file cut",
        "inside its last value",
        "(`21.6` cut to `21`, the line's fields all there) cannot be told from a whole one: read a book only",
        "once its export has finished (write each file beside it and rename it into place when done). Without",
        "that `as_of`, rows dated after now are no problem: a note",
        "counts them per table (naive times are read",
        "as UTC, so local times written without an offset can look ahead), and `load_book` leaves them out,",
        "so a touch booked for next week is no done play; `--as-of` is the time of a run, and rows after it",
        "are noted and left out too (a backtest).",
        "",
        "## Where the tables end",
        "",
        "Without `--as-of`, a book is read as of how far its data reaches, rounded up to a UTC midnight",
        "(`nextmove.book.default_as_of`). Each table reaches as far as it has seen: a table with times of",
        "day to its latest time, a table of dates (95 % of its rows or more at a UTC midnight,",
        "`nextmove.book.of_dates`) to the midnight after its last date, whose day is seen whole. So outcomes",
        "or touches exported as dates are read up to their last day though the signals have times: a churn",
        "dated that day ends the account, a call logged that day counts for its cooldown. A few rows with a",
        "time of day among dates leave a table one of dates, each counting for its day.",
        "",
        "A valid book can still be read wrong; `nextmove validate` notes, and a run (and `nextmove health`)",
        "notes again where it matters to it (all but the repeated rows read, as a run does, only the rows up",
        "to now, or up to `--as-of` when later: a touch booked for next week neither makes the touch log",
        "reach next week nor counts as a latest row far after the rest):",
        "",
        "- rows that repeat an earlier row in every column (`touch_id` or `outcome_id` aside), when they",
        "  are 1 % of their table or more: a double export, which counts each row again in every sum and",
        "  count. They are kept, since two alike rows can be two real events (two tickets opened in one",
        "  second): remove them if the table was exported twice;",
        "- a table's latest rows (up to 5) lying 28 days or more after the rest of it: a year typed wrong",
        "  (2026 for 2025), which would move the book's time with it. A decision time long after the data",
        "  (28 days or more) is measured from where most of it ends (99 % of the accounts' latest rows),",
        "  not from such a row, and noted;",
        "- outcomes that are dates with a few times of day among them, and touches or outcomes written as",
        "  a date alone (`2025-04-01`) in a table of times, each the instant its day begins (on the table's",
        "  last day, a run as of that midnight does not read it);",
        "- a touch log that ends 28 days or more before the signals (plays made since are unknown to the",
        "  cooldowns and in-flight limits), and outcomes that end 14 days or more before the signals and",
        "  touches, up to the decision time: a decision whose horizon runs past the outcomes' end is then",
        "  censored rather than learned as one that had no churn (and only then: [features.md](features.md)),",
        "  and an account that churned since still counts as active. In a sparse table the gap must also be",
        "  five mean spacings of its days (the days with a row) or more, as a month without an outcome is how",
        "  a book with a few a month goes, and outcomes all dated on month-ends are a month apart however",
        "  many each month-end holds.",
        "",
    ]
    return "\n".join(lines)
