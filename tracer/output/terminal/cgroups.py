"""`cgroup` on a terminal: where, the limits and usage with their files, the processes."""

from __future__ import annotations

import os

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from tracer.model.cgroups import NO_LIMIT, CgroupReport
from tracer.output.terminal.style import STYLE, cmdline, text
from tracer.output.units import size

# (field, label, how to show the value)
LIMIT_ROWS = (
    ("memory_bytes", "memory", "bytes"),
    ("memory_swap_bytes", "memory + swap", "bytes"),
    ("memory_reservation_bytes", "memory reservation", "bytes"),
    ("cpus", "cpus (quota / period)", "cpus"),
    ("cpu_shares", "cpu shares", "plain"),
    ("cpu_weight", "cpu weight", "plain"),
    ("cpuset_cpus", "cpuset", "plain"),
    ("pids_max", "pids", "plain"),
)
USAGE_ROWS = (
    ("memory_bytes", "memory", "bytes"),
    ("pids", "pids", "plain"),
    ("cpu_ns", "cpu time", "ns"),
    ("cpu_throttled_periods", "cpu throttled periods", "plain"),
    ("cpu_throttled_ns", "cpu throttled time", "ns"),
    ("io_read_bytes", "io read", "bytes"),
    ("io_write_bytes", "io written", "bytes"),
)


def cgroup(doc: CgroupReport) -> RenderableType:
    c = doc.container
    mode = f" ({doc.mode})" if doc.mode else ""
    parts: list[RenderableType] = [
        text(
            (c.name or "(name unknown)", STYLE["name"]),
            f" {c.id[:12]}  init pid {c.init_pid}",
        ),
        text(
            "cgroup ",
            (f"v{doc.version}" if doc.version else "v?", "bold"),
            mode,
            "  driver ",
            (doc.driver, "bold"),
            "  cgroupns ",
            (doc.cgroupns or "?", "bold"),
        ),
    ]
    if doc.driver == "none":  # no cgroup of its own: nothing to tabulate (the notes say why)
        parts.append(text(("no cgroup of its own: no limits, no usage (see the notes)", "bold")))
        return Group(*parts)
    parts += [
        _paths(doc),
        _values(doc, "limits", LIMIT_ROWS),
        _io(doc),
        _values(doc, "usage", USAGE_ROWS),
        _processes(doc),
    ]
    return Group(*parts)


def _paths(doc: CgroupReport) -> Table:
    table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 2, 0, 0))
    table.add_column(no_wrap=True, style=STYLE["dim"])
    table.add_column(overflow="fold")
    for key, where in doc.paths.items():
        table.add_row(text(key), text(where))
    return table


def _table(title: str) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column(title, no_wrap=True, min_width=22)
    table.add_column("value", overflow="fold", max_width=64)
    table.add_column("from", overflow="fold", style=STYLE["dim"])
    return table


def _values(doc: CgroupReport, part: str, rows: tuple[tuple[str, str, str], ...]) -> Table:
    table = _table(part)
    values = doc.limits if part == "limits" else doc.usage
    for field, label, how in rows:
        key = f"{part}.{field}"
        value = values.get(field)
        if value is None:
            why = doc.why_null.get(key, "not available")
            if why.startswith("not available: cgroup v") and "instead" in why:
                continue  # cpu shares on v2, cpu weight on v1: nothing to say
            shown = text((why, "" if why.startswith(NO_LIMIT) else "red"))
            table.add_row(label, shown, text(_file(doc.sources.get(key))))
            continue
        table.add_row(label, _value(field, value, how, doc), text(_file(doc.sources.get(key))))
    return table


def _value(field: str, value: int | float | str, how: str, doc: CgroupReport) -> Text:
    if how == "bytes" and isinstance(value, int):
        shown = f"{size(value)} ({value})" if value >= 1024 else f"{value} B"
        memory = doc.limits.get("memory_bytes")
        if field == "memory_swap_bytes" and isinstance(memory, int) and value == 2 * memory:
            shown += "  Docker's default: twice --memory"
        return text(shown)
    if how == "ns" and isinstance(value, int):
        return text(f"{value / 1e9:.3f} s" if value >= 10**9 else f"{value / 1e6:.1f} ms")
    if how == "cpus":
        quota, period = doc.limits.get("cpu_quota_us"), doc.limits.get("cpu_period_us")
        return text(f"{value} ({quota} / {period} us)")
    return text(str(value))


def _file(path: str | None) -> str:
    """The file's name: the directories are listed above."""
    if not path:
        return ""
    if " + " in path or " / " in path:  # two files combined
        first, op, rest = path.partition(" + " if " + " in path else " / ")
        return f"{os.path.basename(first)}{op}{os.path.basename(rest)}"
    return os.path.basename(path)


def _io(doc: CgroupReport) -> RenderableType:
    if not doc.io_limits:
        return text(("io limits: none set", STYLE["dim"]))
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for name in ("io limits: device", "read bps", "write bps", "read iops", "write iops"):
        table.add_column(name, no_wrap=True)
    for rule in doc.io_limits:
        cells = [rule.read_bps, rule.write_bps, rule.read_iops, rule.write_iops]
        table.add_row(rule.device, *(str(v) if v is not None else "-" for v in cells))
    return table


def _processes(doc: CgroupReport) -> RenderableType:
    title = text(
        ("processes in the cgroup", "bold"),
        ("  (docker exec joins the container's cgroup as well as its namespaces)", "dim"),
    )
    table = Table(box=None, pad_edge=False, padding=(0, 2, 0, 2), show_header=False)
    table.add_column(no_wrap=True, justify="right")
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    for p in doc.processes:
        where = f"  (in {p.cgroup})" if p.cgroup else ""
        table.add_row(
            str(p.pid),
            text((p.role, STYLE.get(p.role, ""))),
            text(cmdline(p.cmdline, 80) + where if p.cmdline else "?" + where),
        )
    if not doc.processes:
        table.add_row(text(("none", STYLE["dim"])), "", "")
    return Group(title, table)
