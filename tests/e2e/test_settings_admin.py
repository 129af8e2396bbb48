"""Screens for the API's actions: password, profile email, chat settings and roles (seen
live by another member), timed blocks, and the admins' bans screen."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import PASSWORD, User, promote, shot
from tests.e2e.test_chat import open_direct_chat

pytestmark = pytest.mark.browser

NEW_PASSWORD = "a brand new horse battery"


def api(page: Any, method: str, path: str, body: Any = None) -> Any:
    """A call from inside the page, with its cookies and Origin, as the client makes it."""
    return page.evaluate(
        """async ([method, path, body]) => {
            const init = { method, headers: { 'Content-Type': 'application/json' } };
            if (body !== null) init.body = JSON.stringify(body);
            const res = await fetch('/service/api' + path, init);
            return { status: res.status, body: res.status === 204 ? null : await res.json() };
        }""",
        [method, path, body],
    )


def my_id(user: User) -> int:
    return int(api(user.page, "GET", "/profile")["body"]["id"])


def sign_in(page: Any, username: str, password: str) -> None:
    page.goto("/login")
    page.get_by_test_id("login-username").fill(username)
    page.get_by_test_id("login-password").fill(password)
    page.get_by_test_id("login-submit").click()


def open_settings(page: Any, tab: str) -> Any:
    page.get_by_test_id("settings-button").click()
    dialog = page.get_by_test_id("settings-dialog")
    dialog.wait_for()
    page.get_by_test_id(f"settings-tab-{tab}").click()
    return dialog


def test_password_change_shows_errors_then_other_sessions_sign_in_again(
    register: Any, new_page: Any
) -> None:
    user: User = register("pw")
    other = new_page()
    sign_in(other, user.username, PASSWORD)
    other.locator('[data-testid="connection-status"][data-state="connected"]').wait_for()
    page = user.page
    open_settings(page, "password")

    def attempt(current: str, new: str) -> None:
        page.get_by_test_id("password-current").fill(current)
        page.get_by_test_id("password-new").fill(new)
        page.get_by_test_id("password-confirm").fill(new)
        page.get_by_test_id("password-submit").click()

    attempt("not my password", NEW_PASSWORD)
    error = page.get_by_test_id("password-current-error")
    error.filter(has_text="The current password is wrong.").wait_for()
    shot(page, "settings-password-error")
    attempt(PASSWORD, "short")
    page.get_by_test_id("password-new-error").filter(has_text="at least 8").wait_for()
    assert error.inner_text() == ""
    attempt(PASSWORD, NEW_PASSWORD)
    page.get_by_test_id("password-changed").wait_for()

    # The server revoked every other session: that browser is sent to sign in again.
    other.wait_for_url("**/login", timeout=20_000)
    # This one stays signed in; signing out and in again needs the new password.
    page.keyboard.press("Escape")
    page.get_by_test_id("profile-button").click()
    page.get_by_test_id("menu-logout").click()
    page.get_by_test_id("confirm-ok").click()  # signing out asks first
    page.wait_for_url("**/login")
    sign_in(page, user.username, PASSWORD)
    page.get_by_test_id("login-error").wait_for()
    sign_in(page, user.username, NEW_PASSWORD)
    page.wait_for_url("**/chat*")
    assert page.errors == [] and other.errors == []


def test_profile_email_change_and_taken_email(register: Any) -> None:
    user: User = register("mail")
    taken: User = register("mail_taken")
    page = user.page
    page.get_by_test_id("profile-button").click()
    if page.get_by_test_id("menu-profile").count():  # the profile menu, when there is one
        page.get_by_test_id("menu-profile").click()
    page.get_by_test_id("profile-email").fill(f"{taken.username}@example.com")
    page.get_by_test_id("profile-save").click()
    page.get_by_test_id("profile-dialog").locator(".field-error").filter(
        has_text="already"
    ).wait_for()
    page.get_by_test_id("profile-email").fill(f"new-{user.username}@example.com")
    page.get_by_test_id("profile-save").click()
    page.get_by_test_id("profile-dialog").wait_for(state="detached")
    assert api(page, "GET", "/profile")["body"]["email"] == f"new-{user.username}@example.com"


def test_rename_roles_and_ownership_are_seen_live(register: Any) -> None:
    owner: User = register("own", display_name="Olga Owner")
    member: User = register("mem", display_name="Max Member", color_scheme="dark")
    owner_id, member_id = my_id(owner), my_id(member)
    created = api(
        owner.page,
        "POST",
        "/chats",
        {"type": "group", "title": "Team room", "member_ids": [member_id]},
    )
    chat_id = created["body"]["id"]
    for user in (owner, member):
        user.page.get_by_test_id(f"chat-item-{chat_id}").click()
        user.page.get_by_test_id("chat-title").filter(has_text="Team room").wait_for()
        user.page.get_by_test_id("chat-info-button").click()
        user.page.get_by_test_id("chat-info-dialog").wait_for()
    mine, theirs = owner.page, member.page
    assert theirs.get_by_test_id("chat-edit-form").count() == 0  # a member cannot rename

    # Rename and describe: the other member's open dialog, header and sidebar follow.
    mine.get_by_test_id("chat-edit-title").fill("Launch crew")
    mine.get_by_test_id("chat-edit-description").fill("Everything about the launch")
    mine.get_by_test_id("chat-edit-save").click()
    theirs.get_by_test_id("chat-info-title").filter(has_text="Launch crew").wait_for()
    theirs.get_by_test_id("chat-info-description").filter(has_text="about the launch").wait_for()
    assert theirs.get_by_test_id("chat-title").inner_text() == "Launch crew"
    assert "Launch crew" in theirs.get_by_test_id(f"chat-item-{chat_id}").inner_text()

    # Promote: the member sees its new role, and the rename form appears for it.
    mine.get_by_test_id(f"member-role-{member_id}").select_option("admin")
    theirs.locator(f'[data-testid="member-{member_id}"][data-role="admin"]').wait_for()
    theirs.get_by_test_id("chat-edit-form").wait_for()
    shot(theirs, "chat-info-admin-dark")

    # Hand over ownership (confirmed): the roles swap on both sides.
    mine.get_by_test_id(f"member-role-{member_id}").select_option("owner")
    mine.get_by_test_id("confirm-ok").click()
    theirs.locator(f'[data-testid="member-{owner_id}"][data-role="admin"]').wait_for()
    theirs.get_by_test_id("delete-chat").wait_for()  # only the owner may delete
    mine.locator(f'[data-testid="member-{member_id}"][data-role="owner"]').wait_for()
    assert mine.get_by_test_id("delete-chat").count() == 0
    shot(mine, "chat-info-after-handover")

    # The new owner removes the old one, whose chat disappears.
    theirs.get_by_test_id(f"member-remove-{owner_id}").click()
    theirs.get_by_test_id("confirm-ok").click()
    mine.get_by_test_id(f"chat-item-{chat_id}").wait_for(state="detached")
    theirs.locator(f'[data-testid="member-{owner_id}"]').wait_for(state="detached")
    assert mine.errors == [] and theirs.errors == []


def test_timed_block_for_an_hour_then_unblock(register: Any) -> None:
    alice: User = register("blk_a")
    bob: User = register("blk_b", display_name="Bob Blocked")
    open_direct_chat(alice, bob)
    page = alice.page
    page.get_by_test_id("block-button").click()
    dialog = page.get_by_test_id("block-dialog")
    dialog.wait_for()
    assert [
        page.get_by_test_id(f"block-duration-{key}").count()
        for key in ("hour", "day", "week", "forever")
    ] == [1, 1, 1, 1]
    shot(page, "block-dialog")
    page.get_by_test_id("block-duration-hour").check()
    page.get_by_test_id("block-confirm").click()
    page.get_by_test_id("composer-notice").filter(has_text="Unblock").wait_for()
    assert page.get_by_test_id("block-button").inner_text() == "Unblock"

    blocks = api(page, "GET", "/block")["body"]
    expires = datetime.fromisoformat(blocks[0]["expires_at"])
    assert abs((expires - datetime.now(UTC)).total_seconds() - 3600) < 120

    open_settings(page, "blocked")
    row = page.get_by_test_id(f"blocked-{blocks[0]['user_id']}")
    row.get_by_test_id("blocked-until").filter(has_text="Blocked until").wait_for()
    assert "Bob Blocked" in row.inner_text()
    row.get_by_test_id(f"unblock-{blocks[0]['user_id']}").click()
    row.wait_for(state="detached")
    page.keyboard.press("Escape")
    page.get_by_test_id("composer-notice").wait_for(state="hidden")
    assert page.get_by_test_id("block-button").inner_text() == "Block"


def test_admin_bans_screen_ban_with_reason_then_lift(
    register: Any, data_dir: Path, new_page: Any
) -> None:
    admin: User = register("admin")
    victim: User = register("victim", display_name="Vic Tim")
    promote(data_dir, admin.username)
    page = admin.page
    page.reload()
    page.locator('[data-testid="connection-status"][data-state="connected"]').wait_for()
    open_settings(page, "bans")
    page.get_by_test_id("ban-user-search").fill(victim.username)
    victim_id = my_id(victim)
    page.get_by_test_id(f"ban-pick-{victim_id}").click()
    page.get_by_test_id("ban-duration").select_option(label="1 day")
    page.get_by_test_id("ban-reason").fill("spam links")
    page.get_by_test_id("ban-submit").click()
    row = page.get_by_test_id(f"ban-{victim_id}")
    row.wait_for()
    assert "spam links" in row.inner_text() and "Vic Tim" in row.inner_text()
    shot(page, "settings-bans")

    # The banned user is signed out at once and cannot sign in.
    victim.page.wait_for_url("**/login", timeout=20_000)
    sign_in(victim.page, victim.username, PASSWORD)
    victim.page.get_by_test_id("login-error").wait_for()

    row.get_by_test_id(f"ban-lift-{victim_id}").click()
    row.wait_for(state="detached")
    page.get_by_test_id("bans-list").filter(has_text="Nobody is banned").wait_for()
    # Lifted: the user signs in again (in a fresh browser), and has no bans tab.
    other = new_page()
    sign_in(other, victim.username, PASSWORD)
    other.wait_for_url("**/chat*")
    other.get_by_test_id("settings-button").click()
    other.get_by_test_id("settings-tab-password").wait_for()
    assert other.get_by_test_id("settings-tab-bans").count() == 0
