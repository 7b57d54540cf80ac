"""The API worker: the same answers as doing the job here, from a child when one can be used,
and from this process whenever the child cannot (refused, dead, stuck, failing)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Sequence

import psutil
import pytest

from tracer import apiworker
from tracer.apiworker import ApiWorker


def nothing() -> None:
    pass


def where(args: Sequence[str]) -> list[tuple[str, int]]:
    """The job: each argument with the PID that handled it."""
    return [(a, os.getpid()) for a in args]


@pytest.fixture(autouse=True)
def no_child_left():
    """Every child the worker forks is gone and reaped (not even a zombie) when it is done."""
    before = {c.pid for c in psutil.Process().children()}
    yield
    assert {c.pid for c in psutil.Process().children()} - before == set()


def test_the_child_answers_with_what_the_job_returns():
    with ApiWorker(nothing, where) as worker:
        worker.ask(["unix:///a.sock", "unix:///b.sock"])
        answers = worker.answers()
    assert [a for a, _ in answers] == ["unix:///a.sock", "unix:///b.sock"]
    assert {pid for _, pid in answers} != {os.getpid()}  # a child did it


def test_warm_runs_in_the_child_only():
    sys.modules.pop("colorsys", None)

    def warm() -> None:
        import colorsys  # noqa: F401

    def imported(args: Sequence[str]) -> list[bool]:
        return ["colorsys" in sys.modules for _ in args]

    with ApiWorker(warm, imported) as worker:
        worker.ask(["x"])
        assert worker.answers() == [True]
    assert "colorsys" not in sys.modules


def test_nothing_to_ask_needs_no_child():
    with ApiWorker(nothing, where) as worker:
        worker.ask([])
        assert worker.answers() == []


def dies_in_child(args: Sequence[str]) -> list[tuple[str, int]]:
    if os.getpid() != PARENT:
        os.kill(os.getpid(), signal.SIGKILL)
    return where(args)


def fails_in_child(args: Sequence[str]) -> list[tuple[str, int]]:
    if os.getpid() != PARENT:
        raise RuntimeError("boom")
    return where(args)


PARENT = os.getpid()


@pytest.mark.parametrize("job", [dies_in_child, fails_in_child])
def test_a_child_that_dies_or_fails_leaves_the_job_to_this_process(job, capfd):
    with ApiWorker(nothing, job) as worker:
        worker.ask(["x"])
        assert worker.answers() == [("x", os.getpid())]
    assert capfd.readouterr() == ("", "")  # the child printed nothing, not even a traceback


def test_a_stuck_child_is_killed_and_the_job_done_here(monkeypatch):
    monkeypatch.setattr(apiworker, "WAIT", 0.5)

    def stuck_in_child(args: Sequence[str]) -> list[tuple[str, int]]:
        if os.getpid() != PARENT:
            time.sleep(60)
        return where(args)

    start = time.monotonic()
    with ApiWorker(nothing, stuck_in_child) as worker:
        worker.ask(["x"])
        assert worker.answers() == [("x", os.getpid())]
    assert time.monotonic() - start < 10


def test_errors_of_the_job_itself_reach_the_caller():
    def always_fails(args: Sequence[str]) -> list[str]:
        raise ValueError("bad socket")

    with ApiWorker(nothing, always_fails) as worker:
        worker.ask(["x"])
        with pytest.raises(ValueError, match="bad socket"):
            worker.answers()


def test_no_fork_while_other_threads_run():
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        with ApiWorker(nothing, where) as worker:
            worker.ask(["x"])
            assert worker.answers() == [("x", os.getpid())]
    finally:
        stop.set()
        other.join()


def test_leaving_early_leaves_no_child():
    with ApiWorker(nothing, where):
        pass
