"""The emoji picker (search, recent, skin tones, reactions, composer), the image viewer,
composer thumbnails and the order of attachments, in a real browser."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.e2e.conftest import User, shot
from tests.e2e.test_chat import open_direct_chat, send

pytestmark = pytest.mark.browser

THUMBS_MEDIUM = "👍\U0001f3fd"


def png(path: Path, color: str, size: tuple[int, int] = (320, 200)) -> Path:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    path.write_bytes(buffer.getvalue())
    return path


def open_full_picker(page: Any, seq: int) -> Any:
    message = page.get_by_test_id(f"message-{seq}")
    message.hover()
    message.get_by_test_id("message-react").click()
    page.get_by_test_id("emoji-more").click()
    panel = page.get_by_test_id("emoji-panel")
    panel.wait_for()
    return panel


def test_picker_search_skin_tone_recent_and_reaction(register: Any) -> None:
    alice: User = register("emo_a", display_name="Alice Emoji")
    bob: User = register("emo_b", display_name="Bob Emoji", color_scheme="dark")
    open_direct_chat(alice, bob)
    send(alice.page, "pick an emoji")
    alice.page.get_by_test_id("message-1").wait_for()
    bob.page.locator(".chat-item", has_text="Alice Emoji").click()
    bob.page.get_by_test_id("message-1").wait_for()
    page = alice.page

    panel = open_full_picker(page, 1)
    assert panel.locator(".emoji-btn").count() > 1500  # the whole set, by category
    page.get_by_test_id("emoji-search").fill("thumbs up")
    assert panel.get_by_test_id("emoji-option-👍").is_visible()
    page.get_by_test_id("emoji-tone").click()
    page.get_by_test_id("emoji-tone-3").click()
    assert panel.get_by_test_id("emoji-option-👍").inner_text() == THUMBS_MEDIUM
    shot(page, "emoji-picker-search")
    panel.get_by_test_id("emoji-option-👍").click()
    panel.wait_for(state="detached")

    # The reaction, with its skin tone, reaches both sides.
    for p in (page, bob.page):
        reaction = p.get_by_test_id("message-1").get_by_test_id(f"reaction-{THUMBS_MEDIUM}")
        reaction.wait_for()
        assert reaction.inner_text().split() == [THUMBS_MEDIUM, "1"]

    # Recently used and the tone are remembered, across a reload too.
    page.reload()
    page.get_by_test_id("message-1").wait_for()
    panel = open_full_picker(page, 1)
    recent = panel.get_by_test_id("emoji-section-recent")
    assert recent.locator(".emoji-btn").first.inner_text() == THUMBS_MEDIUM
    assert page.get_by_test_id("emoji-tone").inner_text() == "✋\U0001f3fd"
    # Search in Russian names as well; Escape closes and gives focus back.
    page.get_by_test_id("emoji-search").fill("ракета")
    assert panel.get_by_test_id("emoji-option-🚀").is_visible()
    page.get_by_test_id("emoji-search").fill("zzzz-no-such-emoji")
    page.get_by_test_id("emoji-none").wait_for()
    page.keyboard.press("Escape")
    panel.wait_for(state="detached")
    assert page.evaluate("document.activeElement.dataset.testid") == "message-react"
    assert page.errors == [] and bob.page.errors == []


def test_composer_picker_inserts_at_the_caret(register: Any) -> None:
    carol: User = register("emo_c")
    dave: User = register("emo_d")
    open_direct_chat(carol, dave)
    page = carol.page
    composer = page.get_by_test_id("composer-input")
    composer.fill("Lift off  now")
    composer.evaluate("el => el.setSelectionRange(9, 9)")
    page.get_by_test_id("composer-emoji").click()
    page.get_by_test_id("emoji-search").fill("rocket")
    page.keyboard.press("Enter")  # the first match
    assert composer.input_value() == "Lift off 🚀 now"
    composer.press("Enter")
    dave.page.locator(".chat-item", has_text=carol.username).click()
    content = dave.page.get_by_test_id("message-1").get_by_test_id("message-content")
    content.filter(has_text="Lift off 🚀 now").wait_for()


def test_thumbnails_order_and_image_viewer(register: Any, tmp_path: Path) -> None:
    erin: User = register("media_e", display_name="Erin Media")
    fred: User = register("media_f")
    open_direct_chat(erin, fred)
    page = erin.page
    # Chosen in this order: a big image first, so a parallel upload would finish last.
    big = png(tmp_path / "zebra-big.png", "#3b8fd9", (2400, 1600))
    small = png(tmp_path / "apple-small.png", "#e8594a")
    notes = tmp_path / "middle-notes.txt"
    notes.write_text("not an image")
    page.get_by_test_id("composer-file").set_input_files([str(big), str(notes), str(small)])
    chips = page.get_by_test_id("composer-file-chip")
    page.locator('[data-testid="composer-file-chip"][data-status="done"]').nth(2).wait_for()
    assert [c.get_attribute("title") for c in chips.all()] == [
        "zebra-big.png",
        "middle-notes.txt",
        "apple-small.png",
    ]
    assert page.get_by_test_id("composer-thumb").count() == 2  # images only
    src = page.get_by_test_id("composer-thumb").first.get_attribute("src")
    assert src and src.startswith("blob:")
    shot(page, "composer-thumbnails")
    page.get_by_test_id("composer-input").fill("three files")
    page.get_by_test_id("composer-send").click()

    message = fred.page.get_by_test_id("message-1")
    fred.page.locator(".chat-item", has_text="Erin Media").click()
    message.locator(".msg-attachments img").nth(1).wait_for()
    names = message.locator(".msg-attachments [title], .msg-file-name").all_inner_texts()
    titles = [
        a.get_attribute("title") or a.inner_text()
        for a in message.locator(".msg-attachments > *").all()
    ]
    assert titles[0] == "zebra-big.png" and titles[2] == "apple-small.png", (titles, names)
    assert "middle-notes.txt" in titles[1]

    # The viewer: opens on the image, → to the next image, Escape closes, focus returns.
    viewer_page = fred.page
    first_image = message.locator(".msg-image").first
    first_image.click()
    viewer = viewer_page.get_by_test_id("image-viewer")
    viewer.wait_for()
    assert viewer_page.get_by_test_id("viewer-caption").inner_text() == "zebra-big.png"
    assert viewer_page.get_by_test_id("viewer-count").inner_text() == "1 of 2"
    shot(viewer_page, "image-viewer")
    viewer_page.keyboard.press("ArrowRight")
    assert viewer_page.get_by_test_id("viewer-caption").inner_text() == "apple-small.png"
    viewer_page.keyboard.press("Escape")
    viewer.wait_for(state="detached")
    assert viewer_page.evaluate("document.activeElement.classList.contains('msg-image')")
    assert viewer_page.url.endswith(f"#{viewer_page.url.split('#')[-1]}")  # no navigation

    # A click outside the picture closes it.
    first_image.click()
    viewer.wait_for()
    viewer_page.mouse.click(5, viewer_page.viewport_size["height"] - 5)
    viewer.wait_for(state="detached")
    assert viewer_page.errors == []


def test_viewer_closes_on_swipe_down(register: Any, tmp_path: Path) -> None:
    gina: User = register("swipe_g")
    hank: User = register("swipe_h", has_touch=True)
    open_direct_chat(gina, hank)
    picture = png(tmp_path / "p.png", "#4caf6a")
    gina.page.get_by_test_id("composer-file").set_input_files(str(picture))
    gina.page.locator('[data-testid="composer-file-chip"][data-status="done"]').wait_for()
    gina.page.get_by_test_id("composer-send").click()
    page = hank.page
    page.locator(".chat-item", has_text=gina.username).click()
    page.get_by_test_id("message-1").locator(".msg-image").wait_for()
    page.set_viewport_size({"width": 390, "height": 844})  # a phone, with the chat open
    page.get_by_test_id("message-1").locator(".msg-image").click()
    stage = page.get_by_test_id("viewer-stage")
    stage.wait_for()
    box = stage.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    touch = {"pointerType": "touch", "isPrimary": True, "pointerId": 7, "bubbles": True}
    stage.dispatch_event("pointerdown", {**touch, "clientX": x, "clientY": y})
    stage.dispatch_event("pointermove", {**touch, "clientX": x, "clientY": y + 60})
    assert page.get_by_test_id("image-viewer").is_visible()  # a short drag does not close
    stage.dispatch_event("pointermove", {**touch, "clientX": x + 5, "clientY": y + 160})
    stage.dispatch_event("pointerup", {**touch, "clientX": x + 5, "clientY": y + 160})
    page.get_by_test_id("image-viewer").wait_for(state="detached")
    assert page.errors == []
