"""Avatars and attachments over HTTP on SQLite and PostgreSQL, with real Pillow-made files."""

from __future__ import annotations

import base64
import functools
import io
import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.conftest import Running, no_cookies
from tests.factories import Account, connect, make_group, make_user, no_frame, recv_type, send

MB = 1024 * 1024
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
HTML = b"<!doctype html><script>alert(document.cookie)</script>"


@pytest.fixture(scope="module")
async def people(live: Running) -> list[Account]:
    """Users shared by the attachment tests (registering is slow: argon2); each test makes
    its own chats."""
    async with httpx.AsyncClient(base_url=live.base, cookies=no_cookies()) as http:
        return [await make_user(http) for _ in range(3)]


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def png(color: tuple[int, int, int] = (255, 0, 0), size: tuple[int, int] = (80, 60)) -> bytes:
    return encode(Image.new("RGB", size, color), "PNG")


def jpeg(color: tuple[int, int, int] = (0, 0, 255)) -> bytes:
    return encode(Image.new("RGB", (120, 90), color), "JPEG")


def bomb() -> bytes:
    """A tiny valid PNG whose header (CRC fixed up) claims 30000×30000 pixels."""
    data = bytearray(encode(Image.new("1", (8, 8)), "PNG"))
    ihdr = struct.pack(">II", 30_000, 30_000) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


@functools.cache
def big_png() -> bytes:
    """A real PNG over 5 MB: stored uncompressed."""
    return encode(Image.new("RGB", (1400, 1400), (9, 9, 9)), "PNG", compress_level=0)


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


async def put_avatar(
    http: httpx.AsyncClient, headers: dict[str, str], data: bytes, name: str = "me.png"
) -> httpx.Response:
    return await http.put(
        "/service/api/profile/avatar", files={"file": (name, data, "image/png")}, headers=headers
    )


async def upload(
    http: httpx.AsyncClient,
    headers: dict[str, str],
    chat_id: int,
    data: bytes,
    name: str,
    claimed: str = "image/png",
) -> httpx.Response:
    return await http.post(
        f"/service/api/chats/{chat_id}/attachments",
        files={"file": (name, data, claimed)},
        headers=headers,
    )


def stored_files(live: Running, prefix: str) -> set[Path]:
    root = live.settings.data_dir / "files"
    return {p for p in (root / prefix).rglob("*") if p.is_file()} | {
        p for p in (root / ".tmp").glob("*") if p.is_file()
    }


# --- avatars --------------------------------------------------------------------------------


async def test_avatar_upload_serve_replace_delete(client: httpx.AsyncClient, live: Running) -> None:
    me, other = await make_user(client), await make_user(client)
    before = stored_files(live, "avatars")
    first = await put_avatar(client, me.headers, png((255, 0, 0)))
    assert first.status_code == 200, first.text
    user = first.json()
    assert (
        user["id"] == me.id
        and user["email"]
        and user["avatar_url"].startswith(f"/service/api/users/{me.id}/avatar?v=")
    )
    served = await client.get(user["avatar_url"], headers=other.headers)
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/webp"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert "max-age" in served.headers["cache-control"]
    image = opened(served.content)
    assert image.format == "WEBP" and image.size == (256, 256)
    pixel = image.convert("RGB").getpixel((128, 128))
    assert isinstance(pixel, tuple) and pixel[0] > 200 and pixel[2] < 60

    profile = (await client.get(f"/service/api/users/{me.id}", headers=other.headers)).json()
    assert profile["avatar_url"] == user["avatar_url"] and "email" not in profile
    prefix = "data:image/png;base64,"
    assert profile["avatar_data_url"].startswith(prefix)
    thumb = opened(base64.b64decode(profile["avatar_data_url"][len(prefix) :]))
    assert thumb.format == "PNG" and thumb.size == (64, 64)
    assert len(stored_files(live, "avatars") - before) == 1

    second = await put_avatar(client, me.headers, jpeg((0, 0, 255)), "again.jpg")
    assert second.status_code == 200 and second.json()["avatar_url"] != user["avatar_url"]
    again = (await client.get(f"/service/api/users/{me.id}", headers=other.headers)).json()
    assert again["avatar_data_url"] != profile["avatar_data_url"]
    blue = opened(base64.b64decode(again["avatar_data_url"][len(prefix) :])).convert("RGB")
    pixel = blue.getpixel((32, 32))
    assert isinstance(pixel, tuple) and pixel[2] > 200 and pixel[0] < 60
    assert len(stored_files(live, "avatars") - before) == 1  # the old file is gone

    assert (
        await client.delete("/service/api/profile/avatar", headers=me.headers)
    ).status_code == 204
    assert (
        await client.get(f"/service/api/users/{me.id}/avatar", headers=other.headers)
    ).status_code == 404
    gone = (await client.get(f"/service/api/users/{me.id}", headers=other.headers)).json()
    assert gone["avatar_url"] is None and gone["avatar_data_url"] is None
    assert stored_files(live, "avatars") - before == set()


async def test_avatar_refuses_non_images_bombs_and_oversize(
    client: httpx.AsyncClient, live: Running
) -> None:
    me = await make_user(client)
    before = stored_files(live, "avatars")
    for data, name, code in (
        (b"just some text, not a picture", "cat.png", "unsupported_media_type"),
        (SVG, "logo.svg", "unsupported_media_type"),
        (bomb(), "bomb.png", "image_too_large"),
        (png()[:60], "truncated.png", "unsupported_media_type"),
    ):
        refused = await put_avatar(client, me.headers, data, name)
        assert refused.status_code == 415, (name, refused.text)
        assert refused.json()["code"] == code
    assert len(big_png()) > 5 * MB
    too_big = await put_avatar(client, me.headers, big_png())
    assert too_big.status_code == 413 and too_big.json()["code"] == "too_large"
    missing = await client.put(
        "/service/api/profile/avatar", files={"other": ("x.png", png())}, headers=me.headers
    )
    assert missing.status_code == 422 and missing.json()["code"] == "validation_error"
    not_multipart = await client.put(
        "/service/api/profile/avatar",
        content=png(),
        headers={**me.headers, "content-type": "image/png"},
    )
    assert not_multipart.status_code == 422
    anonymous = await client.put("/service/api/profile/avatar", files={"file": ("a.png", png())})
    assert anonymous.status_code == 401
    assert (await client.get("/service/api/profile", headers=me.headers)).json()[
        "avatar_url"
    ] is None
    assert stored_files(live, "avatars") == before


async def test_avatar_size_cap_holds_without_content_length(
    client: httpx.AsyncClient, people: list[Account]
) -> None:
    """A chunked upload (no Content-Length) is cut off by the streaming cap itself."""
    me = people[1]
    body, content_type = multipart_body("file", "big.png", big_png())
    response = await client.put(
        "/service/api/profile/avatar",
        content=chunked(body),
        headers={**me.headers, "content-type": content_type},
    )
    assert response.status_code == 413 and response.json()["code"] == "too_large"


def multipart_body(field: str, filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = "parleytestboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return (
        head + data + f"\r\n--{boundary}--\r\n".encode(),
        f"multipart/form-data; boundary={boundary}",
    )


async def chunked(body: bytes, size: int = 256 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


# --- attachments ----------------------------------------------------------------------------


async def test_image_attachment_is_linked_pushed_and_served_inline(
    client: httpx.AsyncClient, live: Running, people: list[Account]
) -> None:
    owner, member, outsider = people
    chat = await make_group(client, owner, member)
    data = png((0, 255, 0))
    created = await upload(client, owner.headers, chat["id"], data, "../../etc/ph\u202eoto.png")
    assert created.status_code == 201, created.text
    attachment = created.json()
    assert attachment["content_type"] == "image/png" and attachment["size"] == len(data)
    assert attachment["filename"] == "photo.png"
    assert attachment["url"] == f"/service/api/attachments/{attachment['id']}"

    ws = await connect(live.ws_base, member)
    try:
        message = await send(client, owner, chat["id"], "look", attachment_ids=[attachment["id"]])
        assert message["attachments"] == [attachment]
        pushed = await recv_type(ws, "message")
        assert pushed["message"]["attachments"] == [attachment]
    finally:
        await ws.close()

    served = await client.get(attachment["url"], headers=member.headers)
    assert served.status_code == 200 and served.content == data
    assert served.headers["content-type"] == "image/png"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert served.headers["content-disposition"].startswith("inline")
    assert "content-security-policy" not in served.headers
    assert (await client.get(attachment["url"], headers=outsider.headers)).status_code == 404
    history = (
        await client.get(f"/service/api/chats/{chat['id']}/messages", headers=member.headers)
    ).json()
    assert history[-1]["attachments"] == [attachment]


async def test_non_images_download_with_detected_type_and_sandbox(
    client: httpx.AsyncClient, people: list[Account]
) -> None:
    owner = people[0]
    chat = await make_group(client, owner)
    cases = [
        (HTML, "page.html", "text/html", "text/plain; charset=utf-8"),
        (SVG, "logo.svg", "image/svg+xml", "text/plain; charset=utf-8"),
        (b"not a png at all", "cat.png", "image/png", "text/plain; charset=utf-8"),
        (png()[:60], "broken.png", "image/png", "application/octet-stream"),
        (b"%PDF-1.4 fake", "doc.pdf", "text/html", "application/pdf"),
        (bytes(range(256)), "blob.bin", "text/html", "application/octet-stream"),
    ]
    for data, name, claimed, expected in cases:
        created = await upload(client, owner.headers, chat["id"], data, name, claimed)
        assert created.status_code == 201, created.text
        assert created.json()["content_type"] == expected, name
        await send(client, owner, chat["id"], name, attachment_ids=[created.json()["id"]])
        served = await client.get(created.json()["url"], headers=owner.headers)
        assert served.status_code == 200 and served.content == data
        assert served.headers["content-type"] == expected
        assert served.headers["content-disposition"].startswith("attachment;"), name
        assert served.headers["content-security-policy"] == "sandbox"
        assert served.headers["x-content-type-options"] == "nosniff"


async def test_attachment_access_rules(client: httpx.AsyncClient, people: list[Account]) -> None:
    owner, member, outsider = people
    chat = await make_group(client, owner, member)
    mine = (await upload(client, owner.headers, chat["id"], png(), "a.png")).json()
    # Unsent: only its uploader can fetch it, and no one else can send it.
    assert (await client.get(mine["url"], headers=owner.headers)).status_code == 200
    assert (await client.get(mine["url"], headers=member.headers)).status_code == 404
    stolen = await client.post(
        f"/service/api/chats/{chat['id']}/messages",
        json={"content": "mine now", "attachment_ids": [mine["id"]]},
        headers=member.headers,
    )
    assert stolen.status_code == 422
    # Outsiders cannot upload to a private chat, nor to a public channel they have not joined.
    hidden = await upload(client, outsider.headers, chat["id"], png(), "x.png")
    assert hidden.status_code == 404
    channel = await make_group(client, owner, type="channel", title="News")
    unjoined = await upload(client, outsider.headers, channel["id"], png(), "x.png")
    assert unjoined.status_code == 403 and unjoined.json()["code"] == "not_member"
    # Sent, then deleted: gone for everyone.
    message = await send(client, owner, chat["id"], "pic", attachment_ids=[mine["id"]])
    assert (await client.get(mine["url"], headers=member.headers)).status_code == 200
    await client.delete(f"/service/api/messages/{message['id']}", headers=owner.headers)
    assert (await client.get(mine["url"], headers=member.headers)).status_code == 404
    assert (
        await client.get("/service/api/attachments/999999999", headers=owner.headers)
    ).status_code == 404


async def test_attachment_size_limit(
    client: httpx.AsyncClient, live: Running, people: list[Account]
) -> None:
    owner = people[0]
    chat = await make_group(client, owner)
    before = stored_files(live, "attachments")
    data = b"\0" * (live.settings.max_attachment_bytes + 1)
    declared = await upload(client, owner.headers, chat["id"], data, "big.bin")
    assert declared.status_code == 413 and declared.json()["code"] == "too_large"
    body, content_type = multipart_body("file", "big.bin", data)
    streamed = await client.post(
        f"/service/api/chats/{chat['id']}/attachments",
        content=chunked(body, MB),
        headers={**owner.headers, "content-type": content_type},
    )
    assert streamed.status_code == 413 and streamed.json()["code"] == "too_large"
    assert stored_files(live, "attachments") == before
    exact = await upload(client, owner.headers, chat["id"], b"x" * 1000, "ok.txt")
    assert exact.status_code == 201 and exact.json()["size"] == 1000


async def test_avatar_over_16_megapixels_is_refused_with_image_too_large(
    client: httpx.AsyncClient,
) -> None:
    from tests.unit.test_images import png_claiming

    me = await make_user(client)
    answer = await client.put(
        "/service/api/profile/avatar",
        files={"file": ("huge.png", png_claiming(4_100, 4_100), "image/png")},
        headers=me.headers,
    )
    assert answer.status_code == 415, answer.text
    assert answer.json()["code"] == "image_too_large"
    profile = await client.get("/service/api/profile", headers=me.headers)
    assert profile.json()["avatar_url"] is None


async def test_a_new_avatar_and_name_reach_who_hears_my_presence(
    client: httpx.AsyncClient, live: Running
) -> None:
    me, friend, stranger = [await make_user(client) for _ in range(3)]
    await client.post(
        "/service/api/chats", json={"type": "direct", "user_id": friend.id}, headers=me.headers
    )
    friend_ws = await connect(live.ws_base, friend)
    stranger_ws = await connect(live.ws_base, stranger)  # shares only `general` with me
    mine_ws = await connect(live.ws_base, me)
    try:
        answer = await put_avatar(client, me.headers, png((0, 255, 0)))
        assert answer.status_code == 200, answer.text
        for ws in (friend_ws, mine_ws):
            frame = await recv_type(ws, "user_updated")
            assert frame["user"]["id"] == me.id
            assert frame["user"]["avatar_url"] == answer.json()["avatar_url"]
            assert "email" not in frame["user"] or frame["user"]["email"] is None
        renamed = await client.patch(
            "/service/api/profile", json={"display_name": "New Name"}, headers=me.headers
        )
        assert renamed.status_code == 200
        frame = await recv_type(friend_ws, "user_updated")
        assert frame["user"]["display_name"] == "New Name"
        removed = await client.delete("/service/api/profile/avatar", headers=me.headers)
        assert removed.status_code == 204
        frame = await recv_type(friend_ws, "user_updated")
        assert frame["user"]["avatar_url"] is None
        await no_frame(stranger_ws, "user_updated", wait=0.3)
    finally:
        for ws in (friend_ws, stranger_ws, mine_ws):
            await ws.close()


async def test_general_members_hear_the_member_count_grow(
    client: httpx.AsyncClient, live: Running
) -> None:
    old = await make_user(client)
    ws = await connect(live.ws_base, old)
    try:
        chats = (await client.get("/service/api/chats", headers=old.headers)).json()
        general = next(c for c in chats if c["type"] == "channel" and c["title"] == "general")
        await make_user(client)
        frame = await recv_type(ws, "chat_updated")
        assert frame["chat"]["id"] == general["id"]
        assert frame["chat"]["member_count"] == general["member_count"] + 1
        assert "unread_count" not in frame["chat"] and "read_seq" not in frame["chat"]
    finally:
        await ws.close()
