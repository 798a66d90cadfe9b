"""``nextmove models``: list model versions, activate one, roll back, or serve a run's decisions online."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from nextmove.cli._common import console, done_despite_stop, handle_errors, open_store, safe
from nextmove.cli.serve import StoreOpt
from nextmove.errors import ConfigError

if TYPE_CHECKING:
    from nextmove.store import Store

models_app = typer.Typer(help="Model versions: list, activate, roll back, promote a run.", no_args_is_help=True)

KindOpt = Annotated[
    str, typer.Option("--kind", help="Kind of model: policy (what the API serves), outcome, or another kind.")
]


def register(app: typer.Typer) -> None:
    """Add ``models`` to ``app``."""
    app.add_typer(models_app, name="models")


SAVED_KINDS: tuple[str, ...] = ("effect", "outcome", "policy")
"""The kinds of model nextmove saves (the engine's ``*_MODEL_KIND``; a test keeps them equal), named
here so that listing models does not load the engine."""


def check_kind(store: Store, kind: str) -> None:
    """Refuse a ``--kind`` that is neither one nextmove saves nor one the store holds, naming the valid ones."""
    known = set(SAVED_KINDS) | {m.kind for m in store.list_models()}
    if kind not in known:
        raise ConfigError(f"--kind {kind!r} is not a kind of model; use one of {', '.join(sorted(known))}")


@models_app.command("list")
@handle_errors
def list_cmd(
    kind: Annotated[str | None, typer.Option("--kind", help="Only this kind.")] = None, store: StoreOpt = None
) -> None:
    """List model versions, newest first; the active one of each kind is marked.

    Below the table, a run saved but never promoted (its process ended between the two) is named,
    with the command that serves it.
    """
    with open_store(store, existing=True) as opened:
        if kind is not None:
            check_kind(opened, kind)
        versions = opened.list_models(kind)
        notes = unpromoted_notes(opened) if kind in (None, "policy", "effect") else []
    table = Table()
    # Ids are copied into other commands: never wrapped nor cut (folded only if the terminal is too narrow for them).
    table.add_column("model_id", no_wrap=True, overflow="fold")
    for name in ("kind", "created", "active", "trained to", "metrics"):
        table.add_column(name)  # these wrap first when the terminal is narrow
    for v in versions:
        # What a policy version replaced is a model id, for rollbacks: not a figure.
        shown = [(k, val) for k, val in v.metrics.items() if k != "replaces" and not isinstance(val, dict | list)]
        metrics = ", ".join(f"{k}={val}" for k, val in shown[:3])
        table.add_row(
            safe(v.model_id),
            safe(v.kind),
            f"{v.created_at:%Y-%m-%d %H:%M}",
            "yes" if v.active else "",
            "" if v.trained_to is None else f"{v.trained_to:%Y-%m-%d}",
            safe(metrics),
        )
    console.print(table)
    for note in notes:
        console.print(f"[yellow]note:[/] {safe(note, lines=True)}")


UNPROMOTED_RUNS_SCANNED = 20
"""How many of the latest succeeded runs ``models list`` looks through for one saved but never promoted."""


def unpromoted_notes(store: Store) -> list[str]:
    """Why each of the latest succeeded runs newer than the served one, that was to be served, is not.

    Only runs newer than the one served now: an older run left unpromoted would have been
    replaced by the runs promoted since anyway.
    """
    from nextmove.engine.online import promoted_run_ids, served_run
    from nextmove.engine.run_process import unpromoted_run_note

    served = served_run(store)
    served_id = None if served is None else served.run_id
    promoted = promoted_run_ids(store)
    notes = []
    for run in store.list_runs(UNPROMOTED_RUNS_SCANNED, status="succeeded"):  # newest first
        if run.run_id == served_id:
            break
        note = unpromoted_run_note(run, promoted=promoted, served=served)
        if note is not None:
            notes.append(note)
    return notes


@models_app.command("rollback")
@handle_errors
def rollback_cmd(kind: KindOpt = "policy", store: StoreOpt = None) -> None:
    """Go back to the version of KIND active before the active one (running servers switch within seconds).

    For the policy: the run served before the active version was promoted, whichever way it was
    served then; rolling back again goes further back through what was served. Versions that serve
    the same run as the active one (a run promoted twice) are passed over, and the command says so.
    Other kinds go to the version saved before the active one. Rolling back the policy also
    re-activates the effect model of the run it then serves, so that `nextmove run --reuse-model`
    projects with that run's model.
    """
    from nextmove.engine.online import rollback

    with open_store(store, existing=True) as opened:
        check_kind(opened, kind)
        step, record = rollback(opened, kind)
    if kind != "policy":
        console.print(f"Active {safe(kind)} model is now {safe(record.model_id)}.")
        return
    was, now = step.current.metrics.get("run_id"), record.metrics.get("run_id")
    line = f"Active policy model is now {record.model_id}" + (f": it serves run {now}" if now else "")
    line += f" (it served run {was} before)." if was else "."
    if step.passed_over:
        n = len(step.passed_over)
        line += f" Passed over {n} older version{'s' if n > 1 else ''} that serve{'' if n > 1 else 's'} run {was} too."
    console.print(safe(line))


@models_app.command("activate")
@handle_errors
def activate_cmd(
    model_id: Annotated[str, typer.Argument(help="The version to activate.")], store: StoreOpt = None
) -> None:
    """Make MODEL_ID the active version of its kind, atomically.

    A policy version brings back the effect model of the run it serves, as `models promote` and
    `models rollback` do.
    """
    from nextmove.engine.online import activate_version

    with open_store(store, existing=True) as opened:
        record = activate_version(opened, model_id)
    run_id = record.metrics.get("run_id") if record.kind == "policy" else None
    console.print(
        f"Active {safe(record.kind)} model is now {safe(record.model_id)}"
        + (f": it serves run {safe(run_id)}." if run_id else ".")
    )


@models_app.command("promote")
@handle_errors
def promote_cmd(run_id: Annotated[str, typer.Argument(help="A succeeded run.")], store: StoreOpt = None) -> None:
    """Serve RUN_ID's decisions online: saves and activates a new policy version naming it."""
    from nextmove.engine.online import promote_run

    with open_store(store, existing=True) as opened:
        record = promote_run(opened, run_id, metrics={"started_by": "cli"})
        # Promoted: a stop now must not read as a promotion that failed.
        with done_despite_stop(f"run {run_id} was promoted (policy {record.model_id} serves it)", "its printing"):
            console.print(f"Policy {safe(record.model_id)} now serves run {safe(run_id)}.")
