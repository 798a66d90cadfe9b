"""``nextmove run``: the whole loop on a book: features, models, decisions under capacity, evidence, files, store."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import polars as pl
import typer
from rich.console import Console
from rich.table import Table

from nextmove._urls import mask_url
from nextmove._words import plural
from nextmove.book.validate import load_book
from nextmove.cli._common import (
    STORE_DEFAULT,
    OutcomesUntilOpt,
    StageProgress,
    TrainingDaysOpt,
    check_number_column,
    console,
    done_despite_stop,
    err_console,
    handle_errors,
    open_store,
    output_folder,
    parse_as_of,
    parse_outcomes_until,
    read_table_file,
    safe,
    status,
)
from nextmove.cli.commands import (
    AsOfOpt,
    BookOpt,
    PlaybookOpt,
    outcome_notes,
    playbook_label,
    print_book_notes,
    resolve_playbook_path,
)
from nextmove.errors import ConfigError, NotFoundError, RunFilesError
from nextmove.playbook.expr import ExpressionError
from nextmove.playbook.loader import load_playbook
from nextmove.playbook.money import money_text

if TYPE_CHECKING:
    from nextmove.engine.run import RunResult
    from nextmove.store import Store

TRUTH_TABLE = "values"
"""The lab writes each account's true value under every action to ``BOOK/truth/values.(parquet|csv)``."""


def register(app: typer.Typer) -> None:
    """Add ``run`` to ``app``."""
    app.command("run")(run_cmd)


@handle_errors
def run_cmd(
    book: BookOpt,
    playbook: PlaybookOpt = None,
    as_of: AsOfOpt = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Folder for recommendations.csv/.parquet, summary.json and report.html, replaced only once "
            "the run has succeeded; default: BOOK/run.",
        ),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            help=f"Store URL to save the run in; {STORE_DEFAULT}.",
        ),
    ] = None,
    no_store: Annotated[bool, typer.Option("--no-store", help="Do not save the run in a store.")] = False,
    csv_evidence: Annotated[
        bool,
        typer.Option(
            "--csv-evidence/--no-csv-evidence",
            help="Write the receipts' JSON columns (evidence, alternatives) into recommendations.csv; "
            "--no-csv-evidence leaves them out, most of its bytes (about 3.1 of 3.4 KB per account on a B2C "
            "book): recommendations.parquet, the store and the report keep them.",
        ),
    ] = True,
    reuse_model: Annotated[
        bool, typer.Option("--reuse-model", help="Project with the store's active effect model instead of fitting one.")
    ] = False,
    promote: Annotated[
        bool,
        typer.Option(
            "--promote/--no-promote",
            help="Serve the run online once it succeeds (a new policy version; `nextmove models rollback` goes "
            "back) and make its effect model the active one; --no-promote: neither, until "
            "`nextmove models promote RUN_ID`.",
        ),
    ] = True,
    allocation: Annotated[
        str, typer.Option(help="Allocation under capacity: auto, exact (HiGHS) or lagrangian.")
    ] = "auto",
    exact_time_limit: Annotated[
        float,
        typer.Option(
            help="Seconds the exact allocation (HiGHS) may take: it keeps its best solution by then, or the "
            "Lagrangian allocates if it found none (the run's notes say so).",
        ),
    ] = 10.0,
    no_capacity: Annotated[bool, typer.Option("--no-capacity", help="Ignore the playbook's capacities.")] = False,
    risk_aversion: Annotated[
        float,
        typer.Option(
            help="Rank value − this × its standard deviation in the allocation: above 0, fewer and surer actions.",
            min=0.0,
        ),
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of the models and of the exploration draws.")] = 0,
    jobs: Annotated[int, typer.Option(help="Threads the models train with.", min=1)] = 2,
    trees: Annotated[
        int | None, typer.Option(help="Trees per effect model (fewer: faster, coarser); default: the run's.", min=1)
    ] = None,
    training_days: TrainingDaysOpt = None,
    partial_horizon_days: Annotated[
        int | None,
        typer.Option(
            help="Also learn from decisions whose outcome horizon is still open once this many days of it "
            "were seen (e.g. 28), so that refits learn from recent decisions (default: closed horizons only).",
            min=1,
        ),
    ] = None,
    weight_by_propensity: Annotated[
        bool,
        typer.Option(
            "--weight-by-propensity",
            help="Weight each action's effect fit by 1 / its logged propensity (calibration_weights="
            "'propensity'). Use it when the history chose actions on something the book does not hold (a stage "
            "kept only as of today, a CSM's read of the account) and the touch log has the propensities: the "
            "unweighted effects are then shrunk toward 0. It costs where propensities are tiny: on the lab "
            "(propensities down to 0.004) regret rose by 0.7-4.5 points; check the effect with `nextmove lift` "
            "(docs/effects.md). Decisions without a logged propensity are weighted by one estimated from the "
            "book's features, which cannot correct that (a run note says how many).",
        ),
    ] = False,
    outcomes_until: OutcomesUntilOpt = None,
    truth: Annotated[
        Path | None,
        typer.Option(
            help="The lab's truth/values table, to print the regret against the oracle (default: BOOK/truth/).",
        ),
    ] = None,
) -> None:
    """Recommend the single best next action (or nothing) for every active account, with its evidence.

    Validates the book, computes every account's features at --as-of, fits the action-effect
    models on the history (or reuses the store's), projects every action's value, decides under
    the playbook's rules and capacities (with a control cohort and exploration), writes the
    evidence, and saves the run in the store and recommendations.csv, recommendations.parquet,
    summary.json and the HTML report (report.html) in --out. The four files replace those of an
    earlier run only once the whole run has succeeded: a run that fails leaves --out as it was.
    Default --as-of: how far the book's data reaches, rounded up to a UTC midnight.
    """
    if no_store and store is not None:
        raise ConfigError("--no-store and --store contradict each other: give one of them")
    pb_path = resolve_playbook_path(book, playbook)
    pb = load_playbook(pb_path)
    when = parse_as_of(as_of)
    complete = parse_outcomes_until(outcomes_until, when)
    folder = output_folder(out if out is not None else _default_out(book))  # before the long load
    with status("Loading and validating the book…"):
        loaded = load_book(book, playbook=pb, run_as_of=when)
    shown = outcome_notes(loaded, complete)
    print_book_notes(loaded, shown)
    truth_frame = _read_truth(truth if truth is not None else _truth_path(book))
    # A reused model must already be in the store: a store that does not exist is an error, not a new empty file.
    opened: Store | None = None if no_store else open_store(store, existing=reuse_model)
    try:
        result, stop = _run_with_progress(
            loaded,
            pb,
            when=when,
            store=opened,
            out=folder,
            seed=seed,
            reuse_model=reuse_model,
            promote=promote,
            allocation=allocation,
            exact_time_limit_s=exact_time_limit,
            capacity=not no_capacity,
            risk_aversion=risk_aversion,
            jobs=jobs,
            truth=truth_frame,
            training_days=training_days,
            outcomes_until=complete,
            effect_params=_effect_params(trees, partial_horizon_days, weight_by_propensity=weight_by_propensity),
            csv_evidence=csv_evidence,
            extra_files=_write_report,
        )
    except ExpressionError as exc:
        # An expression that does not fit the book's features: say which file to edit.
        raise exc.in_file(playbook_label(pb_path)) from None
    except RunFilesError as exc:
        if not exc.saved:
            raise
        # Saved (and served) whole, only its files are missing: the store has what the report needs. Into a
        # folder of its own: --out still holds an earlier run's recommendations and summary.
        where = "" if store is None else f" --store {mask_url(store)}"
        fresh = folder.with_name(f"{folder.name}-{exc.run_id}") / "report.html"
        hint = (
            f"`nextmove report --run {exc.run_id}{where} --out {fresh}` writes its report into a folder of its own "
            f"({folder} holds an earlier run's files, if any)"
        )
        raise RunFilesError(f"{exc}: {hint}", run_id=exc.run_id, saved=True) from exc.__cause__
    else:
        # The run is done (saved, served, its files in --out): a stop now cuts short only what is printed.
        with done_despite_stop(
            f"run {result.run_id} had finished ({_done_state(result, folder, opened)})",
            f"the printing of its summary ({folder / 'report.html'} holds it)",
        ):
            _print_done(result, opened, shown, folder, stop)
    finally:
        if opened is not None:
            opened.close()


def _done_state(result: RunResult, folder: Path, store: Store | None) -> str:
    """What a finished run is, in words: saved in the store (and served), its files all in ``folder``."""
    served = " and served" if result.policy_version is not None else ""
    saved = f"saved in the store{served}, " if store is not None else ""
    return f"{saved}its files all in {folder}"


def _print_done(
    result: RunResult, store: Store | None, shown: Collection[str], folder: Path, stop: KeyboardInterrupt | None
) -> None:
    """What ``nextmove run`` prints of a run that finished: its summary, where it is saved and served, its files."""
    served = _served_line(store, result.run_id, result.policy_version) if store is not None else None
    render_run(result, console, printed=shown)
    if store is not None:
        console.print(f"Saved run [bold]{safe(result.run_id)}[/] in the store.")
    if served is not None:
        console.print(served)
    console.print(f"Outputs: [bold]{safe(str(folder))}[/]")
    console.print(f"Report: [bold]{safe(str(result.files['report.html']))}[/]")
    if stop is not None:
        # Too late to stop anything: a 130 or 143 would tell a script the run failed, and it is whole.
        line = stopped_complete_line(result, stop, folder, saved=store is not None)
        err_console.print(f"[yellow]note:[/] {safe(line)}")


def stopped_complete_line(result: RunResult, stop: KeyboardInterrupt, folder: Path, *, saved: bool) -> str:
    """What ``nextmove run`` says of a Ctrl-C or SIGTERM that came while the run's files moved into ``folder``.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> done = SimpleNamespace(run_id="run-1", policy_version="policy-7")
    >>> print(stopped_complete_line(done, KeyboardInterrupt(), Path("out"), saved=True))
    ... # doctest: +NORMALIZE_WHITESPACE
    a stop (Ctrl-C) came while the run's files were being moved into out: it waited for the moves, and the run
    is complete (run run-1 is saved in the store and served, its files all in out), so nothing was stopped
    """
    from nextmove.errors import Terminated

    what = stop.signal_name if isinstance(stop, Terminated) else "Ctrl-C"
    served = " and served" if result.policy_version is not None else ""
    kept = f"saved in the store{served}" if saved else "made"
    return (
        f"a stop ({what}) came while the run's files were being moved into {folder}: it waited for the moves, "
        f"and the run is complete (run {result.run_id} is {kept}, its files all in {folder}), so nothing was stopped"
    )


def _write_report(result: RunResult, folder: Path) -> None:
    """The run's HTML report, written with its other files (moved into --out with them once the run has succeeded)."""
    from nextmove.report import build_report_data, write_report

    write_report(build_report_data(result.summary, result.recommendations), folder / "report.html")


def _served_line(store: Store, run_id: str, policy_version: str | None) -> str:
    """Which run online decisions now come from, after run ``run_id`` (promoted when ``policy_version`` is set)."""
    from nextmove.engine.online import POLICY_MODEL_KIND, rollback_step, servable_run

    if policy_version is not None:
        try:
            before = rollback_step(store, version_id=policy_version).target.metrics.get("run_id")
        except NotFoundError:
            before = None
        back = (
            f"`nextmove models rollback` serves the previous one (run {safe(str(before))})."
            if before is not None
            else "no run was served before it."
        )
        return f"Run [bold]{safe(run_id)}[/] is now the served run (policy version {safe(policy_version)}); {back}"
    version = store.active_model(POLICY_MODEL_KIND)
    fallback = servable_run(store) if version is None else None
    served = version.metrics.get("run_id") if version is not None else (fallback.run_id if fallback else None)
    now = "no run is served" if served is None else f"the served run is still {safe(str(served))}"
    return f"Run [bold]{safe(run_id)}[/] was not promoted: {now}; `nextmove models promote {safe(run_id)}` serves it."


def _effect_params(
    trees: int | None, partial_horizon_days: int | None, *, weight_by_propensity: bool = False
) -> dict[str, Any]:
    """The effect model's settings the options change (the rest are the run's)."""
    params: dict[str, Any] = {}
    if trees is not None:
        params["n_estimators"] = trees
    if partial_horizon_days is not None:
        params["partial_horizon_days"] = partial_horizon_days
    if weight_by_propensity:
        params["calibration_weights"] = "propensity"
    return params


def _default_out(book: str) -> Path:
    if "://" in book:
        raise ConfigError("the book is a database: give --out, the folder to write the recommendations to")
    return Path(book) / "run"


def _truth_path(book: str) -> Path | None:
    if "://" in book:
        return None
    for suffix in (".parquet", ".csv"):
        candidate = Path(book) / "truth" / f"{TRUTH_TABLE}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def _read_truth(path: Path | None) -> pl.DataFrame | None:
    """The lab's true values (``account_id, action_id, eligible, value_usd``), or None."""
    if path is None:
        return None
    frame = read_table_file(path, "--truth", raw_csv=True)
    missing = [c for c in ("account_id", "action_id", "value_usd") if c not in frame.columns]
    if missing:
        raise ConfigError(
            f"--truth {path}: lacks the column(s) {', '.join(missing)}; it is not the lab's truth/values table "
            "(`nextmove simulate` writes it as BOOK/truth/values.parquet)"
        )
    check_number_column(frame, "value_usd", "--truth", path)
    if "eligible" in frame.columns and frame.schema["eligible"] != pl.Boolean:
        try:
            frame = frame.with_columns(pl.col("eligible").cast(pl.Boolean))
        except pl.exceptions.PolarsError:
            raise ConfigError(f"--truth {path}: column eligible must hold true or false") from None
    return frame


REPORT_STAGE = "Writing the files"
"""The stage after the run's own, once it is saved: its report written, then its files moved into --out."""


def _run_with_progress(
    loaded: Any,
    pb: Any,
    *,
    when: Any,
    store: Store | None,
    out: Path,
    extra_files: Callable[[RunResult, Path], None],
    **options: Any,
) -> tuple[RunResult, KeyboardInterrupt | None]:
    """The run, and the stop that came while its files moved into ``out``, if one did (the run is complete)."""
    from nextmove.engine.run import RunStoppedComplete, run, run_stages

    # Bars on a terminal; one flushed line per stage start and end in a log (CI, cron, nohup); on stderr.
    with StageProgress((*run_stages(reuse_model=bool(options.get("reuse_model"))), REPORT_STAGE)) as stages:

        def report(result: RunResult, folder: Path) -> None:
            stages.step(REPORT_STAGE)  # the run is saved: a failure from here on is the report's, not the save's
            extra_files(result, folder)

        try:
            result = run(
                loaded,
                pb,
                as_of=when,
                store=store,
                out_dir=out,
                progress=stages.step,
                detail=stages.detail,
                extra_files=report,
                **options,
            )
        except RunStoppedComplete as stopped:
            return stopped.result, stopped.stop
        return result, None


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def executive_summary(
    summary: dict[str, Any], *, drawn: int | None = None, reasons: Sequence[tuple[str, int]] | None = None
) -> str:
    """The run in the words of an executive summary: scored, assigned, left alone and why, differs, impact.

    ``drawn``: how many of the accounts left alone are so by the control or exploration draw, not
    by the model (from the recommendations: the summary counts them all in ``do_nothing``).
    ``reasons``: why the model left the others alone, with how many each
    (:func:`~nextmove.engine.run_facts.left_alone_reasons`, the report's count): a capacity or a
    contact rule is no "best left alone". The first sentence is the report's
    (:func:`~nextmove.engine.run_facts.scored_sentence`: the playbook by its name). The projected
    impact's range is the accounts' 90% intervals summed end by end, not a 90% interval of the total
    (wider than one, unless the accounts' errors all move together): it says so. Amounts are in the
    run's currency (the summary's ``currency``, its playbook's; USD without one).

    Examples
    --------
    >>> s = {"accounts": 4200, "actions": 14, "assigned": {"retention": 312, "expansion": 280},
    ...      "objective_names": {"retention": "Retention", "expansion": "Expansion"}, "do_nothing": 3608,
    ...      "differs_from_default_share": 0.38, "projected_impact_usd": {"value": 1.2e6, "low": 0.8e6, "high": 1.6e6}}
    >>> print(executive_summary(s, drawn=408))  # doctest: +NORMALIZE_WHITESPACE
    The playbook scored 4,200 active customers across 14 possible actions and recommended the single best next
    action per account. 312 customers were assigned a Retention action and 280 an Expansion action. 3,200
    customers are best left alone this window. 408 more are left alone by the control cohort (the lifecycle
    default) or an exploration draw. 38% of accounts get something other than what the lifecycle-stage playbook
    would have suggested by default (those left alone included, where the default is an action). Projected
    impact: $1,200,000 (per-account 90% intervals summed: $800,000 to $1,600,000).
    >>> why = [("the best action did not fit the capacities left", 2000),
    ...        ("no action is worth more than it costs", 1200)]
    >>> print(executive_summary({**s, "playbook_name": "Streamly"}, drawn=408, reasons=why))
    ... # doctest: +ELLIPSIS +NORMALIZE_WHITESPACE
    The Streamly playbook scored ... 3,200 customers are left alone this window: for 2,000, the best action did not
    fit the capacities left; for 1,200, no action is worth more than it costs. 408 more are left alone by ...
    >>> s.update(assigned={"retention": 1}, projected_impact_usd={"value": 3282.4, "low": -10054.2, "high": 14798.0})
    >>> print(executive_summary(s, reasons=why[1:]))  # doctest: +ELLIPSIS +NORMALIZE_WHITESPACE
    The playbook scored ... 1 customer was assigned a Retention action. 3,608 customers are best left alone this
    window: no action is worth more than it costs. 38% ... -$10,054 to $14,798).
    >>> s["acted_differs_from_default"] = {"accounts": 592, "differs": 450}
    >>> print(executive_summary(s))  # doctest: +ELLIPSIS +NORMALIZE_WHITESPACE
    The playbook ... Of the 592 accounts given an action, 76% got a different one than the lifecycle-stage
    playbook would have suggested by default; counting those left alone where the default is an action, 38% of
    all accounts differ from it. Projected impact: ...
    >>> print(executive_summary({**s, "accounts": 1, "actions": 1}).split(" and ")[0])
    The playbook scored 1 active customer across 1 possible action
    >>> s.update(assigned={"retention": 0}, do_nothing=4200, acted_differs_from_default={"accounts": 0, "differs": 0})
    >>> print(executive_summary(s))  # doctest: +ELLIPSIS +NORMALIZE_WHITESPACE
    The playbook ... action per account. No customer was assigned an action. 4,200 customers are best left alone
    this window. The lifecycle-stage playbook would have suggested an action to 38% of the accounts. Projected ...
    >>> print(executive_summary({**s, "currency": "EUR"}).split("Projected impact: ")[1])
    €3,282 (per-account 90% intervals summed: -€10,054 to €14,798).
    """
    from nextmove.engine.run_facts import run_currency, scored_sentence

    currency = run_currency(summary)

    names = summary.get("objective_names", {})
    parts = []
    # The objectives some account was given, as the report lists them: not "0 a Retention action".
    ranked = sorted(((o, n) for o, n in summary["assigned"].items() if n), key=lambda kv: -kv[1])
    for n, (objective, count) in enumerate(ranked):
        label = str(names.get(objective, objective))  # as the playbook writes it: "Erweiterung (Upsell)"
        if n == 0:
            who = "1 customer was" if count == 1 else f"{count:,} customers were"
            parts.append(f"{who} assigned {_article(label)} {label} action")
        else:
            parts.append(f"{count:,} {_article(label)} {label} action")
    if not any(count for _, count in ranked):
        assigned = "No customer was assigned an action"
    elif len(parts) > 1:
        assigned = ", ".join(parts[:-1]) + (", and " if len(parts) > 2 else " and ") + parts[-1]
    else:
        assigned = parts[0]
    text = f"{scored_sentence(summary, int(summary['accounts']))} {assigned}. {_left_alone(summary, drawn, reasons)}"
    share = summary.get("differs_from_default_share")
    acted = summary.get("acted_differs_from_default")
    if share is not None and isinstance(acted, dict) and not acted.get("accounts"):
        # Nothing recommended, so no recommended action differs: say how often the default would have acted.
        text += f" The lifecycle-stage playbook would have suggested an action to {share:.0%} of the accounts."
    elif share is not None and isinstance(acted, dict):
        # The share counts every account (left alone where the default is an action differs too): lead
        # with the accounts given an action, which a reader takes "recommended actions" for.
        given, differs = int(acted["accounts"]), int(acted.get("differs") or 0)
        text += (
            f" Of the {given:,} {'account' if given == 1 else 'accounts'} given an action, {differs / given:.0%} "
            "got a different one than the lifecycle-stage playbook would have suggested by default; counting "
            f"those left alone where the default is an action, {share:.0%} of all accounts differ from it."
        )
    elif share is not None:
        text += (
            f" {share:.0%} of accounts get something other than what the lifecycle-stage playbook would have "
            "suggested by default (those left alone included, where the default is an action)."
        )
    impact = summary["projected_impact_usd"]
    text += (
        f" Projected impact: {money_text(impact['value'], currency)} (per-account 90% intervals summed: "
        f"{money_text(impact['low'], currency)} to {money_text(impact['high'], currency)})."
    )
    return text


def _left_alone(summary: dict[str, Any], drawn: int | None, reasons: Sequence[tuple[str, int]] | None) -> str:
    """Who is left alone and why, as the report counts it: by the model (per reason), then by a draw."""
    from nextmove.engine.run_facts import LEFT_ALONE_GENERIC, LEFT_ALONE_NOT_WORTH

    nothing = int(summary["do_nothing"])
    if nothing == 0:
        return "No customer is left alone: every one is given an action."
    # The control cohort and exploration leave accounts alone by a draw, not because nothing is worth doing.
    drawn = drawn or 0
    by_model = nothing - drawn
    listed = [(r, n) for r, n in reasons or () if n]
    text = ""
    if by_model:
        # Only what is not worth its cost is "best" left alone: a capacity or a contact rule holds the others back.
        best = all(r in (LEFT_ALONE_NOT_WORTH, LEFT_ALONE_GENERIC) for r, _ in listed)
        verb = "is" if by_model == 1 else "are"
        text = f"{plural(by_model, 'customer')} {verb} {'best ' if best else ''}left alone this window"
        if len(listed) == 1:
            text += f": {listed[0][0]}"
        elif listed:
            text += ": " + "; ".join(f"for {n:,}, {r}" for r, n in listed)
        text += "."
    if drawn:
        more = " more" if by_model else ""
        text += (
            f"{' ' if text else ''}{drawn:,}{more} {'is' if drawn == 1 else 'are'} left alone by the control cohort "
            "(the lifecycle default) or an exploration draw."
        )
    return text


def render_run(result: RunResult, out: Console, *, printed: Collection[str] = ()) -> None:
    """Print the executive summary, the action distribution, the arms, capacity use and (on the lab) regret.

    The run's notes follow, but for those in ``printed`` (loading the book's, printed before the run).
    """
    from nextmove.engine.run_facts import left_alone_by_draw, left_alone_reasons, run_currency

    summary = result.summary
    currency = run_currency(summary)

    def money(x: float) -> str:
        return money_text(x, currency)

    out.print()
    out.print("[bold]Executive summary[/]")
    recs = result.recommendations
    out.print(safe(executive_summary(summary, drawn=left_alone_by_draw(recs), reasons=left_alone_reasons(recs))))

    names = summary.get("objective_names", {})
    dist = Table(title="Recommended action distribution", title_justify="left")
    dist.add_column("focus")
    dist.add_column("accounts", justify="right")
    dist.add_column("share", justify="right")
    total = max(int(summary["accounts"]), 1)
    for objective, count in sorted(summary["assigned"].items(), key=lambda kv: -kv[1]):
        dist.add_row(safe(str(names.get(objective, objective))), f"{count:,}", f"{count / total:.1%}")
    dist.add_row("Do nothing", f"{summary['do_nothing']:,}", f"{summary['do_nothing'] / total:.1%}")
    out.print(dist)

    actions = Table(title="By action", title_justify="left")
    actions.add_column("action")
    actions.add_column("accounts", justify="right")
    for action, count in sorted(summary["by_action"].items(), key=lambda kv: -kv[1]):
        if count:
            actions.add_row(safe(action), f"{count:,}")
    out.print(actions)

    arms = summary["arms"]
    alloc = summary["allocation"]
    gap = alloc.get("gap_to_bound")
    out.print(
        f"Arms: {arms.get('model', 0):,} model, {arms.get('explore', 0):,} explore, "
        f"{arms.get('control', 0):,} control (lifecycle default). Allocation: {alloc['method']}, "
        f"{alloc['binding_resources']} of {alloc['resources']} capacities binding"
        + ("" if gap is None else f", within {gap:.2%} of the best possible")
        + "."
    )
    regret = summary.get("regret")
    if regret is not None:
        model_share = regret.get("model_regret_share")
        deployed_share = regret.get("deployed_regret_share")
        # None: the policy picks actions the truth has no value for (a note names them).
        model_value, deployed_value = regret.get("model_value_usd"), regret.get("deployed_value_usd")
        unknown = "not measured (see the note)"
        out.print(
            "[bold]Lab:[/] against the oracle under the same capacities "
            f"({money(regret['oracle_value_usd'])}; lifecycle default {money(regret['default_value_usd'])}): "
            f"the learned policy {unknown if model_value is None else money(model_value)}"
            + ("" if model_share is None else f", regret {model_share:.1%} of the oracle's gain over the default")
            + "; as deployed with control and exploration "
            + (unknown if deployed_value is None else money(deployed_value))
            + ("" if deployed_share is None else f" ({deployed_share:.1%})")
            + "."
        )
    for note in summary.get("notes", []):
        if note not in printed:
            out.print(f"[yellow]note:[/] {safe(str(note), lines=True)}")
    seconds = summary.get("timings_s", {}).get("total")
    if seconds is not None:
        out.print(f"Run {safe(result.run_id)} as of {result.as_of:%Y-%m-%d %H:%M} UTC took {seconds:.1f} s.")
    for name, path in result.files.items():
        out.print(f"  {name}: {safe(str(path))}")
