"""Accessibility: axe-core finds no serious or critical violation on the main screens in
both themes, and the keyboard path follows the screen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import User, shot
from tests.e2e.test_chat import open_direct_chat, send

pytestmark = pytest.mark.browser

AXE = Path(__file__).parent / "vendor" / "axe.min.js"  # axe-core, MPL-2.0 (see vendor/README)
THEMES = ["light", "dark"]


def axe_violations(page: Any) -> list[str]:
    """Serious and critical axe-core violations of the page as it is now."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text(encoding="utf-8"))  # evaluated by the test, not a <script>
    results = page.evaluate(
        """async () => {
            const r = await axe.run(document, { resultTypes: ['violations'] });
            return r.violations.map((v) => ({
                id: v.id, impact: v.impact,
                nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ') + ' ' + n.failureSummary),
            }));
        }"""
    )
    return [
        f"{v['id']} ({v['impact']}): {v['nodes']}"
        for v in results
        if v["impact"] in ("serious", "critical")
    ]


@pytest.mark.parametrize("theme", THEMES)
def test_sign_in_pages_pass_axe(new_page: Any, theme: str) -> None:
    page = new_page(color_scheme=theme)
    for path in ("/login", "/register"):
        page.goto(path)
        page.locator("form#auth-form").wait_for()
        assert axe_violations(page) == [], path
        # A wrong sign-in shows the error state: it must pass too.
    page.goto("/login")
    page.get_by_test_id("login-username").fill("nobody-here")
    page.get_by_test_id("login-password").fill("wrong password")
    page.get_by_test_id("login-submit").click()
    page.get_by_test_id("login-error").wait_for()
    assert axe_violations(page) == []


@pytest.mark.parametrize("theme", THEMES)
def test_chat_screens_and_dialogs_pass_axe(register: Any, theme: str) -> None:
    alice: User = register("axe_a", display_name="Alice Axe", color_scheme=theme)
    bob: User = register("axe_b", display_name="Bob Axe")
    page = alice.page
    assert axe_violations(page) == [], "chat list"
    open_direct_chat(alice, bob)
    send(page, "Hello **there**, https://example.com")
    bob.page.locator(".chat-item", has_text="Alice Axe").click()
    send(bob.page, "hi")
    page.get_by_test_id("message-2").wait_for()
    message = page.get_by_test_id("message-1")
    message.hover()
    message.get_by_test_id("message-react").click()
    page.get_by_test_id("emoji-picker").get_by_test_id("emoji-👍").click()
    message.get_by_test_id("reaction-👍").wait_for()
    assert axe_violations(page) == [], "open chat"

    page.get_by_test_id("chat-info-button").click()
    page.get_by_test_id("chat-info-dialog").wait_for()
    assert axe_violations(page) == [], "chat details"
    page.keyboard.press("Escape")
    page.get_by_test_id("settings-button").click()
    page.get_by_test_id("password-form").wait_for()
    assert axe_violations(page) == [], "settings"
    shot(page, f"a11y-settings-{theme}")
    page.keyboard.press("Escape")
    page.get_by_test_id("composer-emoji").click()
    page.get_by_test_id("emoji-panel").wait_for()
    assert axe_violations(page) == [], "emoji picker"
    page.keyboard.press("Escape")
    page.get_by_test_id("emoji-panel").wait_for(state="detached")


def focused(page: Any) -> str:
    return str(
        page.evaluate(
            """() => {
                const el = document.activeElement;
                return el.dataset.testid || el.id || el.className || el.tagName;
            }"""
        )
    )


def test_tab_order_follows_the_screen_and_skips_hidden_message_buttons(register: Any) -> None:
    carol: User = register("tab_c")
    dave: User = register("tab_d")
    open_direct_chat(carol, dave)
    page = carol.page
    send(page, "first")
    page.get_by_test_id("message-1").wait_for()
    send(page, "second")
    page.get_by_test_id("message-2").wait_for()
    page.mouse.move(0, 0)
    page.evaluate("document.activeElement.blur()")

    order = []
    for _ in range(40):
        page.keyboard.press("Tab")
        current = focused(page)
        if order and current == order[0]:
            break
        order.append(current)
    where = []
    for testid in order:
        region = page.evaluate(
            """(id) => {
                const el = document.querySelector(`[data-testid="${id}"]`)
                    || document.getElementById(id) || document.activeElement;
                if (el.closest('.sidebar')) return 'sidebar';
                if (el.closest('.chat-head')) return 'header';
                if (el.closest('.message-list')) return 'messages';
                if (el.closest('.composer')) return 'composer';
                return 'other';
            }""",
            testid,
        )
        where.append(region)
    # Tab goes round the page: the cycle is read from its first stop in the sidebar (the
    # blurred composer stays the starting point, so the first Tab may land beside it)
    start = where.index("sidebar")
    regions: list[str] = []
    for region in where[start:] + where[:start]:
        if region != "other" and (not regions or regions[-1] != region):
            regions.append(region)
    assert regions[:4] == ["sidebar", "header", "messages", "composer"], (regions, order)
    assert "message-list" in order
    assert not {"message-react", "message-reply", "message-edit"} & set(order), order
    assert order.index("composer-input") > order.index("message-list")

    # From the log, ↑ focuses a message; its action buttons are then the next Tab stops.
    page.get_by_test_id("message-list").focus()
    page.keyboard.press("ArrowUp")
    assert focused(page) == "message-2"
    page.keyboard.press("ArrowUp")
    assert focused(page) == "message-1"
    page.keyboard.press("Tab")
    assert focused(page) == "message-react"
    assert page.get_by_test_id("message-1").get_by_test_id("message-react").is_visible()
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"  # visible focus
    page.keyboard.press("Enter")
    page.get_by_test_id("emoji-picker").wait_for()
    assert focused(page).startswith("emoji-")

    # Dialogs: focus moves in, Tab stays in, Escape closes and gives focus back.
    page.keyboard.press("Escape")
    page.get_by_test_id("settings-button").focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_test_id("settings-dialog")
    dialog.wait_for()
    assert dialog.get_attribute("aria-labelledby")
    for _ in range(12):
        page.keyboard.press("Tab")
        assert page.evaluate(
            "document.querySelector('[data-testid=settings-dialog]').contains(document.activeElement)"
            " || document.activeElement === document.body"
        )
    page.keyboard.press("Escape")
    dialog.wait_for(state="detached")
    assert focused(page) == "settings-button"
