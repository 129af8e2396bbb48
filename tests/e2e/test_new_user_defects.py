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


def all_read(chat_id: int) -> str:
    """A page expression: true once nothing in the chat is unread for the page's user."""
    return (
        f"fetch('/service/api/chats/{chat_id}').then(r => r.json()).then(c => c.unread_count === 0)"
    )


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
    wait_until(page, all_read(group["id"]))

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
    wait_until(page, all_read(group["id"]))
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


def my_unread(page: Any) -> int:
    chats = page.evaluate("fetch('/service/api/chats').then(r => r.json())")
    return sum(c["unread_count"] for c in chats)


def test_a_blocked_sender_is_neither_the_preview_nor_unread_nor_in_the_title(
    register: Any, base_url: str
) -> None:
    me: User = register("blocker", display_name="Bea Blocker")
    page = me.page
    rude = api_user(base_url, "rude", display_name="Rude Rob")
    kind = api_user(base_url, "kind", display_name="Kind Kim")
    group = kind.group("Mixed company", [user_id(me), rude.id])
    kind.send(group["id"], "from Kim")
    rude.send(group["id"], "from Rob before")
    direct = rude.direct(user_id(me))
    item = page.get_by_test_id(f"chat-item-{group['id']}")
    item.get_by_test_id("chat-item-preview").filter(has_text="from Rob before").wait_for()
    assert item.get_by_test_id("unread-badge").inner_text() == "2"

    # Block Rob from our direct chat: the dialog offers "until I unblock" first.
    open_chat(page, direct["id"])
    page.get_by_test_id("block-button").click()
    assert page.get_by_test_id("block-duration-forever").is_checked()
    shot(page, "defects-block-dialog")
    page.get_by_test_id("block-confirm").click()
    page.get_by_test_id("block-button").filter(has_text="Unblock").wait_for()
    # At once, Rob's message leaves the group's preview and its unread count.
    item.get_by_test_id("chat-item-preview").filter(has_text="from Kim").wait_for()
    item.get_by_test_id("unread-badge").filter(has_text="1").wait_for()

    # What Rob writes while I am away is not counted after a reload either.
    page.goto("about:blank")
    rude.send(group["id"], "hidden one")
    rude.send(group["id"], "hidden two")
    page.goto("/chat")
    page.locator('[data-testid="connection-status"][data-state="connected"]').wait_for()
    item.get_by_test_id("chat-item-preview").filter(has_text="from Kim").wait_for()
    assert item.get_by_test_id("unread-badge").inner_text() == "1"
    total = my_unread(page)
    wait_until(page, f"document.title === '({total}) Parley'")
    # Live too: a new message from Rob changes nothing, one from Kim counts.
    rude.send(group["id"], "hidden three")
    kind.send(group["id"], "Kim again")
    item.get_by_test_id("chat-item-preview").filter(has_text="Kim again").wait_for()
    assert item.get_by_test_id("unread-badge").inner_text() == "2"
    shot(page, "defects-blocked-preview")


# A 1×1 PNG for an avatar.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def general_of(page: Any) -> dict[str, Any]:
    chats = page.evaluate("fetch('/service/api/chats').then(r => r.json())")
    return next(c for c in chats if c["type"] == "channel" and c["title"] == "general")


def test_member_counts_descriptions_and_avatars_reach_others_live(
    register: Any, base_url: str
) -> None:
    alice: User = register("live_a", display_name="Alice Live")
    bob: User = register("live_b", display_name="Bob Live", color_scheme="dark")
    # #general's header counts a newcomer as it happens.
    general = general_of(alice.page)
    open_chat(alice.page, general["id"])
    subtitle = alice.page.get_by_test_id("chat-subtitle")
    subtitle.filter(has_text=f"{general['member_count']} members").wait_for()
    api_user(base_url, "newcomer")
    subtitle.filter(has_text=f"{general['member_count'] + 1} members").wait_for()

    # A group made in the browser, with and without a description: Bob sees both right.
    page = alice.page
    for title, description in (("Friday plans", "Where we meet"), ("No words", "")):
        page.get_by_test_id("new-chat-button").click()
        page.get_by_test_id("new-chat-tab-group").click()
        page.get_by_test_id("new-chat-title").fill(title)
        if description:
            page.get_by_test_id("new-chat-description").fill(description)
        form = page.get_by_test_id("new-group-form")
        form.get_by_test_id("user-picker-search").fill(bob.username)
        form.get_by_test_id(f"user-picker-{user_id(bob)}").click()
        page.get_by_test_id("new-chat-create").click()
        page.get_by_test_id("chat-title").filter(has_text=title).wait_for()
        item = bob.page.locator(".chat-item", has_text=title)
        item.wait_for()
        item.click()
        bob.page.get_by_test_id("chat-info-button").click()
        bob.page.get_by_test_id("chat-info-title").filter(has_text=title).wait_for()
        info = bob.page.get_by_test_id("chat-info-dialog")
        assert "null" not in info.inner_text()
        if description:
            assert bob.page.get_by_test_id("chat-info-description").inner_text() == description
        else:
            assert bob.page.get_by_test_id("chat-info-description").count() == 0
        bob.page.keyboard.press("Escape")

    # Alice's new photo reaches Bob's open chat without a reload.
    page.get_by_test_id("composer-input").fill("a photo is coming")
    page.get_by_test_id("composer-input").press("Enter")
    message = bob.page.locator(".msg", has_text="a photo is coming")
    message.wait_for()
    assert message.locator(".avatar img").count() == 0
    page.get_by_test_id("profile-button").click()
    page.get_by_test_id("menu-profile").click()
    # No photo yet: nothing to remove.
    assert page.get_by_test_id("profile-avatar-remove").is_hidden()
    page.get_by_test_id("profile-avatar-file").set_input_files(
        {"name": "me.png", "mimeType": "image/png", "buffer": PNG}
    )
    page.get_by_test_id("profile-avatar-remove").wait_for()
    message.locator(f'.avatar img[src*="/users/{user_id(alice)}/avatar"]').wait_for()
    shot(bob.page, "defects-live-avatar-dark")


WORDS = {
    "en": {"members": "members", "reply": "Reply to", "discard": "Discard",
           "wrong": "Wrong username or password.", "taken": "This username is taken.",
           "general": "Everyone’s channel", "reconnecting": "Reconnecting…"},
    "ru": {"members": "участник", "reply": "Ответ для", "discard": "Не отправлять",
           "wrong": "Неверное имя пользователя или пароль.",
           "taken": "Это имя пользователя уже занято.", "general": "Канал для всех",
           "reconnecting": "Соединение…"},
}  # fmt: skip
LOCALES = {"en": "en-US", "ru": "ru-RU"}


def fits(page: Any, selector: str) -> bool:
    result: bool = page.evaluate(
        "s => { const e = document.querySelector(s); return e.scrollWidth <= e.clientWidth + 1; }",
        selector,
    )
    return result


@pytest.mark.parametrize(
    ("lang", "theme"), [("en", "light"), ("en", "dark"), ("ru", "light"), ("ru", "dark")]
)
def test_the_new_user_screens_in_both_languages_and_themes(
    register: Any, base_url: str, lang: str, theme: str
) -> None:
    words = WORDS[lang]
    name = "Konstantin Wolff" if lang == "en" else "Константин Волков"
    me: User = register("screens", display_name=name, locale=LOCALES[lang], color_scheme=theme)
    page = me.page
    page.set_viewport_size({"width": 1280, "height": 720})
    # The sidebar head shows my whole name and status, even the longest status.
    assert fits(page, "#me-name") and fits(page, "#connection-status")
    shown = page.evaluate(
        "t => { const l = document.querySelector('#connection-status .conn-label');"
        " const was = l.textContent; l.textContent = t; return was; }",
        words["reconnecting"],
    )
    assert fits(page, "#connection-status"), "the reconnecting label is cut"
    page.evaluate(
        "t => { document.querySelector('#connection-status .conn-label').textContent = t; }", shown
    )

    # #general's description is in my language.
    general = general_of(page)
    open_chat(page, general["id"])
    page.get_by_test_id("chat-info-button").click()
    assert page.get_by_test_id("chat-info-description").inner_text() == words["general"]
    page.keyboard.press("Escape")

    # Markdown lists, :shortcodes: as typed, times in my locale.
    peer = api_user(base_url, "listener", display_name="Lou Listener")
    chat = peer.direct(user_id(me))
    peer.send(chat["id"], "hi")
    open_chat(page, chat["id"])
    box = page.get_by_test_id("composer-input")
    box.fill("To buy:\n- milk\n- eggs\n1. first\n2. second")
    box.press("Enter")
    mine = page.get_by_test_id("message-2").get_by_test_id("message-content")
    mine.locator("ul li").nth(1).wait_for()
    assert mine.locator("ul li").all_inner_texts() == ["milk", "eggs"]
    assert mine.locator("ol li").all_inner_texts() == ["first", "second"]
    box.click()
    page.keyboard.type("well done :tada: :+1:")
    assert box.input_value() == "well done 🎉 👍"
    box.fill("")
    time_text = page.get_by_test_id("message-2").get_by_test_id("message-time").inner_text()
    has_ampm = "AM" in time_text or "PM" in time_text
    assert has_ampm == (lang == "en"), time_text

    # Emoji search knows the common names.
    page.get_by_test_id("composer-emoji").click()
    search = page.get_by_test_id("emoji-search")
    for query, emoji in (("tada", "🎉"), ("thumbsup", "👍"), ("+1", "👍")):
        search.fill(query)
        first = page.locator('[data-testid="emoji-results"] .emoji-btn').first
        first.wait_for()
        assert first.get_attribute("data-testid") == f"emoji-option-{emoji}", query
    page.keyboard.press("Escape")

    # Replying and a failed send speak proper Russian.
    page.get_by_test_id("message-1").hover()
    page.get_by_test_id("message-1").get_by_test_id("message-reply").click()
    context = page.get_by_test_id("composer-context")
    assert words["reply"] in context.inner_text()
    page.get_by_test_id("composer-cancel").click()
    shot(page, f"defects-screens-{lang}-{theme}")

    # Signing out asks first; cancelling stays.
    page.get_by_test_id("profile-button").click()
    page.get_by_test_id("menu-logout").click()
    page.get_by_test_id("confirm-dialog").wait_for()
    shot(page, f"defects-sign-out-{lang}-{theme}")
    page.get_by_test_id("confirm-cancel").click()
    assert "/chat" in page.url
    page.get_by_test_id("profile-button").click()
    page.get_by_test_id("menu-logout").click()
    page.get_by_test_id("confirm-ok").click()
    page.wait_for_url("**/login")

    # The server's errors in my language, by their code.
    page.get_by_test_id("login-username").fill(me.username)
    page.get_by_test_id("login-password").fill("not the password")
    page.get_by_test_id("login-submit").click()
    error = page.get_by_test_id("login-error")
    error.filter(has_text=words["wrong"]).wait_for()
    shot(page, f"defects-login-error-{lang}-{theme}")
    page.goto("/register")
    page.get_by_test_id("register-username").fill(me.username)
    page.get_by_test_id("register-email").fill(f"other_{me.username}@example.com")
    page.get_by_test_id("register-password").fill("correct horse battery")
    page.get_by_test_id("register-submit").click()
    page.get_by_text(words["taken"]).wait_for()


def test_on_a_phone_the_contact_name_keeps_its_room(register: Any, base_url: str) -> None:
    me: User = register("phone")
    page = me.page
    page.set_viewport_size({"width": 390, "height": 800})
    peer = api_user(base_url, "longname", display_name="Maximilian Featherstonehaugh")
    chat = peer.direct(user_id(me))
    peer.send(chat["id"], "hello from far away")
    if page.get_by_test_id("back-button").is_visible():
        page.get_by_test_id("back-button").click()
    page.get_by_test_id(f"chat-item-{chat['id']}").click()
    title = page.get_by_test_id("chat-title")
    title.filter(has_text="Maximilian").wait_for()
    # No "Block" text button squeezes the name: blocking is in the chat's details.
    assert page.get_by_test_id("block-button").is_hidden()
    shot(page, "defects-phone-header")
    width = page.evaluate(
        "document.querySelector('[data-testid=\"chat-title\"]').getBoundingClientRect().width"
    )
    assert width > 170, width  # with the Block button it was about 100 px
    shot(page, "defects-phone-header")
    page.get_by_test_id("chat-info-button").click()
    page.get_by_test_id("info-block-toggle").click()
    assert page.get_by_test_id("block-duration-forever").is_checked()
    page.get_by_test_id("block-confirm").click()
    page.get_by_test_id("chat-subtitle").filter(has_text="blocked").wait_for()


def test_a_changed_password_is_said_once_and_the_form_stays(register: Any) -> None:
    me: User = register("passw")
    page = me.page
    page.get_by_test_id("settings-button").click()
    page.get_by_test_id("settings-tab-password").click()
    page.get_by_test_id("password-current").fill("correct horse battery")
    page.get_by_test_id("password-new").fill("another horse battery")
    page.get_by_test_id("password-confirm").fill("another horse battery")
    page.get_by_test_id("password-submit").click()
    page.get_by_test_id("password-changed").wait_for()
    # (the old code showed a toast at the same moment as this line)
    assert page.get_by_test_id("toast").count() == 0
    for field in ("password-current", "password-new", "password-confirm"):
        assert page.get_by_test_id(field).is_visible()
        assert page.get_by_test_id(field).input_value() == ""
    shot(page, "defects-password-changed")
