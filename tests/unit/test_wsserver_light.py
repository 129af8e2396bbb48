"""The lighter stand-ins for uvicorn's receive queue and write flag (parley/wsserver.py)."""

from __future__ import annotations

import asyncio

from parley.wsserver import Flag, Inbox


async def test_inbox_hands_items_in_order_to_the_waiting_reader() -> None:
    inbox = Inbox()
    assert inbox.empty()
    reader = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait(1)
    inbox.put_nowait(2)
    assert await reader == 1
    assert inbox.qsize() == 1 and not inbox.empty()
    assert await inbox.get() == 2
    assert inbox.empty()


async def test_inbox_reader_cancelled_after_its_wake_up_passes_it_on() -> None:
    inbox = Inbox()
    first = asyncio.create_task(inbox.get())
    second = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait("x")
    first.cancel()  # woken, then cancelled before it ran: the item goes to the other
    await asyncio.gather(first, return_exceptions=True)
    assert await asyncio.wait_for(second, 1) == "x"


async def test_flag_wakes_every_waiter_and_waits_again_after_clear() -> None:
    flag = Flag(True)
    assert flag.is_set() and await flag.wait()
    flag.clear()
    waiters = [asyncio.create_task(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    flag.set()
    assert await asyncio.gather(*waiters) == [True, True, True]
    flag.clear()
    cancelled = asyncio.create_task(flag.wait())
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.gather(cancelled, return_exceptions=True)
    flag.set()
    assert flag.is_set()
