"""``nextmove serve``: the REST API (decisions, accounts, recommendations, feedback, runs) under uvicorn."""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from nextmove.cli._common import STORE_DEFAULT, console, err_console, handle_errors, safe, status
from nextmove.cli.commands import resolve_playbook_path
from nextmove.errors import ConfigError, NextmoveError, NotFoundError
from nextmove.playbook.loader import load_playbook
from nextmove.settings import Settings

if TYPE_CHECKING:
    from nextmove.playbook import Playbook
    from nextmove.store import RunRecord, Store

StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        help=f"Store URL; {STORE_DEFAULT}.",
    ),
]


def register(app: typer.Typer) -> None:
    """Add ``serve`` to ``app``."""
    app.command("serve")(serve_cmd)


@handle_errors
def serve_cmd(
    host: Annotated[str, typer.Option(help="Interface to listen on (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
    store: StoreOpt = None,
    book: Annotated[
        str | None,
        typer.Option(
            "--book",
            "-b",
            help="Book of business (folder or database URL): lets POST /v1/runs start runs and shows account history; "
            "read again when it changes (a folder's files are looked at every --refresh-s).",
        ),
    ] = None,
    playbook: Annotated[
        Path | None,
        typer.Option(
            "--playbook",
            "-p",
            help="playbook.toml; default: BOOK/playbook.toml if present, else the built-in default. Without --book: "
            "the playbook of the run the store serves, if its book folder still holds it, else the built-in default.",
        ),
    ] = None,
    max_body_bytes: Annotated[int, typer.Option(help="Largest request body accepted, in bytes.", min=1024)] = 1_048_576,
    refresh_s: Annotated[
        float, typer.Option(help="Seconds between checks for a newer run or another active policy version.", min=0.1)
    ] = 5.0,
    book_refresh_s: Annotated[
        float,
        typer.Option(
            help="A book in a database is read again at most this often in seconds (runs and lift read it again "
            "when it is older than --refresh-s).",
            min=1.0,
        ),
    ] = 300.0,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out-dir",
            help="Folder the runs started through the API (POST /v1/runs) write their files into: "
            "recommendations.csv, recommendations.parquet and summary.json, each run's replacing the last's. "
            "Default: none are written; the runs are kept in the store alone, and `nextmove report --run RUN_ID` "
            "writes a run's report.",
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level: critical, error, warning, info, debug.")] = "info",
    auth_failures_burst: Annotated[
        int | None,
        typer.Option(
            help="Requests without a valid API key one client (IP) may make at once before they are answered 429 "
            "and only summarised in the audit trail; 0: no limit. Default: NEXTMOVE_AUTH_FAILURES_BURST, else 60.",
            min=0,
        ),
    ] = None,
    auth_failures_per_minute: Annotated[
        float | None,
        typer.Option(
            help="How fast that allowance comes back, per minute. Default: NEXTMOVE_AUTH_FAILURES_PER_MINUTE, else 30.",
            min=0.001,
        ),
    ] = None,
) -> None:
    """Serve the REST API: POST /v1/decide, GET /v1/accounts/{id}, GET /v1/recommendations, POST /v1/feedback, runs.

    The web dashboard is at / (a CSM's or manager's accounts, each one's recommended action and why,
    marked done, dismissed or snoozed; it asks for an API key). Every API request but /healthz and
    /readyz needs an API key: create one with `nextmove keys create --role admin`. The OpenAPI
    document is at /openapi.json, the docs at /docs (they load Swagger UI from a CDN: blank
    offline). Without --book or --playbook, the run the store serves is served under its own
    playbook, found in its book's folder. A port already in use (or not allowed) is refused at
    once, with exit code 2.
    """
    check_port_free(host, port)  # before loading the book: uvicorn would say it only after, in its own log
    import uvicorn

    from nextmove.api import ApiConfig, create_app
    from nextmove.api.service import book_stamp
    from nextmove.book.validate import load_book
    from nextmove.web import mount_dashboard

    if log_level not in ("critical", "error", "warning", "info", "debug"):
        raise ConfigError(f"--log-level must be one of critical, error, warning, info, debug; got {log_level!r}")
    settings = Settings()
    playbook_path = resolve_playbook_path(book, playbook) if book is not None else playbook
    found_from_run = None
    if book is None and playbook is None:
        found_from_run = served_run_playbook(store)
        playbook_path = found_from_run
    pb = load_playbook(playbook_path)
    loaded = None
    stamp = book_stamp(book)  # before reading: a change made while it is read is seen as one
    if book is not None:
        with status("Loading and validating the book…"):
            loaded = load_book(book, playbook=pb)
    config = ApiConfig(
        playbook=pb,
        store_url=store,
        book=loaded,
        book_path=book,  # read again from it when it changes; shown masked wherever the API shows it
        max_body_bytes=max_body_bytes,
        refresh_s=refresh_s,
        out_dir=out_dir,
        book_refresh_s=book_refresh_s,
        book_stamp=stamp,
        auth_failures_burst=settings.auth_failures_burst if auth_failures_burst is None else auth_failures_burst,
        auth_failures_per_minute=(
            settings.auth_failures_per_minute if auth_failures_per_minute is None else auth_failures_per_minute
        ),
    )
    app = create_app(config)
    mount_dashboard(app)
    services = app.state.services
    served = services.served_run()
    unserved = other_playbook_note(services.store, pb, playbook_path) if served is None else None
    if served is not None:
        serving = f"serving run {served.run_id}" + (
            f" under its playbook {found_from_run}, found in its book's folder" if found_from_run else ""
        )
    elif unserved is not None:
        serving = f"serving no run: {unserved[0]}"
    else:
        serving = "serving no run yet"
    line = (
        f"nextmove API on http://{host}:{port} (store {services.store.url}; {serving}); OpenAPI at /openapi.json; "
        "dashboard at /"
    )
    console.print(safe(line))
    if book is not None:
        console.print(safe(api_runs_line(out_dir)))
    if unserved is not None:
        err_console.print(f"[yellow]note:[/] {safe(unserved[1], lines=True)}")
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=log_level == "debug")


def api_runs_line(out_dir: Path | None) -> str:
    """Where the runs started through the API (``POST /v1/runs``) leave their files, for the server's log.

    Examples
    --------
    >>> print(api_runs_line(Path("runs")))  # doctest: +NORMALIZE_WHITESPACE
    Runs started through the API (POST /v1/runs) write recommendations.csv, recommendations.parquet and
    summary.json into runs
    """
    if out_dir is not None:
        return (
            "Runs started through the API (POST /v1/runs) write recommendations.csv, recommendations.parquet and "
            f"summary.json into {out_dir}"
        )
    return (
        "Runs started through the API (POST /v1/runs) are kept in the store alone, no files written (--out-dir "
        "names a folder for them); `nextmove report --run RUN_ID` writes a run's report"
    )


def served_run_playbook(store_url: str | None) -> Path | None:
    """The playbook of the run the store serves, when the server is given neither --book nor --playbook.

    The store keeps a run's playbook only as its hash, and where its book was read from: a run made
    with ``nextmove run --book FOLDER`` under ``FOLDER/playbook.toml`` (the usual case) is served
    under that file, if it is still there with the same content (the same hash). None when the run
    to serve is the built-in default's, or its playbook cannot be found so: the server then uses
    the built-in default, and :func:`other_playbook_note` says the run is not served.
    """
    from nextmove.engine.online import served_run
    from nextmove.store import open_store

    try:
        opened = open_store(store_url, create=False)
    except NotFoundError:
        return None  # no store yet: nothing is served
    with opened:
        run = served_run(opened)
    if run is None or run.playbook_hash == load_playbook(None).content_hash():
        return None
    candidate, _ = _run_playbook_file(run)
    return candidate


def _run_playbook_file(run: RunRecord) -> tuple[Path | None, str]:
    """``FOLDER/playbook.toml`` of the folder the run's book was read from, if it holds the run's playbook (its
    hash); else None and why not, for the note ("" for a book not read from a folder)."""
    if "://" in run.book_source or run.book_source.startswith("<"):
        return None, ""
    candidate = Path(run.book_source) / "playbook.toml"
    try:
        if not candidate.is_file():
            return None, f"; {candidate}, where the run's book was read, is not there"
        found = load_playbook(candidate).content_hash()
    except (OSError, NextmoveError) as exc:
        return None, f"; {candidate} could not be read ({exc})"
    if found == run.playbook_hash:
        return candidate, ""
    return None, f"; {candidate} has changed since (hash {found})"


def other_playbook_note(store: Store, playbook: Playbook, playbook_path: Path | None) -> tuple[str, str] | None:
    """Why the run the store would serve is not served (made under another playbook), and what to do; else None.

    The decider serves no run then: every decision would be a 409 and the recommendations an
    empty page, which only ``/readyz`` would explain. Returns the reason, for the start-up line,
    and the note saying what to do.
    """
    from nextmove.engine.online import served_run

    run = served_run(store)
    if run is None or run.playbook_hash == playbook.content_hash():
        return None
    server_playbook = f"{playbook_path}" if playbook_path is not None else "nextmove's built-in default"
    reason = f"the store's run to serve, {run.run_id}, was made under another playbook than the server's"
    looked = _run_playbook_file(run)[1] if playbook_path is None else ""
    note = (
        f"run {run.run_id} was made under the playbook with hash {run.playbook_hash}; the server's is "
        f"{server_playbook} (hash {playbook.content_hash()}){looked}, "
        "so no run is served: decisions answer 409. Restart "
        "with --playbook FILE, the playbook that run used (or --book BOOK, whose playbook.toml it is), or start a "
        "run under this playbook (POST /v1/runs with --book, or `nextmove run`)"
    )
    return reason, note


def check_port_free(host: str, port: int) -> None:
    """Raise a :class:`ConfigError` if ``host:port`` cannot be listened on (in use, or not allowed)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except OSError as exc:
        raise ConfigError(
            f"--host {host}: cannot be resolved ({exc.strerror or exc}); give a host name or IP"
        ) from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"port {port} is in use on {host}: pass --port with a free one (or stop what listens there)"
                ) from None
            raise ConfigError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}; pass another --port or --host"
            ) from None
