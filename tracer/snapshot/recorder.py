"""Recording the host's process events as they happen: the proc connector, plus /proc read at
the moment each exec arrives.

Most processes of a container's life live 2-20 ms (docs/CONTAINERS.md §3): their
argv and namespaces can only be read while the kernel's event is fresh. So a thread of its own
(realtime when root may make it so: `_prioritize`) drains the socket and, for each exec, reads
the process at once, through one fd pinned on /proc/<pid> (tracer/kernel/procfs.py): stat
first (its start ticks must be those of the process the fork event announced, or the PID was
reused), then argv, then, for a container's process or runc init only, the namespace inodes.
Everything else waits for the end: roles and stories are a pure function of the `Recording`
(tracer/views/lifecycle.py).

The recorder decides only what to keep. By default that is what concerns containers: the
traced command and its descendants, the engines' daemons and everything they start (the
runtimes name them: `engine`), and the processes of containers (a runc init stage that execs
another program). A process inherits this from its parent at fork; threads (pid != tgid) are
folded into their process and only counted. `everything` keeps every process on the host.

The traps met by a prototype here (docs/CONTAINERS.md §3) and what is done:
- a reader that lags can attach a later program's argv to an earlier exec: when a process
  execs again before the read of its previous exec had finished, that read is discarded
  (`missing="re-exec"`), since it may show the later program;
- a zombie's cmdline is empty and a reaped process has none; never borrow the parent's:
  the argv stays None with the reason, and the views fall back to comm, marked;
- short exec'd processes exit before their namespaces can be read: the namespaces read at
  the process's last comm change (runc:[2:INIT] sets its name once in the container's
  namespaces) are kept in the comm event's sample.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace

from tracer.errors import NotRootError, TracerError
from tracer.kernel import connector, procfs
from tracer.kernel.connector import COMM, EXEC, EXIT, FORK, Connector
from tracer.kernel.procfs import Proc
from tracer.kernel.root import HostRoot
from tracer.model.trace import Loss, Raw, Recording, Sample

NONE, CLI, ENGINE, CONTAINER = 0, 1, 2, 3  # what a live process concerns
PRIORITY = -10  # the reader thread's nice value when it cannot be realtime
REALTIME_LIMIT = 0.5  # share of a CPU above which the realtime reader steps down
CAUGHT_UP = 50_000_000  # ns: a reader whose last event is this fresh is not behind
RUNC_STAGE = "runc:["  # runc init's stages name themselves runc:[0:PARENT] .. runc:[2:INIT]


class _Tracked:
    """What the reader keeps of a live process."""

    __slots__ = ("born", "start", "kind", "comm", "read_end", "exec_at")

    def __init__(self, born: int | None, start: int | None, kind: int, comm: str) -> None:
        self.born = born  # monotonic ns of its fork event (None: it existed before)
        self.start = start  # its start ticks, when known from /proc
        self.kind = kind
        self.comm = comm
        self.read_end = 0  # monotonic ns when the read of its last exec ended
        self.exec_at = -1  # index in the events of its last exec


class Recorder:
    """open() subscribes; start(known) launches the reader; stop() returns the Recording."""

    def __init__(
        self,
        root: HostRoot,
        engine: Callable[[str], bool],
        cli: frozenset[str] = frozenset({"docker"}),
        everything: bool = False,
        buffer: int = connector.DEFAULT_BUFFER,
        on_keep: Callable[[Raw, int], None] | None = None,
        own_children: bool = True,
        poll: float = 0.05,
    ) -> None:
        self.root = root
        self.engine = engine  # is this program (argv[0]'s basename, or comm) an engine's?
        self.cli = cli
        self.everything = everything
        self.buffer = buffer
        # A continuous feed (`serve`): told of each event kept, as it is kept (in the reader
        # thread); its own children (Graphviz's dot) are not a traced command; the reader
        # wakes every `poll` seconds only to see whether it should stop.
        self.on_keep = on_keep
        self.me = os.getpid() if own_children else -1
        self.poll = poll
        self.conn: Connector | None = None
        self.t0 = 0
        self.events: list[Raw] = []
        self.known: dict[int, Proc] = {}
        self.threads = self.skipped = 0
        self.last_engine = 0  # monotonic ns of the last event of an engine process
        self.last_ts = 0  # monotonic ns of the last event read
        self.idle = False  # the last drain found the queue empty
        self.reader = "normal"  # how the reader thread is scheduled (see _prioritize)
        self.reader_cpu_ns = 0  # the CPU time the reader thread used
        self.failure: BaseException | None = None  # what ended the reader early
        self.command_pid: int | None = None
        self._procs: dict[int, _Tracked] = {}
        self._early: list[connector.Event] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()  # the events list, between the reader and cut()
        self._base = 0  # events taken by cut() so far: exec_at counts from the first ever
        self._thread: threading.Thread | None = None
        self._clk = os.sysconf("SC_CLK_TCK")
        self._tick = 1_000_000_000 // self._clk
        self._boot: float | None = None  # the host's boot time, read at the first adoption
        self._quiet_from = 0  # monotonic ns from which quiet counts (the command's exit)
        self._boot_offset = 0  # CLOCK_BOOTTIME - CLOCK_MONOTONIC: start ticks count from boot

    # -- the subscription ------------------------------------------------------------------

    def open(self) -> None:
        """Subscribe. BlindError when the kernel ignores us (a non-initial PID or user
        namespace); NotRootError without CAP_NET_ADMIN (the buffer cannot be sized, and
        other users' argv and namespaces could not be read anyway)."""
        conn = Connector(self.buffer)
        try:
            self.t0 = time.monotonic_ns()
            self._early = conn.subscribe()
        except BaseException:
            conn.close()
            raise
        if conn.buffer_error is not None:
            conn.close()
            raise NotRootError(
                "trace (CAP_NET_ADMIN: a kernel buffer that holds a burst of events)"
            )
        self.conn = conn
        self._boot_offset = time.clock_gettime_ns(time.CLOCK_BOOTTIME) - time.monotonic_ns()

    def start(self, known: Mapping[int, Proc]) -> None:
        """Start reading, with the processes that existed when the subscription began."""
        self.known = dict(known)
        self._procs = {pid: _Tracked(None, k.start, NONE, k.name) for pid, k in known.items()}
        for pid in sorted(known, key=lambda p: (known[p].start, p)):
            self._procs[pid].kind = self._kind_at_start(known[pid])
        for ev in self._early:
            self._handle(ev)
        self._thread = threading.Thread(target=self._run, name="trace-reader", daemon=True)
        self._thread.start()

    def _kind_at_start(self, k: Proc) -> int:
        prog = k.program
        if self.engine(prog) or k.name.startswith(RUNC_STAGE):
            return ENGINE
        parent = self.known.get(k.ppid)
        if parent is None or parent.start > k.start:  # no parent, or a reused PID
            return CLI if prog in self.cli else NONE
        if procfs.program(parent.cmdline).startswith("containerd-shim"):
            return CONTAINER  # a shim's child that is not runc: a container's process
        above = self._procs.get(k.ppid)
        kind = above.kind if above is not None else NONE
        return kind or (CLI if prog in self.cli else NONE)

    # -- the reader ------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._read()
        except BaseException as exc:  # noqa: BLE001 - said by stop(): never a silent gap
            self.failure = exc

    def _read(self) -> None:
        assert self.conn is not None
        self.reader = _prioritize()
        receive, handle = self.conn.receive, self._handle
        window = (time.monotonic(), time.thread_time())
        while not self._stop.is_set():
            batch = receive(self.poll)
            self.idle = not batch
            with self._lock:
                for ev in batch:
                    handle(ev)
            if self.reader == "realtime" and time.monotonic() - window[0] >= 1.0:
                busy = (time.thread_time() - window[1]) / (time.monotonic() - window[0])
                if busy > REALTIME_LIMIT:  # a fork storm: do not take a CPU from the host
                    self.reader = _prioritize(realtime=False) + " (realtime dropped: busy)"
                window = (time.monotonic(), time.thread_time())
        while batch := receive(0):  # what was queued before the stop
            with self._lock:
                for ev in batch:
                    handle(ev)
        self.reader_cpu_ns = time.thread_time_ns()

    def _handle(self, ev: connector.Event) -> None:
        self.last_ts = ev.ts
        what = ev.what
        if what == FORK:
            if ev.pid != ev.tgid:
                self.threads += 1
                return
            parent = self._procs.get(ev.ptgid) or self._adopt(ev.ptgid)
            kind = CLI if ev.ptgid == self.me else parent.kind if parent else NONE
            self._procs[ev.pid] = _Tracked(ev.ts, None, kind, parent.comm if parent else "")
            self._keep(Raw("fork", ev.ts - self.t0, ev.pid, parent=ev.ptgid), kind, ev.ts)
        elif what == EXEC:
            proc = self._procs.get(ev.pid) or self._adopt(ev.pid) or self._stranger(ev.pid)
            self._exec(ev, proc)
        elif what == COMM:
            if ev.pid != ev.tgid:
                self.threads += 1
                return
            proc = self._procs.get(ev.pid) or self._adopt(ev.pid) or self._stranger(ev.pid)
            proc.comm = ev.comm
            if ev.comm.startswith(RUNC_STAGE):
                proc.kind = ENGINE
            sample = None
            if proc.kind or self.everything:
                sample = self._sample(ev.pid, proc, argv=False, ns=True)
            self._keep(Raw("comm", ev.ts - self.t0, ev.pid, comm=ev.comm, sample=sample),
                       proc.kind, ev.ts)  # fmt: skip
        elif what == EXIT:
            if ev.pid != ev.tgid:
                self.threads += 1
                return
            gone = self._procs.pop(ev.pid, None)
            kind = gone.kind if gone else NONE
            raw = Raw("exit", ev.ts - self.t0, ev.pid, parent=ev.ptgid, code=ev.code)
            self._keep(raw, kind, ev.ts)

    def _exec(self, ev: connector.Event, proc: _Tracked) -> None:
        if proc.exec_at >= self._base and ev.ts <= proc.read_end:
            # It exec'd again before the read of its previous exec ended: that read may show
            # this later program. Drop it rather than attach it to the wrong exec.
            at = proc.exec_at - self._base
            old = self.events[at]
            if old.sample is not None and old.sample.cmdline is not None:
                lost = replace(old.sample, cmdline=None, missing="re-exec")
                self.events[at] = replace(old, sample=lost)
        wanted = proc.kind or self.everything
        sample = self._sample(ev.pid, proc, argv=True, ns=False, cheap=not wanted)
        proc.read_end = time.monotonic_ns()
        prog = procfs.program(sample.cmdline or ()) or sample.comm or ""
        before = proc.comm
        proc.comm = sample.comm or proc.comm
        if self.engine(prog):
            proc.kind = ENGINE
        elif proc.kind == ENGINE and before.startswith(RUNC_STAGE):
            proc.kind = CONTAINER  # runc:[2:INIT] execs the container's program
        elif proc.kind == NONE and prog in self.cli:
            proc.kind = CLI
        if not wanted and proc.kind and sample.missing == "not read":  # interesting now
            sample = self._sample(ev.pid, proc, argv=True, ns=False)
        if proc.kind == CONTAINER or (prog == "runc" and (sample.cmdline or ())[1:2] == ("init",)):
            # Namespaces only where they are shown (ten readlinks: the argv of the next exec
            # waits meanwhile): a container's process, and runc init.
            spaces = self._sample(ev.pid, proc, argv=False, ns=True).namespaces
            sample = replace(sample, namespaces=spaces)
        if self._keep(Raw("exec", ev.ts - self.t0, ev.pid, sample=sample), proc.kind, ev.ts):
            proc.exec_at = self._base + len(self.events) - 1

    def _keep(self, raw: Raw, kind: int, ts: int) -> bool:
        if kind or self.everything:
            self.events.append(raw)
            if kind == ENGINE:
                self.last_engine = ts
            if self.on_keep is not None:
                self.on_keep(raw, kind)
            return True
        self.skipped += 1
        return False

    # -- reading /proc ---------------------------------------------------------------------

    def _same(self, proc: _Tracked, ticks: int) -> bool:
        """Is a process with these start ticks the one we know? Exactly its ticks when known;
        for one forked during the trace, the tick of its fork event (the kernel stamps the
        start a little before it sends the event, so the tick before it too)."""
        if proc.start is not None:
            return ticks == proc.start
        if proc.born is None:
            return True
        tick = (proc.born + self._boot_offset) // self._tick
        return tick - 1 <= ticks <= tick

    def _sample(
        self, pid: int, proc: _Tracked, argv: bool, ns: bool, cheap: bool = False
    ) -> Sample:
        """What /proc says of pid now, if it is still proc. cheap: stat only (its comm says
        whether the rest is wanted)."""
        try:
            with procfs.Pinned(self.root, pid) as p:
                stat = p.stat
                if not self._same(proc, stat.start_ticks):
                    return Sample(None, missing="reused")
                if proc.start is None:
                    proc.start = stat.start_ticks
                if cheap and not self.engine(stat.comm) and stat.comm not in self.cli:
                    return Sample(None, comm=stat.comm, ppid=stat.ppid, missing="not read")
                args: tuple[str, ...] | None = None
                missing = None
                if argv:
                    args = p.cmdline() or None
                    if args is None:
                        missing = "zombie" if stat.state == "Z" else "empty"
                spaces = None
                if ns and stat.state != "Z":
                    got = p.namespaces()
                    spaces = got[0] if got and got[0] else None
                return Sample(args, stat.comm, stat.ppid, spaces, missing)
        except OSError:
            return Sample(None, missing="gone")

    def _adopt(self, pid: int) -> _Tracked | None:
        """A live process the start snapshot missed (it met an error, or started in
        between): read it now and remember it as known."""
        if self._boot is None:
            self._boot = self.root.boot_time()
        try:
            with procfs.Pinned(self.root, pid) as p:
                known, comm = p.proc(self._boot, self._clk), p.stat.comm
        except OSError:
            return None
        self.known[pid] = known
        proc = _Tracked(None, known.start, NONE, comm)
        self._procs[pid] = proc
        proc.kind = self._kind_at_start(known)
        return proc

    def _stranger(self, pid: int) -> _Tracked:
        """A process with neither a fork event nor a /proc entry (gone already)."""
        proc = _Tracked(None, None, NONE, "")
        self._procs[pid] = proc
        return proc

    # -- the end ---------------------------------------------------------------------------

    def watch(self, pid: int) -> None:
        """The traced command's PID (its fork was the tracer's: already kept as cli)."""
        self.command_pid = pid

    def quiet(self, grace: float, limit: float) -> None:
        """Return once the engines have been quiet for grace seconds (no event of an engine
        process, with the reader caught up: its queue empty, or its last event fresh), or
        after limit seconds."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            now = time.monotonic_ns()
            caught_up = self.idle or now - self.last_ts < CAUGHT_UP
            if caught_up and now - max(self.last_engine, self._quiet_from) >= grace * 1e9:
                return
            time.sleep(0.02)

    def mark(self) -> None:
        """From now on (the command's exit), quiet counts."""
        self._quiet_from = time.monotonic_ns()

    def cut(self) -> list[Raw]:
        """A continuous feed: the events kept since the last cut, in order, taken out of the
        recorder (whose memory stays bounded however long it runs)."""
        with self._lock:
            taken, self.events = self.events, []
            self._base += len(taken)
        return sorted(taken, key=lambda raw: raw.ts)

    def abort(self) -> None:
        """Unsubscribe without having started (the look at the host failed)."""
        if self.conn is not None:
            self.conn.close()

    def stop(self) -> Recording:
        """Stop reading (what was queued until now is read first) and return the recording.
        TracerError if the reader failed: a trace with a hole is not shown as whole."""
        assert self.conn is not None
        end = time.monotonic_ns()
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        conn = self.conn
        conn.close()
        if self.failure is not None:
            why = f"{type(self.failure).__name__}: {self.failure}"
            raise TracerError(f"reading the kernel's process events failed: {why}") from (
                self.failure
            )
        loss = Loss(
            lost=conn.loss.lost,
            gaps=conn.loss.gaps,
            overflows=conn.loss.overflows,
            drops=conn.loss.drops,
        )
        return Recording(
            known=self.known,
            # In the order they happened: each CPU sends in order, but two CPUs' events can
            # reach the socket a few microseconds out of order (a process's own are never).
            events=sorted(self.events, key=lambda raw: raw.ts),
            duration_ns=end - self.t0,
            all=self.everything,
            command_pid=self.command_pid,
            received=conn.received,
            threads=self.threads,
            skipped=self.skipped,
            loss=loss,
            buffer=conn.buffer,
            max_backlog=conn.max_backlog,
            reader=self.reader,
            reader_cpu_ns=self.reader_cpu_ns,
        )


def _prioritize(realtime: bool = True) -> str:
    """Put the reader thread ahead of the burst it watches: a runc process lives 5-10 ms,
    and its argv can only be read while it does. Measured here on a 20-container burst (2
    CPUs): at the normal priority, or nice -10, 14-17 of ~420 argv reads came too late; with
    SCHED_FIFO (lowest realtime priority, as `forkstat -r`), 0-1. The reader sleeps in poll
    between events; should it use more than half a CPU for a second (a fork storm), it steps
    down to nice -10 (the loop in `_run`). Root only; otherwise the normal priority."""
    tid = threading.get_native_id()
    if realtime:
        try:
            os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(1))
            return "realtime"
        except OSError:
            pass
    else:
        with contextlib.suppress(OSError):
            os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
    try:
        os.setpriority(os.PRIO_PROCESS, tid, PRIORITY)
        return f"nice {PRIORITY}"
    except OSError:
        return "normal"
