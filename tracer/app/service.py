"""One way to look at the host. show, ns, fs, cgroup, export, diff, trace and serve all ask a
`Service` for what they show. A command makes one from what the user chose: the engine (-H), a
saved snapshot instead of this host (--from), and the Environment, which holds the host root
(--host-root). The Service then:

- reaches the host through one HostRoot, chosen once, with one note: --host-root (or
  DTRACE_HOST_ROOT); in a container, the host's / mounted at /host; else this process's own.
- takes the topology: the saved snapshot (a survive report's daemon-down one too), or one walk
  of this host (tracer.runtimes.observe) for the engine the user means.
- reads several saved snapshots as a fleet.

The commands and the live page differ only in what they do with the look.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from tracer.app.environment import Environment

if TYPE_CHECKING:
    from tracer.kernel.root import HostRoot
    from tracer.model.fleet import Fleet
    from tracer.model.topology import Topology
    from tracer.runtimes import Observation
    from tracer.snapshot.walk import AlsoEach

MAKE_ONE = "make one with: dtrace-tree show --json > FILE"


class Service:
    """What one command looks at: this host (the engine -H names, or the docker CLI's
    environment's, or every engine), or the snapshot saved in `snapshot` ('-': stdin)."""

    def __init__(
        self,
        env: Environment,
        engine: str | None = None,
        snapshot: str | None = None,
        root: HostRoot | None = None,
    ) -> None:
        self.env = env
        self.engine = engine  # -H: a unix:// URL, 'all', or None (the docker CLI's choice)
        self.snapshot = snapshot  # --from
        self._root = root

    # -- the host ----------------------------------------------------------------------------

    def root(self) -> HostRoot:
        """The HostRoot every read of the host goes through: --host-root (or DTRACE_HOST_ROOT);
        in a container without it, the host's / at /host; else this process's own / and /proc.
        Chosen once (one note). UsageError for a --host-root that is no directory; DeniedError
        (exit 3) when the host's processes are not visible from here."""
        if self._root is not None:
            return self._root
        from tracer.errors import DeniedError, UsageError
        from tracer.kernel import root as roots

        given = self.env.host_root
        if given:
            if not os.path.isdir(given):
                raise UsageError(f"--host-root {given}: no such directory")
            chosen = roots.for_container(given)
        elif roots.in_container() and os.path.isdir(roots.HOST_MOUNT):
            chosen = roots.for_container(roots.HOST_MOUNT)
            self.env.note(f"running in a container: reading the host through {roots.HOST_MOUNT}")
        else:
            chosen = roots.HostRoot()
        if not roots.sees_host_processes(chosen):
            raise DeniedError(
                f"the host's processes are not visible from here ({chosen.proc} has no kthreadd: "
                "this is not the host's PID namespace)",
                "run the container with --pid=host (Kubernetes: hostPID: true), or mount the "
                "host's / and give --host-root",
            )
        self._root = chosen
        return chosen

    def chosen_engine(self) -> str | None:
        """The engine the user means (-H, else the docker CLI's environment), said on stderr
        when it comes from the environment; None for every engine."""
        from tracer.runtimes.dockercontext import choose

        choice = choose(self.engine, self.env.environ)
        if choice.from_environment:
            self.env.note(
                f"showing the engine at {choice.url} (from {choice.why}; -H all shows every engine)"
            )
        return choice.url

    def observation(self, also: AlsoEach | None = None) -> Observation:
        """One walk of the host, every engine: the snapshot and its topology (trace's look
        before it subscribes; each of serve's looks); also(pinned, uid) for each process as it
        is read (`ns --all`)."""
        from tracer.runtimes import observe

        return observe(self.root(), also=also)

    def live(self) -> Topology:
        """This host's topology: the engine the user means, or every engine."""
        from tracer.runtimes import observe
        from tracer.views.selection import only_engine

        url = self.chosen_engine()
        topo = observe(self.root(), only=url).topology
        self._own_container(topo)
        return only_engine(topo, url) if url else topo

    def _own_container(self, topo: Topology) -> None:
        """Say so when dtrace-tree itself runs in one of the containers it shows."""
        me = os.getpid()
        for c in topo.containers():
            if any(p.pid == me for p in c.processes):
                self.env.note(
                    f"dtrace-tree itself runs in container {c.label} ({c.short_id}), shown too"
                )
                return

    # -- what to show ------------------------------------------------------------------------

    def topology(self) -> Topology:
        """The topology to show: the saved one (only the engine at -H, if given), or this
        host's."""
        if self.snapshot is None:
            return self.live()
        return self._only_engine(self.load(self.snapshot))

    def load(self, path: str) -> Topology:
        """A Topology from a `show --json` file, or the daemon-down snapshot of a `survive
        --json` report ('-': stdin); UsageError (one line) for anything else."""
        import json

        from tracer.errors import SnapshotFormatError, UsageError
        from tracer.model.show_json import from_saved

        try:
            if path == "-":
                text = self.env.stdin.read()
            else:
                with open(path, encoding="utf-8", errors="surrogateescape") as f:
                    text = f.read()
        except OSError as exc:
            raise UsageError(f"--from {path}: {exc.strerror or exc}") from exc
        try:
            return from_saved(json.loads(text))
        except SnapshotFormatError as exc:
            raise UsageError(f"--from {path}: {exc.message}", MAKE_ONE) from exc
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, or absurd nesting
            raise UsageError(f"--from {path}: not JSON", MAKE_ONE) from exc

    def fleet(self, paths: list[str]) -> Fleet:
        """Several saved snapshots (one host each) and the fleet's summary."""
        from tracer.errors import UsageError
        from tracer.views.fleet import fleet

        if paths.count("-") > 1:
            raise UsageError("--from -: stdin can be read once")
        topos = [self._only_engine(self.load(p)) for p in paths]
        return fleet(list(zip(paths, topos, strict=True)))

    def _only_engine(self, topo: Topology) -> Topology:
        if not self.engine or self.engine == "all":
            return topo
        from tracer.views.selection import only_engine

        return only_engine(topo, self.engine)
