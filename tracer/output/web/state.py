"""What the page is sent (pure), made from the model objects rather than from `show --json`
(whose schema may grow): the state of one look at the host, and one timeline entry per burst
of events.

Every string that comes from the host (names, images, command lines) is untrusted: it passes
through `for_terminal` here (control characters and bidi overrides made visible, so that no
text can reorder a line of the page either), is encoded as valid UTF-8 JSON by the hub, and
the page puts it in the DOM as text only (textContent, never innerHTML).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import Any

from tracer.model.compare import Comparison, DaemonChange
from tracer.model.topology import Container, Daemon, Dockerd, Topology, natural_key
from tracer.model.trace import Event, Trace
from tracer.untrusted import for_terminal
from tracer.views.lifecycle import is_probe
from tracer.views.selection import counts

SCHEMA = "dtrace-tree/serve/1"
CMD_CHARS = 300  # a command line on the page: cut here (the API has it whole)
EVENTS_SHOWN = 80  # events of one burst listed on the page; the rest counted
TIMELINE_ROLES_LEFT_OUT = {"other"}  # what the recorder kept but no role explains
PROBE_ROLES = {"dockerd-helper", "runc"}  # what dockerd's version probes are taken for


def text(value: object, limit: int = CMD_CHARS) -> str:
    out = for_terminal(str(value))
    return out if len(out) <= limit else out[: limit - 1] + "…"


def command(argv: Sequence[str] | None) -> str:
    return text(" ".join(argv)) if argv else ""


# -- one look at the host ---------------------------------------------------------------------


def state(
    topo: Topology,
    version: int,
    took: float,
    missing: Mapping[str, list[str]],
    feed: Mapping[str, Any],
) -> dict[str, Any]:
    """The page's picture of one look: engines and their daemons (and which are down),
    containers (running ones, as `show` draws them) with every PID that belongs to them."""
    where: dict[int, int] = {}
    engines = []
    for i, e in enumerate(topo.engines):
        where.update({id(c): i for c in e.containers})
        engines.append(
            {
                "title": text(e.title),
                "runtime": e.runtime,
                "daemons": [_daemon(d) for d in e.daemons],
                "down": list(missing.get(e.title, [])),
                "counts": vars(counts(e)),
                "notes": [text(n) for n in e.notes],
            }
        )
    running = [c for c in topo.containers() if c.running]
    running.sort(key=lambda c: (natural_key(c.name or ""), c.id))
    host = topo.host or {}
    return {
        "schema": SCHEMA,
        "version": version,
        "hostname": text(host.get("hostname") or "?"),
        "taken_at": host.get("taken_at"),
        "took_ms": round(took * 1000),
        "engines": engines,
        "containers": [_container(c, where.get(id(c))) for c in running],
        "notes": [text(n) for n in topo.notes],
        "feed": dict(feed),
    }


def _daemon(d: Daemon) -> dict[str, Any]:
    out: dict[str, Any] = {
        "role": text(d.role),
        "pid": d.pid,
        "program": text(PurePath(d.cmdline[0]).name if d.cmdline else d.role),
        "address": text(d.address) if d.address else None,
        "api": None,
    }
    if isinstance(d, Dockerd):
        out["api"] = "answers" if d.reachable else f"unreachable: {text(d.api_error or '?')}"
        out["live_restore"] = d.live_restore
    return out


def _container(c: Container, engine: int | None) -> dict[str, Any]:
    holder = getattr(c, "monitor", None) or c.shim  # the shim (or conmon) holding it
    pids = [p.pid for p in c.processes] + [p.pid for p in c.proxies]
    pids += [holder.pid] if holder is not None else []
    return {
        "id": c.id,
        "short_id": c.short_id,
        "name": text(c.name) if c.name else None,
        "label": text(c.label),
        "image": text(c.image) if c.image else None,
        "state": text(c.state),
        "engine": engine,
        "init_pid": c.init_pid,
        "holder_pid": holder.pid if holder is not None else None,
        "processes": len(c.processes),
        "pids": sorted(set(pids)),
        "ports": [
            text(f"{p.proto} {p.host_address} -> {p.container_port}")
            for p in sorted(c.proxies, key=lambda p: p.pid)
        ],
    }


# -- one burst of events ----------------------------------------------------------------------


def timeline(
    trace: Trace | None,
    changes: Comparison,
    daemons: Sequence[DaemonChange],
    epoch: float,
) -> dict[str, Any] | None:
    """The timeline entry of one burst: the story of each container it touched (what happened,
    in order), what changed between the looks before and after it, and its events (dockerd's
    version probes left out). epoch: the wall-clock time (s) of the trace's t = 0. None when
    nothing is left to tell."""
    events = _told(trace.events) if trace is not None else []
    stories = []
    for s in trace.stories if trace is not None else []:
        if not s.what and s.init is None and not s.execs:
            continue
        stories.append(
            {
                "id": s.id,
                "label": text(s.label),
                "what": [text(w) for w in s.what],
                "started_ms": None if s.started_in_ns is None else s.started_in_ns / 1e6,
                "init": command(s.init.cmdline) if s.init else None,
                "execs": [command(e.cmdline) for e in s.execs],
            }
        )
    changed = [
        {
            "verdict": c.verdict,
            "id": c.id,
            "label": text(c.label),
            "init_before": c.init_pid_before,
            "init_after": c.init_pid_after,
        }
        for c in changes.containers
        if c.verdict != "kept"
    ]
    gone = [
        {"role": d.role, "pid": d.pid, "verdict": d.verdict, "engine": text(d.engine)}
        for d in daemons
    ]
    if not (events or stories or changed or gone):
        return None
    labels = {cid: k.name for cid, k in trace.recording.containers.items()} if trace else {}
    first = events[0].t_ns if events else None
    return {
        "at": round((epoch + first / 1e9) * 1000) if first is not None else None,
        "stories": stories,
        "changes": changed,
        "daemons": gone,
        "events": [_event(ev, epoch, labels) for ev in events[:EVENTS_SHOWN]],
        "more": max(0, len(events) - EVENTS_SHOWN),
        "lost": trace.lost if trace is not None else 0,
    }


def _told(events: Sequence[Event]) -> list[Event]:
    """The events worth a line: not dockerd's version probes (known by their argv, or, when it
    was gone before it could be read, as a helper of no container whose argv was never read),
    not what no role explains, not renames."""
    probes = {ev.pid for ev in events if ev.event == "exec" and is_probe(ev.cmdline)}
    execs: dict[int, list[Event]] = {}
    for ev in events:
        if ev.event == "exec":
            execs.setdefault(ev.pid, []).append(ev)
    for pid, runs in execs.items():
        if all(
            ev.cmdline is None and ev.container is None and ev.role in PROBE_ROLES for ev in runs
        ):
            probes.add(pid)
    return [
        ev
        for ev in events
        if ev.pid not in probes and ev.role not in TIMELINE_ROLES_LEFT_OUT and ev.event != "comm"
    ]


def _event(ev: Event, epoch: float, labels: Mapping[str, str | None]) -> dict[str, Any]:
    if ev.event == "exit":
        what = f"signal {ev.signal}" if ev.signal else f"exit {ev.exit_code}"
        if ev.lifetime_ns is not None:
            what += f" after {ev.lifetime_ns / 1e6:.1f} ms"
    elif ev.event == "fork":
        what = f"forked by {ev.ppid}"
    else:
        what = command(ev.cmdline) or f"[{text(ev.comm)}]"
    return {
        "at": round((epoch + ev.t_ns / 1e9) * 1000, 1),
        "event": ev.event,
        "pid": ev.pid,
        "role": ev.role,
        "container": ev.container[:12] if ev.container else None,
        "label": text(labels.get(ev.container) or ev.container[:12]) if ev.container else None,
        "what": what,
    }


def daemon_event(role: str, pid: int, what: str, at: float, detail: str | None = None) -> dict:
    """A daemon started or ended, told at once from the kernel's event (before the next look
    at the host): what the page's indicator shows while dockerd is down."""
    return {"role": role, "pid": pid, "what": what, "at": round(at * 1000), "detail": detail}
