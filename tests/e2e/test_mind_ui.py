"""Presence of mind in the browser: a status with an emoji and a "clear after", do not
disturb (the moon on my avatar), a chat's notification level, a draft kept on the server
and restored after a reload, "Seen by", and a message scheduled with the date/time picker,
edited and deleted. Screenshots in English and Russian."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.e2e.conftest import User, shot
from tests.e2e.support import api_user, open_chat, send, user_id, wait_until


def profile_menu(page: Any, item: str) -> None:
    page.get_by_test_id("profile-button").click()
    page.get_by_test_id(item).click()


def test_status_dnd_notify_draft_seen_and_schedule(register: Any, base_url: str) -> None:
    me: User = register("mind", display_name="Mina")
    page = me.page
    peer = api_user(base_url, "peer", display_name="Pavel")
    chat = peer.direct(user_id(me))
    peer.send(chat["id"], "Hi Mina")
    page.get_by_test_id(f"chat-item-{chat['id']}").wait_for()

    # a status: emoji, text and when it clears; shown beside my name
    profile_menu(page, "menu-status")
    page.get_by_test_id("status-emoji-input").fill("🍔")
    page.get_by_test_id("status-text-input").fill("Out for lunch")
    page.get_by_test_id("status-clear-after").select_option("hour")
    shot(page, "mind-status-dialog-en")
    page.get_by_test_id("status-save").click()
    badge = page.locator('[data-testid="me-name"] [data-testid="status-emoji"]')
    badge.wait_for()
    assert badge.inner_text() == "🍔" and badge.get_attribute("title") == "Out for lunch"
    profile = page.evaluate("fetch('/service/api/profile').then(r => r.json())")
    assert profile["status"]["text"] == "Out for lunch" and profile["status"]["until"]

    # do not disturb for an hour: a moon on my avatar
    profile_menu(page, "menu-dnd-1h")
    page.get_by_test_id("dnd-moon").wait_for()
    profile = page.evaluate("fetch('/service/api/profile').then(r => r.json())")
    assert profile["dnd_until"] is not None

    # the peer sees my status beside my name in its direct chat
    seen = peer.http.get(f"/service/api/chats/{chat['id']}").json()
    assert seen["peer"]["status"]["emoji"] == "🍔"

    # the chat's notification level, kept on the server
    open_chat(page, chat["id"])
    page.get_by_test_id("chat-info-button").click()
    page.get_by_test_id("notify-level").select_option("mentions")
    wait_until(
        page,
        f"fetch('/service/api/chats/{chat['id']}').then(r => r.json())"
        ".then(c => c.notify === 'mentions')",
    )
    shot(page, "mind-notify-level-en")
    page.get_by_test_id("dialog-close").click()

    # "Seen by" under my latest message once the peer has read it
    send(page, "Back at two")
    page.get_by_test_id("message-2").wait_for()
    # a direct chat: ✓ once stored, ✓✓ once the peer has read it
    receipt = page.get_by_test_id("message-2").get_by_test_id("message-receipt")
    receipt.wait_for()
    assert receipt.get_attribute("data-receipt") == "sent" and receipt.inner_text() == "✓"
    assert (
        peer.http.post(f"/service/api/chats/{chat['id']}/read", json={"seq": 2}).status_code == 204
    )
    page.get_by_test_id("seen-by").wait_for()
    assert "Pavel" in (page.get_by_test_id("seen-by").get_attribute("title") or "")
    page.locator('[data-testid="message-2"] [data-receipt="seen"]').wait_for()
    assert receipt.inner_text() == "✓✓"
    assert page.get_by_test_id("message-1").get_by_test_id("message-receipt").count() == 0  # his
    shot(page, "mind-receipts-en")

    # a draft typed here comes back after a reload (kept on the server)
    page.get_by_test_id("composer-input").fill("half a thought")
    wait_until(
        page,
        f"fetch('/service/api/chats/{chat['id']}').then(r => r.json())"
        ".then(c => c.draft && c.draft.content === 'half a thought')",
    )
    page.reload()
    page.locator('[data-testid="connection-status"][data-state="connected"]').wait_for()
    general = next(
        c["id"]
        for c in page.evaluate("fetch('/service/api/chats').then(r => r.json())")
        if c["type"] == "channel"
    )
    open_chat(page, general)
    label = page.locator(f'[data-testid="chat-item-{chat["id"]}"] [data-testid="draft-label"]')
    label.wait_for()
    assert "half a thought" in label.inner_text()
    shot(page, "mind-draft-label-en")
    open_chat(page, chat["id"])
    assert page.get_by_test_id("composer-input").input_value() == "half a thought"

    # schedule it for tomorrow with the picker, then edit and delete it
    page.get_by_test_id("composer-input").fill("See you tomorrow")
    page.get_by_test_id("composer-schedule").click()
    page.get_by_test_id("schedule-pick").click()
    when = datetime.now(UTC).astimezone() + timedelta(days=1)  # the browser's zone is the machine's
    when = when.replace(hour=9, minute=30)
    page.get_by_test_id("schedule-time").fill(when.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_test_id("schedule-confirm").click()
    page.locator('[data-testid="composer-scheduled"]:not([hidden])').wait_for()
    assert page.get_by_test_id("composer-input").input_value() == ""
    listed = page.evaluate("fetch('/service/api/scheduled').then(r => r.json())")
    assert [s["content"] for s in listed] == ["See you tomorrow"]
    assert peer.http.get(f"/service/api/chats/{chat['id']}/messages").json()[-1]["content"] == (
        "Back at two"
    )
    page.get_by_test_id("composer-scheduled").click()
    row = page.get_by_test_id(f"scheduled-{listed[0]['id']}")
    row.wait_for()
    shot(page, "mind-scheduled-en")
    page.get_by_test_id(f"scheduled-edit-button-{listed[0]['id']}").click()
    page.get_by_test_id(f"scheduled-edit-{listed[0]['id']}").fill("See you at 9:30")
    page.get_by_test_id(f"scheduled-save-{listed[0]['id']}").click()
    page.get_by_text("See you at 9:30").wait_for()
    page.get_by_test_id(f"scheduled-delete-{listed[0]['id']}").click()
    page.get_by_test_id("scheduled-list").get_by_text("No scheduled messages").wait_for()
    assert page.evaluate("fetch('/service/api/scheduled').then(r => r.json())") == []
    page.get_by_test_id("dialog-close").click()

    # the same screens in Russian
    profile_menu(page, "menu-lang-ru")
    page.get_by_test_id("profile-button").click()
    page.get_by_test_id("profile-menu").get_by_text("Установить статус…").wait_for()
    shot(page, "mind-profile-menu-ru")
    page.get_by_test_id("menu-status").click()
    page.get_by_test_id("status-dialog").get_by_text("Убрать через").wait_for()
    shot(page, "mind-status-dialog-ru")
    assert page.errors == []
