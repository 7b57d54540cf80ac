"""The runtime boundary: what every runtime module offers, and the topology it adds to.

Like psutil's one public API over one module per platform, the rest of dtrace-tree talks to
runtimes only through `Runtime`: the walk asks what to read (the `Source` part), the snapshot
is turned into engines by `build`, each in the order of tracer/runtimes/__init__.py.RUNTIMES
(a runtime may take up what an earlier one left: containerd takes the containerds and shims
that no dockerd or CRI took). A new runtime is one module here (or a sub-package, as
containerd/ is), plus its line in RUNTIMES.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from tracer.kernel.root import HostRoot
from tracer.model.topology import ApiView, Container, Engine
from tracer.snapshot.host import Host, Proc
from tracer.snapshot.walk import Source


@dataclass
class Found:
    """The topology under construction: engines so far, containers of no engine, and the
    PIDs (daemons, shims) that an engine has taken."""

    engines: list[Engine] = field(default_factory=list)
    orphans: list[Container] = field(default_factory=list)
    claimed: set[int] = field(default_factory=set)


class Runtime(Source, Protocol):
    name: str
    # Why a container of this runtime usually shares a namespace type with the host.
    usually_shared: Mapping[str, str]

    def endpoint(self, host: Host, daemon: Proc) -> str | None:
        """The API socket to ask of a daemon the walk has just read whole (None when the
        runtime has no API that dtrace-tree reads)."""

    def ask(self, endpoint: str) -> ApiView:
        """What the API at endpoint says (constant in the number of containers); never
        raises: the error goes into the view."""

    def build(self, host: Host, answers: Mapping[int, ApiView], found: Found) -> None:
        """Add this runtime's engines (and orphans) to found, from the snapshot alone plus
        the answers of its APIs (by daemon PID). Pure."""

    def explain(
        self, engine: Engine, container: Container, names: Mapping[str, str], root: HostRoot
    ) -> dict[str, str]:
        """Namespace type -> the option that made the container share it (`--network
        container:web`, other containers named by names: id -> label), asked of the engine;
        {} when it cannot be asked."""

    def storage_root(self, engine: Engine, root: HostRoot) -> str | None:
        """Where this engine keeps its images, layers and volumes (Docker's data root), for
        a container whose storage is not mounted (stopped); None when it cannot be told."""
