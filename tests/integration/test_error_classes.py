"""One classifier of failures: REST and WebSocket answer the same code for the same
exception, and both count it in app_error_total."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from parley import errors
from parley.server import problems
from tests.conftest import Running
from tests.factories import connect, make_user, recv_type

STATEMENT_FAILURES = [
    (IntegrityError("INSERT", {}, Exception("unique")), 409, "conflict"),
    (DataError("INSERT", {}, Exception("out of range")), 422, "validation_error"),
    (OverflowError("int too big"), 422, "validation_error"),
    (OperationalError("SELECT 1", {}, Exception("gone")), 503, "unavailable"),
    (RedisConnectionError("refused"), 503, "unavailable"),
    (TimeoutError(), 503, "unavailable"),
    (PoolTimeout("QueuePool limit of size 5 overflow 10 reached"), 503, "unavailable"),
    (errors.NotMember(), 403, "not_member"),
    (errors.RateLimited(retry_after=7), 429, "rate_limited"),
    (KeyError("bug"), 500, "internal_error"),
]


@pytest.mark.parametrize(("exc", "status", "code"), STATEMENT_FAILURES, ids=lambda v: str(v)[:20])
def test_each_failure_has_one_status_and_code(exc: Exception, status: int, code: str) -> None:
    problem = problems.classify(exc)
    assert (problem.status, problem.code) == (status, code)
    assert problem.detail and "Exception(" not in problem.detail  # never the driver's text
    if isinstance(exc, errors.RateLimited):
        assert problem.retry_after == 7


def test_a_websocket_error_frame_says_what_rest_would() -> None:
    """The frame renders the same classification (before, a duplicate was `unavailable`
    over a socket and 409 `conflict` over REST)."""
    from types import SimpleNamespace

    from parley.server.realtime.handlers import error_frame

    state = SimpleNamespace(metrics=None)
    for exc, _status, code in STATEMENT_FAILURES:
        frame = json.loads(error_frame(state, exc, "ref-1"))  # type: ignore[arg-type]
        assert frame == {
            "type": "error",
            "code": code,
            "detail": problems.classify(exc).detail,
            "ref": "ref-1",
        }


def _count(text: str, code: str) -> float:
    match = re.search(rf'^app_error_total{{code="{code}"}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


async def test_websocket_errors_are_counted_like_rest_ones(
    client: httpx.AsyncClient, live: Running
) -> None:
    me = await make_user(client)
    before = _count((await client.get("/service/metrics")).text, "not_member")
    ws = await connect(live.ws_base, me)
    try:
        await ws.send(json.dumps({"type": "typing", "chat_id": 987654321}))
        error = await recv_type(ws, "error")
        assert error["code"] == "not_member"
        await ws.send(json.dumps({"type": "nonsense"}))
        assert (await recv_type(ws, "error"))["code"] == "unknown_type"
    finally:
        await ws.close()
    text = (await client.get("/service/metrics")).text
    assert _count(text, "not_member") == before + 1
    assert _count(text, "unknown_type") >= 1
    # and a REST error lands in the same counter
    await client.get("/service/api/chats/987654321", headers=me.headers)
    after = (await client.get("/service/metrics")).text
    assert 'app_error_total{code="chat_not_found"}' in after
