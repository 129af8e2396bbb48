"""Screenshots of the settings, chat details, emoji picker and image viewer screens in both
languages, both themes, desktop and phone width (tests/e2e/screenshots/, for people)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.e2e.conftest import User, shot
from tests.e2e.test_settings_admin import api, my_id

pytestmark = pytest.mark.browser

VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
LOCALES = {"en": "en-US", "ru": "ru-RU"}


@pytest.mark.parametrize("size", list(VIEWPORTS))
@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("lang", list(LOCALES))
def test_screens(register: Any, tmp_path: Path, lang: str, theme: str, size: str) -> None:
    options: dict[str, Any] = {"color_scheme": theme, "locale": LOCALES[lang]}
    if size == "phone":
        options |= {"has_touch": True, "device_scale_factor": 2}
    alice: User = register("shot_a", display_name="Алиса" if lang == "ru" else "Alice", **options)
    bob: User = register("shot_b", display_name="Борис" if lang == "ru" else "Bob")
    page = alice.page
    page.set_viewport_size(VIEWPORTS[size])  # once signed in (the phone shows one pane)
    page.goto("/chat")
    page.locator('[data-testid="connection-status"][data-state="connected"]').wait_for(
        state="attached"
    )
    title = "Команда запуска" if lang == "ru" else "Launch crew"
    chat = api(page, "POST", "/chats", {"type": "group", "title": title,
                                         "description": "🚀 " + title,
                                         "member_ids": [my_id(bob)]})["body"]  # fmt: skip
    page.get_by_test_id(f"chat-item-{chat['id']}").click()
    picture = tmp_path / "sunset.png"
    buffer = io.BytesIO()
    gradient = Image.linear_gradient("L").resize((480, 320)).convert("RGB")
    Image.merge("RGB", (gradient.getchannel(0), gradient.point(lambda v: v // 2).getchannel(0),
                        Image.new("L", (480, 320), 120))).save(buffer, "PNG")  # fmt: skip
    picture.write_bytes(buffer.getvalue())
    page.get_by_test_id("composer-file").set_input_files(str(picture))
    page.locator('[data-testid="composer-file-chip"][data-status="done"]').wait_for()
    page.get_by_test_id("composer-input").fill("Привет! 👋" if lang == "ru" else "Hello! 👋")
    name = f"screens-{lang}-{theme}-{size}"
    shot(page, f"{name}-composer")
    page.get_by_test_id("composer-send").click()
    page.get_by_test_id("message-1").locator(".msg-image img").wait_for()

    page.get_by_test_id("composer-emoji").click()
    page.get_by_test_id("emoji-panel").wait_for()
    shot(page, f"{name}-emoji")
    page.keyboard.press("Escape")

    page.get_by_test_id("message-1").locator(".msg-image").click()
    page.get_by_test_id("image-viewer").wait_for()
    shot(page, f"{name}-viewer")
    page.keyboard.press("Escape")

    page.get_by_test_id("chat-info-button").click()
    page.get_by_test_id("chat-members").locator(".member-row").nth(1).wait_for()
    shot(page, f"{name}-chat-info")
    page.keyboard.press("Escape")

    if size == "phone":
        page.get_by_test_id("back-button").click()
    page.get_by_test_id("settings-button").click()
    page.get_by_test_id("password-form").wait_for()
    shot(page, f"{name}-settings")
    assert page.errors == []
