"""From a `Recording` to a `Trace` (pure): every event with its role and container, the
namespaces a process got, and the story of each container.

Processes come from tracer/views/lives.py, their roles and containers from
tracer/views/roles.py. Here:
- each event is told what its process was doing (the image it ran at that moment), its
  parent (at fork; in /proc at exec, where a re-parented runc:[2:INIT] already names the shim;
  at exit, the kernel's), its lifetime and how it ended (the wait status: exit code or signal);
- at each exec of a container's process and of runc init, its namespace inodes, and which of
  them differ from those of the process that forked it: `new` (it was cloned or unshared into
  them) or `joined:<id>` (the inode is that of a container's init: setns, as `docker exec` and
  `--network container:X` do);
- a story per container: the engine's processes in order with their lifetimes, what happened
  (create, start, exec, kill 15, delete, ...), the init's exec, the namespaces it got, and
  how long from the engine's first process to the init running its program;
- for a live feed (`serve`), `Bursts`: when the events say the host changed, and when a burst
  of them is over, so that the host is looked at once per burst.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from tracer.kernel.procfs import program, wait_status
from tracer.model.trace import Entry, Event, Raw, Recording, Step, Story, Trace
from tracer.runtimes import cli_programs
from tracer.runtimes.flags import parse_proxy
from tracer.snapshot.recorder import CLI, CONTAINER, ENGINE
from tracer.views import lives as _lives
from tracer.views.lives import Image, Life, Lives, container_id, runc_args
from tracer.views.roles import IN_CONTAINER, assign

SHOWN_NS = IN_CONTAINER | {"runc-init"}  # roles whose execs carry their namespaces
STORY_ROLES = ("shim-start", "shim", "shim-delete", "runc-create", "runc-init", "runc-start",
               "runc-exec", "runc-kill", "runc-delete", "runc", "hook", "docker-proxy")  # fmt: skip
ACTIONS = {"shim-start": "shim start", "runc-create": "create", "runc-start": "start",
           "runc-exec": "exec", "runc-delete": "delete", "shim-delete": "shim delete"}  # fmt: skip


def trace(rec: Recording) -> Trace:
    """What the recording means."""
    lives = assign(_lives.build(rec), rec.containers)
    events: list[Event] = []
    seen: set[int] = set()
    missing = 0
    for idx, raw in enumerate(rec.events):
        life, i = lives.at[idx]
        img = life.images[i]
        seen.add(id(life))
        ev = Event(
            t_ns=raw.ts,
            event=raw.kind,
            pid=raw.pid,
            ppid=_ppid(raw.kind, raw.parent, life, img),
            comm=lives.comm_at[idx],
            cmdline=list(img.cmdline) if img.cmdline else None,
            role=img.role,
            container=img.container,
            born_ns=life.born,
            cmdline_from="argv" if img.cmdline else "comm",
            missing=None if img.cmdline else img.missing or "not read",
            role_inferred=img.inferred,
        )
        if raw.kind == "fork":
            ev.parent_role = _parent_role(life)
        elif raw.kind == "exec":
            missing += img.cmdline is None
            if img.role in SHOWN_NS and img.namespaces:
                ev.namespaces = dict(img.namespaces)
                ev.ns_change = ns_change(life, img, lives.inits, rec.host_ns)
        elif raw.kind == "exit":
            ev.exit_code, ev.signal = wait_status(raw.code)
            ev.lifetime_ns = raw.ts - life.born if life.born is not None else None
        events.append(ev)
    told = stories(lives, rec)
    by_exec = {(e.pid, e.t_ns): e.ns_change for e in events if e.event == "exec"}
    for story in told:
        for entry in ([story.init] if story.init else []) + story.execs:
            entry.ns_change = by_exec.get((entry.pid, entry.t_ns))
    return Trace(events, told, rec, processes=len(seen), argv_missing=missing)


def _ppid(kind: str, parent: int, life: Life, img: Image) -> int:
    if kind in ("fork", "exit"):
        return parent
    if img.ppid_at:
        return img.ppid_at
    if life.parent is not None:
        return life.parent.pid
    return life.known.ppid if life.known else 0


def ns_change(
    life: Life,
    img: Image,
    inits: Mapping[str, Mapping[str, int]],
    host: Mapping[str, int],
) -> dict[str, str] | None:
    """Type -> `new` | `joined:<id>` for each namespace of img that differs from the process
    that forked it (the host's, when that one's are unknown); None when either is unknown."""
    if not img.namespaces:
        return None
    base = _parent_ns(life) or host
    if not base:
        return None
    # Its own container first: a docker exec joins the container it runs in. A container's
    # init cannot join its own container: what it has, it made.
    own = img.role not in ("container-init", "docker-init")
    order = sorted(
        (cid for cid in inits if own or cid != img.container),
        key=lambda cid: (cid != img.container, cid),
    )
    out: dict[str, str] = {}
    for kind, inode in sorted(img.namespaces.items()):
        if kind not in base or base[kind] == inode:
            continue
        who = next((c for c in order if inits[c].get(kind) == inode), None)
        out[kind] = f"joined:{who}" if who else "new"
    return out


def _parent_ns(life: Life) -> Mapping[str, int] | None:
    """The namespaces of the process that forked it, as last read before the fork."""
    parent = life.parent
    while parent is not None:
        for img in reversed(parent.images[: life.parent_image + 1]):
            if img.namespaces:
                return img.namespaces
        life, parent = parent, parent.parent
    return None


# -- stories ------------------------------------------------------------------------------------


def stories(lives: Lives, rec: Recording) -> list[Story]:
    """One story per container met in the trace, in the order they were first met."""
    acting = {id(life) for life, _ in lives.at}
    groups: dict[str, list[Life]] = {}
    for life in lives.all:
        if id(life) not in acting:
            continue
        for cid in dict.fromkeys(img.container for img in life.images if img.container):
            groups.setdefault(cid, []).append(life)
    out = [_story(cid, members, rec) for cid, members in groups.items()]
    return sorted(out, key=lambda s: (min((st.t_ns for st in s.steps), default=0), s.id))


def _story(cid: str, members: list[Life], rec: Recording) -> Story:
    known = rec.containers.get(cid)
    story = Story(id=cid, name=known.name if known else None, what=[], steps=[])
    story.shim_pid = known.shim_pid if known else None
    actions: list[tuple[int, str]] = []
    init_pid = known.init_pid if known else None
    for life in sorted(members, key=lambda lf: (_start(lf), lf.pid)):
        roles = [img.role for img in life.images if img.container == cid]
        role = next((r for r in roles if r in STORY_ROLES), None)
        is_init = life.known is not None and life.pid == init_pid
        entered = False  # a docker exec enters once; its later execs are the same process's
        for img in life.images:
            if img.container != cid or img.ts is None:
                continue
            if img.role in ("container-init", "docker-init") and story.init is None:
                story.init = _entry(life, img)
                is_init = True
                actions.append((img.ts, "init exec"))
            elif img.role == "exec-process" and _parent_role(life) == "runc-exec" and not entered:
                story.execs.append(_entry(life, img))
                entered = True
        if is_init and life.exit is not None:
            final = next((r for r in reversed(roles) if r not in STORY_ROLES), "container-init")
            story.init_exit = _step(life, final, cid)
        if role is None:
            continue
        step = _step(life, role, cid)
        story.steps.append(step)
        if role == "shim" and story.shim_pid is None:
            story.shim_pid = life.pid
        if role == "shim" and life.exit is not None:
            actions.append((life.exit.ts, "shim exit"))
        elif role == "docker-proxy":
            if life.born is not None:
                actions.append((step.t_ns, "proxy start"))
            if life.exit is not None:
                actions.append((life.exit.ts, "proxy exit"))
        elif role == "runc-kill":
            actions.append((step.t_ns, step.detail or "kill"))
        elif role == "runc-delete" and _parent_role(life) == "shim-delete":
            continue  # part of the shim's delete (runc delete --force)
        elif role in ACTIONS:
            actions.append((step.t_ns, ACTIONS[role]))
    how = story.init_exit
    if how is not None and how.end_ns is not None:
        ended = f"signal {how.signal}" if how.signal else f"exit {how.exit_code}"
        actions.append((how.end_ns, f"init {ended}"))
    story.what = [label for _, label in sorted(actions)]
    first = [s.t_ns for s in story.steps if s.role in ("shim-start", "runc-create")]
    if story.init is not None and first:
        story.started_in_ns = story.init.t_ns - min(first)
    return story


def _start(life: Life) -> int:
    return life.born if life.born is not None else life.first


def _parent_role(life: Life) -> str | None:
    if life.parent is None:
        return None
    return life.parent.images[min(life.parent_image, len(life.parent.images) - 1)].role


def _entry(life: Life, img: Image) -> Entry:
    return Entry(
        pid=life.pid,
        t_ns=img.ts or 0,
        cmdline=list(img.cmdline) if img.cmdline else [img.comm],
        namespaces=dict(img.namespaces) if img.namespaces else None,
        ns_change=None,
        parent_at_exec=img.ppid_at,
    )


def _step(life: Life, role: str, cid: str) -> Step:
    """The life as one step of a story: its program, or its last stage name for runc init."""
    execs = [img for img in life.images[1:] if img.container == cid and img.role == role]
    if role == "runc-init":
        names = [c for _, c, _ in life.comms if c.startswith("runc:[")]
        cmd, origin = ([names[-1]] if names else ["runc", "init"]), "comm"
    elif execs and execs[0].cmdline:
        cmd, origin = list(execs[0].cmdline), "argv"
    elif execs:
        cmd, origin = [execs[0].comm], "comm"
    else:
        img = life.images[0]
        cmd, origin = (list(img.cmdline), "argv") if img.cmdline else ([img.comm], "comm")
    step = Step(role=role, pid=life.pid, t_ns=_start(life), cmdline=cmd, cmdline_from=origin)
    step.parent = life.parent.pid if life.parent else None
    step.before = life.born is None
    step.detail = (
        cmd[0] if role == "runc-init" else _detail(role, execs[0] if execs else life.images[0])
    )
    if life.exit is not None:
        step.exited = True
        step.end_ns = life.exit.ts
        step.exit_code, step.signal = wait_status(life.exit.code)
        if life.born is not None:
            step.lifetime_ns = life.exit.ts - life.born
    return step


def _detail(role: str, img: Image) -> str | None:
    """A few words of what this step did, from its argv."""
    if img.cmdline is None:
        return None
    sub, positional = runc_args(img.cmdline)
    if role == "runc-kill":
        rest = [p for p in positional if not container_id(p)]
        return f"kill {rest[0]}" if rest else "kill"
    if sub is not None:
        return f"runc {sub}"
    if role in ("shim-start", "shim-delete"):
        return f"{img.program} {img.cmdline[-1]}"
    if role in ("hook", "shim"):
        return img.program
    proxy = parse_proxy(img.cmdline) if role == "docker-proxy" else None
    if proxy is not None:
        return (
            f"{proxy.proto} {proxy.host_ip}:{proxy.host_port} -> "
            f"{proxy.container_ip}:{proxy.container_port}"
        )
    return None


# -- a live feed: one look at the host per burst of events ---------------------------------------

NOISE, SLOW, FAST = 0, 1, 2
QUIET = 0.1  # s without a telling event (and no step running): the burst is over
LONGEST = 1.0  # s after a burst began: look even while it goes on (a steady stream still updates)
CHURN = 2.0  # s: at most one look this often for processes inside containers alone
BUSY = 2  # a look may take at most a third of the time: the gaps grow with its cost
RECHECK = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)  # an API not answering: look again after these
IDLE = (1.0, 2.0, 4.0, 8.0)  # s between looks after 3, 4, 5, 6+ fed looks that changed nothing


def is_probe(argv: tuple[str, ...] | list[str] | None) -> bool:
    """`runc --version`, `docker-init --version`: what dockerd runs when its /info is asked."""
    return argv is not None and len(argv) == 2 and argv[1] == "--version"


def holds_open(argv: tuple[str, ...] | None) -> bool:
    """Is this a step whose end ends a burst: a command of a runtime's CLI (docker, podman,
    ctr...), runc create, start, exec, kill or delete, a shim's start or delete? Until it exits,
    its burst is not over (runc create waits on the network hook for 140 ms without an
    event)."""
    if not argv:
        return False
    prog = program(argv)
    if prog in cli_programs():
        return True
    if prog == "runc":
        return runc_args(argv)[0] in ("create", "start", "exec", "kill", "delete")
    return prog.startswith("containerd-shim") and argv[-1] in ("start", "delete")


@dataclass
class Bursts:
    """When to look at the host again (pure: the caller gives the times, in seconds).

    Each event the recorder keeps is told to `see` with what it concerns (CLI, ENGINE or
    CONTAINER, tracer/snapshot/recorder.py). The engines' execs and exits are the architecture
    changing (fast); a docker CLI's exit is its request done (rename, create, rm); execs and
    exits inside containers are churn (slow); forks and renames are followed by the exec or
    exit that tells. What the children of `quiet_parents` (the dockerds) do tells nothing: a
    look at the host asks dockerd's /info, and dockerd then runs `runc --version` and
    `docker-init --version` (their argv is often gone before it can be read, so they are known
    by their parent); were they counted, every look would call for the next.

    A burst is over `quiet` seconds after its last telling event once no step that holds it
    open runs (`holds_open`: a docker command, runc create ...), or `longest` after its first;
    churn is looked at no more than once in `churn` seconds; no look comes sooner than BUSY
    times the last one's cost after it; while an engine's API does not answer (a dockerd
    starting again) the host is looked at again after RECHECK's delays; and should looks that
    change nothing keep being called by events that came while the look before was taken (a
    feedback this class does not know of), they are spaced by IDLE. Nothing pending: no look
    at all (a quiet host costs nothing)."""

    quiet: float = QUIET
    longest: float = LONGEST
    churn: float = CHURN
    quiet_parents: set[int] = field(default_factory=set)
    first: float | None = None  # the pending burst's first and last telling event
    last: float | None = None
    churn_from: float | None = None  # the first pending event inside containers
    looked: float = float("-inf")  # when the last look ended
    cost: float = 0.0  # how long it took
    retry_at: float | None = None
    retries: int = 0
    idle: int = 0  # looks in a row that changed nothing, each called by events during the last
    fed: bool = False  # telling events came while the last look was being taken
    open: dict[int, float] = field(default_factory=dict)  # pid -> when: steps that hold it open
    _quiet: set[int] = field(default_factory=set)  # children of quiet_parents, until they exit

    def significance(self, raw: Raw, kind: int) -> int:
        """NOISE, SLOW or FAST: how soon this kept event calls for a look at the host."""
        if raw.kind == "fork" and raw.parent in self.quiet_parents:
            self._quiet.add(raw.pid)
        if raw.pid in self._quiet:
            if raw.kind == "exit":
                self._quiet.discard(raw.pid)
            return NOISE
        if raw.kind not in ("exec", "exit") or (
            raw.kind == "exec" and is_probe(raw.sample.cmdline if raw.sample else None)
        ):
            return NOISE
        if kind == ENGINE or (kind == CLI and raw.kind == "exit"):
            return FAST
        return SLOW if kind == CONTAINER else NOISE

    def see(self, raw: Raw, kind: int, now: float) -> int:
        """Count one kept event (at now); its significance."""
        what = self.significance(raw, kind)
        if raw.kind == "exit":
            self.open.pop(raw.pid, None)
        elif raw.kind == "exec" and kind in (CLI, ENGINE) and raw.pid not in self._quiet:
            if holds_open(raw.sample.cmdline if raw.sample else None):
                self.open[raw.pid] = now
            else:
                self.open.pop(raw.pid, None)
        if what == FAST:
            self.urge(now)
        elif what == SLOW and self.churn_from is None:
            self.churn_from = now
        return what

    def urge(self, now: float) -> None:
        """A telling event, or something told outside the events (a daemon gone)."""
        self.first = now if self.first is None else self.first
        self.last = now

    def due(self, now: float) -> float | None:
        """Seconds until the next look (0: now); None: nothing to look at."""
        gap = self.looked + BUSY * self.cost
        if self.idle >= 3:
            gap = max(gap, self.looked + IDLE[min(self.idle - 3, len(IDLE) - 1)])
        times = []
        if self.first is not None and self.last is not None:
            end = self.first + self.longest
            if not any(at > now - self.longest for at in self.open.values()):
                end = min(end, self.last + self.quiet)  # no step of it still running
            times.append(max(end, gap))
        if self.churn_from is not None:
            times.append(max(self.churn_from + self.quiet, self.looked + self.churn, gap))
        if self.retry_at is not None:
            times.append(max(self.retry_at, gap))
        return max(0.0, min(times) - now) if times else None

    def taken(self, began: float, ended: float, degraded: bool, changed: bool = True) -> None:
        """A look began (its events cut) at began and ended at ended: what came before began
        is in it. degraded: an engine's API did not answer, so look again a little later.
        changed: it found something new (a container, a daemon, a story to tell)."""
        self.idle = self.idle + 1 if self.fed and not (changed or degraded) else 0
        self.looked, self.cost = ended, max(0.0, ended - began)
        self.fed = self.last is not None and self.last >= began
        for pid in [p for p, at in self.open.items() if at < ended - 10 * self.longest]:
            del self.open[pid]  # its exit was lost
        if self.last is not None and self.last >= began:
            self.first = self.last  # came during the look: it may not be in it
        else:
            self.first = self.last = None
        if self.churn_from is not None and self.churn_from < began:
            self.churn_from = None
        if degraded:
            self.retry_at = ended + RECHECK[min(self.retries, len(RECHECK) - 1)]
            self.retries += 1
        else:
            self.retry_at, self.retries = None, 0
