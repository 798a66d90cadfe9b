"""The FastAPI application: ``create_app(config)``; ``nextmove serve`` runs it under uvicorn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from nextmove._version import __version__
from nextmove.api.audit import AuditMiddleware
from nextmove.api.errors import BodyLimitMiddleware, JsonBodyMiddleware, install_error_handlers
from nextmove.api.express import DecideExpressLane
from nextmove.api.routes import router
from nextmove.api.service import ApiConfig, Services
from nextmove.store import Store

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
    playbook fails here rather than on the first request; background threads start with the
    application's lifespan.

    Examples
    --------
    >>> from nextmove.playbook.loader import load_playbook
    >>> app = create_app(ApiConfig(playbook=load_playbook(), store_url="sqlite://"))
    >>> sorted(p for p in app.openapi()["paths"] if p.startswith("/v1/"))[:3]
    ['/v1/accounts/{account_id}', '/v1/audit', '/v1/decide']
    """
    services = Services(config, store=store)

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
    )
    app.state.services = services
    install_error_handlers(app)
    app.include_router(router)
    # Outermost last: the size limit refuses a body before anything reads it; the express lane
    # answers the common POST /v1/decide before any of them (it keeps to the limit and audits).
    app.add_middleware(JsonBodyMiddleware)
    app.add_middleware(AuditMiddleware, writer=services.audit)
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.max_body_bytes)
    app.add_middleware(DecideExpressLane, services=services, max_body_bytes=config.max_body_bytes)
    return app
