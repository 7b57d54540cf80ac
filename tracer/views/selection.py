"""Choosing what to show: containers the way docker finds them (name, full id, unique id
prefix) or by a host PID, and engines by their socket (`-H`). Pure functions of a Topology."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

from tracer.errors import UsageError
from tracer.model.topology import Container, Engine, Topology
from tracer.runtimes.flags import same_socket, unix_path
from tracer.untrusted import number


def resolve(containers: Sequence[Container], query: str) -> Container:
    """One container for query; UsageError naming close matches or the ambiguous candidates."""
    by_name = [c for c in containers if c.name == query]
    if by_name:
        return by_name[0]
    by_id = [c for c in containers if c.id == query]
    if by_id:
        return by_id[0]
    pid = number(query)
    if pid is not None:
        for c in containers:
            if any(p.pid == pid for p in c.processes):
                return c
    prefix = [c for c in containers if len(query) >= 1 and c.id.startswith(query.lower())]
    if len(prefix) == 1:
        return prefix[0]
    if len(prefix) > 1:
        names = ", ".join(sorted(f"{c.label} ({c.short_id})" for c in prefix))
        raise UsageError(f"'{query}' is ambiguous: it matches {names}")
    if query.isascii() and query.isdigit():
        raise UsageError(f"PID {query} is not a process of any container on this host")
    raise UsageError(f"no such container: '{query}'{_closest(containers, query)}")


def _closest(containers: Iterable[Container], query: str) -> str:
    names = [c.name for c in containers if c.name]
    close = difflib.get_close_matches(query, names, n=3, cutoff=0.7)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def select(topo: Topology, queries: Sequence[str], include_stopped: bool) -> Topology:
    """A copy of topo with only the containers asked for (running ones unless include_stopped)."""
    wanted: set[str] | None = None
    if queries:
        everything = topo.containers()
        wanted = {resolve(everything, q).id for q in queries}

    def keep(c: Container) -> bool:
        if wanted is not None:
            return c.id in wanted
        return include_stopped or c.running

    engines = []
    for engine in topo.engines:
        kept: list[Container] = []
        left: list[Container] = []
        for c in engine.containers:
            (kept if keep(c) else left).append(c)
        if wanted is not None and not kept:
            continue
        pids = {p for c in kept for p in _pids(c)}
        dropped = {p for c in left for p in _pids(c)}
        clone = Engine(
            runtime=engine.runtime,
            daemons=engine.daemons,
            containers=kept,
            edges=[e for e in engine.edges if not ({e.src, e.dst} & (dropped - pids))],
            notes=engine.notes,
            unmatched_proxies=engine.unmatched_proxies if wanted is None else [],
        )
        engines.append(clone)
    orphans = [c for c in topo.orphans if keep(c)]
    return Topology(engines=engines, orphans=orphans, host=topo.host, notes=topo.notes)


def _pids(c: Container) -> list[int]:
    pids = [p.pid for p in c.processes] + [p.pid for p in c.proxies]
    return pids + ([c.shim_pid] if c.shim_pid else [])


def only_engine(topo: Topology, url: str) -> Topology:
    """The engine one of whose daemons serves url; UsageError if there is none."""
    if not unix_path(url):
        raise UsageError(f"-H {url}: only unix:// sockets can be traced on this host")
    keep = [e for e in topo.engines if any(same_socket(url, d.address) for d in e.daemons)]
    if not keep:
        found = ", ".join(e.title for e in topo.engines) or "none"
        raise UsageError(f"no engine listens on {url} (engines found: {found})")
    return Topology(engines=keep, orphans=[], host=topo.host, notes=topo.notes)
