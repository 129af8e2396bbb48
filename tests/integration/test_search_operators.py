"""Search's query language on SQLite and PostgreSQL: stems in English and Russian, phrases,
exclusions, every operator; attachments' names; a chat's files list."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.factories import Account, make_group, make_user, send, unique


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


async def search(http: httpx.AsyncClient, who: Account, q: str, **params: Any) -> list[str]:
    response = await http.get("/service/api/search", params={"q": q, **params}, headers=who.headers)
    assert response.status_code == 200, response.text
    return [m["content"] for m in response.json()]


async def upload(
    http: httpx.AsyncClient, who: Account, chat_id: int, name: str, data: bytes, kind: str
) -> int:
    response = await http.post(
        f"/service/api/chats/{chat_id}/attachments",
        files={"file": (name, data, kind)},
        headers=who.headers,
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


@pytest.mark.parametrize(
    ("stored", "query"),
    [
        ("I was running late", "run"),
        ("we run every day", "running"),
        ("two new messages", "message"),
        ("новое сообщение пришло", "сообщения"),
        ("сообщения в чате", "сообщение"),
        ("она написала письмо", "написал"),
        ("он написал письмо", "написала"),
        ("Ёлка стоит", "елки"),
    ],
)
async def test_words_match_their_inflections(
    client: httpx.AsyncClient, stored: str, query: str
) -> None:
    me = await make_user(client)
    chat = await make_group(client, me)
    tag = unique("stem")
    await send(client, me, chat["id"], f"{stored} {tag}")
    await send(client, me, chat["id"], f"something else {tag}")
    assert await search(client, me, f"{query} {tag}") == [f"{stored} {tag}"]
    assert await search(client, me, f"{tag} {query}") == [f"{stored} {tag}"]


async def test_every_word_must_match_phrases_and_exclusions(client: httpx.AsyncClient) -> None:
    me = await make_user(client)
    chat = await make_group(client, me)
    tag = unique("ph")
    for text in (
        f"{tag} the quick brown fox",
        f"{tag} the brown quick fox",
        f"{tag} a quick red fox",
        f"{tag} running dogs",
    ):
        await send(client, me, chat["id"], text)
    assert await search(client, me, f'{tag} "quick brown"') == [f"{tag} the quick brown fox"]
    assert await search(client, me, f'"{tag} running dogs"') == [f"{tag} running dogs"]
    assert await search(client, me, f'"run dog" {tag}') == [f"{tag} running dogs"]  # stems
    assert await search(client, me, f"{tag} quick brown fox") == [
        f"{tag} the brown quick fox",
        f"{tag} the quick brown fox",
    ]
    assert await search(client, me, f"{tag} fox -brown") == [f"{tag} a quick red fox"]
    assert await search(client, me, f'{tag} fox -"quick brown"') == [
        f"{tag} a quick red fox",
        f"{tag} the brown quick fox",
    ]
    assert await search(client, me, f"{tag} -fox -dog") == []
    assert await search(client, me, f"{tag} missing") == []


async def test_from_and_in(client: httpx.AsyncClient) -> None:
    a, b = await make_user(client), await make_user(client)
    one, two = await make_group(client, a, b), await make_group(client, a, b)
    tag = unique("who")
    await send(client, a, one["id"], f"{tag} from a in one")
    await send(client, b, one["id"], f"{tag} from b in one")
    await send(client, b, two["id"], f"{tag} from b in two")
    assert await search(client, a, f"{tag} from:{b.username}") == [
        f"{tag} from b in two",
        f"{tag} from b in one",
    ]
    assert await search(client, a, f"from:@{b.username.upper()} {tag}") == [
        f"{tag} from b in two",
        f"{tag} from b in one",
    ]
    assert await search(client, a, f"{tag} in:{one['id']}") == [
        f"{tag} from b in one",
        f"{tag} from a in one",
    ]
    assert await search(client, a, f"{tag} in:{two['id']} from:{a.username}") == []
    assert await search(client, a, f"from:{a.username} in:{one['id']}") == [f"{tag} from a in one"]
    assert await search(client, a, f"{tag} from:nobody{tag}") == []
    outsider = await make_user(client)
    assert await search(client, outsider, f"{tag} in:{one['id']}") == []  # members only


async def test_has_file_image_link_and_file_names(client: httpx.AsyncClient) -> None:
    me = await make_user(client)
    chat = await make_group(client, me)
    tag = unique("has")
    doc = await upload(
        client, me, chat["id"], "Quarterly_Reports.pdf", b"%PDF-1.4 x", "application/pdf"
    )
    pic = await upload(client, me, chat["id"], "holiday.png", png(), "image/png")
    await send(client, me, chat["id"], f"{tag} the numbers", attachment_ids=[doc])
    await send(client, me, chat["id"], f"{tag} a picture", attachment_ids=[pic])
    await send(client, me, chat["id"], f"{tag} see https://example.invalid/page")
    await send(client, me, chat["id"], f"{tag} plain words")
    assert await search(client, me, f"{tag} has:file") == [f"{tag} a picture", f"{tag} the numbers"]
    assert await search(client, me, f"{tag} has:image") == [f"{tag} a picture"]
    assert await search(client, me, f"{tag} has:link") == [
        f"{tag} see https://example.invalid/page"
    ]
    assert await search(client, me, f"{tag} has:file has:image") == [f"{tag} a picture"]
    # attachments' names are searched, by their stems too ("report" finds "Reports")
    assert await search(client, me, f"{tag} quarterly report") == [f"{tag} the numbers"]
    assert await search(client, me, f"holiday {tag}") == [f"{tag} a picture"]


async def test_mentions_me(client: httpx.AsyncClient) -> None:
    a, b = await make_user(client), await make_user(client)
    chat = await make_group(client, a, b)
    tag = unique("men")
    await send(client, b, chat["id"], f"{tag} hi @{a.username}")
    await send(client, b, chat["id"], f"{tag} hi everyone")
    await send(client, a, chat["id"], f"{tag} hi @{b.username}")
    assert await search(client, a, f"{tag} mentions:me") == [f"{tag} hi @{a.username}"]
    assert await search(client, b, f"mentions:me {tag}") == [f"{tag} hi @{b.username}"]
    assert await search(client, b, f"{tag} mentions:{a.username}") == [f"{tag} hi @{a.username}"]


async def test_before_and_after_days(client: httpx.AsyncClient) -> None:
    me = await make_user(client)
    chat = await make_group(client, me)
    tag = unique("day")
    await send(client, me, chat["id"], f"{tag} today")
    today = datetime.now(UTC).date()
    yesterday, tomorrow = today - timedelta(days=1), today + timedelta(days=1)
    assert await search(client, me, f"{tag} before:{tomorrow}") == [f"{tag} today"]
    assert await search(client, me, f"{tag} before:{today}") == []  # the day itself excluded
    assert await search(client, me, f"{tag} after:{yesterday}") == [f"{tag} today"]
    assert await search(client, me, f"{tag} after:{today}") == []
    assert await search(client, me, f"{tag} after:{yesterday} before:{tomorrow}") == [
        f"{tag} today"
    ]


async def test_unknown_operators_are_words_and_flags(client: httpx.AsyncClient) -> None:
    me = await make_user(client)
    chat = await make_group(client, me)
    tag = unique("op")
    await send(client, me, chat["id"], f"{tag} meet at color:blue")
    await send(client, me, chat["id"], f"{tag} nothing here")
    assert await search(client, me, f"{tag} color:blue") == [f"{tag} meet at color:blue"]
    assert await search(client, me, f"{tag} blue") == [f"{tag} meet at color:blue"]
    # no pins or threads on this server yet: nothing is pinned or in a thread
    assert await search(client, me, f"{tag} is:pinned") == []
    assert await search(client, me, f"{tag} is:thread") == []


@pytest.mark.parametrize(
    ("q", "named"),
    [
        ("in:general", "in:general"),
        ("has:nothing", "has:nothing"),
        ("is:sleeping", "is:sleeping"),
        ("before:2026-13-01", "before:2026-13-01"),
        ("after:yesterday", "after:yesterday"),
    ],
)
async def test_bad_operator_values(client: httpx.AsyncClient, q: str, named: str) -> None:
    me = await make_user(client)
    response = await client.get("/service/api/search", params={"q": q}, headers=me.headers)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "validation_error" and named in body["detail"]


async def test_operators_alone_and_edits_reindex(client: httpx.AsyncClient) -> None:
    me = await make_user(client)
    chat = await make_group(client, me)
    tag = unique("ed")
    message = await send(client, me, chat["id"], f"{tag} first draft")
    assert await search(client, me, f"in:{chat['id']}") == [f"{tag} first draft"]
    edited = await client.patch(
        f"/service/api/messages/{message['id']}",
        json={"content": f"{tag} final versions"},
        headers=me.headers,
    )
    assert edited.status_code == 200, edited.text
    assert await search(client, me, f"{tag} draft") == []
    assert await search(client, me, f"{tag} version") == [f"{tag} final versions"]
    await client.delete(f"/service/api/messages/{message['id']}", headers=me.headers)
    assert await search(client, me, f"in:{chat['id']}") == []


async def test_chat_files_newest_first_members_only(client: httpx.AsyncClient) -> None:
    a, b, outsider = await make_user(client), await make_user(client), await make_user(client)
    chat = await make_group(client, a, b)
    first = await upload(client, a, chat["id"], "one.txt", b"one", "text/plain")
    second = await upload(client, b, chat["id"], "two.png", png(), "image/png")
    third = await upload(client, b, chat["id"], "three.txt", b"three", "text/plain")
    m1 = await send(client, a, chat["id"], "file one", attachment_ids=[first])
    m2 = await send(client, b, chat["id"], "files two and three", attachment_ids=[second, third])
    await upload(client, a, chat["id"], "unsent.txt", b"x", "text/plain")  # never sent: not listed
    gone = await upload(client, a, chat["id"], "gone.txt", b"x", "text/plain")
    deleted = await send(client, a, chat["id"], "deleted", attachment_ids=[gone])
    await client.delete(f"/service/api/messages/{deleted['id']}", headers=a.headers)

    url = f"/service/api/chats/{chat['id']}/files"
    response = await client.get(url, headers=b.headers)
    assert response.status_code == 200, response.text
    listed = response.json()
    assert [f["attachment"]["id"] for f in listed] == [third, second, first]
    top = listed[0]
    assert top["attachment"]["filename"] == "three.txt"
    assert top["attachment"]["url"] == f"/service/api/attachments/{third}"
    assert top["message_id"] == m2["id"] and top["seq"] == m2["seq"]
    assert top["sender"] == {
        "id": b.id,
        "username": b.username,
        "display_name": b.user["display_name"],
    }
    assert top["created_at"] == m2["created_at"]
    assert listed[2]["message_id"] == m1["id"] and listed[2]["sender"]["id"] == a.id

    page = (await client.get(url, params={"limit": 2}, headers=a.headers)).json()
    assert [f["attachment"]["id"] for f in page] == [third, second]
    rest = await client.get(url, params={"before": second, "limit": 2}, headers=a.headers)
    assert [f["attachment"]["id"] for f in rest.json()] == [first]

    refused = await client.get(url, headers=outsider.headers)
    assert refused.status_code == 404 and refused.json()["code"]
    assert (await client.get(url)).status_code == 401
