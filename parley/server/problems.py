"""One classifier of failures: an exception becomes (status, code, detail), once.

REST renders a `Problem` as a JSON response (app.py), the WebSocket as an error frame
(realtime/ws.py); both go through `report`, which logs it and counts it in
`app_error_total`, so a database that refuses a value is the same `validation_error`
whether the value came over HTTP or over a socket.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from redis.exceptions import RedisError
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException

from parley import errors
from parley.server.metrics import ServerMetrics

log = logging.getLogger("parley.errors")

# Failures of a backend (database, Redis, the network under them): retry later. A
# pool's wait for a connection that timed out (SQLAlchemy's own TimeoutError, not the
# builtin one) is an overloaded backend too, never a bug.
BACKEND_DOWN = (OperationalError, DBAPIError, OSError, TimeoutError, PoolTimeout, RedisError)
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


@dataclass(frozen=True, slots=True)
class Problem:
    status: int
    code: str
    detail: str
    retry_after: int | None = None


UNAVAILABLE = Problem(503, "unavailable", "Service temporarily unavailable")
INTERNAL = Problem(500, "internal_error", "Something went wrong")


def classify(exc: BaseException) -> Problem:
    """What the client is told about `exc` (the order matters: subclasses first)."""
    if isinstance(exc, errors.ParleyError):
        return Problem(exc.status, exc.code, exc.detail, getattr(exc, "retry_after", None))
    if isinstance(exc, RequestValidationError | ValidationError):
        problems = [
            f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in exc.errors()
        ]
        return Problem(422, "validation_error", "; ".join(problems[:5]) or "Invalid input")
    if isinstance(exc, HTTPException):
        return Problem(exc.status_code, _HTTP_CODES.get(exc.status_code, "http_error"), exc.detail)
    if isinstance(exc, DataError | OverflowError):
        # A value the database cannot hold (an id past 64 bits): the client's input.
        return Problem(422, "validation_error", "A value is out of range")
    if isinstance(exc, IntegrityError):
        # A constraint the request broke (a concurrent duplicate): the client's conflict.
        return Problem(409, "conflict", "The request conflicts with the current state")
    if isinstance(exc, BACKEND_DOWN):
        return UNAVAILABLE
    return INTERNAL


def report(exc: BaseException, metrics: ServerMetrics | None) -> Problem:
    """Classifies `exc`, logs what an operator should see, and counts it once."""
    problem = classify(exc)
    if problem is INTERNAL:
        log.error("unhandled error", exc_info=exc)
    elif problem is UNAVAILABLE:
        log.warning("backend unavailable: %s", type(exc).__name__)
    elif isinstance(exc, IntegrityError):
        log.info("constraint violation: %s", type(exc.orig).__name__)
    if metrics is not None:
        metrics.errors.labels(problem.code).inc()
    return problem
