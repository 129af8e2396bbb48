"""Threads in the browser: reply in a thread, the count under the root for another user,
the thread panel on a desktop and on a phone, the Threads view."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import shot
from tests.e2e.support import open_chat, send, user_id

pytestmark = pytest.mark.browser


def test_reply_in_thread_and_the_count_under_the_root(register: Any) -> None:
    alice = register("alice", display_name="Alice Liddell", viewport={"width": 1280, "height": 760})
    bob = register("bob", display_name="Bob Builder", viewport={"width": 1280, "height": 760})
    chat = alice.page.evaluate(
        """([title, id]) => fetch('/service/api/chats', {
             method: 'POST', headers: {'Content-Type': 'application/json'},
             body: JSON.stringify({type: 'group', title, member_ids: [id]}),
           }).then(r => r.json())""",
        ["Thread team", user_id(bob)],
    )
    open_chat(alice.page, chat["id"])
    send(alice.page, "Shall we ship on Friday?")
    root = alice.page.get_by_test_id("message-1")
    root.wait_for()
    open_chat(bob.page, chat["id"])
    bob_root = bob.page.get_by_test_id("message-1")
    bob_root.wait_for()

    # Bob opens the thread from the message's actions and replies there.
    bob_root.hover()
    bob_root.get_by_test_id("message-thread").click()
    panel = bob.page.get_by_test_id("thread-panel")
    panel.wait_for()
    panel.get_by_test_id("thread-root").get_by_text("Shall we ship on Friday?").wait_for()
    box = panel.get_by_test_id("thread-input")
    box.fill("Friday works for me")
    box.press("Enter")
    panel.get_by_test_id("thread-reply-2").get_by_text("Friday works for me").wait_for()
    # Only in the thread: the chat's timeline does not show it
    assert bob.page.get_by_test_id("message-list").get_by_text("Friday works for me").count() == 0
    box.fill("and the notes are ready")
    panel.get_by_test_id("thread-also-in-chat").check()
    panel.get_by_test_id("thread-send").click()
    panel.get_by_test_id("thread-reply-3").wait_for()
    bob.page.get_by_test_id("message-3").get_by_text("and the notes are ready").wait_for()

    # Alice sees the count under her message, live, and opens the thread from it.
    summary = root.get_by_test_id("thread-summary")
    summary.get_by_text("2 replies").wait_for()
    assert "last reply" in summary.inner_text()
    assert root.locator(".thread-avatars .avatar").count() == 1  # one replier
    shot(bob.page, "thread-panel-desktop")
    # Alice follows the thread (she wrote its root): the Threads button shows unread replies
    dot = alice.page.get_by_test_id("threads-unread")
    dot.wait_for()
    summary.click()
    alice_panel = alice.page.get_by_test_id("thread-panel")
    alice_panel.get_by_test_id("thread-reply-2").get_by_text("Friday works for me").wait_for()
    alice_panel.get_by_test_id("thread-reply-3").wait_for()
    dot.wait_for(state="hidden")  # the panel showed the newest reply: the thread is read
    shot(alice.page, "thread-summary-and-panel")

    # The Threads view lists it for Alice (she wrote the root), read now.
    alice.page.get_by_test_id("thread-close").click()
    alice.page.get_by_test_id("threads-button").click()
    dialog = alice.page.get_by_test_id("threads-dialog")
    hit = dialog.locator('[data-testid^="thread-hit-"]')
    hit.first.wait_for()
    assert "Shall we ship on Friday?" in hit.first.inner_text()
    assert dialog.get_by_test_id("thread-unread").count() == 0
    shot(alice.page, "threads-view")
    hit.first.click()  # opens the chat and the thread beside it
    alice_panel.get_by_test_id("thread-root").get_by_text("Shall we ship on Friday?").wait_for()

    # On a phone the panel takes the whole screen.
    bob.page.set_viewport_size({"width": 390, "height": 800})
    box = bob.page.get_by_test_id("thread-panel").get_by_test_id("thread-input")
    box.fill("see you then")
    box.press("Enter")
    bob.page.get_by_test_id("thread-reply-4").wait_for()
    panel = bob.page.get_by_test_id("thread-panel")
    assert panel.evaluate("el => el.getBoundingClientRect().width") == 390
    shot(bob.page, "thread-panel-phone")
    summary.get_by_text("3 replies").wait_for()
    assert not alice.page.errors and not bob.page.errors
