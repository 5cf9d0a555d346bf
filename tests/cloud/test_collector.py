"""The service process's collector settings (``towerwatch cloud serve`` / ``ingest``)."""

from __future__ import annotations

import gc

from cloud.service import settle_collector


def test_settle_collector_freezes_the_start_and_raises_the_thresholds() -> None:
    before = gc.get_threshold()
    try:
        settle_collector()
        assert gc.get_freeze_count() > 0  # what was built at start is out of full passes
        assert gc.get_threshold() == (10_000, 10, 10)
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
