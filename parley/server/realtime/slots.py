"""Socket slots: this process's WebSockets counted from the handshake, per user and in all.

A slot is taken once the caller is authenticated and before the upgrade, in one step
with no await between the check and the count, so concurrent handshakes of one account
cannot slip past the limit; it is given back when the socket ends, whatever happened.

Handshakes under way are counted too (`admit`): past the bound, a new one waits its turn
(first come, first served) for at most `PARLEY_HANDSHAKE_WAIT` seconds, before it reads
anything, and is then refused with 503 `overloaded` and `Retry-After`; so is one that
finds `WAITING_PER_SLOT` times the bound already waiting. A reconnect storm thus queues
here in order, a few seconds at most, rather than in the database pool (where waiting
handshakes time out and hold connections the sockets already open need) or in the
clients' backoff alone (refused at once, each client waited longer at every try: 5,000
clients took two minutes to come back, docs/capacity.md).
"""

from __future__ import annotations

import asyncio
from collections import deque

from parley import errors

WAITING_PER_SLOT = 16  # handshakes that may wait per handshake under way


class SocketSlots:
    def __init__(self) -> None:
        self.by_user: dict[int, int] = {}
        self.total = 0
        self.opening = 0  # handshakes under way (admitted, not yet joined or refused)
        self._waiting: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def admit(self, limit: int, wait: float = 0.0) -> None:
        """Counts one more handshake under way. Past `limit` it waits for a slot, first
        come first served, at most `wait` seconds; then, or when too many wait already,
        it raises 503 `overloaded`. `admitted` gives the slot back (to the next waiting)."""
        if self.opening < limit and not self._waiting:
            self.opening += 1
            return
        if wait <= 0 or len(self._waiting) >= WAITING_PER_SLOT * limit:
            raise errors.Overloaded("Too many connections opening at once, retry shortly")
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        try:
            async with asyncio.timeout(wait):
                await asyncio.shield(turn)
        except BaseException as exc:
            if turn.done():  # handed a slot as the wait ended: pass it on
                self.admitted()
            else:
                turn.cancel()
                self._waiting.remove(turn)
            if isinstance(exc, TimeoutError):
                raise errors.Overloaded(
                    "Too many connections opening at once, retry shortly"
                ) from None
            raise

    def admitted(self) -> None:
        """A handshake ended (opened or refused): its slot goes to the longest waiting."""
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)  # the slot passes on: `opening` stays
                return
        self.opening -= 1

    def take(self, user_id: int, *, per_user: int, total: int) -> None:
        """Counts one more socket of `user_id`, or raises: 503 when the process is full,
        429 `rate_limited` when this account already holds `per_user` sockets here."""
        if self.total >= total:
            raise errors.Unavailable("Too many connections on this server")
        held = self.by_user.get(user_id, 0)
        if held >= per_user:
            raise errors.RateLimited(
                f"Too many open connections for this account (at most {per_user})",
                retry_after=5,
            )
        self.by_user[user_id] = held + 1
        self.total += 1

    def release(self, user_id: int) -> None:
        held = self.by_user.get(user_id, 0)
        if held <= 1:
            self.by_user.pop(user_id, None)
        else:
            self.by_user[user_id] = held - 1
        if held:
            self.total -= 1
