"""The web client as the gateway serves it: its pages from memory (revalidated, their
import map allowed by hash in the CSP) and its static files (hashed URLs cached for a year,
plain ones for five minutes)."""

from __future__ import annotations

from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from parley.gateway.answers import error_response
from parley.gateway.assets import Assets, Page

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "font-src 'self'; connect-src 'self'; media-src 'self' blob:; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
PAGES = {
    "/": "chat.html",
    "/chat": "chat.html",
    "/login": "login.html",
    "/register": "register.html",
    "/reset-password": "reset.html",
    "/verify-email": "reset.html",
}
# Pages whose path carries a value: `/invite/{code}` (the client reads it from the URL).
PAGE_PREFIXES = {"/invite/": "invite.html"}
SERVICE_WORKER = "sw.js"
_PAGE_CACHE = b"no-cache"
_STATIC_CACHE = b"public, max-age=300"
_HASHED_CACHE = b"public, max-age=31536000, immutable"


class WebClient:
    """The pages and static files under `static_dir` (parley/web)."""

    def __init__(self, static_dir: Path) -> None:
        self._static = StaticFiles(directory=static_dir, check_dir=False)
        self.assets = Assets(static_dir)
        self.pages = {
            name: self.assets.render_page(name)
            for name in set(PAGES.values()) | set(PAGE_PREFIXES.values())
            if (static_dir / name).is_file()
        }

    async def page(self, request: Request) -> Response:
        path = request.url.path
        name = PAGES.get(path) or next(
            (page for prefix, page in PAGE_PREFIXES.items() if path.startswith(prefix)), ""
        )
        page = self.pages.get(name)
        if page is None:
            return error_response(404, "Not found", "not_found")
        return _page_response(page, request.headers.get("if-none-match"))

    async def static_files(self, scope: Scope, receive: Receive, send: Send) -> None:
        resolved = self.assets.resolve(scope["path"].removeprefix("/static").lstrip("/"))
        if resolved is None:  # a hash from another deploy: never answer with other content
            response = error_response(404, "Not found", "not_found")
            response.headers["cache-control"] = "no-store"
        else:
            path, hashed = resolved
            cache = _HASHED_CACHE if hashed else _STATIC_CACHE
            response = await self._serve_file(path, scope, cache)
        await response(scope, receive, send)

    async def _serve_file(self, path: str, scope: Scope, cache: bytes) -> Response:
        if scope["method"] not in ("GET", "HEAD"):
            return error_response(405, "Method not allowed", "method_not_allowed")
        try:
            response = await self._static.get_response(path, scope)
        except HTTPException:
            return error_response(404, "Not found", "not_found")
        if response.status_code in (200, 304):
            response.headers["cache-control"] = cache.decode()
            if path == SERVICE_WORKER:  # it controls the pages (/chat), not only /static/
                response.headers["service-worker-allowed"] = "/"
        return response


def _page_response(page: Page, if_none_match: str | None) -> Response:
    """A page from memory: revalidated every time (no-cache), its import map allowed by hash."""
    headers = {"cache-control": _PAGE_CACHE.decode(), "etag": page.etag}
    if page.script_hash:
        headers["content-security-policy"] = CSP.replace(
            "script-src 'self'", f"script-src 'self' '{page.script_hash}'"
        )
    if if_none_match == page.etag:
        return Response(status_code=304, headers=headers)
    return Response(page.body, media_type="text/html; charset=utf-8", headers=headers)
