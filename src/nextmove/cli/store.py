"""``nextmove store``: look after the store itself (``prune``: the receipts of old runs)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from nextmove.cli._common import (
    console,
    done_despite_stop,
    err_console,
    handle_errors,
    open_store,
    plural,
    safe,
    status,
)
from nextmove.cli.serve import StoreOpt
from nextmove.errors import NotFoundError, StoreError

if TYPE_CHECKING:
    from nextmove.store import AuditEntry, Store

store_app = typer.Typer(help="The store itself: prune the receipts of old runs.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add ``store`` to ``app``."""
    app.add_typer(store_app, name="store")


@store_app.command("prune")
@handle_errors
def prune_cmd(
    keep_runs: Annotated[
        int | None,
        typer.Option("--keep-runs", min=0, metavar="N", help="Keep the N newest succeeded runs whole."),
    ] = None,
    older_than: Annotated[
        int | None,
        typer.Option("--older-than", min=0, metavar="DAYS", help="Prune only runs made more than DAYS days ago."),
    ] = None,
    audit_older_than: Annotated[
        int | None,
        typer.Option(
            "--audit-older-than",
            min=1,
            metavar="DAYS",
            help="Also delete the audit log's entries made more than DAYS days ago (alone: only those).",
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would be pruned; change nothing.")] = False,
    store: StoreOpt = None,
) -> None:
    """Slim the receipts of old runs, the bulk of a store, keeping what lift, feedback and reports read.

    Prunes the succeeded runs past the --keep-runs newest and made more than --older-than days ago
    (give either or both), but never the run served online nor the one `nextmove models rollback`
    goes back to. Each of their recommendations keeps its row, action, arm, propensity, values,
    projected effects, account facts and one-line summary (so `nextmove lift --run` still measures
    the run, and feedback naming it still finds its actions), and loses its receipt's signals and
    comparable accounts and every runner-up but the best one's action and why; the effect model the
    run fitted is deleted unless it is active or a run left whole names it. A pruned run says so (its
    summary, its report, each receipt's "pruned") and cannot be served again. The effect models of
    runs that failed or were interrupted (never served, read by nothing) are deleted too, those
    made more than --older-than days ago when it is given (--keep-runs counts succeeded runs only).
    Online decisions, feedback and keys are never pruned; the audit log only with --audit-older-than
    DAYS, which deletes its entries made more than DAYS days ago (one entry, made now, records how
    many and up to when).

    Prints the plan first; with --dry-run, only the plan. The prune is one transaction, under the
    store's write lock; a SQLite file is then VACUUMed to give the space back (PostgreSQL reuses it
    for later rows; VACUUM FULL is left to the database administrator). Ctrl-C once the prune is
    committed (during the VACUUM) stops the command with a note that the prune is done, exit 0.
    """
    from nextmove.store.prune import apply_prune, plan_prune

    runs_too = keep_runs is not None or older_than is not None or audit_older_than is None
    with open_store(store, existing=True) as opened:
        if audit_older_than is not None:
            _prune_audit(opened, audit_older_than, dry_run=dry_run)
        plan = None
        if runs_too:
            protected = protected_runs(opened)
            plan = plan_prune(
                opened, protected=protected, keep_runs=keep_runs, older_than_days=older_than, ended=ended_runs(opened)
            )
            _print_plan(plan)
        if dry_run:
            console.print("Dry run: nothing was changed.")
            return
        if plan is None or plan.empty:
            _give_space_back(opened, pruned=False)
            return
        with status(f"Pruning {len(plan.runs)} run{'s' if len(plan.runs) != 1 else ''} and failed runs' models…"):
            result = apply_prune(opened, plan)
        # Committed: a stop now (during the VACUUM) must not read as a prune that failed.
        with done_despite_stop(
            "the prune was committed",
            "what followed it: the VACUUM that gives the space back to the system may not have run, so the SQLite "
            "file may be no smaller; `nextmove store prune` again VACUUMs it (even with nothing left to prune)",
        ):
            failed = len(result.failed_models_deleted)
            console.print(
                f"Pruned {len(result.runs)} run{'s' if len(result.runs) != 1 else ''}: {result.recommendations:,} "
                f"receipts slimmed ({_mb(result.receipt_bytes_freed)} of JSON), "
                f"{len(result.models_deleted)} effect model{'s' if len(result.models_deleted) != 1 else ''} deleted "
                f"({_mb(result.model_bytes_freed)}{f', {failed} of failed runs' if failed else ''})."
            )
            _give_space_back(opened, pruned=True)


def _give_space_back(opened: Store, *, pruned: bool) -> None:
    """After a prune (``pruned``: one was committed now), VACUUM a SQLite store's free pages; say what it gave back."""
    from nextmove.store.prune import sqlite_free_bytes, vacuum

    free = sqlite_free_bytes(opened)
    if free is None:
        if pruned:
            console.print(
                "PostgreSQL reuses the freed space for later rows; to give it back to the system, a database "
                "administrator runs VACUUM FULL recommendations, model_versions (it locks both tables while it "
                "runs)."
            )
        return
    if not pruned and not free:
        return
    try:
        with status("Giving the space back (VACUUM)…"):
            sizes = vacuum(opened)
    except StoreError as exc:  # the prune itself is committed: say so, rather than fail as if nothing was done
        err_console.print(
            "[yellow]warning:[/] the prune is done, but the SQLite file was not made smaller: "
            f"{safe(str(exc), lines=True)}; run `nextmove store prune` again later (it VACUUMs even when there "
            "is nothing left to prune)"
        )
        return
    if sizes is not None:
        console.print(
            f"VACUUM: the SQLite store went from {_mb(sizes[0])} to {_mb(sizes[1])} "
            f"({_mb(max(sizes[0] - sizes[1], 0))} freed)."
        )


def _prune_audit(store: Store, days: int, *, dry_run: bool) -> None:
    """Delete the audit entries made more than ``days`` days ago, with one entry saying so, in one transaction."""
    from nextmove.cli.keys import cli_audit
    from nextmove.store.records import utcnow

    cutoff = utcnow() - timedelta(days=days)
    n = store.count_audit(before=cutoff)
    console.print(
        f"Audit log: {plural(n, 'audit entry', 'audit entries')} made before {cutoff:%Y-%m-%d %H:%M} UTC "
        f"(more than {days} days ago)."
    )
    if dry_run or not n:
        return

    def record(deleted: int) -> list[AuditEntry]:
        detail = {"deleted": deleted, "before": cutoff.isoformat()}
        return [cli_audit("change", f"audit_log:{deleted} entries", command="store prune", **detail)]

    with status(f"Deleting {plural(n, 'audit entry', 'audit entries')}…"):
        deleted = store.delete_audit(before=cutoff, record=record)
    console.print(f"Deleted {plural(deleted, 'audit entry', 'audit entries')}.")


def protected_runs(store: Store) -> dict[str, str]:
    """The runs a prune must leave whole, each with why: the one served online, and the one a rollback serves."""
    from nextmove.engine.online import rollback_step, served_run

    out: dict[str, str] = {}
    served = served_run(store)
    if served is not None:
        out[served.run_id] = "served online"
    try:
        target = rollback_step(store).target
    except NotFoundError:  # no policy version is active, or there is nothing to roll back to
        return out
    run_id = target.metrics.get("run_id")
    if not isinstance(run_id, str):
        try:
            run_id = json.loads(target.blob.decode()).get("run_id")
        except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            run_id = None
    if isinstance(run_id, str):
        out.setdefault(run_id, "what `nextmove models rollback` would serve")
    return out


def ended_runs(store: Store) -> list[str]:
    """The runs recorded as ``running`` whose process is known to have ended (killed outright): never to finish."""
    from nextmove.engine.run_process import process_ended

    return [run.run_id for run in store.list_runs(1000, status="running") if process_ended(run)]


def _print_plan(plan: object) -> None:
    from nextmove.store.prune import PrunePlan

    assert isinstance(plan, PrunePlan)
    if plan.runs:
        table = Table(title="Runs to prune (oldest first)")
        table.add_column("run_id", no_wrap=True, overflow="fold")
        for name in ("made", "as of", "recommendations", "receipts", "effect model"):
            table.add_column(name)
        for run in plan.runs:
            table.add_row(
                safe(run.run_id),
                f"{run.created_at:%Y-%m-%d}",
                "" if run.as_of is None else f"{run.as_of:%Y-%m-%d}",
                f"{run.recommendations:,}",
                _mb(run.receipt_bytes),
                "kept" if run.model_id is None else _mb(run.model_bytes),
            )
        console.print(table)
        console.print(
            f"To prune: {len(plan.runs)} run{'s' if len(plan.runs) != 1 else ''}, "
            f"{sum(r.recommendations for r in plan.runs):,} receipts ({_mb(plan.receipt_bytes)} now, most of which "
            f"goes) and {_mb(sum(r.model_bytes for r in plan.runs))} of effect models."
        )
    if plan.failed_models:
        table = Table(title="Effect models of failed runs, never served (oldest first)")
        for name in ("model_id", "run_id"):
            table.add_column(name, no_wrap=True, overflow="fold")
        table.add_column("made")
        table.add_column("size")
        for model in plan.failed_models:
            table.add_row(
                safe(model.model_id), safe(model.run_id), f"{model.created_at:%Y-%m-%d}", _mb(model.model_bytes)
            )
        console.print(table)
        n = len(plan.failed_models)
        console.print(
            f"To delete: {n} effect model{'s' if n != 1 else ''} of failed runs "
            f"({_mb(sum(m.model_bytes for m in plan.failed_models))})."
        )
    if plan.empty:
        console.print("Nothing to prune.")
    for run_id, why in plan.kept:
        console.print(f"Kept whole: {safe(run_id)} ({safe(why, lines=True)}).")
    if plan.already:
        n = len(plan.already)
        shown = ", ".join(plan.already[:5]) + (", …" if n > 5 else "")
        console.print(f"Pruned before: {n} run{'s' if n != 1 else ''} ({safe(shown)}).")


def _mb(n: int) -> str:
    """Bytes as a person reads them (MB with one decimal, KB below one MB)."""
    return f"{n / 1e6:,.1f} MB" if n >= 1e6 else f"{n / 1e3:,.0f} KB"
