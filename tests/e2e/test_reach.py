"""Reach in the browser: "Forgot password?" to a new password with the link read from a
real SMTP server, a chat's invite link from creation to a new person joining, and an
admin's invitation in invite-only mode. English and Russian."""

from __future__ import annotations

import email
import email.policy
import re
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.e2e.conftest import PASSWORD, _free_port, _serve, promote, shot
from tests.e2e.support import api_user
from tests.waiting import eventually_sync

NEW_PASSWORD = "a whole new password"


class Inbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 OK"

    def wait(self, address: str, count: int) -> list[EmailMessage]:
        def found() -> list[EmailMessage]:
            mine = [m for m in self.messages if m["To"] == address]
            return mine if len(mine) >= count else []

        return eventually_sync(found, timeout=10, what=f"{count} mail(s) to {address}")


@pytest.fixture(scope="module")
def inbox() -> Iterator[Inbox]:
    found = Inbox()
    controller = Controller(found, hostname="127.0.0.1", port=_free_port())
    controller.start()
    found.port = controller.port  # type: ignore[attr-defined]
    yield found
    controller.stop()


@pytest.fixture(scope="module")
def reach_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("parley-reach")


@pytest.fixture(scope="module")
def reach_url(chromium_path: Path, inbox: Inbox, reach_data: Path) -> Iterator[str]:
    """`parley serve` that mails through the test SMTP server."""
    env = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(inbox.port), "SMTP_TLS": "none"}  # type: ignore[attr-defined]
    with _serve(reach_data, **env) as url:
        yield url


@pytest.fixture
def page_at(browser: Any, reach_url: str) -> Iterator[Callable[..., Any]]:
    contexts: list[Any] = []

    def make(**options: Any) -> Any:
        context = browser.new_context(base_url=reach_url, **options)
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))
        return page

    yield make
    for context in contexts:
        context.close()


def link_in(message: EmailMessage, path: str) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    found = re.search(rf"(https?://\S+{path}#\S+)", str(body.get_content()))
    assert found, body.get_content()
    return found.group(1)


def test_forgot_password_to_a_new_one_through_the_mailed_link(
    page_at: Callable[..., Any], reach_url: str, inbox: Inbox
) -> None:
    someone = api_user(reach_url, "forgetful")
    address = f"{someone.username}@example.com"
    page = page_at()
    page.goto("/login")
    page.get_by_test_id("forgot-link").click()
    page.wait_for_url("**/reset-password")
    page.get_by_test_id("forgot-email").fill(address)
    page.get_by_test_id("forgot-submit").click()
    page.get_by_test_id("forgot-sent").wait_for()
    assert address in page.get_by_test_id("forgot-sent").inner_text()
    shot(page, "reach-forgot-sent")
    reset = inbox.wait(address, 2)[1]  # the verification at registration, then the reset
    link = link_in(reset, "/reset-password")
    page.goto(link)
    page.get_by_test_id("reset-password").fill(NEW_PASSWORD)
    assert "#" not in page.url  # the token left the address bar
    shot(page, "reach-reset-form")
    page.get_by_test_id("reset-submit").click()
    page.wait_for_url("**/login?reset=1")
    page.get_by_test_id("login-username").fill(someone.username)
    page.get_by_test_id("login-password").fill(NEW_PASSWORD)
    page.get_by_test_id("login-submit").click()
    page.wait_for_url("**/chat*")
    again = page_at()
    again.goto(link)
    again.get_by_test_id("reset-password").fill("yet another password")
    again.get_by_test_id("reset-submit").click()
    error = again.get_by_test_id("reset-error")
    error.wait_for()
    assert "expired or has already been used" in error.inner_text()
    assert page.errors == [] and again.errors == []


def test_a_chat_invite_link_brings_a_new_person_in(
    page_at: Callable[..., Any], reach_url: str
) -> None:
    owner_api = api_user(reach_url, "owner")
    group = owner_api.group("Book club", [])
    owner = page_at()
    owner.goto("/login")
    owner.get_by_test_id("login-username").fill(owner_api.username)
    owner.get_by_test_id("login-password").fill(PASSWORD)
    owner.get_by_test_id("login-submit").click()
    owner.wait_for_url("**/chat*")
    owner.goto(f"/chat#{group['id']}")
    owner.locator("#chat-info-button").click()
    owner.get_by_test_id("invite-link-create").click()
    url_field = owner.get_by_test_id("invite-link-url")
    url_field.wait_for()
    url = url_field.input_value()
    assert "/invite/" in url
    shot(owner, "reach-invite-link")

    guest = page_at(locale="ru-RU")
    guest.goto(url)
    guest.get_by_test_id("invite-register").wait_for()
    assert guest.get_by_test_id("invite-heading").inner_text() == "Book club"
    assert "1 участник" in guest.get_by_test_id("invite-detail").inner_text()
    shot(guest, "reach-invite-preview-ru")
    guest.get_by_test_id("invite-register").click()
    guest.wait_for_url("**/register?next=*")
    name = f"guest_{int(time.time() * 1000) % 10**8}"
    guest.get_by_test_id("register-username").fill(name)
    guest.get_by_test_id("register-email").fill(f"{name}@example.com")
    guest.get_by_test_id("register-password").fill(PASSWORD)
    guest.get_by_test_id("register-submit").click()
    guest.wait_for_url("**/invite/*")
    guest.get_by_test_id("invite-accept").click()
    guest.wait_for_url(f"**/chat#{group['id']}")
    members = owner_api.http.get(f"/service/api/chats/{group['id']}/members").json()
    assert name in [m["user"]["username"] for m in members]

    owner.get_by_test_id("invite-link-revoke").click()
    owner.get_by_test_id("invite-link-create").wait_for()
    late = page_at()
    late.goto(url)
    detail = late.get_by_test_id("invite-detail")
    late.wait_for_function("el => el.textContent.includes('revoked')", arg=detail.element_handle())
    assert owner.errors == [] and guest.errors == [] and late.errors == []


def test_an_admin_invitation_in_invite_only_mode(
    page_at: Callable[..., Any], reach_url: str, reach_data: Path
) -> None:
    admin_api = api_user(reach_url, "boss")
    promote(reach_data, admin_api.username)
    admin = page_at()
    admin.goto("/login")
    admin.get_by_test_id("login-username").fill(admin_api.username)
    admin.get_by_test_id("login-password").fill(PASSWORD)
    admin.get_by_test_id("login-submit").click()
    admin.wait_for_url("**/chat*")
    admin.locator('[data-testid="connection-status"][data-state="connected"]').wait_for()
    admin.get_by_test_id("settings-button").click()
    admin.get_by_test_id("open-admin-invites").click()
    dialog = admin.get_by_test_id("admin-invites-dialog")
    dialog.wait_for()
    admin.get_by_test_id("registration-mode").select_option("invite")
    admin.wait_for_function(
        "() => fetch('/service/api/admin/settings').then(r => r.json())"
        ".then(s => s.registration === 'invite')"
    )
    admin.get_by_test_id("admin-invite-create").click()
    row = admin.get_by_test_id("admin-invite").first
    row.wait_for()
    url = row.locator("input").input_value()
    shot(admin, "reach-admin-invites")
    try:
        newcomer = page_at()
        newcomer.goto("/register")
        name = f"newbie_{int(time.time() * 1000) % 10**8}"
        newcomer.get_by_test_id("register-username").fill(name)
        newcomer.get_by_test_id("register-email").fill(f"{name}@example.com")
        newcomer.get_by_test_id("register-password").fill(PASSWORD)
        newcomer.get_by_test_id("register-submit").click()
        refused = newcomer.get_by_test_id("register-error")
        refused.wait_for()
        assert "needs an invitation" in refused.inner_text()
        newcomer.goto(url)
        newcomer.get_by_test_id("invite-register").click()
        newcomer.wait_for_url("**/register?invite=*")
        newcomer.get_by_test_id("register-username").fill(name)
        newcomer.get_by_test_id("register-email").fill(f"{name}@example.com")
        newcomer.get_by_test_id("register-password").fill(PASSWORD)
        newcomer.get_by_test_id("register-submit").click()
        newcomer.wait_for_url("**/chat*")
    finally:
        admin_api.http.patch("/service/api/admin/settings", json={"registration": "open"})


def test_settings_show_the_address_unconfirmed_until_the_mailed_link(
    page_at: Callable[..., Any], reach_url: str, inbox: Inbox
) -> None:
    page = page_at()
    name = f"mailer_{int(time.time() * 1000) % 10**8}"
    address = f"{name}@example.com"
    page.goto("/register")
    page.get_by_test_id("register-username").fill(name)
    page.get_by_test_id("register-email").fill(address)
    page.get_by_test_id("register-password").fill(PASSWORD)
    page.get_by_test_id("register-submit").click()
    page.wait_for_url("**/chat*")
    page.get_by_test_id("settings-button").click()
    state = page.get_by_test_id("email-state")
    state.wait_for()
    assert "not confirmed" in state.inner_text() and address in state.inner_text()
    assert page.get_by_test_id("push-enable").is_visible()
    shot(page, "reach-settings-email")
    page.get_by_test_id("email-resend").click()
    second = inbox.wait(address, 2)[1]
    confirm = page_at()
    confirm.goto(link_in(second, "/verify-email"))
    result = confirm.get_by_test_id("verify-result")
    confirm.wait_for_function(
        "el => el.textContent.includes('confirmed')", arg=result.element_handle()
    )
    page.reload()
    page.get_by_test_id("settings-button").click()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=email-state]')?.textContent"
        ".includes(' is confirmed')"
    )
    assert page.errors == [] and confirm.errors == []
