"""The defects a new user met, each fixed with its browser test: where unread messages start
after a reload, blocked senders, live member counts / descriptions / avatars, the sidebar
at 1280 px and on a phone, dialogs, Markdown lists, emoji names, times and Russian."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.e2e.conftest import User, shot
from tests.e2e.support import ApiUser, api_user, open_chat, user_id, wait_until

pytestmark = pytest.mark.browser


def chat_of(peer: ApiUser, chat_id: int) -> dict[str, Any]:
    body: dict[str, Any] = peer.http.get(f"/service/api/chats/{chat_id}").json()
    return body


def read_up_to(user: ApiUser, chat_id: int, seq: int) -> None:
    answer = user.http.post(f"/service/api/chats/{chat_id}/read", json={"seq": seq})
    assert answer.status_code == 204, answer.text


def test_a_reloaded_chat_opens_at_the_first_unread_with_the_divider_there(
    register: Any, base_url: str
) -> None:
    me: User = register("reader", display_name="Rita Reader")
    page = me.page
    peer = api_user(base_url, "chatty", display_name="Chatty Cat")
    group = peer.group("Busy room", [user_id(me)])
    for i in range(5):
        peer.send(group["id"], f"old {i}")
    open_chat(page, group["id"])
    last_read = chat_of(peer, group["id"])["last_seq"]
    page.get_by_test_id(f"message-{last_read}").wait_for()
    wait_until(page, f"fetch('/service/api/chats/{group['id']}').then(r => r.json()).then(c => c.unread_count === 0)")

    # 60 arrive while I am away: when I come back the chat opens at the first of them.
    page.goto("about:blank")
    for i in range(60):
        peer.send(group["id"], f"new {i}")
    page.goto("/chat")
    page.locator('[data-testid="connection-status"][data-state="connected"]').wait_for()
    open_chat(page, group["id"])
    first_unread = page.get_by_test_id(f"message-{last_read + 1}")
    first_unread.wait_for()
    divider = page.get_by_test_id("new-messages-divider")
    divider.wait_for()
    # The divider sits right above the first unread message, which is in view.
    assert page.evaluate(
        "() => { const d = document.querySelector('[data-testid=\"new-messages-divider\"]');"
        " return d.nextElementSibling.dataset.seq; }"
    ) == str(last_read + 1)
    assert first_unread.is_visible()
    shot(page, "defects-unread-divider")
    # Not everything was marked read at once: the newest is not even loaded yet.
    assert page.get_by_test_id(f"message-{last_read + 60}").count() == 0
    unread = page.evaluate(
        f"fetch('/service/api/chats/{group['id']}').then(r => r.json()).then(c => c.unread_count)"
    )
    assert unread > 0, unread

    # A few unread: the divider sits above them, not above what was read.
    page.get_by_test_id("jump-bottom").click()
    page.get_by_test_id(f"message-{last_read + 60}").wait_for()
    wait_until(page, f"fetch('/service/api/chats/{group['id']}').then(r => r.json()).then(c => c.unread_count === 0)")
    page.goto("about:blank")
    for i in range(3):
        peer.send(group["id"], f"latest {i}")
    page.goto("/chat")
    page.locator('[data-testid="connection-status"][data-state="connected"]').wait_for()
    open_chat(page, group["id"])
    page.get_by_test_id(f"message-{last_read + 63}").wait_for()
    divider.wait_for()
    assert page.evaluate(
        "() => document.querySelector('[data-testid=\"new-messages-divider\"]')"
        ".nextElementSibling.dataset.seq"
    ) == str(last_read + 61)
