"""The runtime boundary: what every runtime module offers, and the topology it adds to.

Like psutil's one public API over one module per platform, the rest of dtrace-tree talks to
runtimes only through `Runtime`: the walk asks what to read (the `Source` part), the snapshot
is turned into engines by `build`, each in the order runtimes are registered
(tracer/runtimes/__init__.py: a runtime may take up what an earlier one left: containerd takes
the containerds and shims that no dockerd or CRI took), and the outputs ask how to draw and
name what it built (`look`, `describe`), never which runtime it is. A new runtime is one
module here (or a sub-package, as containerd/ is) whose class extends `RuntimeBase`, plus its
registration: tests/unit/test_fake_runtime.py is the example.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from tracer.kernel.root import HostRoot
from tracer.model.topology import ApiView, Container, Daemon, Engine
from tracer.snapshot.host import Host, Proc
from tracer.snapshot.walk import Reader, Source


@dataclass
class Found:
    """The topology under construction: engines so far, containers of no engine, the PIDs
    (daemons, shims) that an engine has taken, and what the host should be told."""

    engines: list[Engine] = field(default_factory=list)
    orphans: list[Container] = field(default_factory=list)
    claimed: set[int] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)


def shared_by_default(who: str, user: str, cgroup: str) -> Mapping[str, str]:
    """Why a runtime's containers share namespaces with the host by default (usually_shared):
    its words for the user and cgroup namespaces; `who` never creates time namespaces."""
    never = f"{who} never creates time namespaces"
    return {"user": user, "cgroup": cgroup, "time": never, "time_for_children": never}


@dataclass(frozen=True)
class Look:
    """How the outputs (terminal tree, diagram, page, trace) draw and name a runtime's
    engines: plain words, so that no output asks which runtime it is drawing."""

    # The roles of the daemons its engines run (tracer/model/topology.py Daemon.role), top of
    # the chain first; each is drawn, or, when it does not run, what `missing` says of it.
    chain: tuple[str, ...] = ()
    missing: Mapping[str, str] = field(default_factory=dict)
    # The head of an engine that has no daemon at all ("podman": "podman  no daemon  ...").
    daemonless: str = "engine"
    # A word after the head daemon, for an engine that shares its daemon with others ("CRI").
    tag: str = ""
    # What holds each container (a containerd shim, conmon), and who starts it.
    monitor: str = "shim"
    monitor_parent: str = "its engine"
    # Edge kind (tracer/model/topology.py Edge.kind) -> what it means between its processes.
    edges: Mapping[str, str] = field(default_factory=dict)
    # The programs people drive it with (a trace calls what they run a `cli`).
    cli: frozenset[str] = frozenset()
    # Its daemons (by role) whose children tell nothing of its containers (dockerd's helpers).
    quiet: frozenset[str] = frozenset()

    def levels(self, engine: Engine) -> list[Level]:
        """The engine's daemons in the chain, top first, and a `Missing` for each one of the
        chain that does not run and that `missing` has words for (others are left out: CRI
        says nothing when no kubelet runs); a daemon the chain does not name comes last."""
        chain = self.chain or tuple(d.role for d in engine.daemons)
        out: list[Level] = []
        for role in chain:
            d = next((d for d in engine.daemons if role == d.role), None)
            if d is not None:
                out.append(d)
            elif role in self.missing:
                out.append(Missing(role, self.missing[role]))
        return out + [d for d in engine.daemons if d.role not in chain]


@dataclass(frozen=True)
class Missing:
    """A daemon of the chain that does not run, and what to say of it."""

    role: str
    text: str


# A level of an engine's chain, as the views draw it: a daemon, or the words for one missing.
Level = Daemon | Missing


class Runtime(Source, Protocol):
    name: str
    # Why a container of this runtime usually shares a namespace type with the host.
    usually_shared: Mapping[str, str]
    look: Look

    def endpoint(self, host: Host, daemon: Proc) -> str | None:
        """The API socket to ask of a daemon the walk has just read whole (None when the
        runtime has no API that dtrace-tree reads)."""

    def ask(self, endpoint: str) -> ApiView:
        """What the API at endpoint says (constant in the number of containers); never
        raises: the error goes into the view."""

    def build(self, host: Host, answers: Mapping[int, ApiView], found: Found) -> None:
        """Add this runtime's engines (and orphans) to found, from the snapshot alone plus
        the answers of its APIs (by daemon PID); only the processes it can prove are its own,
        and none that an earlier runtime claimed. Pure."""

    def explain(
        self, engine: Engine, container: Container, names: Mapping[str, str], root: HostRoot
    ) -> dict[str, str]:
        """Namespace type -> the option that made the container share it (`--network
        container:web`, other containers named by names: id -> label), asked of the engine;
        {} when it cannot be asked."""

    def storage_root(self, engine: Engine, root: HostRoot) -> str | None:
        """Where this engine keeps its images, layers and volumes (Docker's data root), for
        a container whose storage is not mounted (stopped); None when it cannot be told."""

    def storage_view(self, engine: Engine) -> int | None:
        """A process in the mount namespace where the engine mounts its containers' storage
        and sees its data root (a rootless dockerd's: RootlessKit's); None: the host's."""

    def describe(self, engine: Engine) -> list[str]:
        """What to say of one of its engines beside its head (podman: its storage root and
        user), from the facts it set on the engine (Engine.facts)."""


class RuntimeBase:
    """A runtime that reads nothing, asks nothing, builds nothing and explains nothing: a new
    runtime overrides what it has. Also the runtime of an engine whose runtime is not
    registered (a snapshot saved by another version): drawn plainly, by its daemons."""

    name = "unknown"
    daemons: frozenset[str] = frozenset()
    usually_shared: Mapping[str, str] = {}
    look = Look()

    def read_daemon(self, host: Host, daemon: Proc, read: Reader) -> None:
        return None

    def drawn(self, host: Host) -> Iterable[int]:
        return ()

    def read_state(self, host: Host, read: Reader) -> None:
        return None

    def endpoint(self, host: Host, daemon: Proc) -> str | None:
        return None

    def ask(self, endpoint: str) -> ApiView:
        return ApiView(error="not asked")

    def build(self, host: Host, answers: Mapping[int, ApiView], found: Found) -> None:
        return None

    def explain(
        self, engine: Engine, container: Container, names: Mapping[str, str], root: HostRoot
    ) -> dict[str, str]:
        return {}

    def storage_root(self, engine: Engine, root: HostRoot) -> str | None:
        return None

    def storage_view(self, engine: Engine) -> int | None:
        return None

    def describe(self, engine: Engine) -> list[str]:
        return []
