"""heap.settle(): the warm process's long-lived objects leave the collector's full passes."""

import gc

from llm_gateway import heap


def test_settle_freezes_on_the_first_call_and_once_more_when_warm(monkeypatch):
    frozen: list[int] = []
    monkeypatch.setattr(heap, "_calls", 0)
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(heap._calls))
    for _ in range(heap.SETTLE_AGAIN_AFTER + 100):
        heap.settle()
    assert frozen == [1, heap.SETTLE_AGAIN_AFTER]


def test_frozen_objects_are_skipped_by_collections():
    keep = [{"n": i} for i in range(1000)]
    before = gc.get_freeze_count()
    gc.freeze()
    try:
        assert gc.get_freeze_count() >= before + len(keep)
    finally:
        gc.unfreeze()
