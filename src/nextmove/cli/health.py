"""``nextmove health``: every active account's health score, trend, movers and outcome probabilities, as CSV."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import polars as pl
import typer
from rich.console import Console
from rich.table import Table

from nextmove._csv import write_csv
from nextmove._files import writing
from nextmove.cli._common import (
    STORE_DEFAULT,
    OutcomesUntilOpt,
    TrainingDaysOpt,
    console,
    handle_errors,
    open_store,
    output_file,
    parse_as_of,
    parse_outcomes_until,
    safe,
    status,
)
from nextmove.cli.commands import AsOfOpt, BookOpt, PlaybookOpt, load_inputs, outcome_notes
from nextmove.errors import ConfigError
from nextmove.playbook.money import DEFAULT_CURRENCY, money_text

if TYPE_CHECKING:
    from nextmove.engine.health import HealthResult
    from nextmove.models.health_bands import BandOutcome
    from nextmove.store import Store


def register(app: typer.Typer) -> None:
    """Add ``health`` to ``app``."""
    app.command("health")(health_cmd)


@handle_errors
def health_cmd(
    book: BookOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="CSV file to write, one row per active account.")],
    playbook: PlaybookOpt = None,
    as_of: AsOfOpt = None,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            help=f"Store URL to save the trained outcome models in; {STORE_DEFAULT}.",
        ),
    ] = None,
    save_model: Annotated[
        bool,
        typer.Option("--save-model/--no-save-model", help="Save the trained outcome models as a new active version."),
    ] = True,
    reuse_model: Annotated[
        bool,
        typer.Option(
            "--reuse-model", help="Score with the store's active outcome models instead of training new ones."
        ),
    ] = False,
    top: Annotated[int, typer.Option(help="Accounts listed in the at-risk table.")] = 10,
    jobs: Annotated[int, typer.Option(help="Threads LightGBM trains with.", min=1)] = 1,
    training_days: TrainingDaysOpt = None,
    outcomes_until: OutcomesUntilOpt = None,
) -> None:
    """Score every active account's health and outcome probabilities at --as-of.

    Writes one CSV row per active account: health score (0–100), band, trend with the change in
    points, the component scores, the three measures that moved the score most, and for each
    objective's outcome the calibrated probability within the horizon with its top drivers.
    Then prints accounts and ARR per band (accounts alone for a book without ARR) with each band's
    score range and churn rate on the history's later window (bands are learned from the churn
    history unless the playbook sets [health] band_cutoffs), the accounts
    with the most ARR at risk, what the optimizer learned about each health measure and whether its
    learned weights rank churn better than the playbook's on the later window (by how much, with the
    playbook lines that use them when they do), and the outcome models' accuracy on the later window.
    Default --as-of: how far the book's data reaches, rounded up to a UTC midnight.
    """
    from nextmove.engine.health import save_health_models, score_health
    from nextmove.models.outcome import OutcomeModel

    if out.suffix != ".csv":
        raise ConfigError(f"--out {out} must end in .csv")
    out = output_file(out)
    complete = parse_outcomes_until(outcomes_until, parse_as_of(as_of))
    pb, loaded, t = load_inputs(book, playbook, as_of, outcomes_until=complete, has_outcomes_until=True)
    # Reusing only reads the store: one that does not exist is an error, not a new empty file left behind.
    opened: Store | None = open_store(store, existing=reuse_model) if (save_model or reuse_model) else None
    stored_ece: dict[str, float] = {}
    try:
        with status("Scoring health…") as step:
            result = score_health(
                loaded,
                pb,
                t,
                store=opened if reuse_model else None,  # new models are saved once the CSV is written
                reuse_model=reuse_model,
                template=OutcomeModel(n_jobs=jobs),
                progress=step,
                outcomes_until=complete,
                training_days=training_days,
            )
        if reuse_model and opened is not None and result.model_id is not None:
            # A reused model is not validated again: its accuracy is the one saved with it.
            stored_ece = _stored_ece(opened.load_model(result.model_id).metrics)
        frame = _csv_frame(result)
        unsaved = "; no outcome model was saved" if opened is not None and not reuse_model else ""
        kept = f"{out} is left as it was" if out.exists() else "no file was written"
        with writing(f"--out {out}", f"{kept}{unsaved}"):
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_name(f".{out.name}.tmp")
            try:
                write_csv(frame, tmp)
                tmp.replace(out)
            finally:
                tmp.unlink(missing_ok=True)
        if opened is not None and not reuse_model:
            with status("Saving the outcome models to the store…"):
                result = save_health_models(opened, result)
    finally:
        if opened is not None:
            opened.close()
    render_health(
        result, console, top=top, stored_ece=stored_ece, printed=outcome_notes(loaded, complete), currency=pb.currency
    )
    console.print(
        f"Wrote [bold]{safe(str(out))}[/]: {frame.height:,} active accounts as of {result.as_of:%Y-%m-%d %H:%M} UTC"
        + (f" ({result.left_out:,} gone or not started left out)." if result.left_out else ".")
    )
    if result.model_id:
        verb = "Scored with" if reuse_model else "Saved"
        console.print(f"{verb} outcome model version [bold]{safe(result.model_id)}[/].")


def _csv_frame(result: HealthResult) -> pl.DataFrame:
    """The per-account table with probabilities rounded for reading (6 decimals) and amounts to cents."""
    frame = result.to_frame()
    return frame.with_columns(
        [pl.col(c).round(6) for c in frame.columns if c.startswith("p_")]
        + [pl.col(c).round(2) for c in frame.columns if c.startswith("expected_") or c == "arr"]
    )


def _stored_ece(metrics: Mapping[str, object]) -> dict[str, float]:
    """Outcome kind → ECE on the later window, as saved with a model version (``later_window`` of its metrics)."""
    later = metrics.get("later_window")
    if not isinstance(later, Mapping):
        return {}
    out = {}
    for kind, figures in later.items():
        ece = figures.get("ece") if isinstance(figures, Mapping) else None
        if isinstance(ece, int | float) and not isinstance(ece, bool):
            out[str(kind)] = float(ece)
    return out


def _whole(x: float, currency: str) -> str:
    """An amount to the unit, in ``currency``: "$290,112", "€1", "CHF 40"."""
    return money_text(round(x), currency)


def _pct(x: float | None) -> str:
    return "" if x is None else f"{x:.1%}"


def _rate(b: BandOutcome | None) -> str:
    """``2.37% (3.0×) of 1,234``: the band's rate, over the window's, and its decisions."""
    if b is None or b.rate is None:
        return ""
    return f"{b.rate:.2%}" + ("" if b.relative is None else f" ({b.relative:.1f}×)") + f" of {b.rows:,}"


def _ece(x: float | None) -> str:
    return "" if x is None else f"{x:.4f}"


def _auc(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def render_health(
    result: HealthResult,
    out: Console,
    *,
    top: int = 10,
    stored_ece: Mapping[str, float] | None = None,
    printed: Collection[str] = (),
    currency: str = DEFAULT_CURRENCY,
) -> None:
    """Print the summary tables of a health result, amounts (ARR) in ``currency`` (the playbook's).

    ``stored_ece`` (outcome kind → ECE) fills the ECE of outcome models reused from the store, which
    ``result.accuracy`` leaves out (they are not validated again); without it their ECE is blank. The
    notes follow, but for those in ``printed`` (loading the book's, printed before).
    """
    from nextmove.models.health import span_text

    bands = Table(title=f"Health as of {result.as_of:%Y-%m-%d}", title_justify="left")
    # A book without ARR (consumers) gets the share of accounts per band, not columns of $0.
    has_arr = result.has_arr
    learned = result.bands_report
    kind = (learned.outcome or learned.label.removeprefix("y_")) if learned is not None else ""
    names = ["band", "scores", "accounts"] + (["ARR", "share of ARR"] if has_arr else ["share of accounts"])
    if learned is not None:
        names.append(f"{safe(kind)} rate, later window")
    for name in names:
        bands.add_column(name, justify="left" if name == "band" else "right", no_wrap=True)
    summaries = result.bands()
    scored = sum(b.accounts for b in summaries) or 1
    for b in summaries:
        span = "" if b.band == "no score" else span_text(b.span)
        cells = [safe(b.band), span, f"{b.accounts:,}"]
        cells += [_whole(b.arr_usd, currency), _pct(b.arr_share)] if has_arr else [_pct(b.accounts / scored)]
        if learned is not None:
            cells.append(_rate(b.later))
        bands.add_row(*cells)
    out.print(bands)
    if learned is not None:
        critical_ratio, at_risk_ratio = learned.risk_ratios
        out.print(
            f"Bands learned from the {safe(kind)} history: Critical where the score's {safe(kind)} risk is at "
            f"least {critical_ratio:g}× the book's average, At risk from {at_risk_ratio:g}×, Healthy below. The rates "
            "are on the later "
            f"window (decisions from {learned.split_ts[:10]}: {learned.later_events:,} {safe(kind)} events in "
            f"{learned.later_rows:,} decisions, {learned.later_rate:.2%}), which set no cut-off: each band's rate, "
            "× the window's, of its decisions there."
        )
    elif result.health_bands.source == "playbook":
        out.print("Bands: the playbook's band_cutoffs.")

    at_risk = result.top_at_risk(top)
    if at_risk.height:
        risk_col = result.probability_column(result.risk_kind) if result.risk_kind else None
        title = (
            f"Top {at_risk.height} accounts by ARR at risk (ARR × P({safe(result.risk_kind)}))"
            if risk_col
            else f"Top {at_risk.height} at-risk accounts by ARR"
        )
        table = Table(title=title, title_justify="left")
        for name in ("account", "ARR", "at risk", "score", "band", "trend", "top mover"):
            # Amounts, ids and bands whole on one line; the trend and the mover wrap ("$290,1 / 39" was split).
            whole = name in ("account", "ARR", "at risk", "score", "band")
            table.add_column(
                name,
                justify="right" if name in ("ARR", "at risk", "score") else "left",
                no_wrap=whole,
                overflow="fold",
            )
        for row in at_risk.iter_rows(named=True):
            change = row.get("health_change")
            trend = row.get("health_trend") or ""
            if change is not None:
                trend += f" ({change:+.1f})"
            mover = (row.get("top_movers") or "").split("; ")[0]
            table.add_row(
                safe(str(row["account_id"])),
                _whole(row.get("arr") or 0.0, currency),
                _whole(row["arr_at_risk"], currency),
                "" if row.get("health_score") is None else f"{row['health_score']:.0f}",
                safe(row.get("health_band") or ""),
                safe(trend),
                safe(mover),
            )
        out.print(table)

    report = result.optimizer
    if report is not None:
        outcome = report.outcome or report.label.removeprefix("y_")
        measures = Table(
            title=f"What predicts {safe(outcome)} (later window from {report.split_ts[:10]}, "
            f"{report.test_events:,} events in {report.test_rows:,} rows)",
            title_justify="left",
        )
        # Without learned weights (too few events to learn from: a note says why) there is no share to show.
        columns = ("measure", "component", "AUC alone") + (("share of learned score",) if report.learned else ())
        for name in (*columns, "power"):
            numeric = name in ("AUC alone", "share of learned score")
            measures.add_column(name, justify="right" if numeric else "left", no_wrap=numeric or name == "power")
        for m in report.measures:
            shares = (_pct(m.weight_share),) if report.learned else ()
            measures.add_row(safe(m.text), safe(m.component), _auc(m.auc), *shares, safe(m.power))
        out.print(measures)
        thin = (
            f" ({report.test_events:,} events, too few to rely on)"
            if any(m.power == "too few events" for m in report.measures)
            else ""
        )
        learned_auc = (
            f", learned [bold]{_auc(report.auc_learned)}[/]"
            if report.learned
            else "; no weights were learned (see the note)"
        )
        hand = _auc(report.auc_hand_set)
        out.print(f"Health score AUC on the later window{thin}: hand-set [bold]{hand}[/]{learned_auc}.")
        verdict = report.verdict()
        if verdict is not None:
            out.print(safe(verdict))
        if report.better and report.playbook_lines is not None:
            # Unwrapped, so the lines copy into the playbook as they are.
            out.print(safe(report.playbook_lines, lines=True), soft_wrap=True, highlight=False)

    if result.outcome_models is not None and result.outcome_models.kinds:
        models = Table(title="Outcome models (accuracy on the later window)", title_justify="left")
        for name in (
            "outcome",
            "train rows",
            "train events",
            "later rows",
            "later events",
            "AUC",
            "Brier",
            "ECE",
            "calibration",
        ):
            models.add_column(name, justify="left" if name in ("outcome", "calibration") else "right", no_wrap=True)
        info = result.outcome_models.info
        for kind in info.kinds:
            s = info.summaries[kind]
            acc = result.accuracy.get(kind)
            models.add_row(
                safe(kind),
                f"{s.train_rows:,}",
                f"{s.train_events:,}",
                f"{s.validation_rows:,}",
                f"{s.validation_events:,}",
                _auc(acc.auc if acc else s.validation_auc),
                f"{(acc.brier if acc else s.validation_brier):.4f}",
                _ece(acc.ece if acc is not None else (stored_ece or {}).get(kind)),
                safe(s.calibration),
            )
        out.print(models)
    for note in result.notes:
        if note not in printed:
            out.print(f"[yellow]note:[/] {safe(note, lines=True)}")
