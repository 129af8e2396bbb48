"""Background work of a server process: a job whose failure is logged so that the loop
around it goes on, and a background task started on demand and cancelled at the stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any


async def run_logged(
    job: Callable[[], Awaitable[object]], log: logging.Logger, failure: str, *args: object
) -> None:
    """Runs one piece of background work; what it raises is logged (`failure % args`) and
    not raised, so one failure stops no later work. Cancellation passes through."""
    try:
        await job()
    except Exception:
        log.warning(failure, *args, exc_info=True)


class Loop:
    """A background task started on demand (once) and cancelled when the process stops."""

    def __init__(self, name: str, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self.name = name
        self._run = run
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.task is None:
            self.task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        await cancel(self.task)
        self.task = None


async def cancel(task: asyncio.Task[Any] | None) -> None:
    """Cancels a background task (when there is one) and waits until it has ended."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
