"""The Bots dialog, webhook settings in the chat details, and `/` commands in the
composer, in English and Russian."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.conftest import shot
from tests.e2e.support import api_user, open_chat, user_id

pytestmark = pytest.mark.browser


def test_bots_dialog_creates_configures_rotates_and_deletes(register: Any, base_url: str) -> None:
    me = register("botowner")
    page = me.page
    page.get_by_test_id("profile-button").click()  # bots live in the profile menu
    page.get_by_test_id("menu-bots").click()
    dialog = page.get_by_test_id("bots-dialog")
    dialog.get_by_text("You have no bots yet.").wait_for()
    page.get_by_test_id("bot-username").fill(f"ci_{me.username[-6:]}")
    page.get_by_test_id("bot-display-name").fill("CI robot")
    page.get_by_test_id("bot-create").click()
    token = page.get_by_test_id("bot-token")
    token.wait_for()
    secret = page.get_by_test_id("bot-secret").input_value()
    assert len(secret) == 64
    value = token.input_value()
    card = page.get_by_test_id(f"bot-ci_{me.username[-6:]}")
    card.wait_for()
    shot(page, "integrations-bots-created")

    # the token shown is a working bot token
    profile = httpx.get(
        base_url + "/service/api/profile", headers={"Authorization": f"Bearer {value}"}
    )
    assert profile.status_code == 200 and profile.json()["is_bot"] is True
    bot_id = profile.json()["id"]

    page.get_by_test_id(f"bot-url-{bot_id}").fill("https://bots.example.com/hook")
    page.get_by_test_id(f"bot-commands-{bot_id}").fill("/deploy Ship the build\n/status2")
    page.get_by_test_id(f"bot-save-{bot_id}").click()
    page.get_by_text("Bot saved").wait_for()
    listed = page.evaluate("fetch('/service/api/bots').then(r => r.json())")
    assert listed[0]["event_url"] == "https://bots.example.com/hook"
    assert listed[0]["commands"] == [
        {"command": "/deploy", "description": "Ship the build"},
        {"command": "/status2", "description": ""},
    ]

    page.get_by_test_id(f"bot-deliveries-{bot_id}").click()
    page.get_by_test_id(f"bot-log-{bot_id}").get_by_text("No events sent yet.").wait_for()

    page.get_by_test_id(f"bot-rotate-{bot_id}").click()
    page.get_by_test_id("confirm-ok").click()
    for _ in range(100):
        if page.get_by_test_id("bot-token").input_value() != value:
            break
        page.wait_for_timeout(50)
    assert page.get_by_test_id("bot-token").input_value() != value
    old = httpx.get(base_url + "/service/api/profile", headers={"Authorization": f"Bearer {value}"})
    assert old.status_code == 401

    page.get_by_test_id(f"bot-delete-{bot_id}").click()
    page.get_by_test_id("confirm-ok").click()
    dialog.get_by_text("You have no bots yet.").wait_for()


def test_webhook_settings_in_the_chat_details(register: Any, base_url: str) -> None:
    me = register("hookowner")
    page = me.page
    created = page.evaluate(
        """fetch('/service/api/chats', {
             method: 'POST', headers: {'Content-Type': 'application/json'},
             body: JSON.stringify({type: 'group', title: 'Deploys', member_ids: []}),
           }).then(r => r.json())"""
    )
    page.get_by_test_id(f"chat-item-{created['id']}").wait_for()
    open_chat(page, created["id"])
    page.get_by_test_id("chat-info-button").click()
    section = page.get_by_test_id("webhooks-section")
    section.get_by_text("No webhooks.").wait_for()
    page.get_by_test_id("webhook-name").fill("Jenkins")
    page.get_by_test_id("webhook-create").click()
    url_box = page.get_by_test_id("webhook-url")
    url_box.wait_for()
    url = url_box.input_value()
    assert url.startswith(base_url + "/hooks/"), url
    shot(page, "integrations-webhooks")
    posted = httpx.post(url, json={"text": "Build 7 is green"})
    assert posted.status_code == 200 and posted.text == "ok"
    page.keyboard.press("Escape")
    message = page.locator(".msg", has_text="Build 7 is green")
    message.wait_for()
    assert "Jenkins" in message.inner_text()


def test_slash_lists_commands_with_descriptions_and_runs_them(register: Any, base_url: str) -> None:
    me = register("slasher", locale="ru-RU")
    page = me.page
    owner = api_user(base_url, "cmdowner")
    made = owner.http.post("/service/api/bots", json={"username": f"b{owner.username[-8:]}",
                                                       "display_name": "Deployer"})  # fmt: skip
    assert made.status_code == 201, made.text
    bot = made.json()["bot"]
    patched = owner.http.patch(
        f"/service/api/bots/{bot['id']}",
        json={"commands": [{"command": "/deploy", "description": "Выкатить сборку"}]},
    )
    assert patched.status_code == 200
    chat = owner.group("Команды", [user_id(me), bot["id"]])
    page.get_by_test_id(f"chat-item-{chat['id']}").wait_for()
    open_chat(page, chat["id"])

    composer = page.get_by_test_id("composer-input")
    composer.fill("")
    composer.type("/")
    box = page.get_by_test_id("command-box")
    box.wait_for()
    page.get_by_test_id("command-option-shrug").wait_for()
    assert "Добавить ¯\\_(ツ)_/¯ к сообщению" in box.inner_text()
    composer.type("de")
    deploy = page.get_by_test_id("command-option-deploy")
    deploy.wait_for()
    assert "Выкатить сборку" in deploy.inner_text()
    shot(page, "integrations-commands-ru")
    composer.press("Escape")

    composer.fill("/shrug ну")
    composer.press("Enter")
    page.locator(".msg", has_text="¯\\_(ツ)_/¯").wait_for()
    assert page.locator(".msg", has_text="/shrug").count() == 0


def test_my_export_downloads_a_zip(register: Any) -> None:
    import io
    import zipfile

    me = register("exporter")
    page = me.page
    page.get_by_test_id("profile-button").click()  # bots live in the profile menu
    page.get_by_test_id("menu-bots").click()
    with page.expect_download(timeout=30000) as download:
        page.get_by_test_id("export-mine").click()
    path = download.value.path()
    with zipfile.ZipFile(io.BytesIO(open(path, "rb").read())) as archive:
        assert {"profile.json", "chats.json"} <= set(archive.namelist())
