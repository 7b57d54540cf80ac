"""The `trace` diagram: each container's story as processes in time order.

One cluster per container: the engine's processes that worked on it (shim start, shim, runc
create / start / exec / kill / delete, runc init's stages, hooks, docker-proxy), each a node
with its role, PID, what it ran, when it was forked (ms since the trace began) and how long it
lived; a process that ended during the trace is drawn dashed (transient), one still running
solid. Edges are forks (runc init's stages hang from runc create: CLONE_PARENT), from the
daemons outside the clusters. The moment the container's init gets its program (the exec of
runc:[2:INIT]) is a node of its own, with the namespaces it got; so is each `docker exec`'s.
Nodes are written in time order. Labels go through `dot.label` (untrusted text made inert).
"""

from __future__ import annotations

import graphviz

from tracer.model.trace import Entry, Step, Story, Trace
from tracer.output.diagram.dot import FONT, PALETTE, cluster, label, wrapped

STYLE = {
    "engine": PALETTE["purple"],
    "runc": PALETTE["yellow"],
    "hook": PALETTE["teal"],
    "daemon": PALETTE["blue"] | {"penwidth": "2"},
    "entry": PALETTE["green"] | {"shape": "note"},
}
TRANSIENT = "rounded,filled,dashed"
RUNNING = "rounded,filled"


def story_diagram(t: Trace) -> str:
    """DOT source of every container's story in the trace."""
    r = t.recording
    g = graphviz.Digraph("dtrace_tree_trace")
    head = "dtrace-tree trace" + (f": {' '.join(r.command)}" if r.command else "")
    facts = (
        f"{r.duration_ns / 1e6:.0f} ms, {len(t.events)} events, {t.lost} lost; "
        "dashed: transient (ended during the trace), with its lifetime"
    )
    g.attr("graph", label=label(*wrapped(head, 100, 2), facts, left=True), labelloc="t")
    g.attr("graph", labeljust="l", fontname=FONT, fontsize="14", rankdir="LR", newrank="true")
    g.attr("graph", nodesep="0.15", ranksep="0.35", bgcolor="white", pad="0.2")
    g.attr("node", shape="box", style=RUNNING, fontname=FONT, fontsize="9")
    g.attr("edge", fontname=FONT, fontsize="8", arrowsize="0.6", color="#666666")
    roles = {(ev.pid, ev.t_ns): ev.parent_role for ev in t.events if ev.event == "fork"}
    outside: dict[int, str] = {}
    if not t.stories:
        g.node("empty", label=label("no container was created, started or changed"))
    for i, story in enumerate(t.stories):
        _story(g, i, story, roles, outside)
    for pid, role in sorted(outside.items()):
        g.node(f"x{pid}", label=label(role or "?", f"pid {pid}"), **STYLE["daemon"])
    return g.source


def _story(
    g: graphviz.Digraph,
    i: int,
    s: Story,
    roles: dict[tuple[int, int], str | None],
    outside: dict[int, str],
) -> None:
    steps = sorted(s.steps, key=lambda st: (st.t_ns, st.pid))
    with g.subgraph(name=f"cluster_{i}") as c:
        title = label(s.name or "(name unknown)", s.id[:12], " -> ".join(s.what))
        cluster(c, title, style="rounded", color="#495057")
        for st in steps:
            c.node(_node(st), label=_step_label(st), **_step_style(st))
        for kind, entry in [("init", s.init)] + [("exec", e) for e in s.execs]:
            if entry is not None:
                c.node(_entry_node(entry), label=_entry_label(kind, entry), **STYLE["entry"])
    for st in steps:
        if st.parent is None or st.before:
            continue
        parent = _at(steps, st.parent, st.t_ns)
        if parent is None:
            tail = f"x{st.parent}"
            outside.setdefault(st.parent, roles.get((st.pid, st.t_ns)) or "")
        else:
            tail = _node(parent)
        g.edge(tail, _node(st), label=label(f"fork +{st.t_ns / 1e6:.1f}"))
    for entry in [s.init, *s.execs]:
        if entry is None:
            continue
        stage = _at(steps, entry.pid, entry.t_ns)
        if stage is not None:
            g.edge(_node(stage), _entry_node(entry), label=label("exec"), color="#2b8a3e")


def _at(steps: list[Step], pid: int, t_ns: int) -> Step | None:
    """The step of that pid alive at t_ns (a PID is reused: never the wrong one)."""
    for st in steps:
        began = st.before or st.t_ns <= t_ns
        if st.pid == pid and began and (st.end_ns is None or st.end_ns >= t_ns):
            return st
    return None


def _node(st: Step) -> str:
    return f"p{int(st.pid)}_{int(st.t_ns)}"


def _entry_node(e: Entry) -> str:
    return f"e{int(e.pid)}_{int(e.t_ns)}"


def _step_label(st: Step) -> str:
    what = st.detail or " ".join(st.cmdline)
    when = "before the trace" if st.before else f"+{st.t_ns / 1e6:.1f} ms"
    if st.lifetime_ns is not None:
        when += f", lived {st.lifetime_ns / 1e6:.1f} ms"
    if st.exited:
        how = f"signal {st.signal}" if st.signal else f"exit {st.exit_code}"
        when += f", {how}" + (f" at +{(st.end_ns or 0) / 1e6:.1f} ms" if st.before else "")
    else:
        when += ", running"
    return label(f"{st.role} {st.pid}", *wrapped(what, 36, 2), when)


def _step_style(st: Step) -> dict[str, str]:
    kind = "runc" if st.role.startswith("runc") else "hook" if st.role == "hook" else "engine"
    return {**STYLE[kind], "style": TRANSIENT if st.exited else RUNNING}


def _entry_label(kind: str, e: Entry) -> str:
    groups: dict[str, list[str]] = {}
    for kind_, how in sorted((e.ns_change or {}).items()):
        if "_for_" not in kind_:
            groups.setdefault(how, []).append(kind_)
    when = f"{kind} {e.pid} execs at +{e.t_ns / 1e6:.1f} ms"
    lines = [when, *wrapped(" ".join(e.cmdline), 36, 2)]
    for how, kinds in sorted(groups.items(), key=lambda g: g[0] != "new"):
        who = "new" if how == "new" else f"joined {how.removeprefix('joined:')[:12]}:"
        lines.append(f"{who} {' '.join(kinds)}")
    if e.ns_change is None:
        lines.append("namespaces not read")
    return label(*lines)
