"""The express lane of ``POST /v1/decide``: a well-formed call with a recognised key, without the framework's layers.

At a few hundred decisions a second the framework's work per request (the middleware chain,
routing, the request object, the dependency graph) cost as much CPU as the decision itself, and
the event loop that does it is shared by every request. The lane answers the common call
directly: a JSON body within the size limit, a key verified lately (see
:meth:`KeyVerifier.cached`), a role that may decide. It validates the body with the same
schema, decides with the route's own code (:func:`decide_now`), writes the same audit entry and
answers a refusal as the error handler and the audit middleware would.
Anything else (no key, an unknown one, a body that is not valid, a chunked or large body) goes
down the normal path with the body it has read, so every refusal is the route's own. The
OpenAPI document, which comes from the route, does not change.
"""

from __future__ import annotations

import json

from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nextmove.api.audit import DENIED_STATUSES, send_unaudited
from nextmove.api.auth import Principal
from nextmove.api.errors import nextmove_error_response
from nextmove.api.routes import decide_now, decide_resource
from nextmove.api.schemas import DecideIn
from nextmove.api.service import Services
from nextmove.errors import NextmoveError
from nextmove.store import AuditEntry

PATH = "/v1/decide"
_JSON = b"application/json"


class DecideExpressLane:
    """ASGI middleware: answers ``POST /v1/decide`` itself when it can, else hands the request on unchanged."""

    def __init__(self, app: ASGIApp, services: Services, max_body_bytes: int) -> None:
        self.app = app
        self.services = services
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST" or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        principal, length = self._screen(scope)
        if principal is None or length is None or length > self.max_body_bytes:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        messages: list[Message] = []
        complete = False
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                complete = True
                break
        raw = b"".join(chunks)
        body = _parse(raw) if complete and len(raw) == length else None
        if body is None:
            await self.app(scope, _replay(messages, receive), send)
            return
        ids = [item.account_id for item in body.items()]
        entry = AuditEntry(
            action="change",
            method="POST",
            path=PATH,
            status=200,
            key_id=principal.key_id,
            role=principal.role,
            resource=decide_resource(ids),
            detail={"accounts": len(ids)},
        )
        try:
            answer = await decide_now(self.services, principal, body, entry)
        except NextmoveError as exc:
            # Nothing was logged: answered and audited as the route's error handler and audit middleware do,
            # a refusal the trail does not show included.
            if await self._audit_refusal(entry, exc.http_status):
                await nextmove_error_response(exc, self.services.store.url)(scope, receive, send)
            else:
                await send_unaudited(send)
            return
        except Exception:
            await self._audit_refusal(entry, 500)  # answered 500 written or not, as by the audit middleware
            raise
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                # As the route's Response(answer, media_type="application/json") has them.
                "headers": [(b"content-length", str(len(answer)).encode()), (b"content-type", _JSON)],
            }
        )
        await send({"type": "http.response.body", "body": answer})

    def _screen(self, scope: Scope) -> tuple[Principal | None, int | None]:
        """The principal, if its key was verified lately and it may decide, and the declared body length."""
        key: str | None = None
        bearer: bytes | None = None
        header_key: bytes | None = None
        length: int | None = None
        content_type: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"authorization" and bearer is None:
                bearer = value
            elif name == b"x-api-key" and header_key is None:
                header_key = value
            elif name == b"content-length" and length is None:
                length = int(value) if value.isdigit() else -1
            elif name == b"content-type" and content_type is None:
                content_type = value
        if content_type != _JSON or length is None or length < 0:
            return None, None
        if bearer is not None:
            scheme, _, credentials = bearer.decode("latin-1").partition(" ")
            if scheme.lower() != "bearer" or not credentials.strip():
                return None, None
            key = credentials
        elif header_key is not None:
            key = header_key.decode("latin-1")
        if not key:
            return None, None
        principal = self.services.verifier.cached(key)
        if principal is None:
            return None, None
        try:
            principal.require("decide")
        except NextmoveError:
            return None, None
        return principal, length

    async def _audit_refusal(self, entry: AuditEntry, status: int) -> bool:
        # Committed before the refusal is answered, as the audit middleware does on the normal path; whether it was.
        action = "denied" if status in DENIED_STATUSES else "change-refused"
        return await self.services.audit.write(
            AuditEntry(
                action=action,
                method=entry.method,
                path=entry.path,
                status=status,
                key_id=entry.key_id,
                role=entry.role,
                resource=entry.resource,
                detail=entry.detail,
            )
        )


def _parse(raw: bytes) -> DecideIn | None:
    # As the route reads it (JSON, then the schema); None sends the request down the normal path,
    # which answers what is wrong. JSON nested deeper than the parser recurses (1,000 levels of
    # ``signals``) raises RecursionError, not ValueError: it escaped as a 500, unaudited.
    try:
        return DecideIn.model_validate(json.loads(raw))
    except (ValueError, ValidationError, RecursionError):
        return None


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
