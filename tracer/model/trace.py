"""What `trace` records and prints: the raw recording, the events with their roles, and the
story of each container; and their JSON (`dtrace-tree/trace/1`, README "trace --json").

A `Recording` is what the kernel and /proc said (tracer/snapshot/recorder.py); a `Trace` is
what it means (tracer/views/lifecycle.py): every event with the role and container of its
process, and one `Story` per container. Plain data: no I/O.

A process is identified by its PID and its fork time (`born_ns`, nanoseconds since the trace
began; None for a process that existed before, identified by its start ticks instead): PIDs
are reused within minutes on a busy host.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from tracer.kernel.procfs import Proc, wait_status
from tracer.model.topology import Labelled

SCHEMA = "dtrace-tree/trace/1"
KINDS = ("fork", "exec", "exit", "comm")
ROLES = ("cli", "dockerd", "dockerd-helper", "containerd", "shim-start", "shim", "shim-delete",
         "conmon",
         "runc-create", "runc-init", "runc-start", "runc-exec", "runc-kill", "runc-delete",
         "runc", "hook", "docker-init", "container-init", "container-process", "exec-process",
         "docker-proxy", "other")  # fmt: skip


# -- the recording ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """What /proc said of a process at one of its events, read as the event arrived. cmdline is
    None when it could not be read: `missing` says why (gone: exited and reaped; zombie;
    reused: another process holds the PID; re-exec: the process exec'd again before it was
    read, so what /proc shows belongs to a later program; empty: runc's memfd re-exec)."""

    cmdline: tuple[str, ...] | None
    comm: str | None = None  # the kernel's 15 bytes (stat), not the extended name
    ppid: int | None = None  # the parent at the time of the read (a re-parented child's new one)
    namespaces: Mapping[str, int] | None = None
    missing: str | None = None


@dataclass(frozen=True)
class Raw:
    """One event as the recorder kept it. ts: ns since the trace began. parent: for fork, the
    process that forked (its thread group); for exit, the parent at exit. code: the wait
    status of an exit. comm: the new name of a comm event."""

    kind: str  # fork | exec | exit | comm
    ts: int
    pid: int
    parent: int = 0
    code: int = 0
    comm: str = ""
    sample: Sample | None = None


@dataclass(frozen=True)
class KnownContainer:
    """A container as `show` saw it (before or after the trace): for names, and to say whose
    namespaces a process joined."""

    id: str
    name: str | None
    init_pid: int | None
    shim_pid: int | None
    namespaces: Mapping[str, int] = field(default_factory=dict)
    proxies: tuple[int, ...] = ()


@dataclass
class Loss:
    lost: int = 0  # at least this many events were lost: max(gaps, drops)
    gaps: int = 0  # missing per-CPU sequence numbers
    overflows: int = 0  # ENOBUFS episodes
    drops: int | None = None  # /proc/net/netlink Drops of the socket


@dataclass
class Recording:
    """Everything the recorder saw: processes alive at the start, the events kept (in order),
    and the counts that say how complete it is."""

    known: dict[int, Proc]  # the processes alive when it began (their namespaces if read)
    events: list[Raw]
    duration_ns: int
    all: bool = False
    command: list[str] | None = None
    command_pid: int | None = None
    command_status: int | None = None  # a wait status; None while unknown
    received: int = 0  # datagrams from the kernel, threads and acknowledgements included
    threads: int = 0  # thread events folded into their process
    skipped: int = 0  # process events left out as not concerning containers
    loss: Loss = field(default_factory=Loss)
    buffer: int = 0  # the socket's receive buffer, as the kernel reports it
    max_backlog: int = 0  # the most events found queued at once
    reader: str = "normal"  # how the reader thread was scheduled: realtime | nice -10 | normal
    reader_cpu_ns: int = 0  # CPU time of the thread that read the events and /proc
    host_ns: Mapping[str, int] = field(default_factory=dict)
    containers: dict[str, KnownContainer] = field(default_factory=dict)
    interrupted: bool = False  # Ctrl-C ended it (without a command, the usual way to end)

    @property
    def command_end(self) -> tuple[int | None, int | None]:
        """The traced command's (exit status, killing signal); (None, None) while unknown."""
        return (None, None) if self.command_status is None else wait_status(self.command_status)


# -- what it means --------------------------------------------------------------------------------


@dataclass
class Event:
    """One event of a process, with what it was doing at that moment."""

    t_ns: int
    event: str  # fork | exec | exit | comm
    pid: int
    ppid: int
    comm: str
    cmdline: list[str] | None
    role: str
    container: str | None  # 64 hex
    born_ns: int | None = None  # the process's fork (None: it existed before the trace)
    exit_code: int | None = None
    signal: int | None = None
    lifetime_ns: int | None = None
    namespaces: dict[str, int] | None = None
    ns_change: dict[str, str] | None = None  # type -> "new" | "joined:<container id>"
    cmdline_from: str | None = None  # "argv" | "comm" (argv lost: the kernel's name, marked)
    missing: str | None = None  # why argv is missing
    parent_role: str | None = None  # fork: the role of the process that forked it
    role_inferred: bool = False  # argv was gone: the role comes from the tree around it

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "t_ns": self.t_ns,
            "event": self.event,
            "pid": self.pid,
            "ppid": self.ppid,
            "comm": self.comm,
            "cmdline": None if self.cmdline is None else list(self.cmdline),
            "role": self.role,
            "container": self.container,
            "exit_code": self.exit_code,
            "signal": self.signal,
            "lifetime_ns": self.lifetime_ns,
            "namespaces": None if self.namespaces is None else dict(self.namespaces),
            "born_ns": self.born_ns,
            "ns_change": None if self.ns_change is None else dict(self.ns_change),
            "cmdline_from": self.cmdline_from,
            "missing": self.missing,
            "parent_role": self.parent_role,
            "role_inferred": self.role_inferred,
        }


@dataclass
class Step:
    """One process of a container's story."""

    role: str
    pid: int
    t_ns: int  # when it was forked (or first seen)
    cmdline: list[str]
    cmdline_from: str  # argv | comm
    lifetime_ns: int | None = None  # None: still running when the trace ended, or born before
    exit_code: int | None = None
    signal: int | None = None
    exited: bool = False
    end_ns: int | None = None
    detail: str | None = None  # "kill 15", "runc ps", "libnetwork-setkey", a proxy's ports
    parent: int | None = None  # the process that forked it (runc's stages: runc create/exec)
    before: bool = False  # it existed before the trace (t_ns: its first event)

    def to_json(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "pid": self.pid,
            "parent": self.parent,
            "detail": self.detail,
            "before_trace": self.before,
            "t_ns": self.t_ns,
            "cmdline": list(self.cmdline),
            "cmdline_from": self.cmdline_from,
            "lifetime_ns": self.lifetime_ns,
            "exited": self.exited,
            "end_ns": self.end_ns,
            "exit_code": self.exit_code,
            "signal": self.signal,
        }


@dataclass
class Entry:
    """A process entering a container: its init (runc create) or an exec (runc exec)."""

    pid: int
    t_ns: int  # the exec of the container's program
    cmdline: list[str]
    namespaces: dict[str, int] | None
    ns_change: dict[str, str] | None  # type -> new | joined:<id>, vs the runc that forked it
    parent_at_exec: int | None = None  # its ppid in /proc when it exec'd (the shim, for init)

    def to_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "t_ns": self.t_ns,
            "cmdline": list(self.cmdline),
            "namespaces": None if self.namespaces is None else dict(self.namespaces),
            "ns_change": None if self.ns_change is None else dict(self.ns_change),
            "parent_at_exec": self.parent_at_exec,
        }


@dataclass
class Story(Labelled):
    """What happened to one container during the trace."""

    id: str
    name: str | None
    what: list[str]  # in order: create, start, exec, kill <sig>, delete, ... (see views)
    steps: list[Step]
    shim_pid: int | None = None
    init: Entry | None = None
    execs: list[Entry] = field(default_factory=list)
    init_exit: Step | None = None  # the container's init, when it ended during the trace
    started_in_ns: int | None = None  # first step of the engine -> the init's exec

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "what": list(self.what),
            "init_pid": self.init.pid if self.init else None,
            "shim_pid": self.shim_pid,
            "started_in_ns": self.started_in_ns,
            "init": self.init.to_json() if self.init else None,
            "execs": [e.to_json() for e in self.execs],
            "init_exit": self.init_exit.to_json() if self.init_exit else None,
            "steps": [s.to_json() for s in self.steps],
        }


@dataclass
class Trace:
    events: list[Event]
    stories: list[Story]
    recording: Recording
    processes: int = 0  # distinct processes in events
    argv_missing: int = 0  # execs whose argv could not be read

    @property
    def lost(self) -> int:
        return self.recording.loss.lost

    def summary(self) -> dict[str, Any]:
        r = self.recording
        exit_code, signal = r.command_end
        return {
            "schema": SCHEMA,
            "summary": {
                "containers": [s.to_json() for s in self.stories],
                "command": None if r.command is None else list(r.command),
                "command_pid": r.command_pid,
                "command_exit_code": exit_code,
                "command_signal": signal,
                "duration_ns": r.duration_ns,
                "all": r.all,
                "interrupted": r.interrupted,
                "processes": self.processes,
                "argv_missing": self.argv_missing,
                "received": r.received,
                "threads_folded": r.threads,
                "skipped": r.skipped,
                "buffer_bytes": r.buffer,
                "max_backlog": r.max_backlog,
                "reader": r.reader,
                "reader_cpu_ns": r.reader_cpu_ns,
                "loss": {
                    "gaps": r.loss.gaps,
                    "overflows": r.loss.overflows,
                    "drops": r.loss.drops,
                },
            },
            "events": len(self.events),
            "lost": self.lost,
        }

    def json_lines(self) -> Iterator[dict[str, Any]]:
        """One object per event, then the summary."""
        for ev in self.events:
            yield ev.to_json()
        yield self.summary()
