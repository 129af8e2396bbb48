"""Content-hashed static URLs: hashes computed at start-up, pages rewritten to use them.

`/static/js/app.js` is also served as `/static/js/app.<hash>.js`, where the hash is the
first 12 hex digits of the file's SHA-256. Hashed URLs are cached for a year (immutable);
plain URLs for five minutes. Pages reference the hashed URLs, and an import map in each
page sends every ES module import (`./dom.js`, resolved to `/static/js/dom.js`) to its
hashed URL, so a browser never runs modules from two deploys together.
"""

from __future__ import annotations

import base64
import hashlib
import json
import mimetypes
import re
from dataclasses import dataclass
from pathlib import Path

HASH_LENGTH = 12
_HASHED = re.compile(r"^(?P<stem>.+)\.(?P<hash>[0-9a-f]{12})(?P<ext>\.[A-Za-z0-9]+)$")
_STATIC_REF = re.compile(r'(?P<attr>\b(?:src|href)=")(?P<url>/static/[^"?#]+)"')
_IMPORTMAP_SLOT = "<!-- importmap -->"
# What pages share, kept once: `<!-- what: parley/web/partials/x.html -->` stands for the
# partial's text, its first line indented as the marker (every page's head, the auth card).
_PARTIAL = re.compile(r"<!-- [a-z ]+: parley/web/(?P<path>partials/[a-z-]+\.html) -->")
_SKIPPED_SUFFIXES = (".html",)


@dataclass(frozen=True, slots=True)
class Page:
    """A page as served: its bytes, the CSP source that allows its import map, an ETag."""

    body: bytes
    script_hash: str | None
    etag: str


class Assets:
    """The hashes of every file under the static directory, taken once at start-up."""

    def __init__(self, root: Path) -> None:
        self.root = root
        mimetypes.add_type("application/manifest+json", ".webmanifest")
        self.hashes: dict[str, str] = {}
        if root.is_dir():
            for path in sorted(root.rglob("*")):
                relative = path.relative_to(root).as_posix()
                if path.is_file() and not relative.endswith(_SKIPPED_SUFFIXES):
                    self.hashes[relative] = _digest(path.read_bytes())[:HASH_LENGTH]

    def url(self, relative: str) -> str:
        """The hashed URL of a static file, or its plain URL when it is unknown."""
        digest = self.hashes.get(relative)
        if digest is None:
            return f"/static/{relative}"
        stem, dot, ext = relative.rpartition(".")
        return f"/static/{stem}.{digest}.{ext}" if dot else f"/static/{relative}.{digest}"

    def resolve(self, relative: str) -> tuple[str, bool] | None:
        """(file path, hashed?) for a request under /static/; None for a stale hash."""
        match = _HASHED.match(relative)
        if match is None or relative in self.hashes:
            return relative, False
        plain = match["stem"] + match["ext"]
        if self.hashes.get(plain) != match["hash"]:
            return None
        return plain, True

    def import_map(self) -> str:
        modules = {
            f"/static/{path}": self.url(path) for path in self.hashes if path.endswith(".js")
        }
        return json.dumps({"imports": modules}, separators=(",", ":"), sort_keys=True)

    def render_page(self, name: str) -> Page:
        """The page with its partials, hashed static URLs and, in place of its slot, the
        import map."""
        html = (self.root / name).read_text(encoding="utf-8")
        html = _PARTIAL.sub(lambda m: self._partial(m["path"]), html)
        html = _STATIC_REF.sub(lambda m: f'{m["attr"]}{self._page_url(m["url"])}"', html)
        script_hash = None
        if _IMPORTMAP_SLOT in html:
            content = self.import_map()
            digest = hashlib.sha256(content.encode()).digest()
            script_hash = "sha256-" + base64.b64encode(digest).decode()
            html = html.replace(_IMPORTMAP_SLOT, f'<script type="importmap">{content}</script>', 1)
        body = html.encode("utf-8")
        return Page(body, script_hash, f'"{_digest(body)[:16]}"')

    def _partial(self, relative: str) -> str:
        return (self.root / relative).read_text(encoding="utf-8").strip()

    def _page_url(self, url: str) -> str:
        return self.url(url.removeprefix("/static/"))


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
