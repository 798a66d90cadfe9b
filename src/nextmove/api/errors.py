"""Every error as JSON with a code and a message that says what to fix; the body-size limit."""

from __future__ import annotations

import json
import logging
import urllib.parse
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nextmove.errors import NextmoveError, NotFoundError, NotInStoreError

logger = logging.getLogger("nextmove.api")


class UnauthenticatedError(NextmoveError):
    """No API key, or one the store does not know (or has revoked)."""

    exit_code = 2
    http_status = 401
    code = "unauthenticated"


class ForbiddenError(NextmoveError):
    """The key's role may not use this endpoint."""

    exit_code = 2
    http_status = 403
    code = "forbidden"


class TooManyAuthFailuresError(NextmoveError):
    """A client made too many requests without a valid key lately: a 429, with the seconds to wait."""

    exit_code = 2
    http_status = 429
    code = "too_many_requests"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PayloadTooLargeError(NextmoveError):
    """The request body is over the server's limit."""

    exit_code = 2
    http_status = 413
    code = "payload_too_large"


class NotReadyError(NextmoveError):
    """The server cannot serve this as it was started (e.g. without a book): a 409, not a 5xx, since
    retrying will not help until the server is started otherwise."""

    exit_code = 1
    http_status = 409
    code = "not_ready"


class NotImplementedYetError(NextmoveError):
    """The endpoint exists but what it needs is not part of this nextmove yet."""

    exit_code = 1
    http_status = 501
    code = "not_implemented"


class InvalidRequestError(NextmoveError):
    """The request is well-formed but names things the server does not have; ``problems`` says which, per field."""

    exit_code = 2
    http_status = 422
    code = "invalid_request"

    def __init__(self, message: str, problems: Sequence[dict[str, Any]] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


class AccountsNotFoundError(NotFoundError):
    """Accounts of a request that are not there to act on (unknown, gone, not visible to the key): a 404 whose
    ``problems`` name each account and where the request has it (``accounts.3.account_id``)."""

    def __init__(self, message: str, problems: Sequence[dict[str, Any]] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


HTTP_CODES: dict[int, tuple[str, str]] = {
    400: ("bad_request", "the request is malformed; check the JSON body and the query string"),
    404: ("not_found", "no such endpoint; GET /openapi.json lists them"),
    405: ("method_not_allowed", "this endpoint does not take this method; GET /openapi.json lists the methods"),
    413: ("payload_too_large", "the request body is too large"),
    415: ("unsupported_media_type", "send the body as JSON with Content-Type: application/json"),
}


HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
"""The methods a 405's ``Allow`` header may name."""

API_LISTERS: dict[str, str] = {"run": "GET /v1/runs lists them"}
"""How an API client finds the records of a kind, by the ``what`` of :class:`NotInStoreError`."""


def public_message(exc: NextmoveError, store_url: str | None = None) -> str:
    """The message of ``exc`` for an API client: never the store's URL, nor a Python method to call.

    Examples
    --------
    >>> from nextmove.errors import NotInStoreError
    >>> public_message(NotInStoreError("run", "bogus", store_url="sqlite:///s.db", lister="list_runs()"))
    "no run 'bogus'; GET /v1/runs lists them"
    """
    if isinstance(exc, NotInStoreError):
        hint = API_LISTERS.get(exc.what)
        return f"no {exc.what} {exc.key!r}" + (f"; {hint}" if hint else "")
    message = str(exc)
    if store_url:
        message = message.replace(f" at {store_url}", "").replace(store_url, "the server's store")
    return message


def error_body(
    status: int, code: str, message: str, problems: Sequence[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The JSON body of every error: ``{"status", "code", "message"[, "problems"]}``.

    Examples
    --------
    >>> error_body(404, "not_found", "no account 'a'")
    {'status': 404, 'code': 'not_found', 'message': "no account 'a'"}
    """
    body: dict[str, Any] = {"status": status, "code": code, "message": message}
    if problems:
        body["problems"] = list(problems)
    return body


def error_response(
    status: int,
    code: str,
    message: str,
    problems: Sequence[dict[str, Any]] | None = None,
    *,
    retry_after_s: int | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """An error as a JSON response, with ``headers`` (a 401 also says how to authenticate; ``Retry-After`` if given)."""
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="nextmove"'
    if retry_after_s is not None:
        headers["Retry-After"] = str(retry_after_s)
    return JSONResponse(error_body(status, code, message, problems), status_code=status, headers=headers or None)


def nextmove_error_response(exc: NextmoveError, store_url: str | None = None) -> JSONResponse:
    """The answer to ``exc``: its status and code, its public message and, if it has them, its ``problems``.

    The one mapping of nextmove's errors, for the error handler and the express lane of ``POST /v1/decide``.

    Examples
    --------
    >>> response = nextmove_error_response(InvalidRequestError("bad", [{"field": "a", "problem": "no a"}]))
    >>> response.status_code, response.body.decode()
    (422, '{"status":422,"code":"invalid_request","message":"bad","problems":[{"field":"a","problem":"no a"}]}')
    """
    problems = exc.problems if isinstance(exc, InvalidRequestError | AccountsNotFoundError) else None
    retry_after_s = exc.retry_after_s if isinstance(exc, TooManyAuthFailuresError) else None
    return error_response(
        exc.http_status, exc.code, public_message(exc, store_url), problems, retry_after_s=retry_after_s
    )


def _where(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) if parts else "body"


def validation_problems(exc: RequestValidationError) -> list[dict[str, Any]]:
    """One ``{"field", "problem"}`` per validation error, in plain words."""
    out = []
    for err in exc.errors():
        loc = err.get("loc", ())
        where = _where(loc)
        if loc and loc[0] in ("query", "path", "header"):
            where = f"{loc[0]} parameter {'.'.join(str(p) for p in loc[1:])}"
        problem = str(err.get("msg", "invalid")).removeprefix("Value error, ")  # a validator's own words
        out.append({"field": where, "problem": problem})
    return out


def json_syntax_error(exc: RequestValidationError) -> str | None:
    """What is wrong with a body that is not JSON at all, or None if the body parsed.

    The framework reports such a body as a validation error located at ``("body", <offset>)``;
    it is a malformed request (400), not a field that does not match the API (422).

    Examples
    --------
    >>> error = {"type": "json_invalid", "loc": ("body", 14), "msg": "JSON decode error"}
    >>> exc = RequestValidationError([{**error, "ctx": {"error": "Expecting value"}}], body='{"account_id":')
    >>> print(json_syntax_error(exc))
    the request body is not valid JSON: Expecting value at line 1, column 15; send a JSON object (see GET /openapi.json)
    """
    for err in exc.errors():
        if err.get("type") != "json_invalid":
            continue
        reason = str((err.get("ctx") or {}).get("error") or "it cannot be parsed")
        loc = err.get("loc", ())
        pos = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
        doc = exc.body if isinstance(exc.body, str) else None
        where = ""
        if pos is not None and doc is not None:
            line = doc.count("\n", 0, pos) + 1
            column = pos - doc.rfind("\n", 0, pos)
            where = f" at line {line}, column {column}"
        elif pos is not None:
            where = f" at character {pos}"
        return f"the request body is not valid JSON: {reason}{where}; send a JSON object (see GET /openapi.json)"
    return None


MAX_JSON_DEPTH = 100
"""JSON nested this deep is always read (the parser gives up some way past it); no request of the API needs a tenth."""


def unreadable_body(exc: StarletteHTTPException, content_type: str | None) -> str | None:
    """What to fix in a body the framework could not read as JSON although it parses as no error: None if not so.

    The framework answers both a body nested too deep for the parser (valid JSON, a thousand levels of
    ``[``) and one that is not UTF-8 (``charset=latin-1``) with a 400 saying only "There was an error
    parsing the body"; the error it wraps says which.

    Examples
    --------
    >>> try:
    ...     raise StarletteHTTPException(400, "There was an error parsing the body") from RecursionError()
    ... except StarletteHTTPException as exc:
    ...     print(unreadable_body(exc, "application/json"))  # doctest: +ELLIPSIS
    the request body's JSON nests too deep to be read: send JSON nested at most 100 levels deep ...
    """
    if exc.status_code != 400:
        return None
    cause = exc.__cause__
    if isinstance(cause, RecursionError):
        return (
            f"the request body's JSON nests too deep to be read: send JSON nested at most {MAX_JSON_DEPTH} levels deep "
            "(no request of this API needs more than a dozen; a feedback event's payload nests at most 8)"
        )
    if isinstance(cause, UnicodeDecodeError):
        charset = ""
        if content_type and "charset=" in content_type.lower():
            declared = content_type.lower().split("charset=", 1)[1].split(";")[0].strip().strip('"')
            if declared.replace("-", "").replace("_", "") != "utf8":
                charset = f" (the Content-Type says charset={declared}, which the API does not read)"
        return (
            f"the request body is not UTF-8: byte {cause.object[cause.start : cause.start + 1]!r} at offset "
            f"{cause.start} cannot be decoded{charset}; send the JSON encoded as UTF-8"
        )
    return None


def trailing_slash_hint(request: Request) -> str | None:
    """For a path ending in ``/`` that names no endpoint: the message naming the endpoint without it, if there is one.

    No redirect is answered (its ``Location`` would be built from the client's ``Host`` header): the
    client is told which path to call.
    """
    path = request.url.path.rstrip("/")
    if not path:
        return None
    scope = {**request.scope, "path": path}
    if any(route.matches(scope)[0] is not Match.NONE for route in request.app.router.routes):
        return f"no endpoint {request.url.path}: the paths of the API end without '/': call {path}"
    return None


def allowed_methods(request: Request) -> list[str]:
    """The methods the request's path takes, for a 405's ``Allow`` header.

    Each method of a path is a route of its own (``GET`` and ``POST /v1/runs``, ``GET`` and ``HEAD
    /healthz``), and Starlette's 405 names only the first route whose path matched: this asks the
    application's routes, included routers too, which of the methods each would take.
    """
    routes = request.app.router.routes
    return [
        method
        for method in HTTP_METHODS
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)
    ]


def install_error_handlers(app: FastAPI) -> None:
    """Map nextmove's errors, validation errors and HTTP errors to JSON; anything else to a 500 JSON error."""

    @app.exception_handler(NextmoveError)
    async def _nextmove(request: Request, exc: NextmoveError) -> JSONResponse:
        services = getattr(request.app.state, "services", None)
        return nextmove_error_response(exc, None if services is None else services.store.url)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        not_json = json_syntax_error(exc)
        if not_json is not None:
            return error_response(400, "bad_request", not_json)
        problems = validation_problems(exc)
        summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        message = f"the request does not match the API: {summary}{more}; see GET /openapi.json"
        return error_response(422, "invalid_request", message, problems)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        unread = unreadable_body(exc, request.headers.get("content-type"))
        if unread is not None:
            return error_response(400, "bad_request", unread)
        if exc.status_code == 404 and request.url.path.endswith("/"):
            slash = trailing_slash_hint(request)
            if slash is not None:
                return error_response(404, "not_found", slash)
        code, hint = HTTP_CODES.get(exc.status_code, ("http_error", "see GET /openapi.json"))
        detail = (
            exc.detail if isinstance(exc.detail, str) and exc.detail not in ("Not Found", "Method Not Allowed") else ""
        )
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            allow = ", ".join(allowed_methods(request))
            headers["Allow"] = allow
            hint = f"this endpoint takes {allow} only; GET /openapi.json lists the methods"
        message = f"{detail}; {hint}" if detail else hint
        return error_response(exc.status_code, code, message, headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error answering %s %s", request.method, request.url.path)
        return error_response(
            500,
            "internal_error",
            f"nextmove failed unexpectedly ({type(exc).__name__}); the server log has the details — please report it",
        )


class JsonBodyMiddleware:
    """Refuse a request body that is not declared JSON with a 415 JSON error that says what to send.

    Without it a body sent without ``Content-Type: application/json`` (curl's ``-d`` sends a form
    type) reached the schema as text and was refused with "Input should be a valid dictionary".
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH") or not _has_body(scope):
            await self.app(scope, receive, send)
            return
        content_type = next((v for k, v in scope.get("headers", []) if k == b"content-type"), b"")
        media = content_type.split(b";")[0].strip().lower()
        if media == b"application/json" or media.endswith(b"+json"):
            await self.app(scope, receive, send)
            return
        shown = media.decode("latin-1") or "none"
        response = error_response(
            415,
            "unsupported_media_type",
            f"the body's Content-Type is {shown}: send the body as JSON with the header Content-Type: application/json",
        )
        await response(scope, receive, send)


class Utf8UrlMiddleware:
    """Refuse a path or query string that is not UTF-8 once percent-decoded with a 422 ``invalid_request``.

    The server decodes the path (and the framework the query) with every invalid byte sequence
    replaced by U+FFFD: ``/v1/accounts/%C0%AE%C0%AE`` was looked up as the id ``'\ufffd' * 4``
    and answered 404 naming it, while text with invalid Unicode is refused with a 422 everywhere
    else (``clean_text``). A U+FFFD sent as its own UTF-8 bytes (``%EF%BF%BD``) is valid and passes.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for where, raw in (("path", scope.get("raw_path")), ("query string", scope.get("query_string"))):
                if raw and not utf8_once_decoded(raw if where == "path" else raw.replace(b"+", b" ")):
                    field = "path" if where == "path" else "query"
                    response = error_response(
                        422,
                        "invalid_request",
                        f"the request's {where} is not valid UTF-8 once percent-decoded: percent-encode text as "
                        "its UTF-8 bytes (Ü as %C3%9C), as urllib.parse.quote or encodeURIComponent do",
                        [{"field": field, "problem": "not valid UTF-8 once percent-decoded"}],
                    )
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def utf8_once_decoded(raw: bytes) -> bool:
    """Whether percent-decoding ``raw`` gives valid UTF-8 (no lone surrogates either).

    Examples
    --------
    >>> utf8_once_decoded(b"/v1/accounts/%C3%9C"), utf8_once_decoded(b"/v1/accounts/%C0%AE")
    (True, False)
    """
    try:
        urllib.parse.unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _has_body(scope: Scope) -> bool:
    declared = _content_length(scope)
    if declared is not None:
        return declared > 0
    return any(k == b"transfer-encoding" for k, _ in scope.get("headers", []))


class BodyLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` with a 413 JSON error, declared or streamed.

    A declared ``Content-Length`` over the limit is refused before reading; a chunked body is
    counted as it arrives and refused as soon as it passes the limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send)
            return
        seen = 0
        started = False
        refused = False

        async def counted_receive() -> Message:
            nonlocal seen, refused, started
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # Answer now; the app then sees the client gone and whatever it sends is dropped.
                    refused = True
                    if not started:
                        started = True
                        await self._refuse(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, counted_receive, guarded_send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            error_body(
                413,
                "payload_too_large",
                f"the request body is over {self.max_bytes:,} bytes; send fewer items per request "
                "(e.g. split feedback into batches of at most 1,000 events)",
            )
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
