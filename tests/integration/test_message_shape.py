"""One public message, whatever the path: the same message is the same bytes in a
history page, `GET /messages/{id}`, the sender's `message` frame, a resend's answer
(through the writer's batch and through a send with attachments), `message_updated`,
`sync`, search and `/mentions`: fresh, with reactions, and deleted."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.conftest import Running
from tests.factories import Account, connect, make_group, make_user, recv_type


def _text(message: dict[str, Any]) -> str:
    """The message as JSON, keys in the order received: a different order or value on
    any path shows here."""
    return json.dumps(message, ensure_ascii=False)


async def _frame(ws: Any, frame: dict[str, Any], kind: str = "message") -> dict[str, Any]:
    await ws.send(json.dumps(frame))
    return dict((await recv_type(ws, kind))["message"])


async def _rest(
    http: httpx.AsyncClient, ann: Account, bob: Account, chat: int, message_id: int
) -> dict[str, dict[str, Any]]:
    history = await http.get(f"/service/api/chats/{chat}/messages", headers=ann.headers)
    one = await http.get(f"/service/api/messages/{message_id}", headers=ann.headers)
    found = {
        "history": next(m for m in history.json() if m["id"] == message_id),
        "get": one.json(),
    }
    search = await http.get("/service/api/search", params={"q": "zebra"}, headers=ann.headers)
    mentions = await http.get("/service/api/mentions", headers=bob.headers)
    for name, page in (("search", search.json()), ("mentions", mentions.json())):
        rows = page["results"] if isinstance(page, dict) else page
        hits = [r.get("message", r) for r in rows if r.get("message", r)["id"] == message_id]
        if hits:
            found[name] = hits[0]
    return found


async def _sync(ws: Any, chat: int, seq: int) -> dict[str, Any]:
    return await _frame(ws, {"type": "sync", "chats": {str(chat): seq - 1}})


def _same(paths: dict[str, dict[str, Any]], expected: set[str]) -> None:
    assert set(paths) >= expected, sorted(paths)
    texts = {name: _text(message) for name, message in paths.items()}
    reference = texts["history"]
    assert {name for name, t in texts.items() if t != reference} == set(), texts


async def test_the_same_message_is_the_same_bytes_on_every_path(
    client: httpx.AsyncClient, live: Running
) -> None:
    ann, bob = await make_user(client), await make_user(client)
    chat = (await make_group(client, ann, bob))["id"]
    upload = await client.post(
        f"/service/api/chats/{chat}/attachments",
        files={"file": ("notes.txt", b"some notes", "text/plain")},
        headers=ann.headers,
    )
    assert upload.status_code == 201, upload.text
    send = {
        "type": "send",
        "chat_id": chat,
        "content": f"find the zebra @{bob.username}.",
        "client_id": "shape-1",
        "attachment_ids": [upload.json()["id"]],
    }
    resend = {k: v for k, v in send.items() if k != "attachment_ids"}
    ws = await connect(live.ws_base, ann)
    try:
        fresh = await _frame(ws, send)
        message_id, seq = fresh["id"], fresh["seq"]
        assert fresh["mentions"] == [bob.id] and len(fresh["attachments"]) == 1
        paths = await _rest(client, ann, bob, chat, message_id)
        paths |= {
            "sent": fresh,
            "resent": await _frame(ws, send),  # with attachments: its own transaction
            "resent in a batch": await _frame(ws, resend),
            "sync": await _sync(ws, chat, seq),
        }
        _same(paths, {"history", "get", "search", "mentions", "sent", "sync", "resent"})

        for who, emoji in ((bob, "👍"), (ann, "🎉"), (ann, "👍")):
            reacted = await client.post(
                f"/service/api/messages/{message_id}/reactions",
                json={"emoji": emoji},
                headers=who.headers,
            )
            assert reacted.status_code == 200, reacted.text
        updated = dict((await recv_type(ws, "message_updated"))["message"])
        while len(updated["reactions"]) < 2 or updated["reactions"][0]["count"] < 2:
            updated = dict((await recv_type(ws, "message_updated"))["message"])
        paths = await _rest(client, ann, bob, chat, message_id)
        paths |= {
            "reacted": reacted.json(),
            "updated": updated,
            "resent": await _frame(ws, send),
            "resent in a batch": await _frame(ws, resend),
            "sync": await _sync(ws, chat, seq),
        }
        assert [r["count"] for r in paths["history"]["reactions"]] == [2, 1]
        _same(paths, {"history", "get", "search", "mentions", "updated", "sync", "resent"})

        deleted = await client.delete(f"/service/api/messages/{message_id}", headers=ann.headers)
        assert deleted.status_code == 204
        updated = dict((await recv_type(ws, "message_updated"))["message"])
        paths = await _rest(client, ann, bob, chat, message_id)
        paths |= {
            "updated": updated,
            "resent": await _frame(ws, send),
            "resent in a batch": await _frame(ws, resend),
            "sync": await _sync(ws, chat, seq),
        }
        assert paths["history"]["deleted"] and paths["history"]["content"] == ""
        assert paths["history"]["attachments"] == paths["history"]["mentions"] == []
        _same(paths, {"history", "get", "updated", "sync", "resent", "resent in a batch"})
    finally:
        await ws.close()
