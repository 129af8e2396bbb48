"""What a push says: the first 140 characters, or "New message" with PARLEY_PUSH_CONTENT=off;
and how long a retry waits."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry
from py_vapid import Vapid02

from parley.clock import Clock
from parley.server.messages.schemas import MessagePublic, SenderPublic
from parley.server.outbound import Outbound
from parley.server.push.sender import Pusher, _delay


def pusher(show_content: bool) -> Pusher:
    vapid = Vapid02()
    vapid.generate_keys()
    sessions: Any = None
    return Pusher(
        sessions,
        Outbound(),
        vapid,
        Clock(),
        subject="mailto:parley@localhost",
        idle_seconds=60,
        show_content=show_content,
        is_active=lambda _user, _seconds: False,
        registry=CollectorRegistry(),
    )


def message(content: str) -> MessagePublic:
    return MessagePublic(
        id=7, chat_id=3, seq=2, sender=SenderPublic(id=1, username="ann", display_name="Ann"),
        content=content, created_at=datetime.now(UTC), edited_at=None, deleted=False,
        client_id=None, reply_to=None, attachments=[], reactions=[], mentions=[],
    )  # fmt: skip


def test_content_is_cut_at_140_characters_or_hidden() -> None:
    shown = json.loads(pusher(True)._payload(message("é" * 300), "group", "Team"))
    assert shown["body"] == "é" * 140 and shown["title"] == "Ann · Team"
    hidden = json.loads(pusher(False)._payload(message("secret plans"), "direct", ""))
    assert hidden["body"] == "New message" and hidden["title"] == "Ann"
    assert hidden["tag"] == "chat-3" and hidden["message_id"] == 7 and hidden["seq"] == 2


def test_retry_waits_follow_retry_after_within_a_cap() -> None:
    assert _delay("0", 0) == 0 and _delay("7", 2) == 7
    assert _delay("3600", 0) == 60  # capped
    assert _delay(None, 0) == 1 and _delay(None, 2) == 4  # 1, 2, 4 s without a header
    assert _delay("Wed, 21 Oct 2026 07:28:00 GMT", 1) == 2


async def test_whether_anybody_subscribed_is_read_at_most_every_few_seconds(
    monkeypatch: Any,
) -> None:
    """Where nobody has subscribed, a stream of new messages asks the database once per
    ANYONE_FRESH_SECONDS, not once per message; a subscription through this process is
    known at once, one through another process within that time."""
    from contextlib import asynccontextmanager

    from parley.server.push import sender, service
    from tests.fake_clock import FakeClock

    clock, reads, stored = FakeClock(), [], [False]

    async def anyone(_session: Any) -> bool:
        reads.append(clock.monotonic())
        return stored[0]

    @asynccontextmanager
    async def sessions() -> Any:
        yield None

    monkeypatch.setattr(service, "anyone_subscribed", anyone)
    p = pusher(True)
    p.sessions, p.clock = sessions, clock  # type: ignore[assignment]
    assert [await p._anyone_subscribed() for _ in range(50)] == [False] * 50
    assert len(reads) == 1
    stored[0] = True  # subscribed through another process
    await clock.advance(sender.ANYONE_FRESH_SECONDS - 1)
    assert await p._anyone_subscribed() is False and len(reads) == 1
    await clock.advance(1)
    assert await p._anyone_subscribed() is True and len(reads) == 2
    stored[0] = False
    p._anyone = (False, clock.monotonic())
    p.subscribed()  # through this process: no waiting, no read
    assert await p._anyone_subscribed() is True and len(reads) == 2
