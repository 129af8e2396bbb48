"""What is alive at startup is kept out of the cyclic collector's generations."""

from __future__ import annotations

import gc

from parley.wsserver import freeze_startup_heap


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
