"""The FastAPI application: ``create_app(config)``; ``nextmove serve`` runs it under uvicorn."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from nextmove._version import __version__
from nextmove.api.audit import AuditMiddleware
from nextmove.api.auth import presented_key
from nextmove.api.errors import BodyLimitMiddleware, JsonBodyMiddleware, Utf8UrlMiddleware, install_error_handlers
from nextmove.api.express import DecideExpressLane
from nextmove.api.routes import router
from nextmove.api.service import ApiConfig, Services
from nextmove.errors import NextmoveError
from nextmove.store import SqlStore, Store

logger = logging.getLogger("nextmove.api")

DESCRIPTION = """\
Real-time decisions, accounts, recommendations and feedback of nextmove.

Every request but `/healthz` and `/readyz` needs an API key (`Authorization: Bearer nm_…`).
Roles: `admin` (everything), `manager` (a team's accounts), `csm` (own accounts), `service`
(decide and feedback only). Every error is JSON: `{"status", "code", "message"}`, the message
saying what to fix.
"""


def create_app(config: ApiConfig, *, store: Store | None = None) -> FastAPI:
    """The API application over ``config`` (and ``store``, if given, instead of opening ``config.store_url``).

    The services (store, decider, audit writer) are made at once, so that a bad store URL or
    playbook, or a store that cannot be written (a read-only file: every request's audit entry
    would fail), fails here rather than on the first request; background threads start with
    the application's lifespan.

    Examples
    --------
    >>> from nextmove.playbook.loader import load_playbook
    >>> app = create_app(ApiConfig(playbook=load_playbook(), store_url="sqlite://"))
    >>> sorted(p for p in app.openapi()["paths"] if p.startswith("/v1/"))[:3]
    ['/v1/accounts/{account_id}', '/v1/audit', '/v1/decide']
    """
    services = Services(config, store=store)
    _check_store_writable(services, owned=store is None)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        services.start()
        try:
            yield
        finally:
            services.close()

    app = FastAPI(
        title="nextmove",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # A path with a trailing '/' is a 404 naming the path without it, not a redirect whose Location
        # is built from the client's Host header.
        redirect_slashes=False,
    )
    app.state.services = services
    install_error_handlers(app)
    app.include_router(router)
    app.add_middleware(FreshBookForLift, services=services)
    # Outermost last: the size limit refuses a body before anything reads it, and the audit
    # middleware, outside it, audits that refusal too (as every other, with a valid key); the
    # express lane answers the common POST /v1/decide before any of them (it keeps to the limit
    # and audits).
    app.add_middleware(JsonBodyMiddleware)
    app.add_middleware(Utf8UrlMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.max_body_bytes)
    app.add_middleware(AuditMiddleware, writer=services.audit, verifier=services.verifier)
    app.add_middleware(DecideExpressLane, services=services, max_body_bytes=config.max_body_bytes)
    return app


def _check_store_writable(services: Services, *, owned: bool) -> None:
    """Refuse a store that takes no writes (the CLI exits 3): a server over it would answer requests with errors.

    The store is closed if the server opened it (``owned``).
    """
    if not isinstance(services.store, SqlStore):
        return
    try:
        services.store.check_writable()
    except BaseException:
        if owned:
            services.store.close()
        raise


class FreshBookForLift:
    """ASGI middleware: before ``GET /v1/lift`` of a key that may ask for it, read the book again if it changed.

    Lift counts the outcomes in the book: measured on the book as the server read it at start-up,
    a server left running for weeks would report none of the outcomes since. The route itself reads
    ``services.config.book``; this reads it again first (a folder's files when they changed, a
    database's when the copy held is older than ``refresh_s``). Only for a key that may measure
    lift, so that no anonymous caller can make the server read its book. ``POST /v1/runs`` reads the
    book again in its run (:meth:`~nextmove.api.service.Services.fresh_book`).
    """

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and scope["path"] == "/v1/lift"
            and self.services.books is not None
            and await self._may_measure(scope)
        ):
            try:
                await run_in_threadpool(self.services.refresh_book, fresh=True)
            except Exception:  # the lift is still answered, on the book the server has
                logger.exception("could not read the book again before measuring lift")
        await self.app(scope, receive, send)

    async def _may_measure(self, scope: Scope) -> bool:
        headers = {name: value.decode("latin-1") for name, value in scope["headers"]}
        key = presented_key(headers.get(b"authorization"), headers.get(b"x-api-key"))
        verifier = self.services.verifier
        try:
            principal = verifier.cached(key)
            if principal is None:
                principal = await run_in_threadpool(verifier.authenticate, key)
            principal.require("lift")
        except NextmoveError:  # the route refuses it, as it would have
            return False
        return True
