"""Helpers for the browser tests: users made over HTTP (quicker than the form), a recorder
for the Notification API, hidden-tab emulation, and small page actions."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from tests.e2e.conftest import PASSWORD, User


@dataclass
class ApiUser:
    """A user registered over the API; `http` sends its bearer token."""

    id: int
    username: str
    display_name: str
    http: httpx.Client

    def send(self, chat_id: int, content: str) -> dict[str, Any]:
        response = self.http.post(
            f"/service/api/chats/{chat_id}/messages", json={"content": content}
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def group(self, title: str, member_ids: list[int]) -> dict[str, Any]:
        response = self.http.post(
            "/service/api/chats", json={"type": "group", "title": title, "member_ids": member_ids}
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def direct(self, user_id: int) -> dict[str, Any]:
        response = self.http.post("/service/api/chats", json={"type": "direct", "user_id": user_id})
        assert response.status_code in (200, 201), response.text
        body: dict[str, Any] = response.json()
        return body


def api_user(base_url: str, prefix: str = "peer", display_name: str | None = None) -> ApiUser:
    username = f"{prefix}_{uuid.uuid4().hex[:8]}"
    http = httpx.Client(base_url=base_url, timeout=20)
    body = {"username": username, "email": f"{username}@example.com", "password": PASSWORD}
    if display_name:
        body["display_name"] = display_name
    response = http.post("/service/api/register", json=body)
    assert response.status_code == 201, response.text
    data = response.json()
    http.cookies.clear()
    http.headers["Authorization"] = f"Bearer {data['access_token']}"
    return ApiUser(data["user"]["id"], username, display_name or username, http)


def user_id(user: User) -> int:
    """The id of a user signed in in the browser (asked with the page's own cookie)."""
    profile = user.page.evaluate("fetch('/service/api/profile').then(r => r.json())")
    return int(profile["id"])


# Wraps the Notification API (the real one still runs, with the context's permission) to
# record every `new Notification(...)`, and lets a test hide the tab: document.hidden and
# visibilityState read window.__hidden (Playwright has no switch for page visibility).
NOTIFICATION_RECORDER = """
(() => {
  window.__notes = [];
  window.__hidden = false;
  const Real = window.Notification;
  class Recorded {
    constructor(title, options = {}) {
      this.title = title;
      this.body = options.body || '';
      this.tag = options.tag || '';
      window.__notes.push({ title, body: this.body, tag: this.tag });
      window.__lastNote = this;
      try { this.real = new Real(title, options); } catch { this.real = null; }
    }
    close() { this.real?.close(); }
    static get permission() { return Real.permission; }
    static requestPermission() { return Real.requestPermission(); }
  }
  window.Notification = Recorded;
  Object.defineProperty(Document.prototype, 'hidden', {
    configurable: true, get: () => window.__hidden,
  });
  Object.defineProperty(Document.prototype, 'visibilityState', {
    configurable: true, get: () => (window.__hidden ? 'hidden' : 'visible'),
  });
})();
"""


def set_hidden(page: Any, hidden: bool) -> None:
    page.evaluate(
        "h => { window.__hidden = h; document.dispatchEvent(new Event('visibilitychange')); }",
        hidden,
    )


def notes(page: Any) -> list[dict[str, str]]:
    result: list[dict[str, str]] = page.evaluate("window.__notes")
    return result


def open_chat(page: Any, chat_id: int) -> None:
    page.get_by_test_id(f"chat-item-{chat_id}").click()
    page.locator(f'[data-testid="chat-item-{chat_id}"][aria-current="true"]').wait_for()


def send(page: Any, text: str) -> None:
    page.get_by_test_id("composer-input").fill(text)
    page.get_by_test_id("composer-input").press("Enter")


def wait_until(page: Any, expression: str, timeout: float = 10) -> None:
    """Polls `expression` with page.evaluate (page.wait_for_function compiles its predicate
    with eval, which the pages' CSP forbids: it fails whenever it has to poll)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout} s: {expression}")
        page.wait_for_timeout(100)
