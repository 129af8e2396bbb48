#!/usr/bin/env python3
"""End-to-end check of a running Parley: every HTTP endpoint and a WebSocket conversation.

    python deploy/scripts/api_test.py [BASE_URL]      (default $BASE_URL or http://127.0.0.1:8080)

BASE_URL is the public address (nginx or a gateway). The script registers three fresh
users (random names), exercises accounts, profiles, avatars, chats, members, messages,
reactions, reads, search, attachments, blocks, the seed's /api/v1, /health, /stats and a
WebSocket conversation, and checks each answer's status and body. It prints one line per
call and exits 1 when any check fails. It leaves its users and chats behind (their names
start with `apitest_`). Rate-limit answers (429) are waited out and retried.
"""

from __future__ import annotations

import json
import os
import secrets
import struct
import sys
import time
import zlib
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
from websockets.sync.client import connect

OPTIONAL = "optional"  # endpoints of newer API versions: a 404 route-not-found is a skip


class Failed(Exception):
    pass


class ApiTest:
    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")
        self.http = httpx.Client(base_url=self.base, timeout=20, trust_env=False)
        self.passed = self.failed = self.skipped = 0

    # -- plumbing ---------------------------------------------------------------------

    def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        expect: int | tuple[int, ...] = 200,
        check: Callable[[Any], object] | None = None,
        optional: bool = False,
        **kwargs: Any,
    ) -> Any:
        headers = dict(kwargs.pop("headers", {}))
        if token:
            headers["Authorization"] = f"Bearer {token}"
        started = time.perf_counter()
        for _ in range(20):
            response = self.http.request(method, path, headers=headers, **kwargs)
            if response.status_code != 429 or expect == 429:
                break
            time.sleep(min(5.0, float(response.headers.get("retry-after", "1"))))
        ms = (time.perf_counter() - started) * 1000
        wanted = expect if isinstance(expect, tuple) else (expect,)
        label = f"{method:6} {path.split('?')[0]}"
        if optional and response.status_code == 404 and _route_missing(response):
            self.skipped += 1
            print(f"skip  {label}  (not in this version)")
            return None
        body = _body(response)
        problem = None
        if response.status_code not in wanted:
            problem = f"status {response.status_code}, wanted {wanted}: {str(body)[:200]}"
        elif check is not None:
            try:
                if check(body) is False:
                    problem = f"unexpected body: {str(body)[:200]}"
            except (KeyError, TypeError, IndexError, AssertionError) as exc:
                problem = f"unexpected body ({exc!r}): {str(body)[:200]}"
        if problem:
            self.failed += 1
            print(f"FAIL  {label}  {problem}")
        else:
            self.passed += 1
            print(f"ok    {label}  {response.status_code}  {ms:.0f} ms")
        return body

    def register(self, tag: str) -> dict[str, Any]:
        name = f"apitest_{tag}_{secrets.token_hex(4)}"
        password = "pw-" + secrets.token_urlsafe(12)
        body = self.call(
            "POST",
            "/service/api/register",
            json={"username": name, "email": f"{name}@example.org", "password": password},
            expect=201,
            check=lambda b: b["user"]["username"] == name and b["access_token"],
        )
        if not body:
            raise Failed("registration failed: nothing else can run")
        return {**body["user"], "token": body["access_token"], "refresh": body["refresh_token"],
                "password": password}  # fmt: skip

    # -- the walk ---------------------------------------------------------------------

    def run(self) -> int:
        print(f"Parley API test against {self.base}")
        try:
            self.service_routes()
            a, b, c = self.register("a"), self.register("b"), self.register("c")
            self.accounts(a)
            self.profiles(a, b)
            chat = self.chats(a, b, c)
            self.messages(a, b, chat)
            self.websocket(a, b, chat)
            self.blocks(a, c)
            self.seed_routes(a)
            self.sessions(a)
        except (Failed, httpx.HTTPError, OSError) as exc:
            self.failed += 1
            print(f"FAIL  stopped: {exc!r}")
        print(f"\n{self.passed} passed, {self.failed} failed, {self.skipped} skipped")
        return 1 if self.failed else 0

    def service_routes(self) -> None:
        self.call("GET", "/health", check=lambda b: b["status"] == "ok")
        self.call("GET", "/stats", check=lambda b: b["users"] >= 0 and "messages" in b)
        for page in ("/", "/login", "/register", "/chat"):
            self.call("GET", page, check=lambda b: "<html" in str(b).lower())
        self.call("GET", "/service/api/profile", expect=401, check=_code("unauthorized"))

    def accounts(self, a: dict[str, Any]) -> None:
        body = self.call(
            "POST",
            "/service/api/login",
            json={"username": a["username"], "password": a["password"]},
            check=lambda b: b["user"]["id"] == a["id"],
        )
        self.call(
            "POST",
            "/service/api/login",
            json={"username": a["username"], "password": "wrong-" + a["password"]},
            expect=401,
            check=_code("invalid_credentials"),
        )
        refreshed = self.call(
            "POST",
            "/service/api/refresh",
            json={"refresh_token": body["refresh_token"]},
            check=lambda b: b["refresh_token"] != body["refresh_token"],
        )
        self.call(
            "POST",
            "/service/api/logout",
            token=refreshed["access_token"],
            expect=204,
        )

    def profiles(self, a: dict[str, Any], b: dict[str, Any]) -> None:
        t = a["token"]
        self.call("GET", "/service/api/profile", token=t, check=lambda p: p["id"] == a["id"])
        self.call(
            "PATCH",
            "/service/api/profile",
            token=t,
            json={"display_name": "API Test A", "bio": "made by api_test.py"},
            check=lambda p: p["display_name"] == "API Test A",
        )
        self.call(
            "PUT",
            "/service/api/profile/avatar",
            token=t,
            files={"file": ("a.png", _png(), "image/png")},
            check=lambda p: bool(p["avatar_url"]),
        )
        self.call("GET", f"/service/api/users/{a['id']}/avatar", token=b["token"])
        self.call(
            "GET",
            f"/service/api/users/{a['id']}",
            token=b["token"],
            check=lambda u: u["username"] == a["username"],
        )
        self.call(
            "GET",
            "/service/api/users",
            token=b["token"],
            params={"q": a["username"]},
            check=lambda us: any(u["id"] == a["id"] for u in us),
        )
        self.call("DELETE", "/service/api/profile/avatar", token=t, expect=204)
        self.call(
            "GET",
            "/service/api/profile",
            token=t,
            headers={"Content-Type": "application/json"},
            check=lambda p: not p.get("avatar_url"),
        )

    def chats(self, a: dict[str, Any], b: dict[str, Any], c: dict[str, Any]) -> dict[str, Any]:
        ta, tb = a["token"], b["token"]
        direct = self.call(
            "POST",
            "/service/api/chats",
            token=ta,
            json={"type": "direct", "user_id": b["id"]},
            expect=201,
            check=lambda ch: ch["type"] == "direct",
        )
        self.call(
            "POST",
            "/service/api/chats",
            token=tb,
            json={"type": "direct", "user_id": a["id"]},
            expect=200,
            check=lambda ch: ch["id"] == direct["id"],
        )
        group = self.call(
            "POST",
            "/service/api/chats",
            token=ta,
            json={"type": "group", "title": "apitest group", "member_ids": [b["id"]]},
            expect=201,
            check=lambda ch: ch["title"] == "apitest group",
        )
        gid = group["id"]
        self.call("GET", "/service/api/chats", token=ta,
                  check=lambda chs: {direct["id"], gid} <= {ch["id"] for ch in chs})  # fmt: skip
        self.call("GET", f"/service/api/chats/{gid}", token=tb, check=lambda ch: ch["id"] == gid)
        self.call(
            "PATCH",
            f"/service/api/chats/{gid}",
            token=ta,
            json={"description": "checked end to end"},
            check=lambda ch: ch["description"] == "checked end to end",
        )
        self.call(
            "POST",
            f"/service/api/chats/{gid}/members",
            token=ta,
            json={"user_ids": [c["id"]]},
            check=lambda ms: c["id"] in {m["user"]["id"] for m in ms},
        )
        self.call(
            "PATCH",
            f"/service/api/chats/{gid}/members/{b['id']}",
            token=ta,
            json={"role": "admin"},
        )
        self.call(
            "GET",
            f"/service/api/chats/{gid}/members",
            token=tb,
            check=lambda ms: {m["user"]["id"]: m["role"] for m in ms}[b["id"]] == "admin",
        )
        self.call("DELETE", f"/service/api/chats/{gid}/members/{c['id']}", token=ta, expect=204)
        self.call(
            "PATCH",
            f"/service/api/chats/{gid}/settings",
            token=ta,
            json={"muted_until": "forever"},
            optional=True,
        )
        channel = self.call(
            "POST",
            "/service/api/chats",
            token=tb,
            json={"type": "channel", "title": f"apitest channel {secrets.token_hex(3)}"},
            expect=201,
            check=lambda ch: ch["is_public"],
        )
        self.call(
            "GET",
            "/service/api/chats/public",
            token=ta,
            params={"q": channel["title"]},
            check=lambda chs: any(ch["id"] == channel["id"] for ch in chs),
        )
        self.call("POST", f"/service/api/chats/{channel['id']}/join", token=c["token"],
                  check=lambda ch: ch["id"] == channel["id"])  # fmt: skip
        self.call("DELETE", f"/service/api/chats/{channel['id']}", token=tb, expect=204)
        self.call("GET", f"/service/api/chats/{channel['id']}", token=tb, expect=404,
                  check=lambda b: b["code"].endswith("not_found"))  # fmt: skip
        return dict(group)

    def messages(self, a: dict[str, Any], b: dict[str, Any], chat: dict[str, Any]) -> None:
        ta, tb, cid = a["token"], b["token"], chat["id"]
        word = "zebra" + secrets.token_hex(3)
        sent = self.call(
            "POST",
            f"/service/api/chats/{cid}/messages",
            token=ta,
            json={"content": f"hello @{b['username']} {word}", "client_id": "api-1"},
            expect=201,
            check=lambda m: m["chat_id"] == cid and word in m["content"],
        )
        self.call(
            "POST",
            f"/service/api/chats/{cid}/messages",
            token=ta,
            json={"content": f"hello @{b['username']} {word}", "client_id": "api-1"},
            expect=200,
            check=lambda m: m["id"] == sent["id"],
        )
        mid = sent["id"]
        self.call("GET", f"/service/api/messages/{mid}", token=tb, check=lambda m: m["id"] == mid)
        self.call(
            "GET",
            f"/service/api/chats/{cid}/messages",
            token=tb,
            params={"limit": 10},
            check=lambda ms: ms[-1]["id"] == mid,
        )
        self.call(
            "PATCH",
            f"/service/api/messages/{mid}",
            token=ta,
            json={"content": f"edited {word}"},
            check=lambda m: m["edited_at"] and m["content"] == f"edited {word}",
        )
        self.call(
            "POST",
            f"/service/api/messages/{mid}/reactions",
            token=tb,
            json={"emoji": "👍"},
            check=lambda m: bool(m["reactions"]),
        )
        self.call("DELETE", f"/service/api/messages/{mid}/reactions/👍", token=tb, expect=204)
        self.call("POST", f"/service/api/chats/{cid}/read", token=tb, json={"seq": sent["seq"]},
                  expect=204)  # fmt: skip
        self.call(
            "GET",
            "/service/api/search",
            token=tb,
            params={"q": word},
            check=lambda ms: any(m["id"] == mid for m in ms),
        )
        self.call("GET", "/service/api/mentions", token=tb, optional=True)
        self.call("GET", f"/service/api/chats/{cid}/messages", token=tb,
                  params={"around": sent["seq"], "limit": 5}, optional=True)  # fmt: skip
        attachment = self.call(
            "POST",
            f"/service/api/chats/{cid}/attachments",
            token=ta,
            files={"file": ("notes.txt", b"plain text attachment\n", "text/plain")},
            expect=201,
            check=lambda at: at["id"] > 0,
        )
        self.call(
            "POST",
            f"/service/api/chats/{cid}/messages",
            token=ta,
            json={"content": "see attached", "attachment_ids": [attachment["id"]]},
            expect=201,
            check=lambda m: m["attachments"][0]["id"] == attachment["id"],
        )
        got = self.http.get(
            f"/service/api/attachments/{attachment['id']}",
            headers={"Authorization": f"Bearer {tb}"},
        )
        self._expect(
            "GET    /service/api/attachments/{id}",
            got.status_code == 200 and got.content == b"plain text attachment\n"
            and got.headers.get("x-content-type-options") == "nosniff",
            got,
        )  # fmt: skip
        self.call("DELETE", f"/service/api/messages/{mid}", token=ta, expect=204)
        self.call("GET", f"/service/api/messages/{mid}", token=tb,
                  check=lambda m: m["deleted"] is True)  # fmt: skip

    def websocket(self, a: dict[str, Any], b: dict[str, Any], chat: dict[str, Any]) -> None:
        parts = urlsplit(self.base)
        scheme = "wss" if parts.scheme == "https" else "ws"
        url = f"{scheme}://{parts.netloc}/ws"
        started = time.perf_counter()
        try:
            with (
                connect(url, additional_headers={"Authorization": f"Bearer {a['token']}"},
                        open_timeout=10) as wa,
                connect(url, additional_headers={"Authorization": f"Bearer {b['token']}"},
                        open_timeout=10) as wb,
            ):  # fmt: skip
                hello = _frame(wa, "hello")
                assert hello["user"]["id"] == a["id"], hello
                _frame(wb, "hello")
                wa.send(json.dumps({"type": "ping"}))
                _frame(wa, "pong")
                wb.send(json.dumps({"type": "typing", "chat_id": chat["id"]}))
                typing = _frame(wa, "typing")
                assert typing["user_id"] == b["id"], typing
                send = {"type": "send", "chat_id": chat["id"], "content": "over the socket"}
                wa.send(json.dumps({**send, "client_id": "ws-1"}))
                ack = _frame(wa, "message")["message"]
                assert ack["client_id"] == "ws-1" and ack["content"] == "over the socket", ack
                got = _frame(wb, "message")["message"]
                assert got["id"] == ack["id"], got
                wb.send(json.dumps({"type": "sync", "chats": {str(chat["id"]): ack["seq"] - 1}}))
                replay = _frame(wb, "message")["message"]
                assert replay["id"] == ack["id"], replay
                _frame(wb, "synced")
        except Exception as exc:  # a failed conversation is a reported failure, not a crash
            self.failed += 1
            print(f"FAIL  WS     /ws  conversation: {exc!r}")
            return
        self.passed += 1
        ms = (time.perf_counter() - started) * 1000
        print(f"ok    WS     /ws  hello, ping, typing, send+ack, delivery, sync  {ms:.0f} ms")

    def blocks(self, a: dict[str, Any], c: dict[str, Any]) -> None:
        ta = a["token"]
        self.call("POST", "/service/api/block", token=ta, json={"user_id": c["id"]}, expect=201,
                  check=lambda bl: bl["user_id"] == c["id"])  # fmt: skip
        self.call("GET", "/service/api/block", token=ta,
                  check=lambda bls: any(bl["user_id"] == c["id"] for bl in bls))  # fmt: skip
        self.call("POST", "/service/api/chats", token=c["token"],
                  json={"type": "direct", "user_id": a["id"]}, expect=403,
                  check=_code("blocked"))  # fmt: skip
        self.call("DELETE", f"/service/api/block/{c['id']}", token=ta, expect=204)
        # Bans need an admin (`parley users promote`); a member is refused.
        self.call("GET", "/service/api/admin/bans", token=ta, expect=403)
        self.call("POST", "/service/api/admin/bans", token=ta, json={"user_id": c["id"]},
                  expect=403)  # fmt: skip
        self.call("DELETE", f"/service/api/admin/bans/{c['id']}", token=ta, expect=403)

    def seed_routes(self, a: dict[str, Any]) -> None:
        ta = a["token"]
        self.call("GET", "/api/v1/users", token=ta,
                  check=lambda us: any(u["id"] == a["id"] for u in us))  # fmt: skip
        name = f"apitest_seed_{secrets.token_hex(4)}"
        self.call("POST", "/api/v1/users", expect=201,
                  json={"username": name, "email": f"{name}@example.org",
                        "password": "pw-" + secrets.token_hex(8)},
                  check=lambda u: u["username"] == name)  # fmt: skip
        self.call("POST", "/api/v1/messages", token=ta, expect=201,
                  json={"content": "seed hello"},
                  check=lambda m: m["content"] == "seed hello")  # fmt: skip
        self.call("GET", "/api/v1/messages", token=ta, params={"limit": 5},
                  check=lambda ms: isinstance(ms, list) and ms)  # fmt: skip

    def sessions(self, a: dict[str, Any]) -> None:
        new_password = "pw-" + secrets.token_urlsafe(12)
        change = {"current_password": a["password"], "new_password": new_password}
        self.call("POST", "/service/api/password", token=a["token"], expect=204, json=change)
        login = {"username": a["username"], "password": new_password}
        self.call("POST", "/service/api/login", json=login,
                  check=lambda b: b["user"]["id"] == a["id"])  # fmt: skip

    def _expect(self, label: str, ok: bool, response: httpx.Response) -> None:
        if ok:
            self.passed += 1
            print(f"ok    {label}  {response.status_code}")
        else:
            self.failed += 1
            print(f"FAIL  {label}  status {response.status_code}: {response.text[:200]}")


def _frame(ws: Any, kind: str, timeout: float = 10.0) -> dict[str, Any]:
    """The next frame of type `kind` (others, such as presence, are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no {kind!r} frame within {timeout}s")
        frame = json.loads(ws.recv(timeout=left))
        if frame.get("type") == kind:
            return dict(frame)
        if frame.get("type") == "error":
            raise AssertionError(f"error frame while waiting for {kind}: {frame}")


def _code(code: str) -> Callable[[Any], bool]:
    return lambda body: body["code"] == code


def _body(response: httpx.Response) -> Any:
    if "json" in response.headers.get("content-type", ""):
        try:
            return response.json()
        except ValueError:
            return response.text
    return response.text


def _route_missing(response: httpx.Response) -> bool:
    body = _body(response)
    return isinstance(body, dict) and body.get("detail") == "Not Found"


def _png(size: int = 8) -> bytes:
    """A small valid PNG, made without an imaging library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    rows = b"".join(b"\x00" + bytes((x * 30 % 256, 80, 160)) * size for x in range(size))
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def main(argv: list[str]) -> int:
    base = argv[1] if len(argv) > 1 else os.environ.get("BASE_URL", "http://127.0.0.1:8080")
    return ApiTest(base).run()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
