"""PARLEY_REQUIRE_2FA=all in the browser: a user without two-factor sign-in gets the setup
page instead of a broken chat (no chat list, no socket reconnecting), sets it up there,
then the chat loads; in English and Russian."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest

from tests.e2e.conftest import PASSWORD, _serve, promote, shot
from tests.e2e.test_settings_admin import api

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def gated_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("parley-2fa")


@pytest.fixture(scope="module")
def base_url(chromium_path: Path, gated_dir: Path) -> Iterator[str]:
    """This module's pages talk to a `parley serve` that requires two-factor of everyone."""
    with _serve(gated_dir, PARLEY_REQUIRE_2FA="all") as url:
        yield url


def _register(page: Any) -> str:
    username = f"gated_{uuid.uuid4().hex[:8]}"
    page.goto("/register")
    page.get_by_test_id("register-username").fill(username)
    page.get_by_test_id("register-email").fill(f"{username}@example.com")
    page.get_by_test_id("register-password").fill(PASSWORD)
    page.get_by_test_id("register-submit").click()
    page.wait_for_url("**/chat*")
    return username


def _sockets(page: Any) -> list[str]:
    opened: list[str] = []
    page.on("websocket", lambda ws: opened.append(ws.url))
    return opened


def _set_up(page: Any) -> None:
    page.get_by_test_id("twofactor-setup").click()
    secret = page.get_by_test_id("twofactor-secret").inner_text()
    page.get_by_test_id("twofactor-code").fill(pyotp.TOTP(secret).now())
    page.get_by_test_id("twofactor-enable-submit").click()
    page.get_by_test_id("recovery-codes").locator("li").first.wait_for()
    page.get_by_test_id("recovery-done").click()
    page.locator('[data-testid="connection-status"][data-state="connected"]').wait_for()


def test_the_setup_page_comes_first_then_the_chat(new_page: Any) -> None:
    page = new_page()
    opened = _sockets(page)
    _register(page)
    gate = page.get_by_test_id("twofactor-gate")
    gate.wait_for()
    page.get_by_test_id("twofactor-off").wait_for()
    assert page.locator("#layout").is_hidden()
    assert "Turn on two-factor sign-in" in gate.inner_text()
    page.wait_for_timeout(1500)  # a negative check: a socket would have opened by now
    assert opened == []
    assert page.get_by_test_id("toast").count() == 0  # no "could not load, retrying"
    shot(page, "require-2fa-gate")

    page.get_by_test_id("twofactor-setup").click()
    secret = page.get_by_test_id("twofactor-secret").inner_text()
    page.get_by_test_id("twofactor-code").fill(pyotp.TOTP(secret).now())
    shot(page, "require-2fa-gate-scan")
    page.get_by_test_id("twofactor-enable-submit").click()
    page.get_by_test_id("recovery-codes").locator("li").first.wait_for()
    page.get_by_test_id("recovery-done").click()
    page.locator('[data-testid="connection-status"][data-state="connected"]').wait_for()
    assert page.get_by_test_id("twofactor-gate").count() == 0
    assert page.locator("#layout").is_visible()
    assert len(opened) >= 1
    shot(page, "require-2fa-then-chat")
    assert page.errors == []


def test_the_setup_page_in_russian_and_signing_out(new_page: Any) -> None:
    page = new_page(locale="ru-RU")
    _register(page)
    gate = page.get_by_test_id("twofactor-gate")
    gate.wait_for()
    page.get_by_test_id("twofactor-off").wait_for()
    assert "Включите двухфакторный вход" in gate.inner_text()
    shot(page, "require-2fa-gate-ru")
    page.get_by_test_id("twofactor-gate-logout").click()
    page.get_by_test_id("confirm-ok").click()
    page.wait_for_url("**/login*")
    assert page.errors == []


def test_losing_the_second_factor_mid_session_brings_the_setup_page_back(
    new_page: Any, gated_dir: Path
) -> None:
    page = new_page()
    username = _register(page)
    page.get_by_test_id("twofactor-gate").wait_for()
    _set_up(page)
    promote(gated_dir, username)  # to reset its own second factor, as an admin would
    me = api(page, "GET", "/profile")["body"]
    reset = api(page, "POST", f"/admin/users/{me['id']}/2fa/reset")
    assert reset["status"] == 200 and reset["body"]["two_factor"] is False
    page.get_by_test_id("settings-button").click()  # its panes ask guarded routes
    page.get_by_test_id("settings-tab-security").click()
    page.get_by_test_id("twofactor-gate").wait_for()
    page.get_by_test_id("twofactor-off").wait_for()
    assert page.locator("#layout").is_hidden()
    shot(page, "require-2fa-gate-again")
    assert page.errors == []
