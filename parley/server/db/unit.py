"""Persist, then publish, as a structure: work queued on a transaction runs after it commits.

A service that changes something others must hear about queues the event on its session
(`publish_on_commit`), or queues work that reads the committed state and publishes it
(`after_commit`); the session's `commit` runs the queue in order once the database has the
change, and a rollback or a failed commit drops it. So no event announces what was not
stored, and no service restates the order by hand (Zulip's `send_event_on_commit` is the
same idea).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

AfterCommit = Callable[[], Awaitable[Any]]
_QUEUE = "parley.after_commit"


class Publisher(Protocol):
    async def publish_many(self, events: Sequence[Any]) -> None: ...


class UnitOfWork(AsyncSession):
    """The session every write uses: `commit` runs what was queued on the transaction."""

    async def commit(self) -> None:
        await super().commit()
        queued: list[AfterCommit] = self.info.pop(_QUEUE, [])
        for work in queued:
            await work()

    async def rollback(self) -> None:
        self.info.pop(_QUEUE, None)
        await super().rollback()

    async def close(self) -> None:
        self.info.pop(_QUEUE, None)  # never committed: nothing happened
        await super().close()


def after_commit(session: AsyncSession, work: AfterCommit) -> None:
    """Runs `work` once the session's transaction commits (never if it does not)."""
    if not isinstance(session, UnitOfWork):
        raise TypeError("after_commit needs a UnitOfWork session (db/session.py)")
    session.info.setdefault(_QUEUE, []).append(work)


def publish_on_commit(session: AsyncSession, broker: Publisher, *events: Any) -> None:
    """Publishes `events`, in order, once the session's transaction commits."""
    batch = list(events)
    after_commit(session, lambda: broker.publish_many(batch))
