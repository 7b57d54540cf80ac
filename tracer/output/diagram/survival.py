"""The `survive` diagram: the daemons and every container before and after a restart."""

from __future__ import annotations

import graphviz

from tracer.model.survival import DaemonPids, SurviveReport
from tracer.output.diagram.dot import FONT, NODE_STYLE, cluster, label

KEPT = {"label": "same process", "color": "#2b8a3e", "penwidth": "2"}
LOST = {"label": "lost", "color": "#c92a2a", "style": "dashed"}
LOST_NODE = {"fillcolor": "#ffe3e3", "color": "#c92a2a"}


def survival(report: SurviveReport) -> str:
    """DOT source: the daemons and every container's init and shim before (left) and after
    (right) the restart; a kept process is joined to itself by a green `same process` edge,
    and a lost one is red."""
    g = graphviz.Digraph("dtrace_tree_survive")
    heading = f"dtrace-tree survive: restart {report.daemon} of {report.engine}"
    outcome = f"verdict: {report.verdict}; down {report.downtime_ms} ms"
    g.attr("graph", label=label(heading, outcome, left=True), labelloc="t", labeljust="l")
    g.attr("graph", fontname=FONT, fontsize="16", rankdir="LR", newrank="true")
    g.attr("graph", nodesep="0.15", ranksep="1.2", bgcolor="white", pad="0.2")
    g.attr("node", shape="box", style="rounded,filled", fontname=FONT, fontsize="10")
    g.attr("edge", fontname=FONT, fontsize="9", arrowsize="0.7")
    rows = sorted(report.containers, key=lambda c: (str(c.name), c.id))
    sides: dict[str, DaemonPids | None] = {"before": report.before, "after": report.after}
    for side, daemons in sides.items():
        with g.subgraph(name=f"cluster_{side}") as s:
            cluster(s, label(side), fontsize="14", color="#495057", style="rounded")
            pids = daemons.by_role() if daemons else {}
            for kind in DaemonPids.ROLES:
                pid = pids.get(kind)
                text = label(kind, f"pid {pid}" if pid else "not running")
                s.node(f"{side}_{kind}", label=text, **NODE_STYLE.get(kind, NODE_STYLE["dockerd"]))
            for i, c in enumerate(rows):
                before = side == "before"
                pid = c.init_pid_before if before else c.init_pid_after
                shim = c.shim_pid_before if before else c.shim_pid_after
                text = label(
                    c.label,
                    f"init pid {pid}" if pid else "no process",
                    f"shim pid {shim}" if shim else "no shim",
                )
                lost = not before and not c.survived
                s.node(f"{side}_c{i}", label=text, **(LOST_NODE if lost else NODE_STYLE["init"]))
    for kind in DaemonPids.ROLES:
        how = "restarted" if report.daemon == kind else "kept"
        g.edge(f"before_{kind}", f"after_{kind}", label=label(how), color="#adb5bd", style="dashed")
    for i, c in enumerate(rows):
        edge = KEPT if c.survived else LOST
        g.edge(f"before_c{i}", f"after_c{i}", **{**edge, "label": label(edge["label"])})
    return g.source
