"""Socket slots: this process's WebSockets counted from the handshake, per user and in all.

A slot is taken once the caller is authenticated and before the upgrade, in one step
with no await between the check and the count, so concurrent handshakes of one account
cannot slip past the limit; it is given back when the socket ends, whatever happened.

Handshakes under way are counted too (`admit`): past the bound, a new one is refused at
once with 503 `overloaded` and `Retry-After`, before it reads anything, so a reconnect
storm queues in the clients' backoff instead of in the database pool (where waiting
handshakes time out and hold connections the sockets already open need).
"""

from __future__ import annotations

from parley import errors


class SocketSlots:
    def __init__(self) -> None:
        self.by_user: dict[int, int] = {}
        self.total = 0
        self.opening = 0  # handshakes under way (admitted, not yet joined or refused)

    def admit(self, limit: int) -> None:
        """Counts one more handshake under way, or raises 503 `overloaded` past `limit`;
        `admitted` gives it back."""
        if self.opening >= limit:
            raise errors.Overloaded("Too many connections opening at once, retry shortly")
        self.opening += 1

    def admitted(self) -> None:
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
