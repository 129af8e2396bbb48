"""A seeded WebSocket frame fuzzer: malformed, oversized, wrongly typed and out-of-range
frames of every type. The server answers each with a frame or a documented error, never
`internal_error`, and closes a socket only with a documented code (1009 for oversize). A
flood of reactions cannot cut the other members off."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from parley.server.realtime.protocol import FRAMES, frame_rates
from tests.conftest import Running, no_cookies, start_server, stop_server, test_settings
from tests.factories import Account, connect, make_group, make_user, recv_type, send

SEED = 20261202
SAMPLES = 300
ODD_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1.5,
    2**63,
    2**64,
    -(2**70),
    "",
    "x",
    "7",
    "é" * 40,
    "\u202e\u0000",
    "9" * 400,
    [],
    [1, "a", None],
    list(range(300)),
    {},
    {"1": 1},
    {str(i): i for i in range(1200)},
]
FIELDS = [
    "type",
    "chat_id",
    "message_id",
    "content",
    "client_id",
    "emoji",
    "seq",
    "chats",
    "reply_to",
    "attachment_ids",
    "user_ids",
]
RAW_TEXTS = [
    "",
    " ",
    "null",
    "[]",
    "42",
    '"send"',
    "{",
    '{"type":',
    '{"type":"send","content":"x"',
    "[" * 5000 + "]" * 5000,
    '{"a":' * 3000 + "1" + "}" * 3000,
    '{"type":"send","chat_id":1e999,"content":"x"}',
    '{"type":"send","chat_id":NaN,"content":"x"}',
    '{"type":"ping","type":"sync"}',
    '\ufeff{"type":"ping"}',
    '{"type":"send","chat_id":1,"content":"\\ud800"}',
    '{"type":"read","chat_id":1,"seq":-0.0}',
    '{"type":"presence_query","user_ids":[1,2,3]}',
]
DOCUMENTED_CLOSES = {1000, 1009}


@pytest.fixture
async def server(database_url: str | None, tmp_path: Path) -> AsyncIterator[Running]:
    """Budgets high enough that the fuzzer measures handling, not rate limits."""
    frames = ",".join(f"{kind}=100000/second" for kind in _frame_names())
    overrides: dict[str, object] = {
        "PARLEY_RATE_FRAMES": frames,
        "PARLEY_RATE_TYPING": "1000/second",
        "PARLEY_RATE_SEND": "1000/second",
    }
    if database_url:
        overrides["DATABASE_URL"] = database_url
    running, uvicorn_server, task = await start_server(test_settings(tmp_path, **overrides))
    yield running
    await stop_server(uvicorn_server, task)


def _valid(kind: str, chat_id: int, message_id: int) -> dict[str, Any]:
    return {
        "send": {"type": "send", "chat_id": chat_id, "content": "fuzz", "client_id": "f-1"},
        "edit": {"type": "edit", "message_id": message_id, "content": "edited"},
        "delete": {"type": "delete", "message_id": message_id},
        "react": {"type": "react", "message_id": message_id, "emoji": "👍"},
        "unreact": {"type": "unreact", "message_id": message_id, "emoji": "👍"},
        "typing": {"type": "typing", "chat_id": chat_id},
        "read": {"type": "read", "chat_id": chat_id, "seq": 1},
        "sync": {"type": "sync", "chats": {str(chat_id): 0}},
        "ping": {"type": "ping"},
        "presence_query": {"type": "presence_query", "user_ids": [1]},
    }.get(kind, {"type": kind})


def _frames(chat_id: int, message_ids: list[int]) -> list[str]:
    """Every frame type with each field dropped or replaced by an odd value, sampled."""
    rng = random.Random(SEED)
    kinds = [*FRAMES, "presence_query", "no_such_type"]
    candidates: list[dict[str, Any]] = []
    for kind in kinds:
        for message_id in message_ids:
            base = _valid(kind, chat_id, message_id)
            candidates.append(base)
            for field in FIELDS:
                candidates.append({k: v for k, v in base.items() if k != field})
                candidates.extend({**base, field: value} for value in ODD_VALUES)
    sample = rng.sample(candidates, SAMPLES)
    for _ in range(100):  # and some with several fields odd at once
        frame = dict(rng.choice(candidates))
        for field in rng.sample(FIELDS, 3):
            frame[field] = rng.choice(ODD_VALUES)
        sample.append(frame)
    return [json.dumps(frame) for frame in sample] + RAW_TEXTS


async def _answers(ws: Any, text: str | bytes) -> list[dict[str, Any]]:
    """Sends one frame, then a ping; every frame received until the pong."""
    await ws.send(text)
    await ws.send(json.dumps({"type": "ping"}))
    frames = []
    while True:
        frame = json.loads(await ws.recv())
        if frame.get("type") == "pong":
            return frames
        frames.append(frame)


async def _open(live: Running, who: Account) -> Any:
    return await connect(live.ws_base, who)


async def test_fuzzed_frames_get_documented_answers(server: Running) -> None:
    async with httpx.AsyncClient(base_url=server.base, cookies=no_cookies()) as http:
        me, peer = await make_user(http), await make_user(http)
        chat = await make_group(http, me, peer)
        mine = await send(http, me, chat["id"], "mine")
        theirs = await send(http, peer, chat["id"], "theirs")
    ws = await _open(server, me)
    seen_codes: set[str] = set()
    try:
        for text in [*_frames(chat["id"], [mine["id"], theirs["id"], 2**64]), b"\xff\xfe", b"{}"]:
            try:
                answers = await _answers(ws, text)
            except websockets.ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else None
                pytest.fail(f"socket closed with {code} after {text[:200]!r}")
            for answer in answers:
                if answer["type"] == "error":
                    seen_codes.add(answer["code"])
                    assert answer["code"] not in {"internal_error", "unavailable"}, (text, answer)
                    assert set(answer) == {"type", "code", "detail", "ref"}, answer
    finally:
        await ws.close()
    assert {"bad_frame", "validation_error", "unknown_type"} <= seen_codes, seen_codes
    async with httpx.AsyncClient(base_url=server.base) as http:
        assert (await http.get("/health")).status_code == 200


@pytest.mark.parametrize("size", [64 * 1024 + 1, 300_000])
async def test_oversized_frames_close_with_1009_only(server: Running, size: int) -> None:
    async with httpx.AsyncClient(base_url=server.base, cookies=no_cookies()) as http:
        me = await make_user(http)
    for frame in (
        json.dumps({"type": "send", "chat_id": 1, "content": "x" * size}),
        json.dumps({"type": "sync", "chats": {str(i): 0 for i in range(size // 8)}}),
    ):
        ws = await _open(server, me)
        await ws.send(frame)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            for _ in range(10):
                await ws.recv()
        received = closed.value.rcvd
        assert received is not None and received.code in DOCUMENTED_CLOSES | {1009}
        assert received.code == 1009
    ws = await _open(server, me)  # the server is fine: a new socket works
    assert (await _answers(ws, json.dumps({"type": "read", "chat_id": 1, "seq": 0}))) is not None
    await ws.close()


async def _until_pong(ws: Any) -> list[dict[str, Any]]:
    await ws.send(json.dumps({"type": "ping"}))
    frames = []
    async with asyncio.timeout(60):
        while (frame := json.loads(await ws.recv())).get("type") != "pong":
            frames.append(frame)
    return frames


async def test_reaction_flood_keeps_the_cap_and_the_other_members(server: Running) -> None:
    """One member floods react frames with 300 distinct emoji, in a seeded order: 20 are
    taken, every other one is refused `too_many_reactions`; the other members' sockets
    get the 20 updates and stay open; the server keeps serving."""
    limit = server.settings.max_reactions
    pool = [chr(code) for code in range(0x1F300, 0x1F5FF)]
    emoji = random.Random(SEED).sample(pool, 300)
    async with httpx.AsyncClient(base_url=server.base, cookies=no_cookies()) as http:
        flooder, *others = [await make_user(http) for _ in range(3)]
        chat = await make_group(http, flooder, *others)
        message = await send(http, others[0], chat["id"], "react to me")
        watchers = [await _open(server, who) for who in others]
        ws = await _open(server, flooder)
        try:
            for e in emoji:
                await ws.send(
                    json.dumps({"type": "react", "message_id": message["id"], "emoji": e})
                )
            answers = await _until_pong(ws)
            errors = [a for a in answers if a["type"] == "error"]
            assert len(errors) == len(emoji) - limit
            assert {(a["code"], a["ref"]) for a in errors} == {
                ("too_many_reactions", message["id"])
            }
            for watcher in watchers:
                updates = [f for f in await _until_pong(watcher) if f["type"] == "message_updated"]
                assert len(updates) == limit
                assert [r["emoji"] for r in updates[-1]["message"]["reactions"]] == emoji[:limit]
            # An emoji already there can still be added by another member.
            await watchers[1].send(
                json.dumps({"type": "react", "message_id": message["id"], "emoji": emoji[0]})
            )
            seen = (await recv_type(watchers[0], "message_updated"))["message"]["reactions"]
            assert seen[0]["user_ids"] == [flooder.id, others[1].id]
        finally:
            for sock in (ws, *watchers):
                await sock.close()
        stored = await http.get(f"/service/api/messages/{message['id']}", headers=flooder.headers)
        assert len(stored.json()["reactions"]) == limit
        assert (await http.get("/health")).status_code == 200
        await send(http, flooder, chat["id"], "still serving")


def _frame_names() -> list[str]:
    return [name.removeprefix("frame:") for name in frame_rates()]


def _mention_flood(n: int) -> str:
    """Fifty distinct `@` names ending in thirty dots: about 1,500 usernames each may be."""
    return " ".join(f"@f{n}n{t:02d}" + "." * 30 for t in range(50))


async def _acks(ws: Any, client_ids: set[str]) -> dict[str, dict[str, Any]]:
    """The answer (its `message` or error frame) to each of our sends, by client_id."""
    answers: dict[str, dict[str, Any]] = {}
    async with asyncio.timeout(30):
        while len(answers) < len(client_ids):
            frame = json.loads(await ws.recv())
            key = frame.get("message", {}).get("client_id") or frame.get("ref")
            if frame["type"] in {"message", "error"} and key in client_ids:
                answers[key] = frame
    return answers


async def test_mention_flood_fails_no_one_elses_sends(server: Running) -> None:
    """Mention floods sent at once beside an ordinary sender's messages, so that they share
    the writer's batches: every send of both is acknowledged, and stored once."""
    async with httpx.AsyncClient(base_url=server.base, cookies=no_cookies()) as http:
        flooder, ordinary = await make_user(http), await make_user(http)
        chat = (await make_group(http, flooder, ordinary))["id"]
    floods = {f"flood-{n}": _mention_flood(n) for n in range(20)}
    plain = {f"plain-{n}": f"hello @{flooder.username}. number {n}" for n in range(20)}
    wf, wo = await _open(server, flooder), await _open(server, ordinary)
    try:

        async def send_all(ws: Any, texts: dict[str, str]) -> None:
            for client_id, content in texts.items():
                frame = {"type": "send", "chat_id": chat, "content": content}
                await ws.send(json.dumps({**frame, "client_id": client_id, "ref": client_id}))

        await asyncio.gather(send_all(wf, floods), send_all(wo, plain))
        flood_acks, plain_acks = await asyncio.gather(_acks(wf, set(floods)), _acks(wo, set(plain)))
    finally:
        await wf.close()
        await wo.close()
    assert {k: a["type"] for k, a in plain_acks.items()} == dict.fromkeys(plain, "message")
    assert {k: a["type"] for k, a in flood_acks.items()} == dict.fromkeys(floods, "message")
    assert all(a["message"]["mentions"] == [flooder.id] for a in plain_acks.values())
    async with httpx.AsyncClient(base_url=server.base, cookies=no_cookies()) as http:
        page = await http.get(
            f"/service/api/chats/{chat}/messages", params={"limit": 100}, headers=ordinary.headers
        )
    stored = [m["client_id"] for m in page.json()]
    assert sorted(stored) == sorted([*floods, *plain])
