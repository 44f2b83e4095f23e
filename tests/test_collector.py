"""The garbage collector paused around bnport's exports: restored on every path, thread-safe, and in verify no
collection but one of the youngest generation at the end (bnport/adapters/collector.py)."""

from __future__ import annotations

import gc
import threading

import pytest
from models import fresh, torch_model

from bnport.adapters import collector
from bnport.workflows.porting import port
from bnport.workflows.verification import verify


@pytest.fixture
def collections():
    """The generation of every collection the interpreter starts, in order, while the test runs."""
    seen: list[int] = []

    def watch(phase, info):
        if phase == "start":
            seen.append(info["generation"])

    gc.callbacks.append(watch)
    enabled = gc.isenabled()
    try:
        yield seen
    finally:
        gc.callbacks.remove(watch)
        (gc.enable if enabled else gc.disable)()


def _cycles(n: int) -> None:
    for _ in range(n):
        a: list = []
        a.append(a)


def test_paused_stops_automatic_collection_then_collects_the_youngest_generation_once(collections):
    gc.enable()
    with collector.paused():
        assert not gc.isenabled()
        _cycles(20_000)  # far above the 700 allocations that start a collection
        assert collections == []
    assert gc.isenabled()
    assert collections == [0]


def test_nested_pauses_resume_when_the_outer_one_ends_and_exceptions_restore_it(collections):
    gc.enable()
    with pytest.raises(KeyboardInterrupt), collector.paused():
        with collector.paused():
            pass
        assert not gc.isenabled() and collections == []
        raise KeyboardInterrupt
    assert gc.isenabled() and collections == [0]


def test_a_process_that_disabled_its_collector_keeps_it_disabled(collections):
    gc.disable()
    with collector.paused():
        _cycles(2_000)
    assert not gc.isenabled()
    assert collections == []


def test_overlapping_pauses_in_two_threads_resume_only_when_both_have_left(collections):
    gc.enable()
    entered, release = threading.Event(), threading.Event()
    seen = {}

    def other():
        with collector.paused():
            entered.set()
            release.wait(10)
        seen["after other"] = gc.isenabled()

    thread = threading.Thread(target=other)
    with collector.paused():
        thread.start()
        entered.wait(10)
    seen["after first"] = gc.isenabled()  # the other thread still holds its pause
    release.set()
    thread.join()
    assert seen == {"after first": False, "after other": True}
    assert gc.isenabled() and collections == [0]


@pytest.mark.backends
def test_verify_exports_without_collections_and_collects_their_garbage_before_onnxruntime_runs(collections,
                                                                                            monkeypatch):
    from bnport import adapters
    from bnport.core.frameworks import KERAS, TORCH
    from bnport.onnxcheck import session

    t, k = torch_model("resnet"), fresh("resnet", "keras")
    port(t, k)
    events: list = []
    for side in (TORCH, KERAS):
        adapter = adapters.get(side)
        export = type(adapter).export

        def spied(self, *args, _export=export, _side=side, **kwargs):
            events.append((f"{_side} export starts", len(collections), gc.isenabled()))
            out = _export(self, *args, **kwargs)
            events.append((f"{_side} export ends", len(collections), gc.isenabled()))
            return out

        monkeypatch.setattr(type(adapter), "export", spied)
    run = session.run
    monkeypatch.setattr(session, "run", lambda *a: events.append(("run", len(collections), gc.isenabled()))
                        or run(*a))
    gc.enable()
    report = verify(t, k)
    assert report.ok, str(report)
    names = [e[0] for e in events]
    assert names[:5] == ["torch export starts", "torch export ends", "keras export starts", "keras export ends",
                         "run"], names
    (_, first, on1), (_, _, on2), (_, _, on3), (_, last, on4), (_, at_run, running) = events[:5]
    assert not (on1 or on2 or on3 or on4) and running and gc.isenabled()
    assert last == first  # no collection during either export (without the pause: hundreds on a large model)
    assert collections[first:at_run] == [0]  # then one of the youngest generation, before onnxruntime runs
