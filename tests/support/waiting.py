"""The one way the tests wait for something to happen: poll a predicate until it holds, or
read the line a child writes when it is ready."""

from __future__ import annotations

import select
import time
from collections.abc import Callable
from typing import IO, TypeVar

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T],
    timeout: float,
    what: str,
    every: float = 0.05,
    ignoring: tuple[type[Exception], ...] = (),
) -> T:
    """Call predicate until it returns something true, and return that value. After timeout
    seconds, fail with an AssertionError naming what was awaited and the last value seen (or
    the last exception of the `ignoring` kinds, which mean "not yet")."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
            last = repr(value)
        except ignoring as exc:
            value = None  # type: ignore[assignment]
            last = f"{type(exc).__name__}: {exc}"
        if value:
            return value
        if time.monotonic() > deadline:
            if len(last) > 500:
                last = last[:500] + "..."
            raise AssertionError(
                f"timed out after {timeout:g} s waiting for {what}; last seen: {last}"
            )
        time.sleep(every)


def read_line(stream: IO[str], timeout: float, what: str) -> str:
    """The next line a child writes on a pipe, within timeout seconds; fails naming what was
    awaited when the child writes nothing in time, or ends without a line."""
    ready, _, _ = select.select([stream], [], [], timeout)
    if not ready:
        raise AssertionError(f"timed out after {timeout:g} s waiting for {what}: nothing written")
    line = stream.readline()
    if not line:
        raise AssertionError(f"the pipe closed before {what}")
    return line
