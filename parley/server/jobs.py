"""Background work of a server process: a job whose failure is logged so that the loop
around it goes on, and the cancelling of a background task when the process stops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
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


async def cancel(task: asyncio.Task[Any] | None) -> None:
    """Cancels a background task (when there is one) and waits until it has ended."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
