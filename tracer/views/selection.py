"""Choosing what to show: containers the way docker finds them (name, full id, unique id
prefix) or by a host PID, and engines by their socket (`-H`). Pure functions of a Topology."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tracer.errors import DeniedError, UsageError
from tracer.model.topology import Container, Engine, Topology
from tracer.runtimes.flags import same_socket, unix_path
from tracer.untrusted import number


def lookup(topo: Topology, query: str) -> Container | Engine:
    """What query names, the way docker finds containers: a name, a full id, a unique id
    prefix; or, like `pstree -s PID`, the PID of any process of a container's chain (its
    processes, its shim, its docker-proxy) or of an engine's daemon (then the engine).

    UsageError when it is ambiguous (an id prefix of several containers, or a number that is
    both a PID and another container's id prefix) or names nothing; DeniedError (exit 3) when
    nothing matched and the names could not be read for lack of permission.
    """
    containers = topo.containers()
    for c in containers:
        if c.name == query or c.id == query:
            return c
    pid = number(query)
    by_pid = _by_pid(topo, pid) if pid is not None else None
    prefix = [c for c in containers if query and c.id.startswith(query.lower())]
    if by_pid is not None:
        others = [c for c in prefix if c is not by_pid]
        if others:
            names = ", ".join(sorted(f"{c.label} ({c.short_id})" for c in others))
            raise UsageError(
                f"'{query}' is ambiguous: PID {query} ({_what(by_pid)}), and the id prefix of "
                f"{names}",
                "give the name, or more of the id",
            )
        return by_pid
    if len(prefix) == 1:
        return prefix[0]
    if len(prefix) > 1:
        names = ", ".join(sorted(f"{c.label} ({c.short_id})" for c in prefix))
        raise UsageError(f"'{query}' is ambiguous: it matches {names}")
    if query.isascii() and query.isdigit():
        raise UsageError(f"PID {query} is not a process of any container or engine on this host")
    _unknown_names(topo, query)
    raise UsageError(f"no such container: '{query}'{_closest(containers, query)}")


def resolve(where: Topology | Sequence[Container], query: str) -> Container:
    """The one container query names (see lookup); a daemon's PID is an error here."""
    topo = where if isinstance(where, Topology) else Topology(engines=[], orphans=list(where))
    found = lookup(topo, query)
    if isinstance(found, Engine):
        raise UsageError(
            f"PID {query} is {_what(found)}, not a process of a container",
            f"`dtrace-tree show {query}` shows that engine",
        )
    return found


def _by_pid(topo: Topology, pid: int) -> Container | Engine | None:
    for e in topo.engines:
        if any(d.pid == pid for d in e.daemons) or any(p.pid == pid for p in e.unmatched_proxies):
            return e
    for c in topo.containers():
        if pid in _pids(c):
            return c
    return None


def _what(found: Container | Engine) -> str:
    if isinstance(found, Container):
        return f"of {found.label}"
    roles = ", ".join(d.role for d in found.daemons)
    return f"a daemon ({roles}) of the engine at {found.title}"


def _unknown_names(topo: Topology, query: str) -> None:
    """Nothing matched: if some engine's names could not be read, say so instead of "no such
    container"; exit 3 when it was for lack of permission."""
    from tracer.model.topology import Dockerd

    for e in topo.engines:
        d = e.daemon(Dockerd)
        if d and not d.reachable:
            why = d.api_error or "unreachable"
            text = (
                f"no container is named '{query}' among those whose names could be read: the "
                f"API at {e.title} did not give them ({why})"
            )
            if "permission denied" in why:
                raise DeniedError(text, "run as root, or give the container's id or a PID")
            raise UsageError(text, "give the container's id or a PID")


def _closest(containers: Iterable[Container], query: str) -> str:
    names = [c.name for c in containers if c.name]
    close = difflib.get_close_matches(query, names, n=3, cutoff=0.7)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def select(topo: Topology, queries: Sequence[str], include_stopped: bool) -> Topology:
    """A copy of topo with only what was asked for (running containers unless include_stopped):
    the containers queries name, and every container of the engines they name."""
    wanted: set[str] | None = None
    whole: list[Engine] = []
    if queries:
        wanted = set()
        for q in queries:
            found = lookup(topo, q)
            if isinstance(found, Engine):
                # a containerd's PID: every engine it serves (Docker's, and each namespace's)
                pid = number(q)
                whole += [e for e in topo.engines if any(d.pid == pid for d in e.daemons)]
                whole += [] if any(e is found for e in whole) else [found]
            else:
                wanted.add(found.id)

    def keep(c: Container, engine: Engine | None) -> bool:
        if wanted is not None and not any(engine is e for e in whole):
            return c.id in wanted
        return include_stopped or c.running

    engines = []
    for engine in topo.engines:
        kept: list[Container] = []
        left: list[Container] = []
        for c in engine.containers:
            (kept if keep(c, engine) else left).append(c)
        chosen = any(engine is e for e in whole)
        if wanted is not None and not kept and not chosen:
            continue
        pids = {p for c in kept for p in _pids(c)}
        dropped = {p for c in left for p in _pids(c)}
        clone = dataclasses.replace(
            engine,
            containers=kept,
            edges=[e for e in engine.edges if not ({e.src, e.dst} & (dropped - pids))],
            unmatched_proxies=engine.unmatched_proxies if wanted is None or chosen else [],
        )
        engines.append(clone)
    orphans = [c for c in topo.orphans if keep(c, None)]
    return Topology(engines=engines, orphans=orphans, host=topo.host, notes=topo.notes)


def _pids(c: Container) -> list[int]:
    pids = [p.pid for p in c.processes] + [p.pid for p in c.proxies]
    return pids + ([c.monitor.pid] if c.monitor else [])


def only_engine(topo: Topology, url: str) -> Topology:
    """The engine one of whose daemons serves url; UsageError if there is none."""
    if not unix_path(url):
        raise UsageError(f"-H {url}: only unix:// sockets can be traced on this host")
    keep = [e for e in topo.engines if any(same_socket(url, d.address) for d in e.daemons)]
    if not keep:
        found = ", ".join(e.title for e in topo.engines) or "none"
        raise UsageError(f"no engine listens on {url} (engines found: {found})")
    return Topology(engines=keep, orphans=[], host=topo.host, notes=topo.notes)


@dataclass(frozen=True)
class Counts:
    """An engine's containers by state, and their processes."""

    running: int = 0
    paused: int = 0
    restarting: int = 0
    stopped: int = 0  # exited, created, dead: no process
    processes: int = 0

    def line(self, shown_stopped: int | None = None) -> str:
        """`5 running, 1 paused, 2 stopped, 14 processes`; stopped ones not shown say so."""
        parts = [f"{self.running} running"]
        parts += [f"{n} {word}" for n, word in ((self.paused, "paused"),
                                                 (self.restarting, "restarting")) if n]  # fmt: skip
        if self.stopped:
            hidden = shown_stopped is not None and shown_stopped < self.stopped
            parts.append(
                f"{self.stopped} stopped" + (" (not shown; -a shows them)" if hidden else "")
            )
        parts.append(f"{self.processes} processes")
        return ", ".join(parts)


def counts(engine: Engine) -> Counts:
    states = [c.state for c in engine.containers]
    return Counts(
        running=sum(
            1 for c in engine.containers if c.running and c.state not in ("paused", "restarting")
        ),
        paused=states.count("paused"),
        restarting=states.count("restarting"),
        stopped=sum(1 for c in engine.containers if not c.running),
        processes=sum(len(c.processes) for c in engine.containers),
    )
