"""Edit, delete and reactions publish through the session's queue (db/unit.py): a change
whose commit fails is told to nobody, and what commits is told once, in order."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from parley.server.db import unit
from tests.conftest import Running, no_cookies
from tests.factories import Account, connect, make_group, make_user, no_frame, recv_type, send


@pytest.fixture(scope="module")
async def people(live: Running) -> list[Account]:
    async with httpx.AsyncClient(base_url=live.base, cookies=no_cookies()) as http:
        return [await make_user(http) for _ in range(2)]


async def _get(client: httpx.AsyncClient, who: Account, message_id: int) -> dict[str, Any]:
    response = await client.get(f"/service/api/messages/{message_id}", headers=who.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_a_change_whose_commit_fails_is_told_to_nobody(
    client: httpx.AsyncClient,
    live: Running,
    people: list[Account],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = people
    chat = await make_group(client, a, b)
    message = await send(client, a, chat["id"], "before")
    url = f"/service/api/messages/{message['id']}"
    watcher = await connect(live.ws_base, b)
    try:
        real = AsyncSession.commit
        failed: list[str] = []

        async def commit(self: AsyncSession) -> None:
            if self.info.get(unit._QUEUE):  # the change's commit: it has a frame queued
                failed.append("commit")
                raise OperationalError("COMMIT", {}, Exception("the commit was lost"))
            await real(self)

        monkeypatch.setattr(AsyncSession, "commit", commit)
        edit = await client.patch(url, json={"content": "after"}, headers=a.headers)
        react = await client.post(f"{url}/reactions", json={"emoji": "👍"}, headers=b.headers)
        delete = await client.delete(url, headers=a.headers)
        monkeypatch.setattr(AsyncSession, "commit", real)
        assert failed == ["commit"] * 3
        for response in (edit, react, delete):
            assert response.status_code >= 500, response.text
            assert {"detail", "code"} <= response.json().keys()
        await no_frame(watcher, "message_updated", wait=0.3)
        stored = await _get(client, b, message["id"])
        assert stored["content"] == "before" and stored["edited_at"] is None
        assert stored["reactions"] == [] and stored["deleted"] is False

        # Committed: each change is told once, in the order made, as stored.
        edited = await client.patch(url, json={"content": "after"}, headers=a.headers)
        reacted = await client.post(f"{url}/reactions", json={"emoji": "👍"}, headers=b.headers)
        assert (await client.delete(url, headers=a.headers)).status_code == 204
        told = [await recv_type(watcher, "message_updated") for _ in range(3)]
        assert told[0]["message"] == edited.json()
        assert told[0]["message"]["content"] == "after"
        assert told[1]["message"] == reacted.json()
        assert told[1]["message"]["reactions"] == [{"emoji": "👍", "count": 1, "user_ids": [b.id]}]
        assert told[2]["message"]["deleted"] is True
        assert told[2]["message"]["content"] == "" and told[2]["message"]["reactions"] == []
        assert told[2]["message"] == await _get(client, b, message["id"])
        await no_frame(watcher, "message_updated", wait=0.2)
    finally:
        await watcher.close()
