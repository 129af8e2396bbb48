"""The interface in Russian end to end, the language switch, and the catalogs' plurals."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import shot
from tests.e2e.support import api_user, open_chat, send, user_id

pytestmark = pytest.mark.browser

WEB = Path(__file__).resolve().parents[2] / "parley" / "web"


def test_russian_interface_end_to_end(register: Any, base_url: str) -> None:
    # The browser asks for Russian: the sign-up form, the chat page and plurals follow.
    me = register("ivan", display_name="Иван", locale="ru-RU")
    page = me.page
    banner = page.get_by_test_id("welcome-banner")
    banner.wait_for()
    assert "Добро пожаловать в Parley, Иван!" in banner.inner_text()
    assert (
        page.get_by_test_id("search-input").get_attribute("placeholder") == "Поиск людей и каналов"
    )
    assert (
        page.get_by_test_id("composer-input").get_attribute("placeholder") == "Напишите сообщение…"
    )
    assert page.get_by_test_id("connection-status").inner_text() == "В сети"
    assert re.search(
        r"участник(а|ов)? · открытый канал", page.get_by_test_id("chat-subtitle").inner_text()
    )

    my_id = user_id(me)
    others = [api_user(base_url, f"ru{i}") for i in range(4)]
    owner = others[0]
    solo = owner.group("Один", [])  # only its owner: I am not in it
    three = owner.group("Трое", [my_id, others[1].id])
    five = owner.group("Пятеро", [my_id, others[1].id, others[2].id, others[3].id])
    owner.send(three["id"], "привет")
    owner.send(five["id"], "всем привет")
    assert solo["member_count"] == 1

    subtitle = page.get_by_test_id("chat-subtitle")
    open_chat(page, three["id"])
    subtitle.filter(has_text="3 участника").wait_for()
    open_chat(page, five["id"])
    subtitle.filter(has_text="5 участников").wait_for()
    page.get_by_test_id("history-status").filter(has_text="Это начало разговора.").wait_for()
    day = page.locator(".day-sep").first.inner_text()
    assert day == "Сегодня", day

    # One member: the leavers' group shows "1 участник" once everybody else is gone.
    for other in others[1:]:
        response = other.http.delete(f"/service/api/chats/{five['id']}/members/{other.id}")
        assert response.status_code == 204, response.text
    owner.http.delete(f"/service/api/chats/{five['id']}/members/{owner.id}")
    subtitle.filter(has_text="1 участник").wait_for()
    assert (
        subtitle.inner_text().startswith("1 участник") and "участника" not in subtitle.inner_text()
    )

    send(page, "**жирный** текст")
    page.locator(".msg.is-mine strong", has_text="жирный").wait_for()
    page.get_by_test_id("profile-button").click()
    assert page.get_by_test_id("menu-profile").inner_text() == "Профиль"
    page.keyboard.press("Escape")
    shot(page, "ru-chat")
    assert page.errors == []


def test_language_switch_is_remembered(register: Any) -> None:
    me = register("polyglot")
    page = me.page
    assert (
        page.get_by_test_id("search-input").get_attribute("placeholder")
        == "Search people and channels"
    )
    page.get_by_test_id("profile-button").click()
    assert page.get_by_test_id("menu-lang-en").get_attribute("aria-checked") == "true"
    page.get_by_test_id("menu-lang-ru").click()
    # Live: the static page, rendered lists and the connection label change at once.
    page.get_by_test_id("composer-input").wait_for(state="attached")
    assert (
        page.get_by_test_id("search-input").get_attribute("placeholder") == "Поиск людей и каналов"
    )
    page.get_by_test_id("connection-status").filter(has_text="В сети").wait_for()
    assert page.evaluate("document.documentElement.lang") == "ru"
    page.reload()
    page.locator('[data-testid="connection-status"][data-state="connected"]').wait_for()
    assert (
        page.get_by_test_id("search-input").get_attribute("placeholder") == "Поиск людей и каналов"
    )
    # The sign-in page of this browser speaks Russian too.
    page.get_by_test_id("profile-button").click()
    page.get_by_test_id("menu-logout").click()
    page.get_by_test_id("confirm-ok").click()  # signing out asks first
    page.wait_for_url("**/login")
    page.get_by_test_id("login-submit").filter(has_text="Войти").wait_for()
    page.get_by_test_id("lang-select").select_option("en")
    page.get_by_test_id("login-submit").filter(has_text="Sign in").wait_for()


def test_plural_forms_and_catalogs(new_page: Any) -> None:
    page = new_page()
    page.goto("/login")
    forms = page.evaluate(
        """async () => {
          const i18n = await import('/static/js/i18n.js');
          i18n.setLocale('ru');
          const counts = [1, 2, 3, 5, 11, 21, 22, 25, 101];
          const ru = counts.map((n) => i18n.t('chat.members', { count: n }));
          i18n.setLocale('en');
          const en = [1, 2, 5].map((n) => i18n.t('chat.members', { count: n }));
          return { ru, en };
        }"""
    )
    assert forms["ru"] == [
        "1 участник", "2 участника", "3 участника", "5 участников", "11 участников",
        "21 участник", "22 участника", "25 участников", "101 участник",
    ]  # fmt: skip
    assert forms["en"] == ["1 member", "2 members", "5 members"]


def test_every_key_is_in_both_catalogs_and_no_string_is_left_in_the_code() -> None:
    def keys(name: str) -> list[str]:
        text = (WEB / "js" / "locales" / name).read_text()
        return re.findall(r"^  '([\w.]+)':", text, re.M)

    en, ru = keys("en.js"), keys("ru.js")
    assert en == ru and len(en) == len(set(en))
    used: set[str] = set()
    for path in [*WEB.glob("*.html"), *WEB.glob("js/**/*.js")]:
        if path.name == "i18n.js":
            continue  # the mechanism; its comments show made-up keys
        text = path.read_text()
        used.update(re.findall(r"\bt\('([\w.]+)'", text))
        used.update(re.findall(r'data-i18n="([\w.]+)"', text))
        for attrs in re.findall(r'data-i18n-attr="([^"]+)"', text):
            used.update(pair.split(":")[1] for pair in attrs.split(";") if ":" in pair)
    assert sorted(used - set(en)) == []
