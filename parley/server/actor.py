"""Who does a thing and when: the caller of a service and the moment its action takes effect."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple


class Actor(NamedTuple):
    """The user acting (a member, an owner, an admin) and the time of the act, as the audit
    log records them; a service unpacks it: `user_id, now = actor`."""

    user_id: int
    now: datetime
