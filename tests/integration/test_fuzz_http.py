"""Schemathesis over the server's OpenAPI schema: no 500, documented shapes, error bodies.

A bounded run on SQLite is part of `make test`; PARLEY_FUZZ_PG=1 adds a longer run on
PostgreSQL (PARLEY_FUZZ_EXAMPLES sets the examples per operation, 10 by default and
60 on PostgreSQL).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from parley.server.app import create_app, uvicorn_config
from tests.conftest import free_port, test_settings
from tests.factories import unique
from tests.waiting import eventually_sync

FUZZ_PG = os.environ.get("PARLEY_FUZZ_PG") == "1"
# Operations that would end the fuzzing user's own session.
SKIPPED = {("POST", "/service/api/logout"), ("POST", "/service/api/password")}


@dataclass
class Target:
    base: str
    headers: dict[str, str]


def _serve(settings: Any) -> tuple[str, uvicorn.Server, threading.Thread]:
    """The server in a thread with its own event loop: hypothesis tests are synchronous."""
    port = free_port()
    server = uvicorn.Server(uvicorn_config(create_app(settings), settings, port=port))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    eventually_sync(lambda: server.started or not thread.is_alive(), 20, what="the server")
    if not server.started:
        raise RuntimeError("server did not start")
    return f"http://127.0.0.1:{port}", server, thread


def _prepare(base: str) -> Target:
    """A user with a group, a message and a direct chat, so that some ids exist."""
    with httpx.Client(base_url=base, timeout=30) as http:
        name = unique("fz")
        body = {"username": name, "email": f"{name}@example.com", "password": "fuzzing-pass-1"}
        registered = http.post("/service/api/register", json=body).json()
        headers = {"Authorization": f"Bearer {registered['access_token']}"}
        peer = http.post(
            "/service/api/register",
            json={**body, "username": name + "p", "email": f"{name}p@example.com"},
        ).json()
        chat = http.post(
            "/service/api/chats",
            json={"type": "group", "title": "fuzz", "member_ids": [peer["user"]["id"]]},
            headers=headers,
        ).json()
        http.post(
            f"/service/api/chats/{chat['id']}/messages", json={"content": "hi"}, headers=headers
        )
        http.post(
            "/service/api/chats",
            json={"type": "direct", "user_id": peer["user"]["id"]},
            headers=headers,
        )
    return Target(base, headers)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    overrides: dict[str, object] = {}
    if request.param == "postgres":
        if not FUZZ_PG:
            pytest.skip("the PostgreSQL fuzzing run is behind PARLEY_FUZZ_PG=1")
        overrides["DATABASE_URL"] = request.getfixturevalue("pg_url")
    base, server, thread = _serve(test_settings(tmp_path_factory.mktemp("fuzz"), **overrides))
    try:
        yield _prepare(base)
    finally:
        server.should_exit = True
        thread.join(15)


def _error_body(response: Any) -> None:
    """Every error answer is the documented {"detail", "code"} shape."""
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"detail", "code"}, body
    assert isinstance(body["detail"], str) and isinstance(body["code"], str), body


def _email_disabled(response: Any) -> bool:
    if response.status_code != 503:
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("code") == "email_disabled"


def _examples() -> int:
    default = 60 if FUZZ_PG else 10
    return int(os.environ.get("PARLEY_FUZZ_EXAMPLES", default))


def _fuzz(operation: Any, target: Target, examples: int) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def run(case: Any) -> None:
        response = case.call(base_url=target.base, headers=target.headers, timeout=30)
        if _email_disabled(response):
            return  # this server has no SMTP: the contract's documented 503 for mail routes
        checks = [not_a_server_error, content_type_conformance]
        if response.status_code < 400:
            checks.append(response_schema_conformance)
        case.validate_response(response, checks=checks)
        assert response.status_code < 500, (response.status_code, response.text)
        kind = response.headers.get("content-type") or [""]
        if response.status_code >= 400 and kind[0].startswith("application/json"):
            _error_body(response)

    run()


def test_openapi_fuzzing_finds_no_server_error(target: Target) -> None:
    schema = schemathesis.openapi.from_url(f"{target.base}/openapi.json")
    problems: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIPPED:
            continue
        operations += 1
        try:
            _fuzz(operation, target, _examples())
        except Exception as exc:  # collected: one report for every operation that failed
            problems.append(f"{operation.method.upper()} {operation.path}: {exc}"[:2000])
    assert operations > 30
    assert problems == [], "\n\n".join(problems)
    with httpx.Client(base_url=target.base) as http:
        assert http.get("/health").status_code == 200
