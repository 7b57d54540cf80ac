"""podman: no daemon; one conmon per container, holding it.

`podman run` starts `conmon` (libpod/oci_conmon_common.go), which double-forks (its parent
exits, it is re-parented to PID 1 or a subreaper, systemd's when there is one) and runs the OCI
runtime (`runc` or `crun`, transient) to create the container, whose init is then conmon's
child. conmon's argv carries what the walk needs: `-c <container id>`, `-n <name>`,
`-b <bundle>` (`<storage root>/<driver>-containers/<id>/userdata`), `-p <pidfile>` (the init's
PID), `-r <runtime>`; `-e` marks the second conmon of a `podman exec`. Without a daemon, the
engine is podman's storage (its root, and the user whose it is): names from conmon's `-n`,
images from containers/storage's own list of containers (`<driver>-containers/containers.json`,
which also lists the stopped ones); /proc alone when those cannot be read.

Rootless podman runs as a user inside a user namespace held by its pause process
(`catatonit -P`, or a `podman pause` process): "host" for those containers is then that
namespace, and uid 0 in them is the user on the host.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from tracer.kernel.root import HostRoot, normalize
from tracer.model.topology import CONMON, ApiView, Container, Edge, Engine, Monitor
from tracer.runtimes.base import Found, Look, RuntimeBase, shared_by_default
from tracer.runtimes.containerd.shim import exec_tree, init_tree, is_runtime, sort_containers
from tracer.snapshot.host import Host, Proc, is_parent
from tracer.snapshot.walk import Reader
from tracer.untrusted import number

# conmon's options that take a value (conmon 2.1 src/cli.c), long names for the short ones.
_SHORT = {"c": "cid", "u": "cuuid", "n": "name", "b": "bundle", "p": "container-pidfile",
          "P": "conmon-pidfile", "r": "runtime", "l": "log-path", "T": "timeout"}  # fmt: skip
_VALUED = frozenset(_SHORT.values()) | {
    "exit-dir", "exit-command", "exit-command-arg", "exit-delay", "persist-dir", "api-version",
    "socket-dir-path", "log-level", "log-size-max", "log-global-size-max", "log-tag",
    "runtime-arg", "runtime-opt", "exec-process-spec", "restore", "restore-arg",
    "seccomp-notify-socket", "seccomp-notify-plugins", "log-label",
}  # fmt: skip
_EXEC = frozenset({"e", "exec"})
PAUSE = ("catatonit", "podman pause")  # rootless podman's pause process (argv0 / comm)
DEFAULT_STORE = "/var/lib/containers/storage"  # rootful podman's (containers-storage.conf)
DEFAULT_DRIVER = "overlay"


@dataclass(frozen=True)
class ConmonArgs:
    id: str
    name: str | None
    bundle: str | None
    pidfile: str | None
    runtime: str | None
    exec: bool  # the conmon of a `podman exec` session
    options: Mapping[str, tuple[str, ...]]

    @property
    def store(self) -> str | None:
        """The storage root: the bundle is `<root>/<driver>-containers/<id>/userdata`."""
        if not self.bundle:
            return None
        parts = normalize(self.bundle).rstrip("/").split("/")
        if len(parts) < 4 or not parts[-3].endswith("-containers"):
            return None
        return "/".join(parts[:-3]) or "/"

    @property
    def driver(self) -> str | None:
        if not self.bundle or self.store is None:
            return None
        return normalize(self.bundle).rstrip("/").split("/")[-3].removesuffix("-containers")


def parse_conmon(argv: Sequence[str]) -> ConmonArgs | None:
    """conmon's identity, or None if argv is not conmon's (or names no container). Total: it
    never raises on any argv."""
    if not argv or os.path.basename(argv[0]) != "conmon":
        return None
    opts: dict[str, list[str]] = {}
    is_exec = False
    i = 1
    while i < len(argv):
        arg = argv[i]
        i += 1
        if not arg.startswith("-") or arg in ("-", "--"):
            continue
        key, eq, value = arg.lstrip("-").partition("=")
        key = _SHORT.get(key, key) if not arg.startswith("--") else key
        if key in _EXEC and not eq:
            is_exec = True
        if key not in _VALUED:
            continue
        if not eq:
            if i >= len(argv):
                break
            value = argv[i]
            i += 1
        opts.setdefault(key, []).append(value)

    def last(key: str) -> str | None:
        return opts[key][-1] if opts.get(key) else None

    ident = last("cid")
    if not ident:
        return None
    return ConmonArgs(
        id=ident,
        name=last("name"),
        bundle=last("bundle"),
        pidfile=last("container-pidfile"),
        runtime=last("runtime"),
        exec=is_exec,
        options={k: tuple(v) for k, v in opts.items()},
    )


def started_by_podman(args: ConmonArgs) -> bool:
    """podman gives each conmon it starts itself as the exit command (`--exit-command
    /usr/bin/podman ... container cleanup`, libpod/oci_conmon_common.go); CRI-O, which runs
    conmon too, gives none (its conmons write to `--exit-dir /var/run/crio/exits`)."""
    return any(os.path.basename(c) == "podman" for c in args.options.get("exit-command", ()))


def conmons(host: Host) -> list[tuple[Proc, ConmonArgs]]:
    """Every live conmon that podman started, oldest first; once per snapshot."""
    return host.derived("podman.conmons", _find)[0]


def strangers(host: Host) -> list[tuple[Proc, ConmonArgs]]:
    """The live conmons podman did not start (CRI-O's, or another tool's)."""
    return host.derived("podman.conmons", _find)[1]


def _find(host: Host) -> tuple[list[tuple[Proc, ConmonArgs]], list[tuple[Proc, ConmonArgs]]]:
    """(podman's, the others): a conmon is podman's by its exit command, or, for the second
    conmon of a `podman exec`, by the container it joins, when that one is podman's."""
    every = []
    for proc in sorted(host.procs.values(), key=lambda p: (p.start, p.pid)):
        if proc.program == "conmon" and not proc.zombie:
            parsed = parse_conmon(proc.cmdline)
            if parsed is not None:
                every.append((proc, parsed))
    ours = {args.id for _, args in every if not args.exec and started_by_podman(args)}
    mine: list[tuple[Proc, ConmonArgs]] = []
    others: list[tuple[Proc, ConmonArgs]] = []
    for proc, args in every:
        own = started_by_podman(args) or (args.exec and args.id in ours)
        (mine if own else others).append((proc, args))
    return mine, others


def listing(store: str, driver: str) -> str:
    return f"{store}/{driver}-containers/containers.json"


def stored(host: Host, store: str, driver: str) -> list[tuple[str, str | None, str | None]] | None:
    """containers/storage's list of the store's containers: (id, name, image name); None when
    it could not be read."""
    text = host.files.get(listing(store, driver))
    if text is None:
        return None
    try:
        rows = json.loads(text)
    except ValueError:
        return None
    out = []
    for row in rows if isinstance(rows, list) else ():
        if not isinstance(row, dict) or not isinstance(row.get("id"), str):
            continue
        names = row.get("names")
        name = names[0] if isinstance(names, list) and names and isinstance(names[0], str) else None
        try:
            meta = json.loads(row.get("metadata") or "{}")
        except (ValueError, TypeError):
            meta = {}
        image = meta.get("image-name") if isinstance(meta, dict) else None
        out.append((row["id"], name, image if isinstance(image, str) else None))
    return out


def _init(host: Host, proc: Proc, args: ConmonArgs) -> Proc | None:
    """The container's init: named by conmon's pidfile, and always a child of this conmon."""
    kids = [k for k in host.children(proc.pid) if not is_runtime(k, proc)]
    pid = number(host.files.get(args.pidfile or "", "").strip()) if args.pidfile else None
    named = next((k for k in kids if k.pid == pid), None)
    return named or (kids[0] if kids else None)


def _monitor(host: Host, proc: Proc) -> Monitor:
    parent = host.procs.get(proc.ppid)
    reparented = not (parent and is_parent(parent, proc) and parent.program == "podman")
    return Monitor(pid=proc.pid, ppid=proc.ppid, cmdline=list(proc.cmdline), namespace=None,
                   address=None, reparented=reparented, create_time=proc.create_time,
                   kind=CONMON)  # fmt: skip


RUNTIME_NAME = "podman"


class PodmanRuntime(RuntimeBase):
    """Daemonless: no daemon to read. Explains no shared namespace: `podman inspect` would
    say, and its state is not read without the API."""

    name = RUNTIME_NAME
    daemons: frozenset[str] = frozenset()
    look = Look(
        daemonless="podman",
        monitor="conmon",
        monitor_parent="podman",
        edges={"reparented": "conmon adopted by pid 1 or a subreaper"},
        cli=frozenset({"podman"}),
    )
    usually_shared = shared_by_default(
        "podman",
        user="rootful podman shares the host's user namespace unless run with --userns",
        cgroup="podman's default cgroupns is 'host' on cgroup v1 (private on cgroup v2)",
    )

    def drawn(self, host: Host) -> Iterable[int]:
        """What each conmon runs, and rootless podman's pause processes (their user
        namespace is the containers' "host")."""
        for proc, _ in conmons(host):
            yield proc.pid
            yield from (p.pid for p in host.descendants(proc.pid))
        yield from _pauses(host)

    def read_state(self, host: Host, read: Reader) -> None:
        """Each container's pidfile, and each store's list of containers."""
        stores = {(DEFAULT_STORE, DEFAULT_DRIVER)}  # its stopped containers, with no conmon
        for _, args in conmons(host):
            if args.pidfile and not args.exec:
                read.file(args.pidfile)
            if args.store and args.driver:
                stores.add((args.store, args.driver))
        for store, driver in sorted(stores):
            read.file(listing(store, driver), limit=64 << 20)
        for pid in _pauses(host):  # rootless: whose uids the containers' are
            read.file(f"/proc/{pid}/uid_map")

    def endpoint(self, host: Host, daemon: Proc) -> str | None:
        return None  # no daemon; `podman system service` is not asked (conmon says enough)

    def ask(self, endpoint: str) -> ApiView:
        return ApiView(error="not asked")

    def build(self, host: Host, answers: Mapping[int, ApiView], found: Found) -> None:
        """An engine per storage root and user; a container per conmon (exec sessions
        joined to theirs), and the stopped ones the store lists."""
        engines: dict[tuple[str | None, int | None], Engine] = {}
        by_id: dict[str, tuple[Engine, Container]] = {}
        execs = []
        for proc, args in conmons(host):
            found.claimed.add(proc.pid)
            if args.exec:
                execs.append((proc, args))
                continue
            key = (args.store, proc.uid)
            engine = engines.get(key)
            if engine is None:
                engine = engines[key] = self._engine(host, args, proc.uid)
            init = _init(host, proc, args)
            made = Container(
                id=args.id, name=args.name, image=None,
                state="running" if init else "unknown",
                init_pid=init.pid if init else None, monitor=_monitor(host, proc),
                processes=init_tree(host, init), namespaces=dict(init.namespaces) if init else {},
            )  # fmt: skip
            for kid in host.children(proc.pid):  # `podman exec` in conmon's own tree: none
                if kid is not init and not is_runtime(kid, proc):
                    made.processes += exec_tree(host, kid)
            engine.containers.append(made)
            _edges(engine, proc, made)
            by_id[args.id] = (engine, made)
        for proc, args in execs:
            if args.id in by_id:
                engine, made = by_id[args.id]
                extra = [p for k in host.children(proc.pid) if not is_runtime(k, proc)
                         for p in exec_tree(host, k)]  # fmt: skip
                made.processes += extra
                engine.edges.append(Edge(proc.ppid, proc.pid, "reparented" if proc.ppid == 1
                                         else "parent", "exec conmon"))  # fmt: skip
                engine.edges += [Edge(p.ppid, p.pid, "parent", "ppid") for p in extra]
        if (DEFAULT_STORE, 0) not in engines and stored(host, DEFAULT_STORE, DEFAULT_DRIVER):
            engines[(DEFAULT_STORE, 0)] = _new_engine(DEFAULT_STORE, 0)
        for engine in engines.values():
            _merge_store(host, engine)
            sort_containers(engine)
            found.engines.append(engine)
        others = [proc.pid for proc, _ in strangers(host) if proc.pid not in found.claimed]
        if others:
            found.notes.append(
                f"{len(others)} conmon processes that podman did not start (no --exit-command "
                f"podman; CRI-O's?) are not shown: pids {', '.join(map(str, others[:10]))}"
                + (" ..." if len(others) > 10 else "")
            )

    def _engine(self, host: Host, args: ConmonArgs, uid: int | None) -> Engine:
        engine = _new_engine(args.store or "?", uid)
        if args.store and args.driver and stored(host, args.store, args.driver) is None:
            engine.notes.append(
                f"{listing(args.store, args.driver)} could not be read: images and stopped "
                "containers unknown"
            )
        if uid:
            pause = [host.procs[pid] for pid in _pauses(host) if host.procs[pid].uid == uid]
            where = (
                f"user namespace {pause[0].namespaces.get('user', '?')}, held by its pause process "
                f"{pause[0].pid}" if pause else "a user namespace (its pause process not found)"
            )  # fmt: skip
            mapped = _uid_map(host.files.get(f"/proc/{pause[0].pid}/uid_map")) if pause else ""
            engine.notes.append(
                f"rootless: uid {uid}'s containers run in {where}; uid 0 inside is uid {uid} "
                f"on the host{mapped}"
            )
        return engine

    def describe(self, engine: Engine) -> list[str]:
        owner = engine.owner
        return [f"storage {store_of(engine)}"] + ([f"uid {owner} (rootless)"] if owner else [])

    def storage_root(self, engine: Engine, root: HostRoot) -> str | None:
        store = store_of(engine)
        return store if store and store != "?" else None


# -- the engine's own facts: its storage root and its user -------------------------------------


def _new_engine(store: str, uid: int | None) -> Engine:
    who = f" (uid {uid})" if uid else ""
    return Engine(runtime=RUNTIME_NAME, owner=uid, named=f"podman {store}{who}",
                  facts={"store": store})  # fmt: skip


def store_of(engine: Engine) -> str | None:
    """The storage root that holds the engine's containers."""
    store = engine.facts.get("store")
    return store if isinstance(store, str) else None


def _pauses(host: Host) -> list[int]:
    """Rootless podman's pause processes (`catatonit -P`, or podman's own `podman pause`),
    which hold each user's user namespace."""
    return sorted(
        p.pid
        for p in host.procs.values()
        if p.uid and "-P" in p.cmdline and (p.program in PAUSE or p.name in PAUSE)
    )


def _uid_map(text: str | None) -> str:
    """`; uid map 0->1001 (1), 1->100000 (65536)` from /proc/<pid>/uid_map ('' if unread)."""
    rows = [line.split() for line in (text or "").splitlines()]
    parts = [f"{a}->{b} ({n})" for a, b, n in (r for r in rows if len(r) == 3)]
    return f"; uid map {', '.join(parts)}" if parts else ""


def _edges(engine: Engine, proc: Proc, made: Container) -> None:
    m = made.monitor
    assert m is not None
    if m.reparented:
        why = "pid 1" if proc.ppid == 1 else f"subreaper {proc.ppid}"
        engine.edges.append(Edge(proc.ppid, proc.pid, "reparented", why))
    else:
        engine.edges.append(Edge(proc.ppid, proc.pid, "parent", "ppid"))
    engine.edges += [Edge(p.ppid, p.pid, "parent", "ppid") for p in made.processes]


def _merge_store(host: Host, engine: Engine) -> None:
    """Images of running containers, and the containers the store lists that run no conmon
    (stopped, or created: without libpod's database, which of the two is not known)."""
    store = store_of(engine) or ""
    drivers = {_driver(c.monitor.cmdline) for c in engine.containers if c.monitor}
    drivers = drivers or ({DEFAULT_DRIVER} if store == DEFAULT_STORE else set())
    have = {c.id: c for c in engine.containers}
    for driver in sorted(d for d in drivers if d):
        for cid, name, image in stored(host, store, driver) or ():
            found = have.get(cid)
            if found is None:
                engine.containers.append(Container(id=cid, name=name, image=image,
                                                   state="not running"))  # fmt: skip
            else:
                found.image = image
                found.name = found.name or name


def _driver(argv: Sequence[str]) -> str | None:
    parsed = parse_conmon(argv)
    return parsed.driver if parsed else None


RUNTIME = PodmanRuntime()
