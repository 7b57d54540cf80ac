"""The processes of a trace as lives: a `Recording`'s events gathered per process (pure).

A process (`Life`) is keyed by its PID and its fork time (PIDs are reused within minutes on a
busy host; a process that existed before the trace is known by its start ticks instead). It
runs one program after another (`Image`): image 0 is what it ran when the trace met it (its
parent's program, for a child forked during the trace), and each exec adds one, with what
/proc said at that moment (cmdline, comm, namespaces, the parent then). Its name changes (runc
init's stages) and its exit are kept with it. Roles are given by tracer/views/roles.py.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from tracer.kernel.procfs import Proc, program
from tracer.model.trace import Raw, Recording

HEX64 = re.compile("[0-9a-f]{64}")
RUNC_STAGE = "runc:["  # runc init's stages name themselves runc:[0:PARENT] .. runc:[2:INIT]
# runc's global flags that take a value (runc main.go), and its subcommands' (create, exec,
# kill, delete, start: utils_linux.go, exec.go); Go's urfave/cli takes -flag and --flag.
RUNC_GLOBAL_VALUES = {"root", "log", "log-format", "criu", "rootless"}
RUNC_VALUES = {"bundle", "b", "pid-file", "console-socket", "process", "p", "preserve-fds",
               "cwd", "env", "e", "user", "u", "cap", "c", "apparmor", "process-label",
               "additional-gids", "g", "cgroup", "pidfd-socket"}  # fmt: skip


@dataclass
class Image:
    """One program a process ran: image 0 is what it ran when the trace met it."""

    ts: int | None  # its exec (None: image 0)
    cmdline: tuple[str, ...] | None
    comm: str
    missing: str | None = None  # why cmdline is None
    namespaces: Mapping[str, int] | None = None
    namespaces_from: str | None = None  # "exec" | "comm" (read at its last comm change)
    ppid_at: int | None = None  # the parent in /proc when it exec'd
    inherited: bool = False  # image 0 of a child forked during the trace: its parent's
    role: str = "other"
    container: str | None = None
    inferred: bool = False  # the role comes from the tree: argv said nothing

    @property
    def program(self) -> str:
        return program(self.cmdline or ()) or self.comm


@dataclass(eq=False)
class Life:
    """One process over the trace."""

    pid: int
    born: int | None  # ns since the trace began, of its fork; None: it existed before
    known: Proc | None = None
    parent: Life | None = None
    parent_image: int = 0  # the parent's image when it forked this one
    images: list[Image] = field(default_factory=list)
    children: list[Life] = field(default_factory=list)
    comms: list[tuple[int, str, Mapping[str, int] | None]] = field(default_factory=list)
    exit: Raw | None = None
    first: int = 0  # ns of its first event in the trace
    command: bool = False  # the traced command itself

    @property
    def staged(self) -> bool:
        """Did it go through runc init's stages (a runc:[ name, or an exec of runc init)?"""
        return any(c.startswith(RUNC_STAGE) for _, c, _ in self.comms) or any(
            img.ts is not None and runc_args(img.cmdline)[0] == "init" for img in self.images
        )


def runc_args(argv: tuple[str, ...] | list[str] | None) -> tuple[str | None, list[str]]:
    """runc's subcommand and its positional arguments; (None, []) if argv is not runc's."""
    if not argv or program(argv) not in ("runc", "crun"):  # crun takes runc's arguments
        return None, []
    i = 1
    while i < len(argv) and argv[i].startswith("-"):
        name, eq, _ = argv[i].lstrip("-").partition("=")
        i += 2 if name in RUNC_GLOBAL_VALUES and not eq else 1
    if i >= len(argv):
        return None, []
    sub, rest = argv[i], argv[i + 1 :]
    positional: list[str] = []
    j = 0
    while j < len(rest):
        arg = rest[j]
        if arg == "--":
            positional.extend(rest[j + 1 :])
            break
        if arg.startswith("-") and len(arg) > 1:
            name, eq, _ = arg.lstrip("-").partition("=")
            j += 2 if name in RUNC_VALUES and not eq else 1
            continue
        positional.append(arg)
        j += 1
    return sub, positional


def container_id(text: str | None) -> str | None:
    return text if text and HEX64.fullmatch(text) else None


@dataclass
class Lives:
    """Every process of the recording, and where each event belongs."""

    all: list[Life]
    at: list[tuple[Life, int]]  # per event of the recording: its process and image index
    comm_at: list[str]  # per event: the process's comm at that moment
    inits: dict[str, Mapping[str, int]]  # container id -> its init's namespaces


def build(rec: Recording) -> Lives:
    """The lives of every process of the recording (roles: tracer/views/roles.py)."""
    known_lives: dict[int, Life] = {}
    lives: list[Life] = []

    def known(pid: int) -> Life | None:
        if pid in known_lives:
            return known_lives[pid]
        k = rec.known.get(pid)
        if k is None:
            return None
        image = Image(None, k.cmdline or None, k.name, namespaces=k.namespaces)
        life = Life(pid, None, known=k, images=[image])
        known_lives[pid] = life
        parent = rec.known.get(k.ppid)
        if parent is not None and parent.start <= k.start and k.ppid != pid:
            life.parent = known(k.ppid)
            if life.parent:
                life.parent.children.append(life)
        lives.append(life)
        return life

    live: dict[int, Life] = {}
    at: list[tuple[Life, int]] = []
    comm_at: list[str] = []
    for raw in rec.events:
        if raw.kind == "fork":
            parent = live.get(raw.parent) or known(raw.parent)
            life = Life(raw.pid, raw.ts, parent=parent, first=raw.ts)
            if parent is not None:
                life.parent_image = len(parent.images) - 1
                src = parent.images[-1]
                # It runs its parent's program until it execs (its namespaces may already
                # be new ones: runc's stages are cloned into them).
                life.images.append(Image(None, src.cmdline, current_comm(parent), inherited=True))
                parent.children.append(life)
            else:
                life.images.append(Image(None, None, "", missing="parent unknown"))
            live[raw.pid] = life
            lives.append(life)
        else:
            found = live.get(raw.pid) or known(raw.pid)
            if found is None:  # no fork and no /proc entry: met only now
                found = Life(raw.pid, None, first=raw.ts, images=[Image(None, None, "")])
                lives.append(found)
            life = found
            live.setdefault(raw.pid, life)
            if not life.first and life.born is None:
                life.first = raw.ts
            s = raw.sample
            if raw.kind == "exec":
                argv = s.cmdline if s else None
                comm = (s.comm if s else None) or program(argv or ())  # "": unknown
                ns, ns_from = (s.namespaces, "exec") if s and s.namespaces else _comm_ns(life)
                life.images.append(Image(raw.ts, argv, comm, missing=s.missing if s else "not read",
                                         namespaces=ns, namespaces_from=ns_from,
                                         ppid_at=s.ppid if s else None))  # fmt: skip
            elif raw.kind == "comm":
                life.comms.append((raw.ts, raw.comm, s.namespaces if s else None))
            elif raw.kind == "exit":
                life.exit = raw
                live.pop(raw.pid, None)
        at.append((life, len(life.images) - 1))
        comm_at.append(current_comm(life))
    if rec.command_pid is not None:
        for life in lives:
            if life.pid == rec.command_pid and life.born is not None:
                life.command = True
    return Lives(lives, at, comm_at, {})


def current_comm(life: Life) -> str:
    """Its name now: the last comm change, else its current image's."""
    last_image = life.images[-1] if life.images else None
    if life.comms and (last_image is None or last_image.ts is None or
                       life.comms[-1][0] >= last_image.ts):  # fmt: skip
        return life.comms[-1][1]
    return last_image.comm if last_image else ""


def _comm_ns(life: Life) -> tuple[Mapping[str, int] | None, str | None]:
    """The namespaces read at its last comm change (a short exec'd process is gone before
    its own can be read; as runc:[2:INIT] it was already in the container's)."""
    for _, _, ns in reversed(life.comms):
        if ns:
            return ns, "comm"
    return None, None
