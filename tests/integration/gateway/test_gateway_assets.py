"""Content-hashed static URLs: immutable caching, new URLs for changed files, import maps."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import RunningGateway, gateway_settings, start_gateway

PAGE = """<!doctype html><title>chat</title>
<link rel="stylesheet" href="/static/css/app.css">
<link rel="manifest" href="/static/manifest.webmanifest">
<!-- importmap -->
<script type="module" src="/static/js/app.js"></script>
"""


def _web(root: Path, dom: str = "export const x = 1;\n") -> Path:
    (root / "js").mkdir(parents=True, exist_ok=True)
    (root / "css").mkdir(exist_ok=True)
    for page in ("chat.html", "login.html", "register.html"):
        (root / page).write_text(PAGE)
    (root / "js" / "app.js").write_text("import { x } from './dom.js';\nconsole.log(x);\n")
    (root / "js" / "dom.js").write_text(dom)
    (root / "css" / "app.css").write_text("body { color: black; }\n")
    (root / "manifest.webmanifest").write_text('{"name": "Parley"}')
    return root


@pytest.fixture
def serve(tmp_path: Path) -> Any:
    started: list[RunningGateway] = []

    def start(root: Path) -> RunningGateway:
        settings = gateway_settings(tmp_path / "data", ["http://127.0.0.1:9"])
        running = start_gateway(settings, root)
        started.append(running)
        return running

    yield start
    for running in started:
        running.runner.stop()


def _client(running: RunningGateway) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=running.url, trust_env=False, timeout=10)


def _hashed(html: str, path: str) -> str:
    stem, ext = path.rsplit(".", 1)
    match = re.search(rf'"(/static/{re.escape(stem)}\.[0-9a-f]{{12}}\.{ext})"', html)
    assert match, f"{path} is not referenced by a hashed URL"
    return match[1]


async def test_pages_reference_hashed_urls_served_immutable(serve: Any, tmp_path: Path) -> None:
    running = serve(_web(tmp_path / "web"))
    async with _client(running) as http:
        page = await http.get("/chat")
        css_url = _hashed(page.text, "css/app.css")
        css = await http.get(css_url)
        plain = await http.get("/static/css/app.css")
    digest = hashlib.sha256(b"body { color: black; }\n").hexdigest()[:12]
    assert css_url == f"/static/css/app.{digest}.css"
    assert css.status_code == 200
    assert css.text == "body { color: black; }\n"
    assert css.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert plain.status_code == 200  # the plain URL still works, briefly cached
    assert plain.headers["cache-control"] == "public, max-age=300"
    assert page.headers["cache-control"] == "no-cache"
    assert 'src="/static/js/app.js"' not in page.text  # the entry module too
    assert _hashed(page.text, "js/app.js")
    assert _hashed(page.text, "manifest.webmanifest")


async def test_import_map_sends_every_module_to_its_hashed_url(serve: Any, tmp_path: Path) -> None:
    running = serve(_web(tmp_path / "web"))
    async with _client(running) as http:
        page = await http.get("/login")
        match = re.search(r'<script type="importmap">(.*?)</script>', page.text)
        assert match, "no import map in the page"
        imports = json.loads(match[1])["imports"]
        dom = await http.get(imports["/static/js/dom.js"])
    assert set(imports) == {"/static/js/app.js", "/static/js/dom.js"}
    assert imports["/static/js/app.js"] == _hashed(page.text, "js/app.js")
    assert dom.text == "export const x = 1;\n"
    assert dom.headers["cache-control"] == "public, max-age=31536000, immutable"
    # The inline import map is allowed by its hash, never by 'unsafe-inline'.
    allowed = "sha256-" + base64.b64encode(hashlib.sha256(match[1].encode()).digest()).decode()
    csp = page.headers["content-security-policy"]
    assert f"script-src 'self' '{allowed}'" in csp
    assert "unsafe-inline" not in csp


async def test_changed_file_gets_new_url_and_old_hash_is_refused(
    serve: Any, tmp_path: Path
) -> None:
    root = _web(tmp_path / "web")
    first = serve(root)
    async with _client(first) as http:
        old_map = (await http.get("/chat")).text
        old_etag = (await http.get("/chat")).headers["etag"]
    old_dom = re.search(r'"/static/js/dom\.js":"([^"]+)"', old_map)
    assert old_dom
    _web(root, dom="export const x = 2;\n")  # a deploy changes dom.js only
    second = serve(root)
    async with _client(second) as http:
        new_page = await http.get("/chat", headers={"If-None-Match": old_etag})
        new_dom = re.search(r'"/static/js/dom\.js":"([^"]+)"', new_page.text)
        assert new_dom
        stale = await http.get(old_dom[1])
        fresh = await http.get(new_dom[1])
    assert new_page.status_code == 200  # the page changed with its import map
    assert new_dom[1] != old_dom[1]
    assert _hashed(new_page.text, "js/app.js") == _hashed(old_map, "js/app.js")  # unchanged
    assert fresh.text == "export const x = 2;\n"
    assert stale.status_code == 404  # never old URL with new content
    assert stale.headers["cache-control"] == "no-store"
    assert stale.json()["code"] == "not_found"


async def test_page_revalidates_with_etag(serve: Any, tmp_path: Path) -> None:
    running = serve(_web(tmp_path / "web"))
    async with _client(running) as http:
        first = await http.get("/register")
        again = await http.get("/register", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""


@pytest.mark.parametrize(
    "name", ["chat.html", "login.html", "register.html", "reset.html", "invite.html"]
)
def test_every_page_gets_the_one_shared_head_with_hashed_urls(name: str) -> None:
    """The pages keep one copy of what their heads share (parley/web/partials/head.html):
    rendered, each has it in place of its marker, before its own title and stylesheets."""
    from parley.gateway.assets import Assets

    web = Path(__file__).resolve().parents[3] / "parley" / "web"
    assets = Assets(web)
    html = assets.render_page(name).body.decode()
    head = html.split("</head>", 1)[0]
    assert "<!-- head" not in head and "<!-- importmap -->" not in head
    assert html.startswith("<!doctype html>") and "parley/web/partials/" not in html
    assert head.index('<meta charset="utf-8">') < head.index("<title")
    for line in (
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="color-scheme" content="light dark">',
    ):
        assert head.count(line) == 1, line
    manifest = re.search(r'<link rel="manifest" href="(/static/[^"]+)">', head)
    assert (
        manifest
        and manifest[1] == assets.url("manifest.webmanifest") != "/static/manifest.webmanifest"
    )
    app_css = head.index(assets.url("css/app.css"))
    assert all(
        app_css < head.index(m[1]) for m in re.finditer(r'href="(/static/css/(?!app)[^"]+)"', head)
    )
