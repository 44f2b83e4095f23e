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
def test_verify_runs_no_collection_but_one_of_the_youngest_generation_at_the_end(collections):
    t, k = torch_model("resnet"), fresh("resnet", "keras")
    port(t, k)
    gc.enable()
    gc.collect()
    collections.clear()
    report = verify(t, k)
    assert report.ok, str(report)
    assert collections == [0]  # without the pause: hundreds, a full one among them on a large model
    assert gc.isenabled()
