"""``nextmove keys``: create, list and revoke API keys (stored hashed; a new key is printed once)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from nextmove.cli._common import console, err_console, handle_errors, open_store, safe
from nextmove.cli.serve import StoreOpt

if TYPE_CHECKING:
    from collections.abc import Sequence

    from nextmove.store import AuditEntry, Store

keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add ``keys`` to ``app``."""
    app.add_typer(keys_app, name="keys")


def cli_audit(action: str, resource: str, *, command: str, **detail: object) -> AuditEntry:
    """The audit entry of a change made by ``nextmove COMMAND``: no API key made it, so it names the OS user who
    ran the command."""
    from nextmove.store import AuditEntry

    return AuditEntry(
        action=action,
        method="CLI",
        path=f"nextmove {command}",
        status=0,
        resource=resource,
        detail={**detail, "os_user": os_user()},
    )


def os_user() -> str | None:
    """The OS user running this process, as :func:`getpass.getuser` says; None if nothing says.

    ``LOGNAME`` or ``USER`` (…) if set, else the name of the process's uid: a name the environment
    gives, not proof of identity; it says who ran a command, as a shell's history would.
    """
    import getpass

    try:
        return getpass.getuser() or None
    except (OSError, KeyError, ImportError):  # a uid with no name (a container) and no LOGNAME/USER
        return None


def unknown_owner_warnings(store: Store, owners: Sequence[str]) -> list[str]:
    """A warning per owner that no account has in the store's latest succeeded run, with close matches.

    The store knows owners only through a run's recommendations: with no succeeded run yet there
    is nothing to check against, and no warning. Owners are matched exactly, as the API does.
    """
    import difflib

    run = store.latest_run(status="succeeded")
    if run is None or not owners:
        return []
    missing = [o for o in owners if store.count_recommendations(run.run_id, owner=o) == 0]
    if not missing:
        return []
    # The owners alone, never the receipts: a run of many accounts holds hundreds of MiB of them.
    owners_read = store.recommendation_values(run.run_id, {"owner": ("owner",)})
    known = sorted({owner for batch in owners_read for (owner,) in batch if owner})
    lowered = {k.lower(): k for k in known}
    warnings = []
    for owner in missing:
        close = difflib.get_close_matches(owner, known, n=3, cutoff=0.6)
        by_case = lowered.get(owner.lower())
        if by_case is not None and by_case not in close:
            close.insert(0, by_case)
        hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
        warnings.append(
            f"no account of run {run.run_id} (the latest) is owned by {owner!r}{hint}; the key was created, "
            "and sees no account until one has that owner (`nextmove keys revoke` it if the owner is wrong)"
        )
    return warnings


@keys_app.command("create")
@handle_errors
def create_cmd(
    role: Annotated[str, typer.Option(help="admin, manager (a team's accounts), csm (own accounts) or service.")],
    owner: Annotated[
        list[str] | None,
        typer.Option("--owner", help="Owner whose accounts the key sees: one for csm, one or more for manager."),
    ] = None,
    name: Annotated[str, typer.Option(help="Who or what holds the key (a label).")] = "",
    store: StoreOpt = None,
) -> None:
    """Create an API key and print it once: it is stored only as a salted hash and cannot be shown again."""
    from nextmove.store.keys import new_api_key

    key, record = new_api_key(role, owner or [], name=name)
    scope = f" for {', '.join(record.owners)}" if record.owners else ""
    # Rendered before the key is stored, and the key printed before anything else: a line that could not
    # be printed left a stored key whose secret nobody had seen.
    created = console.render_str(
        f"Created {safe(role)} key {safe(record.key_id)}{safe(scope)}. Keep it now; it is not shown again:"
    )
    with open_store(store) as opened:
        opened.create_api_key(
            record,
            audit=[
                cli_audit(
                    "create", f"key:{record.key_id}", command="keys create", role=role, owners=list(record.owners)
                )
            ],
        )
        unknown = unknown_owner_warnings(opened, record.owners)
    console.print(created)
    typer.echo(key)
    for warning in unknown:
        err_console.print(f"[yellow]warning:[/] {safe(warning, lines=True)}")


@keys_app.command("list")
@handle_errors
def list_cmd(store: StoreOpt = None) -> None:
    """List every API key (id, role, owners, label, created, revoked); never the secrets."""
    with open_store(store, existing=True) as opened:
        keys = opened.list_api_keys()
    table = Table()
    # Ids are copied into `keys revoke`: never wrapped nor cut (folded only if the terminal is too narrow for them).
    table.add_column("key_id", no_wrap=True, overflow="fold")
    for name in ("role", "owners", "name", "created", "revoked"):
        table.add_column(name)  # these wrap first when the terminal is narrow
    for k in keys:
        table.add_row(
            safe(k.key_id),
            safe(k.role),
            safe(", ".join(k.owners)),
            safe(k.name),
            f"{k.created_at:%Y-%m-%d %H:%M}",
            "" if k.revoked_at is None else f"{k.revoked_at:%Y-%m-%d %H:%M}",
        )
    console.print(table)


@keys_app.command("revoke")
@handle_errors
def revoke_cmd(
    key_id: Annotated[str, typer.Argument(help="The key's id (the part after nm_).")], store: StoreOpt = None
) -> None:
    """Revoke a key: servers refuse it within a minute (their cache of verified keys)."""
    with open_store(store, existing=True) as opened:
        opened.revoke_api_key(key_id, audit=[cli_audit("revoke", f"key:{key_id}", command="keys revoke")])
    console.print(f"Revoked key {safe(key_id)}.")
