"""The app offline and installable, and Web Push's permission in the browser.

- The service worker keeps the app shell and the last chats viewed: offline, a reload still
  shows the app and the chat. Messages written offline wait in the IndexedDB outbox, shown
  pending, and are delivered once each (by their client_id) when the network returns.
- Chromium's own installability check (CDP `Page.getInstallabilityErrors`) finds nothing
  missing (manifest, icons, a service worker controlling start_url).
- A notification's click opens the chat at its message in the open tab; a chat read on
  another device closes its notifications there.
- Older history pages read online are read again offline.
- "Enable notifications" asks permission only when clicked. A real push subscription needs
  the browser vendor's push service, which cannot be reached here: the test stops at the
  permission and the service worker, and checks that the failure is shown, not hidden.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.e2e.conftest import CHROMIUM_ARGS, PASSWORD, User, shot
from tests.e2e.support import api_user
from tests.waiting import eventually_sync


def assert_soon(check: Callable[[], bool]) -> None:
    eventually_sync(check, what=getattr(check, "__doc__", None))


# Resolves once the service worker controls the page (after its clients.claim()); a
# promise, not a poll: the page's CSP forbids the eval that polling would need.
CONTROLLED = """new Promise((resolve) => {
  if (navigator.serviceWorker.controller) resolve(true);
  navigator.serviceWorker.addEventListener('controllerchange', () => resolve(true));
})"""


def wait_controlled(page: Any) -> None:
    assert page.evaluate(CONTROLLED) is True


def my_id(page: Any) -> int:
    return int(
        page.evaluate("fetch('/service/api/profile').then((r) => r.json()).then((u) => u.id)")
    )


def contents(peer: Any, chat_id: int) -> list[str]:
    answer = peer.http.get(f"/service/api/chats/{chat_id}/messages", params={"limit": 50})
    assert answer.status_code == 200, answer.text
    return [m["content"] for m in answer.json()]


def test_offline_the_app_and_the_last_chat_open_and_sends_wait_in_the_outbox(
    register: Callable[..., User], base_url: str
) -> None:
    me = register("offline")
    page = me.page
    peer = api_user(base_url, "faraway", display_name="Far Away")
    chat = peer.direct(my_id(page))
    peer.send(chat["id"], "written before the network went away")
    wait_controlled(page)  # the worker took over the page (clients.claim)
    page.goto(f"/chat#{chat['id']}")  # only the fragment changes: not a new page load
    page.reload()  # the page and its data now come through the worker, which keeps them
    expect(
        page.get_by_test_id("message-list").get_by_text("written before the network went away")
    ).to_be_visible()

    page.context.set_offline(True)
    page.reload()
    expect(page.get_by_test_id("composer-input")).to_be_visible()
    expect(
        page.get_by_test_id("message-list").get_by_text("written before the network went away")
    ).to_be_visible()
    expect(page.get_by_test_id("connection-status")).not_to_have_attribute(
        "data-state", "connected"
    )
    shot(page, "offline-reloaded")

    box = page.get_by_test_id("composer-input")
    for text in ("first written offline", "second written offline"):
        box.fill(text)
        box.press("Enter")
    pending = page.locator('[data-testid^="message-pending-"][data-status="pending"]')
    expect(pending).to_have_count(2)
    expect(pending.nth(0)).to_contain_text("first written offline")
    expect(pending.nth(1)).to_contain_text("second written offline")
    assert page.locator('[data-testid^="message-pending-"][data-status="failed"]').count() == 0
    expect(pending.nth(0).get_by_test_id("message-status")).to_have_text(
        "Waiting for the connection…"
    )
    shot(page, "offline-pending")
    assert "first written offline" not in contents(peer, chat["id"])

    page.context.set_offline(False)
    expect(page.get_by_test_id("connection-status")).to_have_attribute(
        "data-state", "connected", timeout=30_000
    )
    expect(page.locator('[data-testid^="message-pending-"]')).to_have_count(0, timeout=20_000)
    expect(
        page.get_by_test_id("message-list").get_by_text("second written offline")
    ).to_be_visible()
    shot(page, "offline-delivered")
    sent = contents(peer, chat["id"])
    assert sent.count("first written offline") == 1 and sent.count("second written offline") == 1
    assert sent.index("first written offline") < sent.index("second written offline")
    # a reload now finds nothing left in the outbox: still exactly once each
    page.reload()
    expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "connected")
    expect(
        page.get_by_test_id("message-list").get_by_text("second written offline")
    ).to_be_visible()
    assert page.locator('[data-testid^="message-pending-"]').count() == 0
    assert contents(peer, chat["id"]).count("second written offline") == 1


def test_the_app_passes_chromiums_installability_check(
    browser: Any, chromium_path: Path, base_url: str, tmp_path: Path
) -> None:
    # A persistent profile: Playwright's ordinary contexts are incognito, where Chromium
    # never offers to install an app ("in-incognito").
    context = browser.browser_type.launch_persistent_context(
        str(tmp_path / "profile"),
        executable_path=str(chromium_path),
        args=CHROMIUM_ARGS,
        base_url=base_url,
    )
    try:
        page = context.pages[0] if context.pages else context.new_page()
        someone = api_user(base_url, "install")
        page.goto("/login")
        page.get_by_test_id("login-username").fill(someone.username)
        page.get_by_test_id("login-password").fill(PASSWORD)
        page.get_by_test_id("login-submit").click()
        page.wait_for_url("**/chat*")
        check_installable(page)
        shot(page, "installable")
    finally:
        context.close()


def check_installable(page: Any) -> None:
    wait_controlled(page)
    manifest = page.evaluate(
        "fetch(document.querySelector('link[rel=manifest]').href).then((r) => r.json())"
    )
    assert manifest["start_url"] == "/chat" and manifest["display"] == "standalone"
    assert {"192x192", "512x512"} <= {icon["sizes"] for icon in manifest["icons"]}
    cdp = page.context.new_cdp_session(page)
    answer = cdp.send("Page.getInstallabilityErrors")
    assert answer["installabilityErrors"] == [], answer


ASK_COUNTER = """
window.__permissionAsks = 0;
if (window.Notification) {
  const ask = Notification.requestPermission.bind(Notification);
  Notification.requestPermission = (...args) => {
    window.__permissionAsks += 1;
    return ask(...args);
  };
}
"""


def test_enable_notifications_asks_only_on_click(
    register: Callable[..., User], base_url: str
) -> None:
    me = register("pushy")
    page = me.page
    page.context.grant_permissions(["notifications"])
    page.add_init_script(ASK_COUNTER)
    page.reload()
    expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "connected")
    wait_controlled(page)
    page.get_by_test_id("settings-button").click()
    enable = page.get_by_test_id("push-enable")
    expect(enable).to_be_visible()
    # loading the app and opening the settings asked nothing
    assert page.evaluate("window.__permissionAsks") == 0
    shot(page, "push-before-click")
    enable.click()
    # No push service is reachable from here: subscribing fails, and the person is told.
    expect(page.get_by_test_id("toast").first).to_be_visible()
    assert page.evaluate("window.__permissionAsks") == 1
    # the e-mail digests' switch beside it: off, then the profile says so
    digest = page.get_by_test_id("email-digest")
    expect(digest).to_be_checked()
    digest.uncheck()
    expect(digest).not_to_be_checked()
    profile = "fetch('/service/api/profile').then((r) => r.json())"
    assert_soon(lambda: page.evaluate(profile)["email_notifications"] is False)
    assert page.evaluate(profile)["language"] == "en"
    scope = page.evaluate(
        "navigator.serviceWorker.getRegistration('/static/sw.js')"
        ".then((r) => r && r.active && r.scope)"
    )
    assert scope == base_url.rstrip("/") + "/"
    shot(page, "push-after-click")
    listed = page.evaluate("fetch('/service/api/push/subscriptions').then((r) => r.json())")
    assert listed == []
    assert page.evaluate("window.__permissionAsks") == 1


def test_the_app_tells_the_server_its_language_for_e_mails(register: Callable[..., User]) -> None:
    page = register("russe", locale="ru-RU").page
    profile = "fetch('/service/api/profile').then((r) => r.json())"
    assert_soon(lambda: page.evaluate(profile)["language"] == "ru")
    page.get_by_test_id("settings-button").click()
    expect(page.get_by_test_id("reach-settings")).to_contain_text("Присылать письмо")


def test_the_service_worker_may_control_the_whole_site(base_url: str) -> None:
    """`/static/sw.js` is allowed scope `/` (it keeps the app shell for `/chat` offline)."""
    answer = httpx.get(base_url + "/static/sw.js")
    assert answer.status_code == 200
    assert answer.headers["service-worker-allowed"] == "/"
    assert "caches.open" in answer.text
    other = httpx.get(base_url + "/static/js/app.js")
    assert other.status_code == 200 and "service-worker-allowed" not in other.headers


def worker_of(page: Any) -> Any:
    """The service worker controlling the page, as Playwright reaches it."""
    wait_controlled(page)
    workers = [w for w in page.context.service_workers if w.url.endswith("/static/sw.js")]
    assert workers, page.context.service_workers
    return workers[0]


def sign_in_again(base_url: str, username: str) -> httpx.Client:
    """The same person on another device: a second session over the API."""
    http = httpx.Client(base_url=base_url, timeout=20)
    answer = http.post("/service/api/login", json={"username": username, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    http.cookies.clear()
    http.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
    return http


def test_a_notification_click_opens_the_chat_at_the_message(
    register: Callable[..., User], base_url: str
) -> None:
    me = register("clicked")
    page = me.page
    page.context.grant_permissions(["notifications"])
    peer = api_user(base_url, "ringer", display_name="Ringer")
    chat = peer.direct(my_id(page))
    target = peer.send(chat["id"], "the message the notification was about")
    for n in range(60):  # enough after it that opening the chat alone would not show it
        peer.send(chat["id"], f"later message {n}")
    other = peer.group("Elsewhere", [my_id(page)])
    page.goto(f"/chat#{other['id']}")
    page.reload()
    expect(page.get_by_test_id("chat-title")).to_have_text("Elsewhere")
    worker = worker_of(page)

    # What the push handler shows, then the click on it (sw.js's notificationclick calls
    # the same function; a test cannot click a system notification).
    payload = {
        "type": "message",
        "chat_id": chat["id"],
        "message_id": target["id"],
        "seq": target["seq"],
        "title": "Ringer",
        "body": target["content"],
        "tag": f"chat-{chat['id']}",
    }
    worker.evaluate(
        "(data) => self.registration.showNotification("
        "data.title, {body: data.body, tag: data.tag, data})",
        payload,
    )
    assert worker.evaluate("() => self.registration.getNotifications().then((n) => n.length)") == 1
    worker.evaluate("(data) => self.openFromNotification(data).then(() => true)", payload)

    expect(page.get_by_test_id("chat-title")).to_have_text("Ringer")
    opened = page.get_by_test_id(f"message-{target['seq']}")
    expect(opened).to_be_in_viewport()
    expect(opened).to_have_class(re.compile(r"\bis-highlight\b"))
    expect(opened).to_contain_text("the message the notification was about")
    shot(page, "notification-click-opened")
    # the same tab, not a new one, and no reload of the app
    assert len(page.context.pages) == 1


def test_a_chat_read_on_another_device_closes_its_notifications(
    register: Callable[..., User], base_url: str
) -> None:
    me = register("twodevices")
    page = me.page
    page.context.grant_permissions(["notifications"])
    peer = api_user(base_url, "noisy", display_name="Noisy")
    chat = peer.direct(my_id(page))
    quiet = peer.group("Still unread", [my_id(page)])
    last = peer.send(chat["id"], "read me on your phone")
    peer.send(quiet["id"], "nobody reads this one")
    page.reload()
    worker = worker_of(page)
    for room in (chat, quiet):
        worker.evaluate(
            "(id) => self.registration.showNotification('Noisy', {tag: `chat-${id}`, "
            "data: {type: 'message', chat_id: id}})",
            room["id"],
        )
    count = "() => self.registration.getNotifications().then((n) => n.map((x) => x.data.chat_id))"
    assert sorted(worker.evaluate(count)) == sorted([chat["id"], quiet["id"]])
    expect(page).to_have_title(re.compile(r"^\(2\) "))

    phone = sign_in_again(base_url, me.username)
    answer = phone.post(f"/service/api/chats/{chat['id']}/read", json={"seq": last["seq"]})
    assert answer.status_code == 204, answer.text
    # the tab hears my read (a `read` frame): that chat's notification closes, the other stays
    expect(page).to_have_title(re.compile(r"^\(1\) "))
    assert_soon(lambda: worker.evaluate(count) == [quiet["id"]])


def test_older_pages_read_online_are_there_offline(
    register: Callable[..., User], base_url: str
) -> None:
    me = register("scroller")
    page = me.page
    peer = api_user(base_url, "chatty", display_name="Chatty")
    chat = peer.direct(my_id(page))
    for n in range(70):  # the newest page is 50: the first twenty are on the older page
        last = peer.send(chat["id"], f"numbered {n:02d}")
    # read (elsewhere): the chat opens at its newest page, not at the first unread
    answer = sign_in_again(base_url, me.username).post(
        f"/service/api/chats/{chat['id']}/read", json={"seq": last["seq"]}
    )
    assert answer.status_code == 204, answer.text
    wait_controlled(page)
    page.goto(f"/chat#{chat['id']}")
    page.reload()
    listing = page.get_by_test_id("message-list")
    expect(listing.get_by_text("numbered 69")).to_be_visible()
    listing.evaluate("(el) => { el.scrollTop = 0; }")
    expect(listing.get_by_text("numbered 00")).to_be_attached()

    page.context.set_offline(True)
    page.reload()
    expect(listing.get_by_text("numbered 69")).to_be_visible()
    expect(listing.get_by_text("numbered 00")).not_to_be_attached()  # not loaded until scrolled
    listing.evaluate("(el) => { el.scrollTop = 0; }")
    expect(listing.get_by_text("numbered 00")).to_be_attached()
    expect(listing.get_by_text("numbered 19")).to_be_attached()
    shot(page, "offline-older-page")
    page.context.set_offline(False)


def test_a_one_time_banner_offers_notifications_and_only_its_click_asks(
    register: Callable[..., User], base_url: str
) -> None:
    """After the first message, once per browser, a banner offers notifications; sending
    asks the browser nothing, "Not now" makes it go for good, and only "Enable
    notifications" asks for permission."""
    from tests.e2e.support import send as type_and_send

    me = register("offered")
    page = me.page
    page.add_init_script(ASK_COUNTER)
    peer = api_user(base_url, "writer", display_name="Writer")
    chat = peer.direct(my_id(page))
    page.goto(f"/chat#{chat['id']}")
    page.reload()
    expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "connected")
    expect(page.get_by_test_id("push-banner")).to_have_count(0)  # nothing before a message
    type_and_send(page, "my first message")
    banner = page.get_by_test_id("push-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("even with Parley closed")
    assert page.evaluate("window.__permissionAsks") == 0  # sending asked nothing
    shot(page, "push-banner")
    from tests.e2e.test_a11y import axe_violations

    assert axe_violations(page) == [], "the notifications banner"
    page.get_by_test_id("push-banner-later").click()
    expect(banner).to_have_count(0)
    type_and_send(page, "my second message")
    page.reload()
    expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "connected")
    type_and_send(page, "after a reload")
    expect(page.get_by_test_id("message-list").get_by_text("after a reload")).to_be_visible()
    expect(banner).to_have_count(0)  # once per browser
    assert page.evaluate("window.__permissionAsks") == 0

    other = register("enabler", locale="ru-RU")
    page = other.page
    page.add_init_script(ASK_COUNTER)
    chat = peer.direct(my_id(page))
    page.goto(f"/chat#{chat['id']}")
    page.reload()
    expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "connected")
    type_and_send(page, "привет")
    expect(page.get_by_test_id("push-banner")).to_contain_text("Parley закрыт")
    assert page.evaluate("window.__permissionAsks") == 0
    page.get_by_test_id("push-banner-enable").click()
    expect(page.get_by_test_id("push-banner")).to_have_count(0)
    assert_soon(lambda: page.evaluate("window.__permissionAsks") == 1)
