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

from tests.e2e.conftest import PASSWORD, _serve, shot

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def base_url(chromium_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """This module's pages talk to a `parley serve` that requires two-factor of everyone."""
    with _serve(tmp_path_factory.mktemp("parley-2fa"), PARLEY_REQUIRE_2FA="all") as url:
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
