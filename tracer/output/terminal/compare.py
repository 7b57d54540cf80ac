"""`diff` on a terminal: each container's fate between two snapshots, then a summary."""

from __future__ import annotations

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table

from tracer.model.compare import VERDICTS, Comparison
from tracer.output.terminal.style import STYLE, text

_STYLE = {"kept": "green", "restarted": "bold red", "stopped": "bold red", "removed": "bold red",
          "started": "yellow", "new": "yellow"}  # fmt: skip


def comparison(doc: Comparison) -> RenderableType:
    b, a = doc.before, doc.after
    head = text(
        ("diff: ", "bold"),
        f"{b.hostname or '?'} at {b.taken_at or '?'} -> {a.hostname or '?'} at {a.taken_at or '?'}",
    )
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for col in ("container", "init pid", "start time", "namespaces", ""):
        table.add_column(col, no_wrap=col != "container", overflow="fold")
    for c in doc.containers:
        pids = f"{c.init_pid_before or '-'} -> {c.init_pid_after or '-'}"
        same = "same" if c.start_time_same else "-"
        ns = "same" if c.namespaces_same else "-"
        table.add_row(
            text((c.label, STYLE["name"])), pids, same, ns, text((c.verdict, _STYLE[c.verdict]))
        )
    counts = ", ".join(f"{doc.count(v)} {v}" for v in VERDICTS if doc.count(v))
    verdict = (
        ("every container kept running, unchanged", "bold green")
        if doc.all_kept
        else ("not every container kept running", "bold red")
    )
    parts: list[RenderableType] = [head, table, text(f"{counts or 'no containers'}: ", verdict)]
    parts += [text(("note: " + n, STYLE["dim"])) for n in doc.notes]
    return Group(*parts)
