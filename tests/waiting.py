"""Waiting in tests without fixed sleeps (docs/testing.md).

A test that needs something to happen polls for it with a deadline (`eventually`), or
waits for the event itself (`EventLog`, the `published` fixture). The only fixed waits
left say why they are fixed: a negative check (`assert_nothing_within`) or a test of a
timeout or a time window (`let_time_pass`).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from parley.server.realtime import events

T = TypeVar("T")

TIMEOUT = 5.0  # seconds: far above what a healthy run needs, short enough to fail fast
INTERVAL = 0.01  # seconds between two polls in the event loop
SYNC_INTERVAL = 0.05  # seconds between two polls from a thread (processes, HTTP to them)


class _Missing:
    def __repr__(self) -> str:
        return "nothing (the check never returned)"


_NOTHING = _Missing()


def _failure(what: str | None, check: Any, timeout: float, last: object) -> AssertionError:
    name = what or getattr(check, "__qualname__", repr(check))
    return AssertionError(f"waited {timeout} s for {name}; last seen: {last!r}")


async def eventually(
    check: Callable[[], Any],
    timeout: float = TIMEOUT,
    *,
    what: str | None = None,
    interval: float = INTERVAL,
) -> Any:
    """Calls `check` (sync or async) until it returns a truthy value, and returns that value.

    An AssertionError raised by `check` counts as "not yet" (so a check may be a block of
    asserts). On timeout it fails, naming `what` was awaited and the last value (or
    assertion) seen.
    """
    deadline = time.monotonic() + timeout
    last: object = _NOTHING
    while True:
        try:
            value = check()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value
            last = value
        except AssertionError as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise _failure(what, check, timeout, last)
        await asyncio.sleep(interval)


def eventually_sync(
    check: Callable[[], T],
    timeout: float = TIMEOUT,
    *,
    what: str | None = None,
    interval: float = SYNC_INTERVAL,
) -> T:
    """`eventually` for code outside the event loop (subprocesses, blocking clients)."""
    deadline = time.monotonic() + timeout
    last: object = _NOTHING
    while True:
        try:
            value = check()
            if value:
                return value
            last = value
        except AssertionError as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise _failure(what, check, timeout, last)
        time.sleep(interval)


async def assert_nothing_within(
    seconds: float,
    check: Callable[[], Any] | None = None,
    *,
    what: str = "nothing to happen",
    interval: float = INTERVAL,
) -> None:
    """A negative check, the one kind of fixed wait that cannot be a poll: for `seconds`,
    `check` (sync or async) must stay falsy. Without a check, only lets the time pass
    (the caller looks afterwards, e.g. at a socket that must still be open)."""
    deadline = time.monotonic() + seconds
    while True:
        if check is not None:
            value = check()
            if inspect.isawaitable(value):
                value = await value
            assert not value, f"expected {what} within {seconds} s, but saw {value!r}"
        left = deadline - time.monotonic()
        if left <= 0:
            return
        await asyncio.sleep(min(interval, left) if check is not None else left)


async def let_time_pass(seconds: float, why: str) -> None:
    """A deliberate fixed wait, where time passing is what is tested (a timeout, a time
    window, an idle client, a slow peer). `why` says so at the call site."""
    assert why, "say why this wait is fixed"
    await asyncio.sleep(seconds)


def let_time_pass_sync(seconds: float, why: str) -> None:
    """`let_time_pass` outside the event loop."""
    assert why, "say why this wait is fixed"
    time.sleep(seconds)


class EventLog:
    """The events a server's hub received (from this process or, through Redis, from
    another), in order. Recorded after the server's caches saw each one: once an event is
    here, the process has acted on it."""

    def __init__(self) -> None:
        self.events: list[events.Event] = []

    def __call__(self, event: events.Event) -> None:
        self.events.append(event)

    def matching(self, kind: type[Any], **fields: object) -> list[Any]:
        return [
            e
            for e in self.events
            if isinstance(e, kind) and all(getattr(e, k) == v for k, v in fields.items())
        ]

    async def wait_for(self, kind: type[T], timeout: float = TIMEOUT, **fields: object) -> T:
        """The first recorded event of `kind` whose fields equal `fields`; waits for it."""
        described = ", ".join(f"{k}={v!r}" for k, v in fields.items())
        try:
            found = await eventually(
                lambda: self.matching(kind, **fields),
                timeout,
                what=f"a {kind.__name__}({described}) event",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the last events: {self.events[-5:]!r}") from None
        return found[0]  # type: ignore[no-any-return]

    def clear(self) -> None:
        self.events.clear()


@contextmanager
def capture_events(running: Any) -> Iterator[EventLog]:
    """Records what the hub of `running` (a tests.conftest.Running) receives meanwhile."""
    log = EventLog()
    listeners = running.state.hub.listeners
    listeners.append(log)
    try:
        yield log
    finally:
        listeners.remove(log)
