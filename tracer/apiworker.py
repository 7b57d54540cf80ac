"""Asking the Docker API from a forked child while the parent walks /proc.

Importing the docker SDK (requests, urllib3, ...) costs about 100 ms of CPU: as much as
walking a thousand processes. Both are Python-bound, so a thread gains nothing (the GIL;
measured, benchmarks/NOTES.md). A child forked before the walk imports the SDK on another
core; once the walk has found the engines' sockets, the parent sends them, the child makes the
calls and sends the answers back through a pipe.

Whatever goes wrong with the child (fork refused, killed, crashed, silent), the parent makes
the same calls itself: the answers are the same, only later. The child is only forked from a
single-threaded process (forking with other threads alive can copy a held lock into the
child), never writes to stdout or stderr, and leaves with os._exit (no atexit handlers, no
flushing of buffers it inherited).
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Generic, NoReturn, TypeVar

T = TypeVar("T")
A = TypeVar("A")

# Far longer than the calls themselves (each has its own 5 s timeout), so that only a child
# that is stuck for good is given up on.
WAIT = 30.0


class ApiWorker(Generic[A, T]):
    """`with ApiWorker(warm, job) as w: ...; w.ask(args); ...; w.answers()` == `job(args)`,
    sooner: warm() (the imports) runs in the child from the start, job(args) from ask().
    If the child cannot be used, answers() runs job(args) in this process."""

    def __init__(self, warm: Callable[[], None], job: Callable[[Sequence[A]], list[T]]) -> None:
        self._warm, self._job = warm, job
        self._args: list[A] = []
        self._pid = 0
        self._send = self._recv = -1

    def __enter__(self) -> ApiWorker[A, T]:
        if threading.active_count() != 1:
            return self  # in-process: see the module docstring
        ask_r, ask_w = os.pipe()
        ans_r, ans_w = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            for fd in (ask_r, ask_w, ans_r, ans_w):
                os.close(fd)
            return self
        if pid == 0:  # the child never returns from here
            os.close(ask_w)
            os.close(ans_r)
            _serve(self._warm, self._job, ask_r, ans_w)
        os.close(ask_r)
        os.close(ans_w)
        self._pid, self._send, self._recv = pid, ask_w, ans_r
        return self

    def ask(self, args: Sequence[A]) -> None:
        """Start job(args) in the child."""
        self._args = list(args)
        if not self._args:
            self._stop()  # nothing to ask: no child needed
        elif self._pid:
            try:
                _write_all(self._send, pickle.dumps(self._args))
            except OSError:
                self._stop()  # it is gone already
            else:
                os.close(self._send)
                self._send = -1

    def answers(self) -> list[T]:
        """job(args): the child's answer, or else computed here."""
        if not self._args:
            return []
        answer = self._receive() if self._pid else None
        self._stop()
        return self._job(self._args) if answer is None else answer

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def _receive(self) -> list[T] | None:
        try:
            data = _read_all(self._recv, time.monotonic() + WAIT)
            answer: list[T] = pickle.loads(data)  # from our own child: trusted
        except (OSError, pickle.UnpicklingError, EOFError, ValueError):
            return None  # nothing, or a partial answer: it died, or hangs
        return answer

    def _stop(self) -> None:
        for fd in (self._send, self._recv):
            if fd >= 0:
                os.close(fd)
        self._send = self._recv = -1
        if self._pid:
            pid, self._pid = self._pid, 0
            try:
                if os.waitpid(pid, os.WNOHANG) == (0, 0):
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
            except ChildProcessError:
                pass


def _serve(
    warm: Callable[[], None], job: Callable[[Sequence[Any]], list[Any]], ask: int, ans: int
) -> NoReturn:
    code = 1
    try:
        warm()
        args = pickle.loads(_read_all(ask, None))
        _write_all(ans, pickle.dumps(job(args)))
        code = 0
    except BaseException:  # noqa: BLE001 - the parent sees an empty answer and does it itself
        pass
    finally:
        os._exit(code)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_all(fd: int, deadline: float | None) -> bytes:
    chunks: list[bytes] = []
    while True:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return b""
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
