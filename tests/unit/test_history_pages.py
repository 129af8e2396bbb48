"""The memory of encoded history pages: which events forget what, the race with a load,
and its bound."""

from __future__ import annotations

from typing import Any

from parley.server.messages.history import HistoryPages, PageKey, Paging
from parley.server.realtime import events, frames

KEY: PageKey = (Paging(50), ())
HIDING: PageKey = (Paging(50), (7,))


def _message(**fields: Any) -> Any:
    return fields  # frames encode whatever they carry: a stand-in for a MessagePublic


def _stored(pages: HistoryPages, chat_id: int, key: PageKey = KEY, body: bytes = b"[]") -> None:
    pages.put(chat_id, key, body, pages.mark(chat_id))


def test_a_page_is_per_chat_and_per_hidden_senders() -> None:
    pages = HistoryPages()
    _stored(pages, 1, KEY, b"[1]")
    _stored(pages, 1, HIDING, b"[]")
    assert pages.get(1, KEY) == b"[1]" and pages.get(1, HIDING) == b"[]"
    assert pages.get(2, KEY) is None


def test_chat_frames_forget_their_chat_except_typing_and_read() -> None:
    pages = HistoryPages()
    _stored(pages, 1)
    _stored(pages, 2)
    for quiet in (
        frames.Typing(chat_id=1, user_id=3),
        frames.Read(chat_id=1, user_id=3, seq=4),
    ):
        pages.on_event(events.ChatFrame.of(1, quiet))
        assert pages.get(1, KEY) == b"[]"
    pages.on_event(events.ChatFrame.of(1, frames.MessageUpdated(_message(id=1))))
    assert pages.get(1, KEY) is None and pages.get(2, KEY) == b"[]"
    future = events.ChatFrame(2, '{"type":"some_future_kind"}', kind="some_future_kind")
    pages.on_event(future)  # unknown: forgotten
    assert pages.get(2, KEY) is None


def test_the_kind_decides_not_the_text() -> None:
    """A frame is judged by the kind its event carries; one without (an older process's,
    from the wire) forgets the chat, whatever its text looks like."""
    pages = HistoryPages()
    _stored(pages, 1)
    typing_text = frames.Typing(chat_id=1, user_id=3).encode()
    pages.on_event(events.from_wire({"t": "chat", "chat_id": 1, "frame": typing_text}))  # type: ignore[arg-type]
    assert pages.get(1, KEY) is None
    _stored(pages, 1)
    wired = events.to_wire(events.ChatFrame.of(1, frames.Typing(chat_id=1, user_id=3)))
    assert wired["kind"] == "typing"
    pages.on_event(events.from_wire(wired))  # type: ignore[arg-type]
    assert pages.get(1, KEY) == b"[]"


def test_removed_chats_profiles_and_resync_forget() -> None:
    pages = HistoryPages()
    _stored(pages, 1)
    _stored(pages, 2)
    pages.on_event(events.ChatRemoved(1))
    assert pages.get(1, KEY) is None and pages.get(2, KEY) == b"[]"
    pages.on_event(events.ProfileChanged(9))
    assert pages.get(2, KEY) is None
    _stored(pages, 2)
    pages.on_event(events.Resync())
    assert pages.get(2, KEY) is None
    pages.on_event(events.MembershipChanged(2, [3], joined=True))  # changes no page
    _stored(pages, 2)
    pages.on_event(events.BlocksChanged(3, [4]))
    assert pages.get(2, KEY) == b"[]"


def test_a_load_that_raced_with_a_change_is_not_kept() -> None:
    pages = HistoryPages()
    mark = pages.mark(1)
    pages.on_event(events.ChatFrame.of(1, frames.NewMessage(_message(id=2))))
    pages.put(1, KEY, b"[stale]", mark)
    assert pages.get(1, KEY) is None
    other = pages.mark(2)
    pages.on_event(events.ChatFrame.of(1, frames.NewMessage(_message(id=3))))
    pages.put(2, KEY, b"[fine]", other)  # another chat's change does not matter
    assert pages.get(2, KEY) == b"[fine]"
    everything = pages.mark(2)
    pages.on_event(events.Resync())
    pages.put(2, KEY, b"[stale]", everything)
    assert pages.get(2, KEY) is None


def test_memory_is_bounded() -> None:
    pages = HistoryPages(max_bytes=100)
    _stored(pages, 1, KEY, b"x" * 60)
    _stored(pages, 1, KEY, b"y" * 60)  # replaces: still 60 bytes
    assert pages.size == 60 and pages.get(1, KEY) == b"y" * 60
    _stored(pages, 2, KEY, b"z" * 60)  # past the bound: everything starts afresh
    assert pages.get(1, KEY) is None and pages.size == 0
