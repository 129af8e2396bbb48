"""The web client in a real browser against a real `parley serve`."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.e2e.conftest import User, shot

pytestmark = pytest.mark.browser

XSS = "<img src=x onerror=alert(1)>"


def open_direct_chat(me: User, other: User) -> None:
    page = me.page
    page.get_by_test_id("search-input").fill(other.username)
    page.locator('[data-testid^="search-user-"]').first.click()
    page.get_by_test_id("chat-title").filter(has_text=other.display_name).wait_for()


def send(page: Any, text: str) -> None:
    page.get_by_test_id("composer-input").fill(text)
    page.get_by_test_id("composer-input").press("Enter")


def message_contents(page: Any) -> list[str]:
    locator = page.locator('[data-testid="message-list"] .msg [data-testid="message-content"]')
    return [text.strip() for text in locator.all_inner_texts()]


def test_register_lands_on_chat_with_general(register: Any) -> None:
    user = register("newbie")
    page = user.page
    general = page.locator('[data-testid="chat-list"] .chat-item', has_text="general")
    general.wait_for()
    assert page.get_by_test_id("me-name").inner_text() == user.username
    general.click()
    page.get_by_test_id("chat-title").filter(has_text="general").wait_for()
    assert "member" in page.get_by_test_id("chat-subtitle").inner_text()
    shot(page, "register-general")
    assert page.errors == []


def test_direct_message_arrives_live(register: Any) -> None:
    alice = register("alice", display_name="Alice Example")
    bob = register("bob", display_name="Bob Example", color_scheme="dark")
    open_direct_chat(alice, bob)
    send(alice.page, "Hi Bob, are you there?")
    alice.page.get_by_test_id("message-1").wait_for()

    # Bob has not opened anything: the chat appears in his sidebar with an unread badge.
    badge = bob.page.locator(".chat-item", has_text="Alice Example").get_by_test_id("unread-badge")
    badge.wait_for()
    assert badge.inner_text() == "1"
    bob.page.locator(".chat-item", has_text="Alice Example").click()
    bob.page.get_by_test_id("message-1").filter(has_text="are you there?").wait_for()
    badge.wait_for(state="detached")  # viewing the chat marks it read

    alice.page.get_by_test_id("composer-input").press_sequentially("typ")
    bob.page.get_by_test_id("typing-indicator").filter(
        has_text="Alice Example is typing"
    ).wait_for()
    alice.page.get_by_test_id("composer-input").fill("")

    send(bob.page, "Yes, here!")
    alice.page.get_by_test_id("message-2").filter(has_text="Yes, here!").wait_for()
    assert bob.page.locator('[data-testid^="message-pending-"]').count() == 0
    shot(alice.page, "direct-alice")
    shot(bob.page, "direct-bob")
    assert alice.page.errors == [] and bob.page.errors == []


def test_html_payload_is_shown_as_text(register: Any) -> None:
    alice = register("mallory", display_name=XSS)
    bob = register("victim")
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    for page in (alice.page, bob.page):
        page.on("dialog", on_dialog)
    open_direct_chat(bob, alice)
    send(bob.page, "hello")
    bob.page.get_by_test_id("message-1").wait_for()
    alice.page.locator(".chat-item", has_text="victim").click()
    send(alice.page, XSS)
    for page in (alice.page, bob.page):
        message = page.get_by_test_id("message-2")
        message.wait_for()
        assert message.get_by_test_id("message-content").inner_text().strip() == XSS
        assert message.locator("img").count() == 0
    assert bob.page.get_by_test_id("chat-title").inner_text() == XSS
    shot(bob.page, "html-as-text")
    assert dialogs == []


def test_reload_keeps_history(register: Any) -> None:
    carol = register("carol")
    dave = register("dave")
    open_direct_chat(carol, dave)
    for i in range(1, 4):
        send(carol.page, f"message number {i}")
        carol.page.get_by_test_id(f"message-{i}").wait_for()
    carol.page.reload()
    carol.page.get_by_test_id("message-3").wait_for()  # the open chat comes back from the URL
    assert message_contents(carol.page) == [f"message number {i}" for i in range(1, 4)]
    carol.page.goto("/chat")
    carol.page.locator(".chat-item", has_text=dave.username).click()
    carol.page.get_by_test_id("message-3").wait_for()
    shot(carol.page, "after-reload")


def test_wrong_password_shows_server_error(new_page: Any, register: Any) -> None:
    user = register("erin")
    page = new_page()
    page.goto("/login")
    page.get_by_test_id("login-username").fill(user.username)
    page.get_by_test_id("login-password").fill("not the password")
    page.get_by_test_id("login-submit").click()
    error = page.get_by_test_id("login-error")
    error.wait_for()
    assert error.inner_text()
    assert page.url.endswith("/login")
    page.get_by_test_id("login-password").fill("correct horse battery")
    page.get_by_test_id("login-submit").click()
    page.wait_for_url("**/chat*")


def test_taken_username_is_reported_by_the_field(new_page: Any, register: Any) -> None:
    user = register("frank")
    page = new_page()
    page.goto("/register")
    page.get_by_test_id("register-username").fill(user.username)
    page.get_by_test_id("register-email").fill("someone-else@example.com")
    page.get_by_test_id("register-password").fill("password1234")
    page.get_by_test_id("register-submit").click()
    field_error = page.locator('.field-error[data-for="username"]')
    field_error.wait_for()
    assert field_error.inner_text()
    shot(page, "register-taken")


def test_not_signed_in_goes_to_login(new_page: Any) -> None:
    page = new_page()
    page.goto("/")
    try:
        page.wait_for_url("**/login", timeout=5_000)
    except Exception:
        who = page.get_by_test_id("me-name").inner_text(timeout=1_000)
        pytest.fail(f"a browser without cookies stayed on {page.url}, signed in as {who!r}")
    page.get_by_test_id("login-username").wait_for()


def test_reactions_edits_and_deletions_arrive_live(register: Any) -> None:
    gina = register("gina")
    hank = register("hank")
    open_direct_chat(gina, hank)
    send(gina.page, "first draft")
    send(gina.page, "to be deleted")
    gina.page.get_by_test_id("message-2").wait_for()
    hank.page.locator(".chat-item", has_text=gina.username).click()
    hank.page.get_by_test_id("message-2").wait_for()

    first = hank.page.get_by_test_id("message-1")
    first.hover()
    first.get_by_test_id("message-react").click()
    hank.page.get_by_test_id("emoji-👍").click()
    chip = gina.page.get_by_test_id("message-1").get_by_test_id("reaction-👍")
    chip.wait_for()
    assert chip.get_attribute("aria-pressed") == "false"
    chip.click()  # Gina adds hers by clicking the chip
    gina.page.locator(
        '[data-testid="message-1"] [data-testid="reaction-👍"][aria-pressed="true"]'
    ).wait_for()
    hank.page.locator(
        '[data-testid="message-1"] [data-testid="reaction-👍"]', has_text="2"
    ).wait_for()

    mine = gina.page.get_by_test_id("message-1")
    mine.hover()
    mine.get_by_test_id("message-edit").click()
    gina.page.get_by_test_id("composer-input").fill("final text")
    gina.page.get_by_test_id("composer-input").press("Enter")
    edited = hank.page.get_by_test_id("message-1")
    edited.get_by_test_id("message-edited").wait_for()
    assert "final text" in edited.get_by_test_id("message-content").inner_text()

    doomed = gina.page.get_by_test_id("message-2")
    doomed.hover()
    doomed.get_by_test_id("message-delete").click()
    gina.page.get_by_test_id("confirm-ok").click()
    hank.page.get_by_test_id("message-2").get_by_test_id("message-deleted").wait_for()
    # Only the author gets edit/delete actions.
    assert hank.page.get_by_test_id("message-1").get_by_test_id("message-edit").count() == 0
    shot(hank.page, "reactions-edits")


def test_image_attachment_is_shown_inline(register: Any, tmp_path: Any) -> None:
    from PIL import Image

    ivy = register("ivy")
    jack = register("jack")
    image = tmp_path / "sunset.png"
    Image.new("RGB", (320, 200), (230, 120, 40)).save(image)
    notes = tmp_path / "notes.txt"
    notes.write_text("plain notes\n")
    open_direct_chat(ivy, jack)
    ivy.page.get_by_test_id("composer-file").set_input_files([str(image), str(notes)])
    ivy.page.locator('[data-testid="composer-file-chip"][data-status="done"]').nth(1).wait_for()
    send(ivy.page, "two files")
    jack.page.locator(".chat-item", has_text=ivy.username).click()
    message = jack.page.get_by_test_id("message-1")
    img = message.locator(".msg-image img")
    img.wait_for()
    # Polled from here: wait_for_function compiles its predicate with eval, which the CSP
    # forbids as soon as it has to poll.
    for _ in range(100):
        if img.evaluate("img => img.complete && img.naturalWidth === 320"):
            break
        jack.page.wait_for_timeout(100)
    assert img.evaluate("img => img.naturalWidth") == 320
    link = message.locator("a.msg-file")
    assert link.inner_text().startswith("notes.txt")
    assert link.get_attribute("download") == "notes.txt"
    shot(jack.page, "attachments")


def test_group_and_public_channel(register: Any) -> None:
    kim = register("kim")
    leo = register("leo")
    kim.page.get_by_test_id("new-chat-button").click()
    kim.page.get_by_test_id("new-chat-tab-channel").click()
    title = f"chan-{kim.username}"
    kim.page.get_by_test_id("new-chat-title").fill(title)
    kim.page.get_by_test_id("new-chat-create").click()
    kim.page.get_by_test_id("chat-title").filter(has_text=title).wait_for()
    send(kim.page, "welcome to the channel")
    kim.page.get_by_test_id("message-1").wait_for()

    leo.page.get_by_test_id("search-input").fill(title)
    leo.page.locator('[data-testid^="join-channel-"]').click()
    leo.page.get_by_test_id("chat-title").filter(has_text=title).wait_for()
    leo.page.get_by_test_id("message-1").filter(has_text="welcome").wait_for()
    send(leo.page, "thanks!")
    # seq 2 is the notice of Leo's joining
    kim.page.get_by_test_id("message-3").filter(has_text="thanks!").wait_for()
    kim.page.get_by_test_id("chat-subtitle").filter(has_text="2 members").wait_for()

    leo.page.get_by_test_id("message-search-button").click()
    leo.page.get_by_test_id("message-search-input").fill("welcome")
    leo.page.locator('[data-testid^="search-hit-"]').first.click()
    leo.page.locator('[data-testid="message-1"].is-highlight').wait_for()
    shot(leo.page, "channel")


def test_scrolling_up_pages_back_through_history(register: Any, base_url: str) -> None:
    nina = register("nina")
    omar = register("omar")
    open_direct_chat(nina, omar)
    send(nina.page, "old message 1")  # the direct chat is created by its first message
    nina.page.get_by_test_id("message-1").wait_for()
    chat_id = nina.page.url.rsplit("#", 1)[1]
    for i in range(2, 111):  # over HTTP with the page's own cookie: quicker than typing
        response = nina.page.request.post(
            f"/service/api/chats/{chat_id}/messages",
            data={"content": f"old message {i}"},
            headers={"Origin": base_url},
        )
        assert response.status == 201, response.text()
    # Omar has read them all (elsewhere): the chat opens at the newest page, not at the first
    # unread message.
    read = omar.page.request.post(
        f"/service/api/chats/{chat_id}/read", data={"seq": 110}, headers={"Origin": base_url}
    )
    assert read.status == 204, read.text()
    omar.page.reload()
    omar.page.locator(".chat-item", has_text=nina.username).click()
    omar.page.get_by_test_id("message-110").wait_for()
    assert omar.page.get_by_test_id("message-1").count() == 0  # only the newest page so far
    for _ in range(10):
        if omar.page.get_by_test_id("message-1").count():
            break
        omar.page.get_by_test_id("message-list").evaluate("el => { el.scrollTop = 0; }")
        omar.page.wait_for_timeout(300)
    omar.page.get_by_test_id("message-1").wait_for()
    omar.page.get_by_test_id("history-status").filter(has_text="beginning").wait_for()
    assert len(message_contents(omar.page)) == 110
    shot(omar.page, "history-top")


def test_expired_access_token_is_refreshed_silently(browser: Any, short_lived_url: str) -> None:
    context = browser.new_context(base_url=short_lived_url)
    try:
        page = context.new_page()
        page.goto("/register")
        username = f"ttl_{uuid.uuid4().hex[:8]}"
        page.get_by_test_id("register-username").fill(username)
        page.get_by_test_id("register-email").fill(f"{username}@example.com")
        page.get_by_test_id("register-password").fill("correct horse battery")
        page.get_by_test_id("register-submit").click()
        page.locator('[data-testid="connection-status"][data-state="connected"]').wait_for()
        page.wait_for_timeout(4_500)  # the access cookie is now expired
        page.locator(".chat-item", has_text="general").click()  # GET messages: 401, refresh, retry
        send(page, "still signed in")
        page.locator(".msg:not(.is-pending)", has_text="still signed in").wait_for()
        page.reload()
        page.locator('[data-testid="connection-status"][data-state="connected"]').wait_for()
        assert page.url.split("#")[0].endswith("/chat")
        assert page.get_by_test_id("me-name").inner_text() == username
    finally:
        context.close()
