"""``nextmove report``: render a stored run as one self-contained HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nextmove.cli._common import STORE_DEFAULT, console, handle_errors, open_store, output_file, safe, status
from nextmove.errors import ConfigError


def register(app: typer.Typer) -> None:
    """Add ``report`` to ``app``."""
    app.command("report")(report_cmd)


@handle_errors
def report_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="HTML file to write.")] = Path("report.html"),
    run: Annotated[
        str | None, typer.Option("--run", help="Run id (a succeeded run); default: the newest run that succeeded.")
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            help=f"Store URL; {STORE_DEFAULT}.",
        ),
    ] = None,
) -> None:
    """Render a stored run as one HTML file that opens offline (charts inline, no network).

    The page has the executive summary, the recommended action distribution, how many
    recommendations differ from the lifecycle default by stage, health bands, the top at-risk
    ARR with its recommended move, projected impact with intervals, off-policy estimates,
    segments, and a searchable, sortable table of every account with its evidence.
    `nextmove run` writes the same page beside its recommendations.
    """
    from nextmove.report import write_report
    from nextmove.report.stored import report_data_from_store

    if out.suffix.lower() not in (".html", ".htm"):
        raise ConfigError(f"--out {out} must end in .html")
    out = output_file(out)
    with open_store(store, existing=True) as opened, status("Rendering the report…"):
        data = report_data_from_store(opened, run)
        path = write_report(data, out)
    console.print(f"Report of run [bold]{safe(data.run_id)}[/] written to {safe(path)}")
