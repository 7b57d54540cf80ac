"""Two snapshots of one host, compared container by container: `survive`'s verdict for a
restart (or an upgrade) that someone else did. Pure."""

from __future__ import annotations

from tracer.model.compare import Change, Comparison, DaemonChange, Side
from tracer.model.topology import Container, Process, Topology, natural_key


def compare(before: Topology, after: Topology) -> Comparison:
    """Each container by id: kept, restarted, stopped, removed, started or new."""
    out = Comparison(_side(before), _side(after))
    if before.host.get("hostname") != after.host.get("hostname"):
        out.notes.append(
            f"the snapshots are of two hosts ({before.host.get('hostname')} and "
            f"{after.host.get('hostname')}): containers are matched by id all the same"
        )
    now = {c.id: c for c in after.containers()}
    was = {c.id: c for c in before.containers()}
    for cid, old in was.items():
        if old.init_pid is None:
            continue  # not running before: nothing to keep
        out.containers.append(_change(old, now.get(cid)))
    for cid, new in now.items():
        known = was.get(cid)
        if new.init_pid is not None and (known is None or known.init_pid is None):
            verdict = "new" if known is None else "started"
            out.containers.append(Change(cid, new.name, verdict, None, new.init_pid, False, False))
    out.containers.sort(key=lambda c: (natural_key(c.name or ""), c.id))
    return out


def _side(topo: Topology) -> Side:
    return Side(topo.host.get("hostname"), topo.host.get("taken_at"))


def _init(c: Container) -> Process | None:
    return next((p for p in c.processes if p.pid == c.init_pid), None)


def _change(old: Container, new: Container | None) -> Change:
    name = (new.name if new else None) or old.name
    if new is None:
        return Change(old.id, name, "removed", old.init_pid, None, False, False)
    if new.init_pid is None:
        return Change(old.id, name, "stopped", old.init_pid, None, False, False)
    a, b = _init(old), _init(new)
    same = bool(a and b and a.same_process(b))
    # The kernel gives a freed namespace's inode number to the next one it makes (a restarted
    # container often gets its old numbers back): equal inodes prove the same namespaces only
    # for the same process, which holds them all along.
    same_ns = same and old.namespaces == new.namespaces
    verdict = "kept" if same and same_ns else "restarted"
    return Change(old.id, name, verdict, old.init_pid, new.init_pid, same, same_ns)


def daemons(before: Topology, after: Topology) -> list[DaemonChange]:
    """Each daemon that ended (`gone`) or started (`new`) between two snapshots of one host,
    by its identity (role and PID; a PID reused by another daemon of the same role within
    one burst is not told apart)."""
    was = {(d.role, d.pid): e.title for e in before.engines for d in e.daemons}
    now = {(d.role, d.pid): e.title for e in after.engines for d in e.daemons}
    out = [DaemonChange(role, pid, "gone", title) for (role, pid), title in was.items()
           if (role, pid) not in now]  # fmt: skip
    out += [DaemonChange(role, pid, "new", title) for (role, pid), title in now.items()
            if (role, pid) not in was]  # fmt: skip
    return sorted(out, key=lambda c: (c.verdict != "gone", c.engine, c.role, c.pid))


def missing_daemons(topo: Topology, seen: dict[str, set[str]]) -> dict[str, list[str]]:
    """Engine title -> the roles of daemons that its engine had in an earlier snapshot and has
    not now (dockerd down while its containerd and containers run on). `seen` remembers, by
    each daemon's address, the roles of the engine it was in; it is updated here. An engine is
    known again by any address it shares with an earlier one."""
    out: dict[str, list[str]] = {}
    for e in topo.engines:
        roles = {d.role for d in e.daemons}
        addresses = [d.address for d in e.daemons if d.address and d.address != "?"]
        expected = set().union(*(seen.get(a, set()) for a in addresses)) if addresses else set()
        gone = sorted(expected - roles)
        if gone:
            out[e.title] = gone
        for a in addresses:
            seen[a] = expected | roles
    return out
