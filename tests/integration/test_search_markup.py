"""Search matches the words of a message, not its Markdown (FTS5 and tsvector alike)."""

from __future__ import annotations

import httpx
import pytest

from tests.factories import make_group, make_user, send, unique


@pytest.mark.parametrize(
    ("content", "query"),
    [
        ("**{w}** is bold", "{w}"),
        ("some _{w}_ in italics", "{w}"),
        ("*{w}* with one star", "{w}"),
        ("~~{w}~~ struck", "{w}"),
        ("run `{w}` now", "{w}"),
        ("```\n{w}()\n```", "{w}"),
        ("> {w} quoted", "{w}"),
        ("see [the {w}](https://example.com/guide)", "the {w}"),
        ("see [docs](https://{w}.example.com/guide)", "{w}"),
        ("see [docs](https://example.com/{w}/guide)", "{w}"),
        ("**bold**{w}", "{w}"),
    ],
)
async def test_markup_is_not_part_of_the_words(
    client: httpx.AsyncClient, content: str, query: str
) -> None:
    me, other = await make_user(client), await make_user(client)
    group = await make_group(client, me, other)
    word = unique("w")
    text = content.format(w=word)
    await send(client, other, group["id"], text)
    await send(client, other, group["id"], "**unrelated** text")
    response = await client.get(
        "/service/api/search",
        params={"q": query.format(w=word), "chat_id": group["id"]},
        headers=me.headers,
    )
    assert response.status_code == 200, response.text
    assert [m["content"] for m in response.json()] == [text]


async def test_the_markup_itself_finds_nothing(client: httpx.AsyncClient) -> None:
    me, other = await make_user(client), await make_user(client)
    group = await make_group(client, me, other)
    await send(client, other, group["id"], "**hello** ~~there~~")
    for q in ("**", "~~", "`"):
        response = await client.get(
            "/service/api/search", params={"q": q, "chat_id": group["id"]}, headers=me.headers
        )
        assert response.status_code == 200 and response.json() == []
    response = await client.get(
        "/service/api/search",
        params={"q": "**hello**", "chat_id": group["id"]},
        headers=me.headers,
    )
    assert [m["content"] for m in response.json()] == ["**hello** ~~there~~"]
