"""Link previews on SQLite and PostgreSQL, against a real HTTP server on 127.0.0.1: fetched
after the send through the outbound rules (allowed here by PARLEY_OUTBOUND_ALLOW, refused
without it: the listener then sees no connection), parsed, the image re-encoded and served
as an attachment, cached a day, removable by the author."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from parley.config import Settings
from parley.server.app import create_app
from parley.server.db.models import LinkPreview
from tests.conftest import Running, no_cookies, start_server, stop_server, test_settings
from tests.factories import Account, connect, make_group, make_user, recv_type, send
from tests.integration.test_outbound import Listener, ok
from tests.waiting import eventually

PAGE = b"""<!doctype html><html><head>
<title>Plain title</title>
<meta property="og:title" content="The  Parley   Guide">
<meta property="og:description" content="How to chat, in depth.">
<meta property="og:site_name" content="Parley Docs">
<meta property="og:image" content="/cover.png">
<meta name="description" content="not this one">
</head><body>hello</body></html>"""
TITLE_ONLY = b"<html><head><title>Just a title</title></head></html>"


def cover() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (2000, 1000), (20, 120, 220)).save(out, "PNG")
    return out.getvalue()


COVER = cover()


def answer(path: str) -> bytes:
    if path.startswith("/cover.png"):
        return ok(COVER, "image/png")
    if path.startswith("/plain"):
        return ok(TITLE_ONLY)
    return ok(PAGE)


@pytest.fixture(scope="module")
async def allowed(
    database_url: str | None, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Running]:
    """A server that may call 127.0.0.0/8 (PARLEY_OUTBOUND_ALLOW)."""
    overrides: dict[str, object] = {"PARLEY_OUTBOUND_ALLOW": "127.0.0.0/8"}
    if database_url:
        overrides["DATABASE_URL"] = database_url
    running, server, task = await start_server(
        test_settings(tmp_path_factory.mktemp("previews"), **overrides)
    )
    yield running
    await stop_server(server, task)


@pytest.fixture
async def site() -> AsyncIterator[Listener]:
    listener = Listener("127.0.0.1", answer)
    await listener.start()
    yield listener
    assert listener.server is not None
    listener.server.close()


async def until(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    return await eventually(check, timeout, interval=0.05)


async def history(http: httpx.AsyncClient, who: Account, chat_id: int) -> list[dict[str, Any]]:
    response = await http.get(f"/service/api/chats/{chat_id}/messages", headers=who.headers)
    assert response.status_code == 200, response.text
    return list(response.json())


async def test_a_page_gets_a_preview_with_its_image(allowed: Running, site: Listener) -> None:
    async with httpx.AsyncClient(base_url=allowed.base, cookies=no_cookies()) as http:
        a, b = await make_user(http), await make_user(http)
        chat = await make_group(http, a, b)
        ws = await connect(allowed.ws_base, b)
        try:
            url = f"{site.url}/guide?x=1"
            sent = await send(http, a, chat["id"], f"read **this**: {url}.")
            assert sent["preview"] is None  # acknowledged before any fetch
            updated = (await recv_type(ws, "message_updated"))["message"]
        finally:
            await ws.close()
        assert updated["id"] == sent["id"]
        preview = updated["preview"]
        assert {k: preview[k] for k in ("url", "title", "description", "site_name")} == {
            "url": url,
            "title": "The Parley Guide",
            "description": "How to chat, in depth.",
            "site_name": "Parley Docs",
        }
        image = preview["image"]
        assert image["content_type"] == "image/webp" and image["filename"] == "preview.webp"
        served = await http.get(image["url"], headers=b.headers)
        assert served.status_code == 200
        shown = Image.open(io.BytesIO(served.content))
        assert shown.format == "WEBP" and shown.size == (1024, 512)
        assert site.paths == ["/guide?x=1", "/cover.png"]
        # history shows it too, and the image is not one of the message's attachments
        [stored] = [m for m in await history(http, b, chat["id"]) if m["id"] == sent["id"]]
        assert stored["preview"] == preview and stored["attachments"] == []
        files = await http.get(f"/service/api/chats/{chat['id']}/files", headers=b.headers)
        assert files.json() == []

        # one fetch per URL a day: another message with it is previewed from the cache
        again = await send(http, b, chat["id"], f"same {url}")

        async def previewed() -> Any:
            found = [m for m in await history(http, a, chat["id"]) if m["id"] == again["id"]]
            return found and found[0]["preview"]

        cached = await until(previewed)
        assert cached["title"] == "The Parley Guide" and cached["image"]["id"] != image["id"]
        assert site.paths == ["/guide?x=1", "/cover.png"]

        outsider = await make_user(http)
        assert (await http.get(image["url"], headers=outsider.headers)).status_code == 404


async def test_no_preview_for_angle_brackets_or_code(allowed: Running, site: Listener) -> None:
    async with httpx.AsyncClient(base_url=allowed.base, cookies=no_cookies()) as http:
        a = await make_user(http)
        chat = await make_group(http, a)
        quiet = [
            await send(http, a, chat["id"], f"no preview <{site.url}/angle>"),
            await send(http, a, chat["id"], f"code `{site.url}/inline` only"),
            await send(http, a, chat["id"], f"```\n{site.url}/fenced\n```"),
        ]
        last = await send(http, a, chat["id"], f"this one {site.url}/plain")

        async def done() -> Any:  # the queue is taken in order: the others went before it
            found = {m["id"]: m for m in await history(http, a, chat["id"])}
            return found[last["id"]]["preview"] and found

        found = await until(done)
        assert found[last["id"]]["preview"] == {
            "url": f"{site.url}/plain",
            "title": "Just a title",
            "description": None,
            "site_name": None,
            "image": None,
        }
        assert all(found[m["id"]]["preview"] is None for m in quiet)
        assert site.paths == ["/plain"]


async def test_the_author_removes_a_preview(allowed: Running, site: Listener) -> None:
    async with httpx.AsyncClient(base_url=allowed.base, cookies=no_cookies()) as http:
        a, b = await make_user(http), await make_user(http)
        chat = await make_group(http, a, b)
        sent = await send(http, a, chat["id"], f"look {site.url}/removable")

        async def preview() -> Any:
            found = [m for m in await history(http, b, chat["id"]) if m["id"] == sent["id"]]
            return found[0]["preview"]

        image_url = (await until(preview))["image"]["url"]
        url = f"/service/api/messages/{sent['id']}/preview"
        refused = await http.delete(url, headers=b.headers)
        assert refused.status_code == 403 and refused.json()["code"] == "not_author"
        ws = await connect(allowed.ws_base, b)
        try:
            removed = await http.delete(url, headers=a.headers)
            assert removed.status_code == 204
            updated = (await recv_type(ws, "message_updated"))["message"]
        finally:
            await ws.close()
        assert updated["id"] == sent["id"] and updated["preview"] is None
        assert await preview() is None
        assert (await http.get(image_url, headers=a.headers)).status_code == 404
        assert (await http.delete(url, headers=a.headers)).status_code == 204  # harmless again
        missing = await http.delete("/service/api/messages/999999999/preview", headers=a.headers)
        assert missing.status_code == 404


async def test_refused_without_the_allow_list(live: Running, client: httpx.AsyncClient) -> None:
    """The default server refuses loopback: the listener never sees a connection."""
    site = Listener("127.0.0.1", answer)
    await site.start()
    try:
        a = await make_user(client)
        chat = await make_group(client, a)
        url = f"{site.url}/secret"
        sent = await send(client, a, chat["id"], f"internal {url}")

        async def attempted() -> Any:  # what the URL gave is kept (a failure too)
            async with live.state.sessions() as session:
                row = await session.get(LinkPreview, url)
                return row is not None and row

        row = await until(attempted)
        assert row.title is None and row.image_key is None
        assert site.connections == 0 and site.paths == []
        [stored] = [m for m in await history(client, a, chat["id"]) if m["id"] == sent["id"]]
        assert stored["preview"] is None
    finally:
        assert site.server is not None
        site.server.close()


def test_link_previews_can_be_turned_off(tmp_path: Path) -> None:
    assert Settings(PARLEY_LINK_PREVIEWS="off", PARLEY_DATA_DIR=tmp_path).link_previews is False  # type: ignore[call-arg]
    on = create_app(test_settings(tmp_path / "on"))
    off = create_app(test_settings(tmp_path / "off", PARLEY_LINK_PREVIEWS="off"))
    on_state = on.state.parley
    assert on_state.previews is not None and on_state.previews.offer in on_state.writer.on_new
    off_state = off.state.parley
    assert off_state.previews is None
    owners = [
        type(getattr(listener, "__self__", None)).__name__ for listener in off_state.writer.on_new
    ]
    assert "LinkPreviews" not in owners
