"""Link preview cards (removable by their author), the search box's operators with `in:` /
`from:` completion, and the Files tab of the chat details; English and Russian, light and
dark. The server may call 127.0.0.0/8 (PARLEY_OUTBOUND_ALLOW), where a local site serves
the page and its image."""

from __future__ import annotations

import io
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.e2e.conftest import PASSWORD, _serve, shot
from tests.e2e.support import ApiUser, api_user, open_chat, send, wait_until

PAGE = b"""<!doctype html><html><head><title>Guide</title>
<meta property="og:title" content="The Parley Guide">
<meta property="og:description" content="Everything about chatting with your team.">
<meta property="og:site_name" content="Parley Docs">
<meta property="og:image" content="/cover.png"></head><body>guide</body></html>"""


def _cover() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (600, 300), (40, 110, 200)).save(out, "PNG")
    return out.getvalue()


COVER = _cover()


class _Site(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body, kind = (COVER, "image/png") if self.path.startswith("/cover") else (PAGE, "text/html")
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def url(chromium_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with _serve(
        tmp_path_factory.mktemp("parley-previews"), PARLEY_OUTBOUND_ALLOW="127.0.0.0/8"
    ) as base:
        yield base


def signed_in(browser: Any, base: str, **options: Any) -> Any:
    context = browser.new_context(base_url=base, **options)
    context.set_default_timeout(10_000)
    page = context.new_page()
    username = f"ann_{uuid.uuid4().hex[:8]}"
    page.goto("/register")
    page.get_by_test_id("register-username").fill(username)
    page.get_by_test_id("register-email").fill(f"{username}@example.com")
    page.get_by_test_id("register-display-name").fill("Ann")
    page.get_by_test_id("register-password").fill(PASSWORD)
    page.get_by_test_id("register-submit").click()
    page.wait_for_url("**/chat*")
    page.locator('[data-testid="connection-status"][data-state="connected"]').wait_for()
    return page


def shared_chat(page: Any, base: str, title: str) -> tuple[ApiUser, dict[str, Any]]:
    bob = api_user(base, "bob", display_name="Bob")
    ann = page.evaluate("fetch('/service/api/profile').then(r => r.json())")
    return bob, bob.group(title, [int(ann["id"])])


def bob_shares(bob: ApiUser, chat_id: int, site: str) -> None:
    uploaded = bob.http.post(
        f"/service/api/chats/{chat_id}/attachments",
        files={"file": ("Quarterly_Report.pdf", b"%PDF-1.4 report", "application/pdf")},
    )
    assert uploaded.status_code == 201, uploaded.text
    sent = bob.http.post(
        f"/service/api/chats/{chat_id}/messages",
        json={"content": "the report", "attachment_ids": [uploaded.json()["id"]]},
    )
    assert sent.status_code == 201, sent.text
    bob.send(chat_id, f"read the guide: {site}/guide")


@pytest.mark.parametrize(
    ("lang", "scheme", "texts"),
    [
        ("en-US", "light", {"files": "Files", "members": "Members"}),
        ("ru-RU", "dark", {"files": "Файлы", "members": "Участники"}),
    ],
)
def test_preview_search_and_files(
    browser: Any, url: str, site: str, lang: str, scheme: str, texts: dict[str, str]
) -> None:
    page = signed_in(browser, url, locale=lang, color_scheme=scheme)
    try:
        title = f"Team {uuid.uuid4().hex[:4]}"
        bob, chat = shared_chat(page, url, title)
        page.get_by_test_id(f"chat-item-{chat['id']}").wait_for()
        open_chat(page, chat["id"])
        bob_shares(bob, chat["id"], site)

        # Bob's link gets its card, with no remove button for Ann
        card = page.get_by_test_id("message-preview").first
        card.wait_for()
        assert "The Parley Guide" in card.inner_text() and "Parley Docs" in card.inner_text()
        assert card.get_by_test_id("message-preview-remove").count() == 0
        wait_until(
            page,
            "[...document.querySelectorAll('.msg-preview-image img')]"
            ".some(i => i.complete && i.naturalWidth > 0)",
        )

        # Ann's own link: her card has the remove button, and it goes
        send(page, f"my copy {site}/guide?mine")
        mine = page.locator(".msg.is-mine [data-testid=message-preview]")
        mine.wait_for()
        shot(page, f"preview-card-{lang}-{scheme}")
        mine.get_by_test_id("message-preview-remove").click()
        mine.wait_for(state="detached")
        assert page.get_by_test_id("message-preview").count() == 1

        # search: the operators hint, `in:` completes to the chat, then words
        page.get_by_test_id("message-search-button").click()
        box = page.get_by_test_id("message-search-input")
        assert "has:file" in page.get_by_test_id("message-search-hint").inner_text()
        box.fill("in:Tea")
        box.press("End")
        box.type("m")
        suggestion = page.get_by_test_id("search-suggestion-0")
        suggestion.wait_for()
        assert title in suggestion.inner_text()
        shot(page, f"search-in-completion-{lang}-{scheme}")
        suggestion.click()
        assert box.input_value() == f"in:{chat['id']} "
        box.type(f"from:{bob.username[:5]}")
        page.get_by_test_id("search-suggestion-0").wait_for()
        page.get_by_test_id("search-suggestion-0").click()
        assert box.input_value() == f"in:{chat['id']} from:{bob.username} "
        box.type("reports")
        results = page.get_by_test_id("message-search-results")
        hits = "document.querySelectorAll('[data-testid=message-search-results] .search-hit')"
        wait_until(page, f"{hits}.length === 1 && {hits}[0].textContent.includes('the report')")
        assert "the report" in results.inner_text()
        shot(page, f"search-results-{lang}-{scheme}")
        page.keyboard.press("Escape")

        # chat details: the Files tab lists Bob's file
        page.get_by_test_id("chat-info-button").click()
        page.get_by_test_id("chat-info-tab-members").wait_for()
        assert page.get_by_test_id("chat-info-tab-members").inner_text() == texts["members"]
        page.get_by_test_id("chat-info-tab-files").click()
        files = page.get_by_test_id("chat-files")
        files.locator(".file-row").first.wait_for()
        assert files.locator(".file-row").count() == 1
        assert "Quarterly_Report.pdf" in files.inner_text() and "Bob" in files.inner_text()
        assert not page.get_by_test_id("chat-members").is_visible()
        assert page.get_by_test_id("chat-info-tab-files").inner_text() == texts["files"]
        shot(page, f"chat-files-tab-{lang}-{scheme}")
        assert page.evaluate("window.__errors || []") == []
    finally:
        page.context.close()
