"""Pins (the pinned bar), forwarding (the Forward dialog), notices (quiet centred lines,
collapsed when consecutive), Copy link (opening it opens the chat at the message) and Mark
as unread; English and Russian, light and dark."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.conftest import User, shot
from tests.e2e.support import api_user, open_chat, user_id, wait_until
from tests.e2e.test_a11y import axe_violations

CLIPBOARD = ["clipboard-read", "clipboard-write"]


def snippet_has(text: str) -> str:
    return (
        f"document.querySelector('[data-testid=pin-bar-snippet]')?.textContent.includes('{text}')"
    )


def highlighted(seq: int) -> str:
    return (
        f"document.querySelector('[data-testid=\"message-{seq}\"]')?.dataset.highlight === 'true'"
    )


def hover_menu(page: Any, seq: int, item: str) -> None:
    message = page.get_by_test_id(f"message-{seq}")
    message.hover()
    message.get_by_test_id("message-more").click()
    page.get_by_test_id("message-menu").get_by_test_id(item).click()


@pytest.mark.parametrize(
    ("lang", "scheme", "texts"),
    [
        (
            "en-US",
            "light",
            {"more": "and 1 more change", "forwarded": "Forwarded from Bob", "pinned": "Pinned"},
        ),
        (
            "ru-RU",
            "dark",
            {
                "more": "и ещё 1 изменение",
                "forwarded": "Переслано от Bob",
                "pinned": "Закреплённое",
            },
        ),
    ],
)
def test_pins_forward_notices_and_links(
    register: Callable[..., User], base_url: str, lang: str, scheme: str, texts: dict[str, str]
) -> None:
    ann = register("ann", "Ann", locale=lang, color_scheme=scheme, permissions=CLIPBOARD)
    page = ann.page
    ann_id = user_id(ann)
    bob = api_user(base_url, "bob", display_name="Bob")
    carol = api_user(base_url, "carol", display_name="Carol")
    chat = bob.group(f"Team {uuid.uuid4().hex[:4]}", [ann_id])
    other = bob.group("Elsewhere", [ann_id])
    first = bob.send(chat["id"], "first words")
    second = bob.send(chat["id"], "second words")
    added = bob.http.post(f"/service/api/chats/{chat['id']}/members", json={"user_ids": [carol.id]})
    assert added.status_code == 200
    renamed = bob.http.patch(f"/service/api/chats/{chat['id']}", json={"title": "Renamed team"})
    assert renamed.status_code == 200
    page.get_by_test_id(f"chat-item-{chat['id']}").wait_for()
    open_chat(page, chat["id"])

    # two consecutive notices: one quiet line, expandable
    notice = page.get_by_test_id("notice").last
    notice.wait_for()
    wait_until(
        page,
        "[...document.querySelectorAll('[data-testid=notice]')].at(-1).textContent.includes('Carol')",
    )
    assert texts["more"] in notice.inner_text()
    assert notice.get_by_test_id("message-more").count() == 0  # notices have no actions
    notice.get_by_test_id("notice-expand").click()
    page.get_by_test_id("notice-collapse").wait_for()
    assert "Renamed team" in page.get_by_test_id("notice").last.inner_text()
    shot(page, f"notices-{lang}-{scheme}")

    # Ann pins the first message; Bob pins the second: the bar shows the latest first
    hover_menu(page, first["seq"], "message-pin")
    bar = page.get_by_test_id("pin-bar")
    bar.wait_for()
    wait_until(page, snippet_has("first words"))
    pinned = bob.http.post(
        f"/service/api/chats/{chat['id']}/pins", json={"message_id": second["id"]}
    )
    assert pinned.status_code == 200
    wait_until(page, snippet_has("second words"))
    assert texts["pinned"] in bar.inner_text() and "2" in bar.inner_text()
    assert (
        page.get_by_test_id(f"message-{first['seq']}").get_by_test_id("message-pinned").count() == 1
    )
    shot(page, f"pin-bar-{lang}-{scheme}")
    assert axe_violations(page) == [], "pinned bar and notices"
    page.get_by_test_id("pin-bar-button").click()  # to the latest pin, then on to the older
    wait_until(page, snippet_has("first words"))
    page.get_by_test_id("pin-bar-button").click()
    wait_until(page, highlighted(first["seq"]))

    # Forward the second message to the other chat, with a comment
    hover_menu(page, second["seq"], "message-forward")
    dialog = page.get_by_test_id("forward-dialog")
    dialog.wait_for()
    dialog.get_by_test_id(f"forward-chat-{other['id']}").check()
    dialog.get_by_test_id("forward-comment").fill("have a look")
    shot(page, f"forward-dialog-{lang}-{scheme}")
    assert axe_violations(page) == [], "forward dialog"
    dialog.get_by_test_id("forward-send").click()
    dialog.wait_for(state="detached")
    shown = bob.http.get(f"/service/api/chats/{other['id']}/messages").json()
    assert [m["content"] for m in shown[-2:]] == ["have a look", "second words"]
    assert shown[-1]["forwarded_from"]["message_id"] == second["id"]
    open_chat(page, other["id"])
    forwarded = page.get_by_test_id(f"message-{shown[-1]['seq']}").get_by_test_id(
        "message-forwarded"
    )
    forwarded.wait_for()
    assert texts["forwarded"] in forwarded.inner_text()

    # Copy link of the first message of the team; opening it opens the chat there
    open_chat(page, chat["id"])
    hover_menu(page, first["seq"], "message-copy-link")
    wait_until(page, "navigator.clipboard.readText().then(t => t.includes('message='))")
    link = page.evaluate("navigator.clipboard.readText()")
    assert link.endswith(f"/chat?chat={chat['id']}&message={first['id']}")
    page.goto(link)
    target = page.get_by_test_id(f"message-{first['seq']}")
    target.wait_for()
    wait_until(page, highlighted(first["seq"]))
    shot(page, f"message-link-{lang}-{scheme}")

    # Mark as unread: the marker goes back, the chat counts unread messages again
    open_chat(page, chat["id"])
    hover_menu(page, second["seq"], "message-mark-unread")
    url = f"/service/api/chats/{chat['id']}"
    wait_until(
        page, f"fetch('{url}').then(r => r.json()).then(c => c.read_seq === {second['seq'] - 1})"
    )
    mine = page.evaluate(f"fetch('{url}').then(r => r.json())")
    assert mine["unread_count"] == 1
    assert page.errors == []
