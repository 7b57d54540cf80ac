"""One look at the host, shared by every client; the event streams to them.

A `Look` is one snapshot of the host (one per burst of events, taken by the feed), with the
documents the server answers from it made once, on first demand, whatever the number of
clients: the state the page draws, `show --json`, `ns --json`, the diagrams. The hub holds the
current look, the recent timeline, and the clients of /api/events: at most `max_clients`, each
with a queue of at most `queue` messages. A client too slow to take them loses the newest
(it is told how many), never the server its memory; a new look is not queued at all: each
client is sent the latest one when it next writes, so a slow client skips looks instead of
piling them up.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tracer.model.topology import Topology
from tracer.untrusted import json_bytes

HEARTBEAT = 15.0  # s: a comment line to an idle stream, so that a dead client is noticed
MAX_CLIENTS = 16  # streams at once
QUEUE = 256  # messages waiting for one client
RECENT = 100  # timeline entries a new client is sent first
DETAILS = 64  # per-container answers kept (the ns/fs/cgroup of a clicked container)
KEPT = 16  # documents kept per look (the diagrams of a few engines each)
ASKED = 3  # diagrams drawn ahead for the next look (the views and engines pages show)


def encode(doc: Any) -> bytes:
    """JSON as valid UTF-8; `<` written \\u003c, so that no JSON can be read as markup."""
    return json_bytes(json.dumps(doc, ensure_ascii=False).replace("<", "\\u003c"))


def sse(event: str, doc: Any) -> bytes:
    """One Server-Sent Event (compact JSON has no newline)."""
    return b"event: " + event.encode() + b"\ndata: " + encode(doc) + b"\n\n"


@dataclass
class Look:
    """One snapshot of the host and what is made from it, each piece once."""

    version: int
    topology: Topology  # everything seen, stopped containers too
    state: dict[str, Any]
    made: Callable[[Topology, str], bytes]  # (topology, what) -> document
    host: Any = None  # the snapshot the topology was built from (tracer.snapshot.host.Host)
    _done: dict[str, bytes] = field(default_factory=dict)
    _locks: dict[str, threading.Lock] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.frame = sse("snapshot", self.state)

    def get(self, what: str) -> bytes:
        """The document `what` of this look, made by the first who asks (the others wait)."""
        with self._lock:
            if what in self._done:
                return self._done[what]
            if len(self._locks) >= KEPT:  # many kinds asked of one look: made, not kept
                return self.made(self.topology, what)
            lock = self._locks.setdefault(what, threading.Lock())
        with lock:
            with self._lock:
                if what in self._done:
                    return self._done[what]
            data = self.made(self.topology, what)
            with self._lock:
                self._done[what] = data
            return data


class Client:
    """One /api/events stream: its queue, bounded."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.queue: deque[bytes] = deque()
        self.dropped = 0
        self.sent = -1  # the version of the last look sent
        self.wake = threading.Condition()

    def offer(self, frame: bytes) -> None:
        with self.wake:
            if len(self.queue) >= self.limit:
                self.dropped += 1
            else:
                self.queue.append(frame)
            self.wake.notify()

    def poke(self) -> None:
        with self.wake:
            self.wake.notify()

    def take(self, timeout: float, look: Look | None, closed: Callable[[], bool]) -> bytes:
        """What to write next (waiting up to timeout): b"" when closed, a comment when idle."""
        with self.wake:
            if not self.queue and not self.dropped and (look is None or look.version == self.sent):
                self.wake.wait(timeout)
            if closed():
                return b""
            out = []
            if self.dropped:
                out.append(sse("dropped", {"count": self.dropped}))
                self.dropped = 0
            out.extend(self.queue)
            self.queue.clear()
        return b"".join(out)


class Hub:
    def __init__(
        self, max_clients: int = MAX_CLIENTS, queue: int = QUEUE, recent: int = RECENT
    ) -> None:
        self.max_clients = max_clients
        self.queue = queue
        self.look: Look | None = None
        self.recent: deque[bytes] = deque(maxlen=recent)
        self.clients: set[Client] = set()
        self.closed = False
        self.status: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._details: OrderedDict[tuple[int, str, str], tuple[int, bytes]] = OrderedDict()
        self._asked: OrderedDict[str, None] = OrderedDict()  # diagrams asked of this look

    def asked(self, what: str) -> None:
        """A page asked for this diagram: the next look draws it before it is told."""
        with self._lock:
            if len(self._asked) < ASKED:
                self._asked[what] = None

    def wanted(self) -> list[str]:
        """The diagrams to draw before the next look is told: those asked of this one."""
        with self._lock:
            return list(self._asked)

    # -- what the feed tells ---------------------------------------------------------------

    def show(self, look: Look) -> None:
        """A new look: every client is sent it when it next writes."""
        with self._lock:
            self.look = look
            self._asked.clear()
            clients = list(self.clients)
        for c in clients:
            c.poke()

    def publish(self, event: str, doc: Any, keep: bool = False) -> None:
        """An event to every client (encoded once); keep: also for clients that join later."""
        frame = sse(event, doc)
        with self._lock:
            if keep:
                self.recent.append(frame)
            clients = list(self.clients)
        for c in clients:
            c.offer(frame)

    # -- the streams -----------------------------------------------------------------------

    def join(self) -> Client | None:
        """A new stream, or None when max_clients are streaming already."""
        with self._lock:
            if self.closed or len(self.clients) >= self.max_clients:
                return None
            client = Client(self.queue)
            client.queue.extend(self.recent)
            self.clients.add(client)
            return client

    def leave(self, client: Client) -> None:
        with self._lock:
            self.clients.discard(client)

    def stream(self, client: Client, write: Callable[[bytes], None]) -> None:
        """Write client's stream until the hub closes or the client goes (write raises)."""
        write(b"retry: 2000\n\n")
        while not self.closed:
            look = self.look
            frames = client.take(HEARTBEAT, look, lambda: self.closed)
            if self.closed:
                return
            look = self.look  # the newest, if one came while waiting
            if look is not None and look.version != client.sent:
                frames = look.frame + frames
                client.sent = look.version
            write(frames or b": ping\n\n")

    def close(self) -> None:
        with self._lock:
            self.closed = True
            clients = list(self.clients)
        for c in clients:
            c.poke()

    # -- a clicked container -----------------------------------------------------------------

    def detail(self, version: int, cid: str, what: str, make: Callable[[], bytes]) -> bytes:
        """A container's ns/fs/cgroup document for one look, made once (the last DETAILS kept).
        A failure is not kept: the next click tries again."""
        key = (version, cid, what)
        with self._lock:
            if key in self._details:
                self._details.move_to_end(key)
                return self._details[key][1]
        data = make()
        with self._lock:
            self._details[key] = (version, data)
            while len(self._details) > DETAILS:
                self._details.popitem(last=False)
        return data
