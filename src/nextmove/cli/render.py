"""Rich renderings of validation reports: the problem table and the book summary."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from nextmove.book.problems import ValidationReport
from nextmove.cli._common import safe

MAX_ROWS_SHOWN = 200


def render_problems(report: ValidationReport, console: Console) -> None:
    """Print every problem (up to a screenful of rows) as a table, then the totals per rule."""
    table = Table(title=f"Problems in {safe(report.source)}", title_justify="left", show_lines=False)
    table.add_column("file", overflow="fold", max_width=24)
    table.add_column("row", justify="right")
    table.add_column("column", overflow="fold", max_width=18)
    table.add_column("value", overflow="fold", max_width=24)
    table.add_column("expected \\[rule]", overflow="fold", ratio=1)
    for p in report.problems[:MAX_ROWS_SHOWN]:
        table.add_row(
            safe(Path(p.file).name if "/" in p.file and "://" not in p.file else p.file),
            "" if p.row is None else str(p.row),
            safe(p.column or ""),
            "" if p.value is None else safe(repr(p.value)),
            f"{safe(p.expected, lines=True)} [dim]\\[{p.rule.value}][/]",
        )
    console.print(table)
    hidden = len(report.problems) - MAX_ROWS_SHOWN
    if hidden > 0:
        console.print(f"… {hidden} more listed problems not shown.")
    totals = Table(title="Rows breaking each rule", title_justify="left")
    for name in ("table", "column", "rule", "rows"):
        totals.add_column(name, justify="right" if name == "rows" else "left")
    for (rule, tbl, column), n in sorted(
        report.problem_counts.items(), key=lambda kv: (kv[0][1], kv[0][2] or "", kv[0][0].value)
    ):
        totals.add_row(safe(tbl), safe(column or ""), rule.value, f"{n:,}")
    console.print(totals)


def render_summary(report: ValidationReport, console: Console, as_of: datetime | None = None) -> None:
    """Print what a valid book holds: counts, date ranges, signals, actions and outcome kinds.

    ``as_of`` is the time the book was checked as of (``--as-of``); without it, the book was checked
    as a run without one reads it (its rows up to now, the report's ``as_of``).
    """
    if as_of is None:
        checked = f"checked {report.as_of:%Y-%m-%d %H:%M} UTC, as a run without --as-of reads it"
    else:
        checked = f"checked as of {as_of:%Y-%m-%d %H:%M} UTC"
    table = Table(title=f"Book at {safe(report.source)} ({checked})", title_justify="left")
    for name in ("table", "rows", "from", "to", "columns"):
        table.add_column(name, justify="right" if name == "rows" else "left", overflow="fold")
    for name, s in report.tables.items():
        table.add_row(
            safe(name),
            f"{s.rows:,}",
            "" if s.ts_min is None else f"{s.ts_min:%Y-%m-%d}",
            "" if s.ts_max is None else f"{s.ts_max:%Y-%m-%d}",
            safe(", ".join(s.columns)),
        )
    console.print(table)
    for title, counts in (
        ("Signals seen", report.signal_counts),
        ("Actions in touches", report.action_counts),
        ("Outcome kinds", report.outcome_counts),
    ):
        if counts:
            shown = ", ".join(f"{safe(k)} ({v:,})" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
            console.print(f"[bold]{title}[/] ({len(counts)}): {shown}")
