"""Screenshots of the main screens in both languages, both themes, desktop and phone width
(tests/e2e/screenshots/, gitignored), for a person to look at."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import shot
from tests.e2e.support import api_user, open_chat, user_id

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def set_language(page: Any, code: str) -> None:
    page.evaluate("code => import('/static/js/i18n.js').then((m) => m.setLocale(code))", code)


def test_screenshots_of_the_main_screens(register: Any, new_page: Any, base_url: str) -> None:
    for lang, scheme in (("en", "light"), ("ru", "dark")):
        for name, size in (("desktop", DESKTOP), ("phone", PHONE)):
            page = new_page(viewport=size, color_scheme=scheme, locale=lang)
            page.goto("/login")
            page.get_by_test_id("login-username").wait_for()
            shot(page, f"login-{lang}-{scheme}-{name}")

    me = register("screen", display_name="Sam Screen", viewport=DESKTOP)
    my_id = user_id(me)
    mia = api_user(base_url, "mia", display_name="Mia Moderator")
    raj = api_user(base_url, "raj", display_name="Raj Patel")
    team = mia.group("Design team", [my_id, raj.id])
    mia.send(team["id"], "Morning! The **new build** is up: https://example.com/build/42")
    raj.send(
        team["id"], "> The new build is up\nLooks good. One thing: `make test` takes *ages* now."
    )
    raj.send(team["id"], f"@{me.username} can you check the ~~old~~ new login page?")
    mia.send(team["id"], "```\nmake test PYTEST_ARGS=-x\n```\nThat helps while we fix it.")
    direct = mia.direct(my_id)
    mia.send(direct["id"], "Lunch at noon?")
    page = me.page
    page.get_by_test_id(f"chat-item-{direct['id']}").wait_for()
    open_chat(page, team["id"])
    page.get_by_test_id("message-4").wait_for()
    page.get_by_test_id("composer-input").fill(f"On it, @{mia.username[:3]}")

    for lang in ("en", "ru"):
        set_language(page, lang)
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            page.set_viewport_size(DESKTOP)
            open_chat(page, team["id"])
            page.get_by_test_id("message-4").wait_for()
            page.get_by_test_id("composer-input").fill("")
            page.get_by_test_id("composer-input").press_sequentially(f"@{mia.username[:3]}")
            page.get_by_test_id("mention-box").wait_for()
            shot(page, f"chat-{lang}-{scheme}-desktop")
            page.get_by_test_id("composer-input").fill("")
            page.get_by_test_id("profile-button").click()
            page.get_by_test_id("profile-menu").wait_for()
            shot(page, f"menu-{lang}-{scheme}-desktop")
            page.keyboard.press("Escape")
            page.get_by_test_id("mentions-button").click()
            page.locator('[data-testid^="mention-hit-"]').first.wait_for()
            shot(page, f"mentions-{lang}-{scheme}-desktop")
            page.keyboard.press("Escape")
            page.keyboard.press("Control+k")
            page.get_by_test_id("switcher-input").fill("a")
            page.get_by_test_id("switcher-item").first.wait_for()
            shot(page, f"switcher-{lang}-{scheme}-desktop")
            page.keyboard.press("Escape")

            page.set_viewport_size(PHONE)
            page.get_by_test_id("chat-view").wait_for()
            shot(page, f"chat-{lang}-{scheme}-phone")
            page.get_by_test_id("back-button").click()
            page.get_by_test_id("chat-list").wait_for()
            shot(page, f"list-{lang}-{scheme}-phone")
    set_language(page, "en")
    assert page.errors == []
