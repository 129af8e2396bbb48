"""In the browser, every script and stylesheet comes from a content-hashed, immutable URL
(the import map resolves module imports too), and the app is installable."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlparse

import pytest

from tests.e2e.conftest import User

pytestmark = pytest.mark.browser

HASHED = re.compile(r"^/static/.+\.[0-9a-f]{12}\.[a-z]+$")


def test_modules_styles_and_lazy_emoji_data_come_from_hashed_urls(register: Any) -> None:
    user: User = register("static")
    page = user.page
    seen: list[tuple[str, str]] = []
    page.on(
        "response",
        lambda r: seen.append((urlparse(r.url).path, r.headers.get("cache-control", ""))),
    )
    page.reload()
    page.locator('[data-testid="connection-status"][data-state="connected"]').wait_for()
    page.locator(".chat-item").first.click()
    page.get_by_test_id("composer-emoji").click()  # loads js/emoji-data.js on demand
    page.get_by_test_id("emoji-panel").wait_for()
    assets = [(path, cache) for path, cache in seen if path.startswith("/static/")]
    scripts = [p for p, _ in assets if p.endswith((".js", ".css"))]
    assert any("/js/emoji-data." in p for p in scripts)
    assert any("/js/app." in p for p in scripts) and any("/js/dom." in p for p in scripts)
    assert [p for p in scripts if not HASHED.match(p)] == []
    assert {c for p, c in assets if p in scripts} == {"public, max-age=31536000, immutable"}


def test_manifest_and_icons(register: Any) -> None:
    user: User = register("install")
    page = user.page
    href = page.locator('link[rel="manifest"]').get_attribute("href")
    assert href and HASHED.match(href)
    manifest = json.loads(page.request.get(href).text())
    assert manifest["start_url"] == "/chat" and manifest["display"] == "standalone"
    sizes = {icon["sizes"] for icon in manifest["icons"]}
    assert {"192x192", "512x512"} <= sizes
    for icon in manifest["icons"]:
        response = page.request.get(icon["src"])
        assert response.status == 200 and response.headers["content-type"] == icon["type"]
    assert page.locator('meta[name="theme-color"]').count() == 2
