"""The operator console (``/console``) and the API docs (``/docs``): static files served by the
queries function of Ferry's own API, in AWS (API Gateway) and on the local stack alike.

Everything the browser loads is in ``static/`` (no CDN, no third-party request): the console's own
HTML, JS and CSS (no build step; charts are SVG drawn by ``console.js``) and Swagger UI
(``static/docs/``, swagger-ui-dist 5.35.0 from npm, Apache-2.0, its licence beside it).

The pages are public (they hold no data); every API call they make carries the API key the user
typed, kept in ``sessionStorage`` only and sent as ``x-api-key``. Responses carry a strict
Content-Security-Policy (``self`` only, no inline script), no cookies are set or read.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

STATIC = Path(__file__).with_name("static")

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}

CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
"""The console's policy: nothing but this origin, no inline script or style attribute."""

DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
"""Swagger UI sets style attributes in its markup; its scripts are still this origin's only."""

SECTIONS = {"console": STATIC, "docs": STATIC / "docs"}
INDEX = {"console": "console.html", "docs": "docs.html"}


@cache
def _listing(section: str) -> frozenset[str]:
    folder = SECTIONS[section]
    return frozenset(p.name for p in folder.iterdir() if p.is_file() and p.suffix in CONTENT_TYPES)


def asset(section: str, name: str) -> tuple[str, str] | None:
    """(text, content type) of a file of ``section``, or None: only the files that are there
    (a name is never a path: no separators, no dot-files)."""
    if section not in SECTIONS or name.startswith(".") or name not in _listing(section):
        return None
    path = SECTIONS[section] / name
    return _read(str(path)), CONTENT_TYPES[path.suffix]


@cache
def _read(path: str) -> str:
    return Path(path).read_text(encoding="utf-8")


def headers(section: str, content_type: str) -> dict[str, str]:
    """Security and caching headers of every console / docs response."""
    return {
        "Content-Type": content_type,
        "Content-Security-Policy": DOCS_CSP if section == "docs" else CONSOLE_CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cache-Control": "no-cache",
    }


def register(app: Any) -> None:
    """Add the static routes to a Powertools resolver (the queries function): ``GET /`` (to the
    console), ``/console``, ``/console/<asset>``, ``/docs``, ``/docs/<asset>`` and ``/swagger``
    (the same docs page). Not in the OpenAPI document: they are pages, not API operations."""
    from aws_lambda_powertools.event_handler import Response

    def page(section: str, name: str) -> Response[str]:
        found = asset(section, name)
        if found is None:
            return Response(
                status_code=404,
                content_type="application/json",
                body='{"error": {"code": "not_found", "message": "no such file"}}',
            )
        text, content_type = found
        return Response(
            status_code=200,
            content_type=content_type,
            body=text,
            headers=headers(section, content_type),
        )

    @app.get("/", include_in_schema=False)
    def root():  # no return annotation: the schema generator cannot model Response
        return Response(
            status_code=302,
            content_type="text/plain",
            body="see console",
            headers={"Location": "console", "Cache-Control": "no-cache"},
        )

    @app.get("/console", include_in_schema=False)
    def console_index():
        return page("console", INDEX["console"])

    @app.get("/console/<asset_name>", include_in_schema=False)
    def console_asset(asset_name: str):
        return page("console", asset_name)

    @app.get("/docs", include_in_schema=False)
    def docs_index():
        return page("docs", INDEX["docs"])

    @app.get("/swagger", include_in_schema=False)
    def swagger_index():
        return page("docs", INDEX["docs"])

    @app.get("/docs/<asset_name>", include_in_schema=False)
    def docs_asset(asset_name: str):
        return page("docs", asset_name)
