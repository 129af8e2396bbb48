# ruff: noqa: F811  (the fixtures of test_push.py are imported, then named as parameters)
"""What is pushed by notify level and do-not-disturb, against the real push receiver of
test_push.py (its fixtures). Silence is proven by order: one sending queue works the
deliveries in turn, so a device whose first push is a later message never got the earlier."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from tests.factories import Account, make_direct, make_group, make_user, send
from tests.integration.test_push import (  # noqa: F401  (fixtures)
    Receiver,
    http,
    pushing,
    receiver,
    subscribe,
    wait_for,
)


async def notify(http: httpx.AsyncClient, who: Account, chat_id: int, level: str) -> None:
    answer = await http.patch(
        f"/service/api/chats/{chat_id}/settings", json={"notify": level}, headers=who.headers
    )
    assert answer.status_code == 200 and answer.json()["notify"] == level


async def test_notify_levels_decide_what_is_pushed(
    http: httpx.AsyncClient, receiver: Receiver
) -> None:
    sender, everything, mentions, nothing = [await make_user(http) for _ in range(4)]
    devices = {a.id: await subscribe(http, receiver, a) for a in (everything, mentions, nothing)}
    group = await make_group(http, sender, everything, mentions, nothing, title="Levels")
    await notify(http, mentions, group["id"], "mentions")
    await notify(http, nothing, group["id"], "none")
    plain = await send(http, sender, group["id"], "no mention")
    named = await send(http, sender, group["id"], f"@{mentions.username} @{nothing.username} hi")
    # the default in a group is `all`: every message
    received = await wait_for(devices[everything.id], 2)
    assert [p["message_id"] for p in received] == [plain["id"], named["id"]]
    assert [p["message_id"] for p in await wait_for(devices[mentions.id], 1)] == [named["id"]]
    # `none`: not even a mention; its direct messages still come (direct chats default to all)
    direct = await send(http, sender, (await make_direct(http, sender, nothing))["id"], "dm")
    assert [p["message_id"] for p in await wait_for(devices[nothing.id], 1)] == [direct["id"]]


async def test_channels_push_mentions_by_default_and_all_when_chosen(
    http: httpx.AsyncClient, receiver: Receiver
) -> None:
    owner, quiet, loud = [await make_user(http) for _ in range(3)]
    devices = {a.id: await subscribe(http, receiver, a) for a in (quiet, loud)}
    channel = await make_group(http, owner, quiet, loud, type="channel", title="Announcements")
    await notify(http, loud, channel["id"], "all")
    plain = await send(http, owner, channel["id"], "for everyone")
    named = await send(http, owner, channel["id"], f"@{quiet.username} for you")
    assert [p["message_id"] for p in await wait_for(devices[loud.id], 2)] == [
        plain["id"],
        named["id"],
    ]
    assert [p["message_id"] for p in await wait_for(devices[quiet.id], 1)] == [named["id"]]


async def test_nothing_is_pushed_while_dnd(http: httpx.AsyncClient, receiver: Receiver) -> None:
    sender, resting, witness = [await make_user(http) for _ in range(3)]
    resting_device = await subscribe(http, receiver, resting)
    witness_device = await subscribe(http, receiver, witness)
    group = await make_group(http, sender, resting, witness, title="Night")
    until = (datetime.now(UTC) + timedelta(hours=8)).isoformat()
    on = await http.patch(
        "/service/api/profile", json={"dnd_until": until}, headers=resting.headers
    )
    assert on.json()["dnd_until"] is not None
    direct = await make_direct(http, sender, resting)
    await send(http, sender, direct["id"], "a direct message")
    quiet = await send(http, sender, group["id"], f"@{resting.username} even a mention")
    # messages are decided in order: once the witness has the mention, both were decided
    witnessed = await wait_for(witness_device, 1)
    assert witnessed[0]["message_id"] == quiet["id"]
    off = await http.patch(
        "/service/api/profile", json={"dnd_until": None}, headers=resting.headers
    )
    assert off.json()["dnd_until"] is None
    after = await send(http, sender, direct["id"], "good morning")
    assert [p["message_id"] for p in await wait_for(resting_device, 1)] == [after["id"]]
