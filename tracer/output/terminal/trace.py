"""`trace` on a terminal: a timeline of the processes, then each container's story.

The timeline has one line per process, at its fork (milliseconds since the trace began),
indented under the process that forked it, with its role, PID, what it ran, and how long it
lived and how it ended; then a line for each later exec, name change, and the end of a process
that existed before the trace. Every command line is escaped (`style.text`).
"""

from __future__ import annotations

from collections.abc import Mapping

from rich.console import Group, RenderableType
from rich.text import Text

from tracer.model.trace import Entry, Event, Step, Story, Trace
from tracer.output.terminal.style import cmdline, text

ROLE_STYLE = {
    "cli": "bold", "dockerd": "bold blue", "dockerd-helper": "blue", "containerd": "bold cyan",
    "shim-start": "magenta", "shim": "bold magenta", "shim-delete": "magenta",
    "runc-create": "yellow", "runc-init": "yellow", "runc-start": "yellow",
    "runc-exec": "yellow", "runc-kill": "red", "runc-delete": "yellow", "runc": "yellow",
    "hook": "cyan", "docker-init": "bold green", "container-init": "bold green",
    "container-process": "green", "exec-process": "bold yellow", "docker-proxy": "blue",
    "other": "dim",
}  # fmt: skip
DIM = "dim"
ROLE_WIDTH = 18  # the longest role, container-process, and a space
LIVED_WIDTH = 10
END_WIDTH = 9
CMD_WIDTH = 100


def render(t: Trace) -> RenderableType:
    parts: list[RenderableType] = list(_header(t))
    if t.lost or t.recording.loss.overflows:
        parts.append(_loss(t))
    if not t.events:
        r = t.recording
        what = "no process started, ran or ended" if r.all else "no process concerning containers"
        more = "" if r.all else "; --all shows every process"
        facts = f"({r.received} events from the kernel, {r.threads} of threads{more})"
        parts.append(text((f"{what} in {r.duration_ns / 1e9:.2f} s ", "bold"), (facts, DIM)))
    else:
        head = "      ms  " + "role".ljust(ROLE_WIDTH) + "pid".ljust(8)
        head += "lived".rjust(LIVED_WIDTH) + "  " + "end".ljust(END_WIDTH) + "  what"
        parts.append(text((head, DIM)))
        for line in timeline(t.events):
            line.no_wrap, line.overflow = True, "ellipsis"  # one line per event, always
            parts.append(line)
    parts.append(text(""))
    if t.stories:
        parts.append(text(("containers", "bold")))
        for story in t.stories:
            parts.extend(_story(story))
    else:
        parts.append(text(("no container was created, started, entered or stopped", DIM)))
    return Group(*parts)


def _header(t: Trace) -> tuple[Text, Text]:
    r = t.recording
    if r.command:
        what = f"trace of `{cmdline(r.command)}`"
        if r.interrupted:
            what += " (interrupted)"
        elif r.command_status is not None:
            what += f" ({_how(*r.command_end)})"
    else:
        what = "trace" + (" (stopped by Ctrl-C)" if r.interrupted else "")
    skipped = "" if r.all else f", {r.skipped} not concerning containers"
    facts = (
        f"{r.duration_ns / 1e9:.2f} s, {len(t.events)} events of {t.processes} "
        f"process{'' if t.processes == 1 else 'es'} "
        f"({r.received} from the kernel, {r.threads} thread events folded{skipped}), "
        f"{t.lost} lost"
    )
    return text((what, "bold")), text((facts, DIM))


def _loss(t: Trace) -> Text:
    loss = t.recording.loss
    return text(
        (f"LOST at least {t.lost} events", "bold red"),
        f" (sequence gaps {loss.gaps}, buffer overflows {loss.overflows}, "
        f"socket drops {loss.drops if loss.drops is not None else '?'}): this trace is "
        f"incomplete; a larger --buffer (now {t.recording.buffer} bytes) holds more",
    )


def _how(code: int | None, signal: int | None) -> str:
    return f"signal {signal}" if signal else f"exit {code}"


class _Row:
    """The events of one process (pid, fork time), and which of them its fork's line shows."""

    def __init__(self) -> None:
        self.fork: Event | None = None
        self.execs: list[Event] = []
        self.comms: list[Event] = []
        self.exit: Event | None = None
        self.merged: Event | None = None  # the exec shown on the fork's line
        self.named: list[Event] = []  # the renames shown there (the last one's name)


def timeline(events: list[Event]) -> list[Text]:
    """One line per process forked during the trace (with how long it lived and how it
    ended), plus its later execs and renames, and the end of each process that was there
    before the trace."""
    procs: dict[tuple[int, int | None], _Row] = {}
    for ev in events:
        p = procs.setdefault((ev.pid, ev.born_ns), _Row())
        if ev.event == "fork":
            p.fork = ev
        elif ev.event == "exec":
            p.execs.append(ev)
        elif ev.event == "comm":
            p.comms.append(ev)
        else:
            p.exit = ev
    for p in procs.values():
        if p.fork is None:
            continue
        first = p.execs[0] if p.execs else None
        if first is not None and first.role == p.fork.role:
            p.merged = first
        else:  # runc:[1:CHILD], runc:[2:INIT]: the name it took before it exec'd, if ever
            limit = first.t_ns if first is not None else None
            p.named = [c for c in p.comms if limit is None or c.t_ns <= limit]
    depth: dict[tuple[int, int | None], int] = {}
    forked: dict[int, tuple[int, int | None]] = {}  # pid -> its process forked in the trace
    out: list[Text] = []
    for ev in events:
        key = (ev.pid, ev.born_ns)
        p = procs[key]
        level = depth.get(key, 0)
        if ev.event == "fork":
            parent = forked.get(ev.ppid)
            level = depth[key] = depth[parent] + 1 if parent in depth else 0
            forked[ev.pid] = key
            out.append(_start(ev, p, level))
        elif ev.event == "exec" and ev is not p.merged:
            out.append(_exec(ev, level))
        elif ev.event == "comm" and ev not in p.named:
            out.append(_line(ev, level, [("named ", DIM), (ev.comm, "")]))
        elif ev.event == "exit" and p.fork is None:
            out.append(_line(ev, level, [("exit (it was there before the trace)", DIM)], ev))
    return out


def _start(ev: Event, p: _Row, depth: int) -> Text:
    if p.merged is not None:
        what = _cmd(p.merged, short=bool(p.merged.ns_change))
    elif p.named:
        what = [(p.named[-1].comm, "")]
    else:
        what = [("fork of ", DIM), *_cmd(ev)]
    end = p.exit
    line = _prefix(ev, depth, _lifetime(end) if end else "", end)
    if ev.parent_role not in (None, "other") and depth == 0:
        line.append(f"({ev.parent_role} {ev.ppid}) ", style=DIM)
    for part in what:
        line.append_text(text(part))
    if p.merged is not None:
        _namespaces(line, p.merged)
    return line


def _exec(ev: Event, depth: int) -> Text:
    line = _prefix(ev, depth)
    line.append("exec ", style=DIM)
    for part in _cmd(ev, short=bool(ev.ns_change)):
        line.append_text(text(part))
    _namespaces(line, ev)
    return line


def _line(ev: Event, depth: int, parts: list[tuple[str, str]], end: Event | None = None) -> Text:
    line = _prefix(ev, depth, "", end)
    for part in parts:
        line.append_text(text(part))
    return line


def _prefix(ev: Event, depth: int, lived: str = "", end: Event | None = None) -> Text:
    """Time, role, PID, how long it lived and how it ended (for the line of its fork, or of
    its exit), then the indentation of its depth in the trace."""
    if end is not None:
        how: tuple[str, str] = (_end(end).ljust(END_WIDTH), _end_style(end))
    else:
        how = ("running".ljust(END_WIDTH) if ev.event == "fork" else " " * END_WIDTH, DIM)
    return text(
        (f"{ev.t_ns / 1e6:8.1f}  ", DIM),
        (ev.role.ljust(ROLE_WIDTH), ROLE_STYLE.get(ev.role, "")),
        f"{ev.pid:<8}",
        (lived.rjust(LIVED_WIDTH) + "  ", DIM),
        how,
        "  " + "  " * min(depth, 12),
    )


def _cmd(ev: Event, short: bool = False) -> list[tuple[str, str]]:
    if ev.cmdline:
        return [(cmdline(ev.cmdline, CMD_WIDTH // 2 if short else CMD_WIDTH), "")]
    return [(f"[{ev.comm or '?'}]", ""), (f" (argv {ev.missing or 'not read'})", DIM)]


def _namespaces(line: Text, ev: Event) -> None:
    if ev.ns_change:
        line.append_text(text(("  " + ns_words(ev.ns_change), "cyan")))
    if ev.event == "exec" and ev.role in ("container-init", "docker-init") and ev.ppid:
        line.append(f"  (ppid now {ev.ppid})", style=DIM)


def ns_words(change: Mapping[str, str]) -> str:
    """{"mnt": "new", "net": "joined:<id>"} as `new ipc mnt ...; joined <id12>: net`
    (pid_for_children left out where it goes with pid, time_for_children with time)."""
    groups: dict[str, list[str]] = {}
    for kind, how in sorted(change.items()):
        base = kind.removesuffix("_for_children")
        if base != kind and change.get(base) == how:
            continue
        groups.setdefault(how, []).append(kind)
    words = [f"new {' '.join(groups.pop('new'))}"] if "new" in groups else []
    for how, kinds in groups.items():
        words.append(f"joined {how.removeprefix('joined:')[:12]}: {' '.join(kinds)}")
    return "; ".join(words) or "same namespaces as its parent"


def _lifetime(ev: Event) -> str:
    return f"{ev.lifetime_ns / 1e6:.1f} ms" if ev.lifetime_ns is not None else "?"


def _end(ev: Event) -> str:
    return _how(ev.exit_code, ev.signal)


def _end_style(ev: Event) -> str:
    return "red" if ev.signal or ev.exit_code else "green"


def _end_style_of(step: Step) -> str:
    return "red" if step.signal or step.exit_code else "green"


# -- stories ------------------------------------------------------------------------------------

LABEL = 11  # width of a story line's label


def _story(s: Story) -> list[Text]:
    title = s.name or "(name unknown)"
    lines = [text(("  " + title, "bold"), (f" {s.id[:12]}", DIM), ": " + " -> ".join(s.what))]
    engine = [st for st in s.steps if st.role not in ("runc-init", "hook")]
    if engine:
        lines.append(_steps("engine", engine, " -> ", named=False))
    by_runc: dict[int | None, list[Step]] = {}
    for st in s.steps:
        if st.role == "runc-init":
            by_runc.setdefault(st.parent, []).append(st)
    who = {st.pid: st.role for st in s.steps}
    for parent, stages in by_runc.items():
        of = f"{who.get(parent, 'runc')} {parent}" if parent else None
        lines.append(_steps("runc init", stages, ", ", named=True, of=of))
    hooks = [st for st in s.steps if st.role == "hook"]
    if hooks:
        lines.append(_steps("hooks", hooks, ", ", named=True))
    if s.init is not None:
        lines.append(_entry("init", s.init, s))
        lines.append(_spaces(s.init))
    for e in s.execs:
        lines.append(_entry("exec", e, s))
    if s.init_exit is not None:
        end = s.init_exit
        how = _how(end.exit_code, end.signal)
        at = f"{end.pid} at {(end.end_ns or 0) / 1e6:.1f} ms: "
        lines.append(_label("init end").append_text(text(at, (how, _end_style_of(end)))))
    return lines


def _label(name: str) -> Text:
    return text(("    " + name.ljust(LABEL), DIM))


def _steps(name: str, steps: list[Step], sep: str, named: bool, of: str | None = None) -> Text:
    line = _label(name)
    for i, step in enumerate(steps):
        if i:
            line.append(sep, style=DIM)
        if named:
            shown = step.detail or cmdline(step.cmdline, 40)
            line.append_text(text(f"{step.pid} ", (shown, "")))
        else:
            line.append_text(text((step.role, ROLE_STYLE.get(step.role, "")), f" {step.pid}"))
        shows = step.role in ("runc", "runc-kill", "docker-proxy")
        facts = [step.detail] if step.detail and shows and not named else []
        if step.lifetime_ns is not None:
            facts.append(f"{step.lifetime_ns / 1e6:.1f} ms")
        if step.exited and (step.exit_code or step.signal):
            facts.append(_how(step.exit_code, step.signal))
        elif step.exited and step.lifetime_ns is None:
            facts.append(f"ended at {(step.end_ns or 0) / 1e6:.1f} ms")
        if facts:
            line.append_text(text((f" ({', '.join(facts)})", DIM)))
    if of is not None:
        line.append(f"  (forked by {of})", style=DIM)
    return line


def _entry(kind: str, e: Entry, s: Story) -> Text:
    line = _label(kind).append_text(
        text(
            f"{e.pid} ", ("`" + cmdline(e.cmdline, 60) + "`", "bold"), f" at {e.t_ns / 1e6:.1f} ms"
        )
    )
    if kind == "init" and s.started_in_ns is not None:
        line.append(f", {s.started_in_ns / 1e6:.1f} ms after the engine began")
    if e.parent_at_exec and e.parent_at_exec == s.shim_pid:
        line.append(f"; its parent is now the shim {s.shim_pid}", style=DIM)
    if kind == "exec" and e.ns_change is not None:
        line.append_text(text(("; " + ns_words(e.ns_change), "cyan")))
    return line


def _spaces(e: Entry) -> Text:
    line = _label("namespaces")
    if e.ns_change is None:
        return line.append("not read (it ended first)", style=DIM)
    same = sorted(k for k in (e.namespaces or {}) if k not in e.ns_change and "_for_" not in k)
    line.append_text(text((ns_words(e.ns_change), "cyan")))
    if same:
        line.append(f"; shared with runc (the host's): {' '.join(same)}", style=DIM)
    return line
