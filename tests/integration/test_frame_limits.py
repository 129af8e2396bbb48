"""Every WebSocket frame type is limited per user; a change that changes nothing is not told."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from parley.server.db.models import Membership, Message
from parley.server.realtime.protocol import frame_rates
from tests.conftest import Running
from tests.factories import connect, make_group, make_user, no_frame, recv_type, send

FRAME_RATES = {name.removeprefix("frame:"): rate for name, rate in frame_rates().items()}
FLOOD = 80  # more than any per-second budget of FRAME_RATES


def _frames(kind: str, chat_id: int, message_id: int) -> dict[str, Any]:
    return {
        "edit": {"type": "edit", "message_id": message_id, "content": "same"},
        "delete": {"type": "delete", "message_id": message_id},
        "react": {"type": "react", "message_id": message_id, "emoji": "👍"},
        "unreact": {"type": "unreact", "message_id": message_id, "emoji": "👍"},
        "read": {"type": "read", "chat_id": chat_id, "seq": 1},
        "sync": {"type": "sync", "chats": {}},
        "ping": {"type": "ping"},
    }[kind]


@pytest.mark.parametrize("kind", ["edit", "delete", "react", "unreact", "read", "sync", "ping"])
async def test_every_frame_type_is_rate_limited(
    client: httpx.AsyncClient, live: Running, kind: str
) -> None:
    me = await make_user(client)
    chat = await make_group(client, me)
    message = await send(client, me, chat["id"], "same")
    ws = await connect(live.ws_base, me)
    try:
        frame = _frames(kind, chat["id"], message["id"]) | {"client_id": f"c-{kind}"}
        for _ in range(FLOOD):
            await ws.send(json.dumps(frame))
        error = await recv_type(ws, "error")
        assert error["code"] == "rate_limited", error
        assert error["ref"] == f"c-{kind}"
        # The socket stays open and other frame types still work.
        other = "read" if kind == "ping" else "ping"
        await ws.send(json.dumps(_frames(other, chat["id"], message["id"])))
        if other == "ping":
            assert (await recv_type(ws, "pong"))["type"] == "pong"
    finally:
        await ws.close()


def test_limits_are_documented() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "docs"
    for doc in ("operations.md", "protocol.md"):
        text = (root / doc).read_text()
        for kind, rate in FRAME_RATES.items():
            assert f"`{kind}`" in text and rate in text, (doc, kind)


def test_frame_rates_are_configurable() -> None:
    from parley.config import Settings

    settings = Settings(PARLEY_RATE_FRAMES="edit=1/second, sync=2/minute")  # type: ignore[call-arg]
    rates = frame_rates(settings.rate_frames)
    assert rates["frame:edit"] == "1/second"
    assert rates["frame:sync"] == "2/minute"
    assert rates["frame:ping"] == FRAME_RATES["ping"] == "60/minute"
    assert "frame:unreact" not in rates  # unreact spends react's budget
    with pytest.raises(ValueError, match="type=rate"):
        Settings(PARLEY_RATE_FRAMES="nonsense")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="type=rate with a type of"):
        frame_rates({"tpying": "1/second"})


# --- a change that changes nothing ---------------------------------------------------------


async def _pair(client: httpx.AsyncClient, live: Running) -> tuple[Any, Any, Any, Any, Any]:
    me, peer = await make_user(client), await make_user(client)
    chat = await make_group(client, me, peer)
    message = await send(client, me, chat["id"], "hello")
    mine, theirs = await connect(live.ws_base, me), await connect(live.ws_base, peer)
    return me, chat, message, mine, theirs


async def _row(live: Running, message_id: int) -> Message:
    async with live.state.reads() as session:
        row = await session.get(Message, message_id)
        assert row is not None
        return row


async def test_an_edit_to_the_same_content_writes_and_tells_nothing(
    client: httpx.AsyncClient, live: Running
) -> None:
    me, _chat, message, mine, theirs = await _pair(client, live)
    try:
        answer = await client.patch(
            f"/service/api/messages/{message['id']}", json={"content": "hello"}, headers=me.headers
        )
        assert answer.status_code == 200 and answer.json()["edited_at"] is None
        await mine.send(
            json.dumps({"type": "edit", "message_id": message["id"], "content": "hello"})
        )
        await no_frame(theirs, "message_updated")
        assert (await _row(live, message["id"])).edited_at is None
    finally:
        await mine.close()
        await theirs.close()


async def test_deleting_a_deleted_message_writes_and_tells_nothing(
    client: httpx.AsyncClient, live: Running
) -> None:
    me, _chat, message, mine, theirs = await _pair(client, live)
    try:
        url = f"/service/api/messages/{message['id']}"
        assert (await client.delete(url, headers=me.headers)).status_code == 204
        assert (await recv_type(theirs, "message_updated"))["message"]["deleted"] is True
        deleted_at = (await _row(live, message["id"])).deleted_at
        assert (await client.delete(url, headers=me.headers)).status_code == 204
        await mine.send(json.dumps({"type": "delete", "message_id": message["id"]}))
        await no_frame(theirs, "message_updated")
        assert (await _row(live, message["id"])).deleted_at == deleted_at
    finally:
        await mine.close()
        await theirs.close()


async def test_the_same_reaction_twice_and_an_absent_unreact_tell_nothing(
    client: httpx.AsyncClient, live: Running
) -> None:
    _me, _chat, message, mine, theirs = await _pair(client, live)
    try:
        react = {"type": "react", "message_id": message["id"], "emoji": "👍"}
        await mine.send(json.dumps(react))
        assert (await recv_type(theirs, "message_updated"))["message"]["reactions"]
        await mine.send(json.dumps(react))
        await mine.send(json.dumps({**react, "emoji": "🎉", "type": "unreact"}))
        await no_frame(theirs, "message_updated")
    finally:
        await mine.close()
        await theirs.close()


async def test_a_read_marker_that_does_not_move_tells_nothing(
    client: httpx.AsyncClient, live: Running
) -> None:
    me, chat, _message, mine, theirs = await _pair(client, live)
    try:
        # The sender's marker is already at its own message: reading it again moves nothing.
        await mine.send(json.dumps({"type": "read", "chat_id": chat["id"], "seq": 1}))
        await mine.send(json.dumps({"type": "read", "chat_id": chat["id"], "seq": 0}))
        await no_frame(theirs, "read")
        async with live.state.reads() as session:
            seq = await session.scalar(
                select(Membership.last_read_seq).where(
                    Membership.chat_id == chat["id"], Membership.user_id == me.id
                )
            )
        assert seq == 1
    finally:
        await mine.close()
        await theirs.close()
