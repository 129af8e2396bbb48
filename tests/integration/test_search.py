"""Full-text search on SQLite (FTS5) and PostgreSQL (tsvector): scope, words, order."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Running, no_cookies
from tests.factories import Account, make_direct, make_group, make_user, send, unique


@pytest.fixture(scope="module")
async def people(live: Running) -> list[Account]:
    async with httpx.AsyncClient(base_url=live.base, cookies=no_cookies()) as http:
        return [await make_user(http) for _ in range(3)]


async def search(
    http: httpx.AsyncClient, who: Account, q: str, **params: Any
) -> list[dict[str, Any]]:
    response = await http.get("/service/api/search", params={"q": q, **params}, headers=who.headers)
    assert response.status_code == 200, response.text
    return list(response.json())


def contents(found: list[dict[str, Any]]) -> list[str]:
    return [m["content"] for m in found]


async def test_latin_and_cyrillic_words_ignore_case(
    client: httpx.AsyncClient, people: list[Account]
) -> None:
    a, b, _ = people
    tag = unique("tag")
    chat = await make_group(client, a, b)
    for text in (
        f"Hello world {tag}",
        f"привет мир {tag}",
        f"Приветствую всех {tag}",
        f"goodbye {tag}",
    ):
        await send(client, b, chat["id"], text)
    assert contents(await search(client, a, f"hello {tag}")) == [f"Hello world {tag}"]
    assert contents(await search(client, a, f"{tag} HELLO")) == [f"Hello world {tag}"]
    assert contents(await search(client, a, f"{tag} ПРИВЕТ мир")) == [f"привет мир {tag}"]
    prefixed = contents(await search(client, a, f"{tag} прив"))  # the last word is a prefix
    assert sorted(prefixed) == sorted([f"привет мир {tag}", f"Приветствую всех {tag}"])
    assert await search(client, a, f"{tag} hel world") == []  # only the last word is a prefix
    found = await search(client, a, f"goodbye {tag}")
    assert found[0]["chat_id"] == chat["id"] and found[0]["sender"]["id"] == b.id


async def test_only_my_chats_and_not_deleted(
    client: httpx.AsyncClient, people: list[Account]
) -> None:
    a, b, c = people
    tag = unique("scope")
    mine = await make_group(client, a, b)
    theirs = await make_group(client, b, c)
    direct = await make_direct(client, b, c)
    channel = await make_group(client, b, type="channel", title="Open")
    kept = await send(client, b, mine["id"], f"visible {tag}")
    await send(client, b, theirs["id"], f"private {tag}")
    await send(client, c, direct["id"], f"direct {tag}")
    await send(client, b, channel["id"], f"unjoined channel {tag}")
    gone = await send(client, a, mine["id"], f"deleted {tag}")
    await client.delete(f"/service/api/messages/{gone['id']}", headers=a.headers)
    assert [m["id"] for m in await search(client, a, tag)] == [kept["id"]]
    assert len(await search(client, b, tag)) == 4
    assert await search(client, a, tag, chat_id=theirs["id"]) == []
    assert contents(await search(client, c, tag, chat_id=direct["id"])) == [f"direct {tag}"]


async def test_blocked_senders_are_hidden_in_groups(client: httpx.AsyncClient) -> None:
    a, b = await make_user(client), await make_user(client)
    tag = unique("blk")
    chat = await make_group(client, a, b)
    await send(client, b, chat["id"], f"from b {tag}")
    await send(client, a, chat["id"], f"from a {tag}")
    blocked = await client.post("/service/api/block", json={"user_id": b.id}, headers=a.headers)
    assert blocked.status_code == 201
    assert contents(await search(client, a, tag)) == [f"from a {tag}"]
    assert len(await search(client, b, tag)) == 2  # the blocked side still sees everything
    await client.delete(f"/service/api/block/{b.id}", headers=a.headers)
    assert len(await search(client, a, tag)) == 2


async def test_newest_first_and_before_pages(
    client: httpx.AsyncClient, people: list[Account]
) -> None:
    a, b, _ = people
    tag = unique("order")
    chat = await make_group(client, a, b)
    sent = [await send(client, a, chat["id"], f"{tag} {tag} number {n}") for n in range(5)]
    newest_first = [m["id"] for m in reversed(sent)]
    assert [m["id"] for m in await search(client, a, tag)] == newest_first
    first = await search(client, a, tag, limit=2)
    assert [m["id"] for m in first] == newest_first[:2]
    rest = await search(client, a, tag, before=first[-1]["id"])
    assert [m["id"] for m in rest] == newest_first[2:]


@pytest.mark.parametrize(
    "q",
    [
        'hello" OR "x',
        "NEAR(a b)",
        "*",
        "a:b c^d",
        "'; DROP TABLE messages; --",
        "\\' & | ! <->",
        "😀",
    ],
)
async def test_query_syntax_is_plain_words(
    client: httpx.AsyncClient, people: list[Account], q: str
) -> None:
    response = await client.get("/service/api/search", params={"q": q}, headers=people[0].headers)
    assert response.status_code == 200, response.text
    assert isinstance(response.json(), list)


async def test_bad_queries(client: httpx.AsyncClient, people: list[Account]) -> None:
    me = people[0]
    for params in ({"q": ""}, {"q": "   "}, {}, {"q": "x", "limit": 0}, {"q": "x" * 201}):
        response = await client.get("/service/api/search", params=params, headers=me.headers)
        assert response.status_code == 422, params
        assert response.json()["code"] == "validation_error"
    assert (await client.get("/service/api/search", params={"q": "x"})).status_code == 401
