"""Reading and writing comfort in the browser: formatting, drafts, keys, first visit."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.e2e.conftest import User, shot
from tests.e2e.support import ApiUser, api_user, open_chat, send, user_id, wait_until

pytestmark = pytest.mark.browser

# A 1×1 PNG, pasted as if from the clipboard.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def open_person(me: User, other: ApiUser) -> None:
    page = me.page
    page.get_by_test_id("search-input").fill(other.username)
    page.locator('[data-testid^="search-user-"]').first.click()
    page.get_by_test_id("chat-title").filter(has_text=other.display_name).wait_for()


def test_markdown_is_rendered_and_html_inside_it_stays_text(register: Any, base_url: str) -> None:
    peer = api_user(base_url, "md")
    me = register("writer")
    page = me.page
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    open_person(me, peer)
    text = (
        "**bold** *italic* ~~gone~~ `a < b` [docs](https://example.com/docs)\n"
        "> quoted line\n"
        "```\nfor x in y: <b>not bold</b>\n```\n"
        "**<img src=x onerror=alert(1)>** <script>alert(2)</script> [click](javascript:alert(3))"
    )
    page.get_by_test_id("composer-input").fill(text)
    page.get_by_test_id("composer-input").press("Enter")
    content = page.get_by_test_id("message-1").get_by_test_id("message-content")
    content.locator("strong", has_text="bold").first.wait_for()
    assert content.locator("em").inner_text() == "italic"
    assert content.locator("s").inner_text() == "gone"
    assert content.locator("code.md-code").inner_text() == "a < b"
    link = content.locator('a[href="https://example.com/docs"]')
    assert link.inner_text() == "docs"
    assert link.get_attribute("rel") == "noopener noreferrer nofollow"
    assert link.get_attribute("target") == "_blank"
    assert content.locator("blockquote").inner_text() == "quoted line"
    assert content.locator("pre code").inner_text() == "for x in y: <b>not bold</b>"
    # The HTML is text: no element was made from it, no script ran, no javascript: link.
    assert content.locator("img, script, b").count() == 0
    assert "<img src=x onerror=alert(1)>" in content.locator("strong").nth(1).inner_text()
    assert "<script>alert(2)</script>" in content.inner_text()
    assert content.locator('a[href^="javascript"]').count() == 0
    page.wait_for_timeout(300)
    assert dialogs == [] and page.errors == []
    assert (
        page.get_by_test_id("toast").count() == 0
    )  # e.g. no typing notice for a chat not made yet
    shot(page, "formatting")


def test_person_from_search_becomes_a_chat_only_when_written_to(
    register: Any, base_url: str
) -> None:
    peer = api_user(base_url, "shy")
    me = register("opener")
    open_person(me, peer)
    page = me.page
    page.get_by_test_id("history-status").filter(has_text="No messages yet").wait_for()
    chats = peer.http.get("/service/api/chats").json()
    assert [c for c in chats if c["type"] == "direct"] == []  # nothing created yet
    assert page.locator('[data-testid="chat-list"] .chat-item', has_text=peer.username).count() == 0
    send(page, "hello there")
    page.get_by_test_id("message-1").filter(has_text="hello there").wait_for()
    chats = peer.http.get("/service/api/chats").json()
    direct = [c for c in chats if c["type"] == "direct"]
    assert len(direct) == 1 and direct[0]["last_message"]["content"] == "hello there"
    assert page.url.endswith(f"#{direct[0]['id']}")
    page.locator('[data-testid="chat-list"] .chat-item', has_text=peer.username).wait_for()


def test_text_typed_while_the_direct_chat_is_created_is_kept(register: Any, base_url: str) -> None:
    """The second message, typed while the first one creates the chat, is not wiped."""
    peer = api_user(base_url, "slowpeer")
    me = register("quick")
    page = me.page
    held: list[Any] = []

    def hold(route: Any) -> None:
        if route.request.method == "POST":
            held.append(route)
        else:
            route.continue_()

    page.route("**/service/api/chats", hold)
    open_person(me, peer)
    send(page, "first one")
    for _ in range(100):
        if held:
            break
        page.wait_for_timeout(100)
    assert len(held) == 1, "the chat creation was never requested"
    box = page.get_by_test_id("composer-input")
    box.fill("typed meanwhile")
    held[0].continue_()
    page.get_by_test_id("message-1").filter(has_text="first one").wait_for()
    assert box.input_value() == "typed meanwhile"
    box.press("Enter")
    page.get_by_test_id("message-2").filter(has_text="typed meanwhile").wait_for()


def test_drafts_are_kept_per_chat_across_switches_and_reloads(register: Any, base_url: str) -> None:
    me = register("drafter")
    ann, ben = api_user(base_url, "ann"), api_user(base_url, "ben")
    my_id = user_id(me)
    chat_a = ann.direct(my_id)["id"]
    chat_b = ben.direct(my_id)["id"]
    ann.send(chat_a, "hi from ann")
    ben.send(chat_b, "hi from ben")
    page = me.page
    box = page.get_by_test_id("composer-input")
    open_chat(page, chat_a)
    box.fill("draft for ann")
    open_chat(page, chat_b)
    assert box.input_value() == ""
    box.fill("draft for ben")
    open_chat(page, chat_a)
    assert box.input_value() == "draft for ann"
    page.reload()
    page.locator('[data-testid="connection-status"][data-state="connected"]').wait_for()
    page.get_by_test_id("message-1").wait_for()
    assert box.input_value() == "draft for ann"
    open_chat(page, chat_b)
    assert box.input_value() == "draft for ben"
    box.press("Enter")
    page.get_by_test_id("message-2").filter(has_text="draft for ben").wait_for()
    open_chat(page, chat_a)
    open_chat(page, chat_b)
    assert box.input_value() == ""  # a sent draft is gone


def test_up_arrow_edits_my_last_message(register: Any, base_url: str) -> None:
    peer = api_user(base_url, "reader")
    me = register("typo")
    open_person(me, peer)
    page = me.page
    send(page, "frist message")
    page.get_by_test_id("message-1").wait_for()
    send(page, "another one")
    page.get_by_test_id("message-2").wait_for()
    box = page.get_by_test_id("composer-input")
    box.press("ArrowUp")
    page.get_by_test_id("composer-context").wait_for()
    assert box.input_value() == "another one"
    box.fill("another one, fixed")
    box.press("Enter")
    page.get_by_test_id("message-2").get_by_test_id("message-edited").wait_for()
    assert "another one, fixed" in page.get_by_test_id("message-2").inner_text()
    # An edit started over a half-written message gives the draft back when it ends.
    box.fill("half-written")
    first = page.get_by_test_id("message-1")
    first.hover()
    first.get_by_test_id("message-edit").click()
    assert box.input_value() == "frist message"
    box.press("Escape")
    assert box.input_value() == "half-written"


def test_ctrl_k_switcher_and_alt_arrows(register: Any, base_url: str) -> None:
    me = register("switcher")
    cat, dan = api_user(base_url, "cat"), api_user(base_url, "dan", display_name="Dan Stranger")
    cat_chat = cat.direct(user_id(me))["id"]
    cat.send(cat_chat, "meow")
    page = me.page
    page.get_by_test_id(f"chat-item-{cat_chat}").wait_for()
    page.keyboard.press("Control+k")
    page.get_by_test_id("switcher-dialog").wait_for()
    page.get_by_test_id("switcher-input").fill(cat.username)
    page.locator('[data-testid="switcher-item"][data-kind="chat"]').first.wait_for()
    page.keyboard.press("Enter")
    page.get_by_test_id("switcher-dialog").wait_for(state="detached")
    page.get_by_test_id("chat-title").filter(has_text=cat.username).wait_for()

    # People without a chat are offered too; a click opens the (not yet created) chat.
    page.keyboard.press("Control+k")
    page.get_by_test_id("switcher-input").fill(dan.username)
    person = page.locator(f'[data-testid="switcher-item"][data-kind="user"][data-id="{dan.id}"]')
    person.click()
    page.get_by_test_id("chat-title").filter(has_text="Dan Stranger").wait_for()

    # Alt+↑/↓ walk the sidebar's order: cat's chat (newest) first, then #general.
    open_chat(page, cat_chat)
    page.keyboard.press("Alt+ArrowDown")
    page.get_by_test_id("chat-title").filter(has_text="general").wait_for()
    page.keyboard.press("Alt+ArrowUp")
    page.get_by_test_id("chat-title").filter(has_text=cat.username).wait_for()


def test_one_escape_closes_any_dialog(register: Any) -> None:
    me = register("escaper")
    page = me.page
    page.get_by_test_id("message-search-button").click()
    page.get_by_test_id("message-search-input").fill("something")
    page.keyboard.press("Escape")  # the search field would clear itself first without care
    page.get_by_test_id("message-search-dialog").wait_for(state="detached")
    page.get_by_test_id("new-chat-button").click()
    page.get_by_test_id("user-picker-search").fill("x")
    page.keyboard.press("Escape")
    page.get_by_test_id("new-chat-dialog").wait_for(state="detached")
    page.keyboard.press("Control+k")
    page.get_by_test_id("switcher-input").fill("zzz")
    page.keyboard.press("Escape")
    page.get_by_test_id("switcher-dialog").wait_for(state="detached")
    page.get_by_test_id("profile-button").click()
    page.get_by_test_id("profile-menu").wait_for()
    page.keyboard.press("Escape")
    page.get_by_test_id("profile-menu").wait_for(state="detached")


def test_new_messages_divider_and_jump_to_latest(register: Any, base_url: str) -> None:
    me = register("catchup")
    peer = api_user(base_url, "chatty")
    chat_id = peer.direct(user_id(me))["id"]
    peer.send(chat_id, "before you left")
    page = me.page
    open_chat(page, chat_id)
    page.get_by_test_id("message-1").wait_for()
    page.locator(f'[data-testid="chat-item-{chat_id}"] [data-testid="unread-badge"]').wait_for(
        state="detached"
    )
    page.locator('[data-testid="chat-list"] .chat-item', has_text="general").click()
    for i in range(1, 41):
        peer.send(chat_id, f"news {i}")
    page.locator(f'[data-testid="chat-item-{chat_id}"] [data-testid="unread-badge"]').filter(
        has_text="40"
    ).wait_for()
    open_chat(page, chat_id)
    divider = page.get_by_test_id("new-messages-divider")
    divider.wait_for()
    # The divider sits right before the first unread message, which is in view.
    assert divider.evaluate("el => el.nextElementSibling.dataset.seq") == "2"
    jump = page.get_by_test_id("jump-bottom")
    jump.wait_for()
    assert page.get_by_test_id("message-2").is_visible()
    shot(page, "new-messages-divider")
    jump.click()
    jump.wait_for(state="hidden")
    wait_until(
        page,
        "(() => { const l = document.getElementById('message-list');"
        " return l.scrollHeight - l.scrollTop - l.clientHeight < 80; })()",
    )
    page.locator(f'[data-testid="chat-item-{chat_id}"] [data-testid="unread-badge"]').wait_for(
        state="detached"
    )


def test_pasted_image_is_uploaded_and_sent(register: Any, base_url: str) -> None:
    peer = api_user(base_url, "viewer")
    me = register("paster")
    open_person(me, peer)
    page = me.page
    send(page, "a picture follows")
    page.get_by_test_id("message-1").wait_for()
    page.get_by_test_id("composer-input").evaluate(
        """(el, bytes) => {
          const data = new DataTransfer();
          data.items.add(new File([new Uint8Array(bytes)], 'image.png', { type: 'image/png' }));
          const init = { clipboardData: data, bubbles: true, cancelable: true };
          el.dispatchEvent(new ClipboardEvent('paste', init));
        }""",
        list(PNG),
    )
    page.locator('[data-testid="composer-file-chip"][data-status="done"]').wait_for()
    page.get_by_test_id("composer-input").press("Enter")
    page.get_by_test_id("message-2").locator(".msg-image img").wait_for()


def test_first_sign_in_opens_general_with_a_welcome(register: Any) -> None:
    me = register("newcomer")
    page = me.page
    banner = page.get_by_test_id("welcome-banner")
    banner.wait_for()
    assert "Welcome to Parley" in banner.inner_text()
    page.get_by_test_id("chat-title").filter(has_text="general").wait_for()
    page.reload()
    page.locator('[data-testid="connection-status"][data-state="connected"]').wait_for()
    page.get_by_test_id("chat-title").filter(has_text="general").wait_for()  # from the URL
    assert page.get_by_test_id("welcome-banner").count() == 0  # only the first time


def test_sign_in_pages_make_no_failing_requests(new_page: Any, register: Any) -> None:
    page = new_page()
    failures: list[str] = []
    page.on(
        "response", lambda r: failures.append(f"{r.status} {r.url}") if r.status >= 400 else None
    )
    page.on("console", lambda m: failures.append(m.text) if m.type == "error" else None)
    page.goto("/login")
    page.get_by_test_id("login-username").wait_for()
    page.goto("/register")
    page.get_by_test_id("register-username").wait_for()
    page.wait_for_timeout(500)
    assert failures == []
    # Signed in, the sign-in page goes straight to the chats; signed out, it stays.
    me = register("roundtrip")
    me.page.goto("/login")
    me.page.wait_for_url("**/chat*")
    me.page.get_by_test_id("profile-button").click()
    me.page.get_by_test_id("menu-logout").click()
    me.page.get_by_test_id("confirm-ok").click()  # signing out asks first
    me.page.wait_for_url("**/login")
    me.page.wait_for_timeout(500)
    assert me.page.url.endswith("/login")


# Holds back the answer of every "newest page" request for 1.5 s after the server sent it.
SLOW_FIRST_PAGE = """
(() => {
  const real = window.fetch.bind(window);
  window.fetch = async (input, init) => {
    const response = await real(input, init);
    if (String(input).includes('/messages?limit=50') && !String(input).includes('before')) {
      await new Promise((resolve) => setTimeout(resolve, 1500));
    }
    return response;
  };
})();
"""


def test_message_sent_while_the_first_page_loads_is_not_lost(register: Any, base_url: str) -> None:
    # The race behind a flaky token-refresh test: the echo of a message sent while the
    # chat's first page was on its way (read before the message was stored) used to drop
    # both the pending copy and the message.
    me = register("hasty")
    peer = api_user(base_url, "slowpoke")
    chat_id = peer.direct(user_id(me))["id"]
    peer.send(chat_id, "hello?")
    page = me.page
    page.context.add_init_script(SLOW_FIRST_PAGE)
    page.reload()
    page.locator('[data-testid="connection-status"][data-state="connected"]').wait_for()
    page.get_by_test_id(f"chat-item-{chat_id}").click()
    send(page, "typed during the load")
    page.locator(".msg:not(.is-pending)", has_text="typed during the load").wait_for(timeout=6_000)
    page.get_by_test_id("message-1").filter(has_text="hello?").wait_for()
    assert page.locator('[data-testid^="message-pending-"]').count() == 0


def test_markdown_edge_cases(new_page: Any) -> None:
    page = new_page()
    page.goto("/login")
    cases = [
        "snake_case_name and 2 * 3 * 4",
        "mail bob@example.com, ping @carol.",
        "**unclosed and `code with **stars**`",
        "[x](javascript:alert(1)) <b>hi</b> &amp;",
        "__bold__ _it_ ~~s~~",
    ]
    html = page.evaluate(
        """async (cases) => {
          const md = await import('/static/js/markdown.js');
          return cases.map((text) => {
            const box = document.createElement('div');
            box.append(...md.renderMarkdown(text, { isMe: (name) => name === 'carol' }));
            return box.innerHTML;
          });
        }""",
        cases,
    )
    assert html[0] == '<p class="md-p">snake_case_name and 2 * 3 * 4</p>'
    assert html[1] == (
        '<p class="md-p">mail bob@example.com, ping <span class="mention is-me"'
        ' data-testid="mention" data-username="carol">@carol</span>.</p>'
    )
    assert (
        html[2]
        == '<p class="md-p">**unclosed and <code class="md-code">code with **stars**</code></p>'
    )
    assert html[3] == '<p class="md-p">[x](javascript:alert(1)) &lt;b&gt;hi&lt;/b&gt; &amp;amp;</p>'
    assert html[4] == '<p class="md-p"><strong>bold</strong> <em>it</em> <s>s</s></p>'
