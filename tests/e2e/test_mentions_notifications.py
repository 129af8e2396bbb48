"""Mentions, notifications, muting, and opening a message where it is (?around=)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import User, shot
from tests.e2e.support import (
    NOTIFICATION_RECORDER,
    api_user,
    notes,
    open_chat,
    send,
    set_hidden,
    user_id,
    wait_until,
)

pytestmark = pytest.mark.browser


def watched(user: User) -> Any:
    """The user's page with Notification recorded and the tab's visibility under control."""
    page = user.page
    page.context.add_init_script(NOTIFICATION_RECORDER)
    page.reload()
    page.locator('[data-testid="connection-status"][data-state="connected"]').wait_for()
    assert page.evaluate("Notification.permission") == "granted"
    return page


def test_mention_autocompletes_is_highlighted_and_notifies(register: Any) -> None:
    alice = register("alice", display_name="Alice Liddell")
    bob = register("bob", display_name="Bob Builder", permissions=["notifications"])
    bob_page = watched(bob)
    bob_id = user_id(bob)
    # Alice makes a group with Bob through the UI's API, then mentions him by autocompletion.
    chat = alice.page.evaluate(
        """([title, id]) => fetch('/service/api/chats', {
             method: 'POST', headers: {'Content-Type': 'application/json'},
             body: JSON.stringify({type: 'group', title, member_ids: [id]}),
           }).then(r => r.json())""",
        ["Mention team", bob_id],
    )
    open_chat(alice.page, chat["id"])
    box = alice.page.get_by_test_id("composer-input")
    box.press_sequentially(f"hello @{bob.username[:5]}")
    option = alice.page.get_by_test_id(f"mention-option-{bob.username}")
    option.wait_for()
    box.press("Enter")  # picks the highlighted member, does not send
    assert box.input_value() == f"hello @{bob.username} "
    box.press_sequentially("look at this")
    set_hidden(bob_page, True)
    box.press("Enter")

    mine = alice.page.get_by_test_id("message-1")
    mine.locator(".mention", has_text=f"@{bob.username}").wait_for()
    wait_until(bob_page, "window.__notes.length > 0")
    note = notes(bob_page)[0]
    assert note["title"] == "Alice Liddell mentioned you in Mention team"
    assert note["body"] == f"hello @{bob.username} look at this"
    badge = bob_page.locator(
        f'[data-testid="chat-item-{chat["id"]}"] [data-testid="mention-badge"]'
    )
    badge.wait_for()
    assert bob_page.title().startswith("(1) ")

    # The click on the notification focuses the chat, where the mention is highlighted.
    bob_page.evaluate("window.__lastNote.onclick()")
    set_hidden(bob_page, False)
    message = bob_page.locator('[data-testid="message-1"].is-mention')
    message.wait_for()
    assert message.locator(".mention.is-me").inner_text() == f"@{bob.username}"
    badge.wait_for(state="detached")
    shot(bob_page, "mention-highlight")

    # Alice clicks a member with the mouse this time.
    box.press_sequentially("@")
    alice.page.get_by_test_id(f"mention-option-{bob.username}").click()
    assert box.input_value() == f"@{bob.username} "


def test_direct_messages_notify_unless_muted_but_mentions_always_do(
    register: Any, base_url: str
) -> None:
    bob = register("muter", permissions=["notifications"])
    page = watched(bob)
    bob_id = user_id(bob)
    carl = api_user(base_url, "carl", display_name="Carl")
    direct = carl.direct(bob_id)
    group = carl.group("Busy room", [bob_id])
    carl.send(direct["id"], "first")
    page.get_by_test_id(f"chat-item-{direct['id']}").wait_for()

    set_hidden(page, True)
    carl.send(direct["id"], "are you there?")
    wait_until(page, "window.__notes.length === 1")
    assert notes(page)[0] == {
        "title": "Carl",
        "body": "are you there?",
        "tag": f"parley-chat-{direct['id']}",
    }
    carl.send(group["id"], "chatter in the group")  # not a mention, not direct: silent
    set_hidden(page, False)

    # Bob mutes both chats from their headers.
    for chat_id in (direct["id"], group["id"]):
        open_chat(page, chat_id)
        page.get_by_test_id("mute-button").click()
        page.get_by_test_id("mute-forever").click()
        page.locator('[data-testid="mute-button"][data-muted="true"]').wait_for()
        page.locator(f'[data-testid="chat-item-{chat_id}"][data-muted="true"]').wait_for()
    settings = carl.http.get(f"/service/api/chats/{direct['id']}").json()
    assert settings["muted_until"] is None  # the mute is Bob's, not Carl's
    page.locator('[data-testid="chat-list"] .chat-item', has_text="general").click()

    set_hidden(page, True)
    carl.send(direct["id"], "muted direct message")
    page.locator(
        f'[data-testid="chat-item-{direct["id"]}"] [data-testid="unread-badge"]'
    ).wait_for()
    carl.send(group["id"], f"@{bob.username} but this one is for you")
    wait_until(page, "window.__notes.length === 2")
    assert notes(page)[1]["title"] == "Carl mentioned you in Busy room"
    # Muted chats stay out of the title's count, except for their mentions.
    assert page.title() == "(1) Parley"
    favicon = page.locator("#favicon")
    assert favicon.get_attribute("data-count") == "1"
    assert (favicon.get_attribute("href") or "").startswith("data:image/png")

    set_hidden(page, False)
    open_chat(page, direct["id"])
    page.get_by_test_id("mute-button").click()  # a click on a muted chat unmutes it
    page.locator('[data-testid="mute-button"][data-muted="false"]').wait_for()
    page.locator('[data-testid="chat-list"] .chat-item', has_text="general").click()
    set_hidden(page, True)
    carl.send(direct["id"], "and now?")
    wait_until(page, "window.__notes.length === 3")
    assert notes(page)[2]["body"] == "and now?"


def test_mentions_view_opens_an_old_message_in_place(register: Any, base_url: str) -> None:
    me = register("famous")
    my_id = user_id(me)
    dora = api_user(base_url, "dora", display_name="Dora")
    group = dora.group("Long history", [my_id])
    dora.send(group["id"], f"early news for @{me.username}")
    for i in range(1, 81):
        dora.send(group["id"], f"filler {i}")
    page = me.page
    page.get_by_test_id("mentions-button").click()
    hit = page.locator('[data-testid^="mention-hit-"]').first
    hit.wait_for()
    assert "early news for" in hit.inner_text()
    hit.click()
    target = page.locator('[data-testid="message-1"][data-highlight="true"]')
    target.wait_for()
    assert target.is_visible()
    assert page.get_by_test_id("message-81").count() == 0  # loaded around it, not from the end
    shot(page, "mentions-jump")
    # Scrolling down brings the newer messages; jump-to-latest goes to the end.
    page.get_by_test_id("jump-bottom").click()
    page.get_by_test_id("message-81").wait_for()


def test_search_result_opens_the_message_in_place(register: Any, base_url: str) -> None:
    me = register("seeker")
    eve = api_user(base_url, "eve")
    chat_id = eve.direct(user_id(me))["id"]
    eve.send(chat_id, "the needle is here")
    for i in range(1, 81):
        eve.send(chat_id, f"hay {i}")
    page = me.page
    # Read already (an unread chat would open at its first unread message, the needle).
    read = page.request.post(
        f"/service/api/chats/{chat_id}/read", data={"seq": 81}, headers={"Origin": base_url}
    )
    assert read.status == 204, read.text()
    open_chat(page, chat_id)
    page.get_by_test_id("message-81").wait_for()
    page.get_by_test_id("message-search-button").click()
    page.get_by_test_id("message-search-input").fill("needle")
    page.locator('[data-testid^="search-hit-"]').first.click()
    target = page.locator('[data-testid="message-1"][data-highlight="true"]')
    target.wait_for()
    assert target.is_visible()
    # Sending from the older window brings the newest page back first.
    send(page, "found it")
    page.get_by_test_id("message-82").filter(has_text="found it").wait_for()
    page.get_by_test_id("message-81").wait_for()
