"""`survive` on a terminal: the restart, the daemon-down view, every container's fate."""

from __future__ import annotations

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table

from tracer.model.survival import SurviveReport
from tracer.output.terminal.style import ON_OFF, STYLE, text


def report(r: SurviveReport) -> RenderableType:
    """The before/after table and the verdict of a restart."""
    parts: list[RenderableType] = [
        text(
            ("survive: ", "bold"),
            f"restart {r.daemon} of {r.engine} (live-restore {ON_OFF[r.live_restore]})",
        )
    ]
    if r.restart:
        b, a = r.before, r.after
        parts.append(
            text(
                f"dockerd {b.dockerd_pid} -> {a.dockerd_pid if a else None}   "
                f"containerd {b.containerd_pid} -> {a.containerd_pid if a else None}   "
                f"(restarted {r.restart.how})"
            )
        )
        parts.append(
            text(
                f"{r.daemon} was down {r.downtime_ms} ms; "
                f"the API answered again {r.api_back_ms} ms after the stop request"
            )
        )
    if r.during:
        during = r.during

        def pid(value: int | None) -> str:
            return f"pid {value}" if value else "missing"

        parts.append(
            text(
                ("while it was down: ", STYLE["dim"]),
                f"dockerd {pid(during.dockerd_pid)}, "
                f"containerd {pid(during.containerd_pid)}, "
                f"{during.containers_running} containers running under shims "
                f"{', '.join(map(str, during.shims))}",
            )
        )
    parts.append(_table(r))
    for p in r.ports:
        parts.append(text(f"published port {p.port} refused connections for {p.refused_ms} ms"))
    for line in r.notes:
        parts.append(text(("note: " + line, STYLE["dim"])))
    parts.append(text(_verdict(r)))
    return Group(*parts)


def _table(r: SurviveReport) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    refused = r.verdict == "refused"
    cols: tuple[str, ...]
    if refused:
        cols = ("container", "init pid", "shim", "policy", "")
    else:
        cols = ("container", "init pid", "start time", "namespaces", "shim", "policy", "")
    for col in cols:
        table.add_column(col, no_wrap=True)
    for c in r.containers:
        name = text((c.label, STYLE["name"]))
        policy = text(c.restart_policy or "?")
        row: list[RenderableType]
        if refused:
            would = text(("would stop", "yellow"))
            row = [name, str(c.init_pid_before), str(c.shim_pid_before), policy, would]
        else:
            after = c.init_pid_after
            row = [
                name,
                f"{c.init_pid_before} -> {after if after is not None else 'gone'}",
                "same" if c.start_time_same else "-",
                "same" if c.namespaces_same else "-",
                f"{c.shim_pid_before} -> {c.shim_pid_after or 'gone'}",
                policy,
                text(("survived", "green") if c.survived else ("LOST", "bold red")),
            ]
        table.add_row(*row)
    return table


def _verdict(r: SurviveReport) -> tuple[str, str]:
    if r.verdict == "survived":
        return (
            "verdict: survived - every container kept its PID, start time and namespaces",
            "bold green",
        )
    if r.verdict == "lost":
        lost = ", ".join(c.label for c in r.containers if not c.survived)
        return "verdict: lost - " + lost, "bold red"
    return "verdict: refused - nothing was restarted", "bold yellow"
