"""``nextmove serve``: the REST API (decisions, accounts, recommendations, feedback, runs) under uvicorn."""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from typing import Annotated

import typer

from nextmove.cli._common import console, handle_errors, status
from nextmove.cli.commands import PlaybookOpt, resolve_playbook_path
from nextmove.errors import ConfigError
from nextmove.playbook.loader import load_playbook
from nextmove.settings import Settings

StoreOpt = Annotated[
    str | None,
    typer.Option("--store", help="Store URL; default: NEXTMOVE_STORE_URL or the workspace's SQLite file."),
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
    playbook: PlaybookOpt = None,
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
        Path | None, typer.Option("--out-dir", help="Folder for the files of runs started through the API.")
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

    Every request but /healthz and /readyz needs an API key: create one with
    `nextmove keys create --role admin`. The OpenAPI document is at /openapi.json, the docs at /docs.
    A port already in use (or not allowed) is refused at once, with exit code 2.
    """
    check_port_free(host, port)  # before loading the book: uvicorn would say it only after, in its own log
    import uvicorn

    from nextmove.api import ApiConfig, create_app
    from nextmove.api.service import book_stamp
    from nextmove.book.validate import load_book

    if log_level not in ("critical", "error", "warning", "info", "debug"):
        raise ConfigError(f"--log-level must be one of critical, error, warning, info, debug; got {log_level!r}")
    settings = Settings()
    pb = load_playbook(resolve_playbook_path(book, playbook) if book is not None else playbook)
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
    served = app.state.services.served_run()
    console.print(
        f"nextmove API on http://{host}:{port} (store {app.state.services.store.url}; "
        f"serving {'run ' + served.run_id if served else 'no run yet'}); OpenAPI at /openapi.json"
    )
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=log_level == "debug")


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
