"""What is alive at startup is kept out of the cyclic collector's generations."""

from __future__ import annotations

import gc

from parley.config import Settings
from parley.wsserver import freeze_startup_heap

DEFAULT = gc.get_threshold()


def test_startup_objects_are_frozen_and_a_full_collection_skips_them() -> None:
    gc.unfreeze()
    try:
        kept = [{"startup": n} for n in range(1000)]
        before = len(gc.get_objects(generation=2)) + len(gc.get_objects(generation=1))
        freeze_startup_heap()
        assert gc.get_freeze_count() >= len(kept)
        tracked = len(gc.get_objects(generation=2)) + len(gc.get_objects(generation=1))
        assert tracked < before - len(kept) // 2  # no longer in the generations a collection walks
        assert all(d["startup"] == n for n, d in enumerate(kept))  # frozen, not freed
    finally:
        gc.unfreeze()
        gc.set_threshold(*DEFAULT)


def test_full_collections_wait_for_many_middle_ones_and_young_ones_stay_pythons() -> None:
    young, middle, _ = DEFAULT
    try:
        freeze_startup_heap(full_every=Settings().gc_full_every)  # type: ignore[call-arg]
        assert gc.get_threshold() == (young, middle, 1000)
        collections: list[int] = []

        def count(phase: str, info: dict[str, int]) -> None:
            if phase == "stop":
                collections.append(info["generation"])

        gc.callbacks.append(count)
        try:
            for _ in range(400):  # many young collections' worth of cyclic garbage
                for _ in range(young):
                    a: list[object] = []
                    a.append(a)
        finally:
            gc.callbacks.remove(count)
        assert collections.count(0) >= 100 and collections.count(1) >= 10
        assert 2 not in collections  # Python's defaults would have run a full one by now
    finally:
        gc.unfreeze()
        gc.set_threshold(*DEFAULT)
