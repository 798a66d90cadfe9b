"""The web dashboard: one static page (HTML, JS, CSS shipped in the package) that talks to the API over HTTP.

``nextmove serve`` mounts it beside the API (:func:`mount_dashboard`): the page at ``/``, its
script and style sheet under ``/dashboard/``. It reads nothing of the server itself: the browser
asks for an API key, keeps it in ``sessionStorage`` and calls ``/v1/…`` with it, so the key's role
scopes what it shows exactly as it scopes the API.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Final

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

PAGE_PATH: Final[str] = "/"
"""Where the dashboard's page is served."""
ASSETS_PREFIX: Final[str] = "/dashboard"
"""Where its script and style sheet are served."""

CONTENT_SECURITY_POLICY: Final[str] = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
)
"""Scripts, styles and calls from this origin only, no inline script or style: text the API returns
(an account's name, a receipt) can never run, even if it were ever written into the page as HTML."""

SECURITY_HEADERS: Final[dict[str, str]] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # The page is the same for everyone, but an old script beside a new page would break it.
    "Cache-Control": "no-cache",
}

ASSETS: Final[dict[str, tuple[str, str]]] = {
    "index.html": ("text/html; charset=utf-8", PAGE_PATH),
    "dashboard.js": ("text/javascript; charset=utf-8", f"{ASSETS_PREFIX}/dashboard.js"),
    "dashboard.css": ("text/css; charset=utf-8", f"{ASSETS_PREFIX}/dashboard.css"),
}
"""Each file of the dashboard: its media type and the path it is served at."""


def asset_text(name: str) -> str:
    """The text of one of the dashboard's files (:data:`ASSETS`), as shipped in the package.

    Examples
    --------
    >>> "<table" in asset_text("index.html")
    True
    """
    if name not in ASSETS:
        raise KeyError(f"no dashboard file {name!r} (files: {', '.join(ASSETS)})")
    return files(__package__).joinpath("static", name).read_text(encoding="utf-8")


def dashboard_routes() -> list[Route]:
    """The routes serving the dashboard's files (``GET`` and ``HEAD``), each with :data:`SECURITY_HEADERS`.

    The files are read once, here: they are part of the installed package and never change while it runs.
    """
    routes = []
    for name, (media_type, path) in ASSETS.items():
        body = asset_text(name).encode("utf-8")

        async def endpoint(_request: Request, body: bytes = body, media_type: str = media_type) -> Response:
            return Response(body, media_type=media_type, headers=SECURITY_HEADERS)

        routes.append(Route(path, endpoint, methods=["GET", "HEAD"], include_in_schema=False))
    routes.append(Route("/favicon.ico", _no_icon, methods=["GET", "HEAD"], include_in_schema=False))
    return routes


async def _no_icon(_request: Request) -> Response:
    """No icon, said plainly: every browser asks for ``/favicon.ico``, and a 404 reads as an error in its console."""
    return Response(status_code=204, headers=SECURITY_HEADERS)


def mount_dashboard(app: Starlette) -> None:
    """Serve the dashboard from ``app`` (the API application of ``nextmove serve``).

    Examples
    --------
    >>> app = Starlette()
    >>> mount_dashboard(app)
    >>> sorted(route.path for route in app.routes)
    ['/', '/dashboard/dashboard.css', '/dashboard/dashboard.js', '/favicon.ico']
    """
    app.router.routes.extend(dashboard_routes())
