"""The host, live: the kernel's process events (the recorder of `trace`, running for good) and
one look at the host per burst of them, shared by every client through the hub.

Two threads. The recorder's reader (tracer/snapshot/recorder.py) tells `_on_keep` of each
event that concerns containers: its significance goes to `Bursts` (tracer/views/lifecycle.py),
and a daemon's exit or exec is told to the clients at once, before any look (dockerd can be
down for a tenth of a second). The feed's own thread sleeps until `Bursts` says a look is due
(never, on a quiet host), then takes the events recorded so far out of the recorder, looks at
the host (with the look it is handed: `tracer.runtimes.observe` on serve's host root), tells
the events' story (`lifecycle.trace`, with the processes of the previous look as the ones that
existed before) and what changed between the two looks, draws the architecture, and hands the
new look to the hub.

The look itself is the application's (tracer/app/service.py, above this layer): `serve` hands
it in as a function, as it hands in where the feed's remarks go (`say`, stderr's notes).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from tracer.errors import EngineError
from tracer.kernel import connector, procfs
from tracer.kernel.root import HostRoot
from tracer.model.topology import Dockerd, Topology
from tracer.model.trace import Raw, Recording
from tracer.output.web import state as pages
from tracer.output.web.documents import document
from tracer.output.web.hub import Hub, Look
from tracer.runtimes import daemon_roles, quiet_roles
from tracer.snapshot.recorder import Recorder
from tracer.snapshot.session import known_containers, known_processes
from tracer.untrusted import for_terminal
from tracer.views import lifecycle, roles
from tracer.views.compare import compare, daemons, missing_daemons

if TYPE_CHECKING:
    from tracer.runtimes import Observation

POLL = 1.0  # s: the reader wakes this often only to see whether to stop
CHECK = 5.0  # s: the feed looks this often at the reader's health (loss, failure)
UNDRAWN = 16  # diagrams (views, engines drawn alone) whose failure is remembered, not said again


class Feed:
    def __init__(
        self,
        root: HostRoot,
        hub: Hub,
        look: Callable[[], Observation],
        say: Callable[[str], None],
        buffer: int = connector.DEFAULT_BUFFER,
    ) -> None:
        self.root = root
        self.hub = hub
        self.observe = look  # one walk of the host, every engine
        self.say = say  # a one-line remark for whoever runs serve
        self.buffer = buffer
        self.bursts = lifecycle.Bursts()
        self.version = 0
        self.events = 0  # kept by the recorder since the start
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._rec: Recorder | None = None
        self._epoch = 0.0  # wall-clock seconds at the recorder's t = 0
        self._known: dict[int, procfs.Proc] = {}
        self._topo = Topology(engines=[])
        self._seen: dict[str, set[str]] = {}  # daemon address -> roles of its engine
        self._daemons: dict[int, str] = {}  # pid -> role: daemons running, or started since
        self._programs = set(daemon_roles())  # whose exit and exec are told at once
        self._lost = 0
        self._failed: str | None = None
        self._undrawn: dict[str, str] = {}  # diagram -> why the last one is not as asked

    # -- start and stop ----------------------------------------------------------------------

    def open(self) -> None:
        """Subscribe to the kernel's process events, then look at the host once (so that no
        change between the two goes unseen). NotRootError, BlindError from the subscription;
        EngineError when the host has no container engine at all."""
        rec = Recorder(
            self.root,
            roles.engine_program,
            buffer=self.buffer,
            on_keep=self._on_keep,
            own_children=False,  # Graphviz's dot, which serve runs, is no docker command
            poll=POLL,
        )
        rec.open()
        try:
            began = time.monotonic()
            seen = self.observe()
            if not seen.topology.engines and not seen.topology.orphans:
                raise EngineError(
                    "no container engine found on this host (no dockerd, containerd, shim or "
                    "conmon): nothing to serve",
                    "start one; `dtrace-tree lab up` starts the lab's",
                )
            self._rec = rec
            self._epoch = time.time() - (time.monotonic_ns() - rec.t0) / 1e9
            self._publish(seen, [], began)
        except BaseException:
            rec.abort()
            raise
        rec.start(known_processes(seen.host, seen.host))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="serve-feed", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._rec is not None:
            with contextlib.suppress(Exception):  # stopping: a failure was told when it happened
                self._rec.stop()

    # -- the reader's side ---------------------------------------------------------------------

    def _on_keep(self, raw: Raw, kind: int) -> None:
        """Each event the recorder keeps, in its reader thread: count it, and tell a daemon's
        exit or start at once."""
        now = time.monotonic()
        told = None
        with self._cond:
            self.events += 1
            what = self.bursts.see(raw, kind, now)
            if raw.kind == "exit" and raw.pid in self._daemons:
                status, signal = procfs.wait_status(raw.code)
                how = f"signal {signal}" if signal else f"exit {status}"
                told = pages.daemon_event(self._daemons.pop(raw.pid), raw.pid, "ended",
                                          self._wall(raw.ts), how)  # fmt: skip
            elif raw.kind == "exec" and raw.sample is not None and raw.sample.cmdline:
                prog = procfs.program(raw.sample.cmdline)
                if prog in self._programs:
                    self._daemons[raw.pid] = prog
                    told = pages.daemon_event(prog, raw.pid, "started", self._wall(raw.ts))
                    if prog in quiet_roles():
                        self.bursts.quiet_parents.add(raw.pid)
            if told is not None:
                self.bursts.urge(now)
            if what or told is not None:
                self._cond.notify()
        if told is not None:
            self.hub.publish("daemon", told, keep=True)

    def _wall(self, ts_ns: int) -> float:
        return self._epoch + ts_ns / 1e9

    # -- the feed's thread ---------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping:
                    due = self.bursts.due(time.monotonic())
                    if due is not None and due <= 0:
                        break
                    self._cond.wait(CHECK if due is None else min(due, CHECK))
                    self._health()
                if self._stopping:
                    return
            began = time.monotonic()
            try:
                self._look(began)
            except Exception as exc:  # noqa: BLE001 - the feed goes on: said, and looked at again
                said = f"{type(exc).__name__}: {exc}"
                self.say(f"looking at the host failed: {said}")
                why = for_terminal(said)
                self.hub.publish("status", {"problem": f"looking at the host failed: {why}"})
                with self._cond:
                    self.bursts.taken(began, time.monotonic(), degraded=True)

    def _health(self) -> None:
        """Lost events may hide a change: look again. A reader that failed is said once."""
        rec = self._rec
        if rec is None or rec.conn is None:
            return
        lost = max(rec.conn.loss.gaps, rec.conn.loss.overflows)
        if lost > self._lost:
            self._lost = lost
            self.bursts.urge(time.monotonic())
        if rec.failure is not None and self._failed is None:
            self._failed = f"{type(rec.failure).__name__}: {rec.failure}"
            why = (
                f"the kernel's process events stopped ({self._failed}): the page no longer follows"
            )
            self.say(why)
            self.hub.publish("status", {"problem": why}, keep=True)

    def _look(self, began: float) -> None:
        assert self._rec is not None
        events = self._rec.cut()
        self._publish(self.observe(), events, began)

    def _publish(self, seen: Observation, events: list[Raw], began: float) -> None:
        """A look at the host (and the events since the last): to the hub, and its story."""
        before, topo = self._topo, seen.topology
        story = None
        if events:
            rec = Recording(
                known=self._known,
                events=events,
                duration_ns=0,
                host_ns=dict(seen.host.host_ns),
                containers={**known_containers(topo), **known_containers(before)},
            )
            story = lifecycle.trace(rec)
        with self._cond:
            missing = missing_daemons(topo, self._seen)
            self._programs = set(daemon_roles()) | {d.role for e in topo.engines for d in e.daemons}
            self._daemons = {d.pid: d.role for e in topo.engines for d in e.daemons}
            self.bursts.quiet_parents = {
                p for p, role in self._daemons.items() if role in quiet_roles()
            }
            self.version += 1
            version = self.version
        took = time.monotonic() - began
        feed = {"events": self.events, "lost": self._lost, "live": self._failed is None}
        page = pages.state(topo, version, took, missing, feed)
        look = Look(version, topo, page, self.document, seen.host)
        for key in self.hub.wanted() or ["diagram:architecture"]:
            look.get(key)  # drawn before anyone is told: the pages ask for them at once
        entry = pages.timeline(story, compare(before, topo), daemons(before, topo), self._epoch)
        self._known = known_processes(seen.host, seen.host)
        self._topo = topo
        if entry is not None and version > 1:
            self.hub.publish("timeline", entry, keep=True)
        self.hub.show(look)
        changed = entry is not None and any(entry[k] for k in ("stories", "changes", "daemons"))
        with self._cond:
            self.bursts.taken(began, time.monotonic(), _degraded(topo), changed)

    def document(self, topo: Topology, what: str) -> bytes:
        """A document of a look (tracer/output/web/documents.py), whose diagram, if dot cannot
        draw it, is said once (`_drawn`)."""
        return document(topo, what, self._drawn)

    def _drawn(self, what: str, problem: str | None) -> None:
        """A diagram was drawn (problem None), or not as asked (why): each change is said on
        stderr and to the page (`status`); the page shows the reason in the diagram's place,
        and the state and JSON are served as ever."""
        with self._cond:
            before = self._undrawn.pop(what, None)
            if problem is not None and len(self._undrawn) < UNDRAWN:
                self._undrawn[what] = problem
            if problem == before:
                return
        told = problem or f"the diagram is drawn again (it was not: {before})"
        self.say(told)
        self.hub.publish("status", {"problem": for_terminal(told)})


def _degraded(topo: Topology) -> bool:
    """A dockerd runs whose API does not answer (yet: one starting again)."""
    return any(isinstance(d, Dockerd) and not d.reachable for e in topo.engines for d in e.daemons)
