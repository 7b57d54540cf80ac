"""containerd: its daemons, their sockets, and the shims that hold the containers.

A containerd serves a gRPC socket (`--address`, its config's `[grpc] address`, or
/run/containerd/containerd.sock). It starts one `containerd-shim-runc-v2` per container (per
pod for CRI), which re-parents to PID 1 or a subreaper and is the parent of the container's
init; the shim's `-address` names its containerd, `-namespace` the containerd namespace
(`moby` for Docker), `-id` the container, its working directory is the bundle, whose
`init.pid` names the init. The engine of this runtime is a containerd that no dockerd uses
(tracer/runtimes/docker.py takes those first); this module also lends Docker its shims.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from tracer.kernel.root import HostRoot, normalize
from tracer.model.topology import (
    ApiView,
    Container,
    Containerd,
    Edge,
    Engine,
    Process,
    Shim,
    natural_key,
)
from tracer.runtimes.base import Found
from tracer.runtimes.flags import flag_dict, flag_value, program
from tracer.snapshot.host import Host, Proc, is_parent
from tracer.snapshot.walk import Reader
from tracer.untrusted import number

SYSTEM_SOCK = "/run/containerd/containerd.sock"
DEFAULT_CONFIG = "/etc/containerd/config.toml"
RUNC_ROOT = "/run/containerd/runc"  # runc's state of plain containerd: <root>/<ns>/<id>


# -- reading argv ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShimArgs:
    namespace: str | None
    id: str
    address: str | None
    version: int  # 2 for containerd-shim-runc-v2 (and other v2 shims), 1 for containerd-shim
    transient: bool  # the short-lived `... start` / `... delete` invocations


def parse_shim(argv: Sequence[str]) -> ShimArgs | None:
    """A containerd shim's identity, or None if argv is not a shim."""
    prog = program(argv)
    if not prog.startswith("containerd-shim"):
        return None
    flags = flag_dict(argv, "-workdir", "-id", "-namespace", "-address")
    workdir = flags.get("-workdir")
    ident = flags.get("-id") or (os.path.basename(workdir.rstrip("/")) if workdir else None)
    if not ident:
        return None
    version = 1 if prog == "containerd-shim" else 2
    transient = bool(argv) and argv[-1] in ("start", "delete")
    return ShimArgs(
        namespace=flags.get("-namespace"),
        id=ident,
        address=flags.get("-address"),
        version=version,
        transient=transient,
    )


def shims(host: Host) -> list[tuple[Proc, ShimArgs]]:
    """Every long-lived shim, oldest first (the transient `start`/`delete` ones left out);
    found once per snapshot, for every runtime that asks."""
    return host.derived("containerd.shims", _find_shims)


def _find_shims(host: Host) -> list[tuple[Proc, ShimArgs]]:
    out = []
    for proc in sorted(host.procs.values(), key=lambda p: (p.start, p.pid)):
        shim = parse_shim(proc.cmdline)
        if shim is not None and not shim.transient and not proc.zombie:
            out.append((proc, shim))
    return out


def config_path(containerd: Proc) -> str:
    return flag_value(containerd.cmdline, "--config", "-c") or DEFAULT_CONFIG


def socket_of(host: Host, containerd: Proc) -> tuple[str | None, bool]:
    """containerd's gRPC socket and whether it is proven (a listener held by this process).

    None when it cannot be known: no --address, and its --config could not be read (not root).
    """
    address = flag_value(containerd.cmdline, "--address", "-a")
    listening = {normalize(p) for p in host.listeners.get(containerd.pid, {}).values()}
    if not address:
        explicit = flag_value(containerd.cmdline, "--config", "-c")
        config = config_path(containerd)
        if explicit and config not in host.files and not listening:
            return None, False
        import tomllib  # only for a containerd started without --address

        try:
            grpc = tomllib.loads(host.files.get(config, "")).get("grpc", {})
            found = grpc.get("address") if isinstance(grpc, dict) else None
            address = found if isinstance(found, str) else None
        except tomllib.TOMLDecodeError:
            address = None
    address = normalize(address or SYSTEM_SOCK)
    if address in listening:
        return address, True
    grpc_socks = sorted(p for p in listening if p.endswith("containerd.sock"))
    if grpc_socks:
        return grpc_socks[0], True
    return address, False


def read_bundle(read: Reader, shim: Proc) -> bool:
    """Read the shim's bundle (its working directory) and the init.pid in it; False if the
    init.pid could not be read (then runc's state.json names the init)."""
    cwd = read.cwd(shim.pid)
    return bool(cwd) and read.file(f"{cwd}/init.pid") is not None


# -- a container from its shim -------------------------------------------------------------------


def is_runtime(proc: Proc) -> bool:
    """Transient runc invocations under a shim (create/start/exec/delete, `runc init`)."""
    # runc's init stages rename themselves runc:[0:PARENT], runc:[1:CHILD], runc:[2:INIT].
    return proc.program == "runc" or proc.name == "runc" or proc.name.startswith("runc:[")


def find_init(host: Host, shim: Proc) -> Proc | None:
    """The container's init: named by init.pid in the bundle, or by runc's state.json,
    and always a child of this very shim."""
    kids = [k for k in host.children(shim.pid) if not is_runtime(k)]
    by_pid = {k.pid: k for k in kids}
    cwd = host.cwd.get(shim.pid)
    if cwd:
        pid = number(host.files.get(f"{cwd}/init.pid", "").strip())
        if pid in by_pid:
            return by_pid[pid]
    parsed = parse_shim(shim.cmdline)
    if parsed:
        suffix = f"/{parsed.namespace}/{parsed.id}/state.json"
        for path, text in host.files.items():
            if path.endswith(suffix):
                try:
                    pid = int(json.loads(text).get("init_process_pid", 0))
                except (ValueError, TypeError, AttributeError):
                    continue
                if pid in by_pid:
                    return by_pid[pid]
    return kids[0] if kids else None  # the oldest child: runc starts init before any exec


def container_processes(host: Host, shim: Proc, init: Proc | None) -> list[Process]:
    """init, its subtree (`child`), and other children of the shim (`exec`) with theirs."""
    out: list[Process] = []

    def add(proc: Proc, role: str) -> None:
        out.append(
            Process(
                pid=proc.pid,
                ppid=proc.ppid,
                cmdline=list(proc.cmdline),
                role=role,
                name=proc.name,
                uid=proc.uid,
                create_time=proc.create_time,
                namespaces=dict(proc.ns),
                start=proc.start,
            )
        )

    if init:
        add(init, "init")
        for proc in host.descendants(init.pid):
            add(proc, "child")
    for proc in host.children(shim.pid):
        if proc is init or is_runtime(proc):
            continue
        add(proc, "exec")
        for sub in host.descendants(proc.pid):
            add(sub, "exec")
    return out


def container(host: Host, proc: Proc, shim: ShimArgs) -> Container:
    """The container a shim holds, as /proc shows it (names come from an API, if any)."""
    init = find_init(host, proc)
    parent = host.procs.get(proc.ppid)
    reparented = not (parent and is_parent(parent, proc) and parent.program == "containerd")
    return Container(
        id=shim.id,
        name=None,
        image=None,
        state="running" if init else "unknown",
        init_pid=init.pid if init else None,
        shim_pid=proc.pid,
        shim=Shim(
            pid=proc.pid,
            ppid=proc.ppid,
            cmdline=list(proc.cmdline),
            namespace=shim.namespace,
            address=shim.address,
            reparented=reparented,
            create_time=proc.create_time,
        ),
        processes=container_processes(host, proc, init),
        namespaces=dict(init.ns) if init else {},
    )


def adopt(engine: Engine, proc: Proc, container: Container) -> None:
    """Put a shim's container into engine, with the shim's edges."""
    assert container.shim is not None
    engine.containers.append(container)
    cd = engine.daemon(Containerd)
    if cd:
        engine.edges.append(Edge(proc.pid, cd.pid, "shim-address", container.shim.address or ""))
    if container.shim.reparented:
        why = "pid 1" if proc.ppid == 1 else f"subreaper {proc.ppid}"
        engine.edges.append(Edge(proc.ppid, proc.pid, "reparented", why))
    else:
        engine.edges.append(Edge(proc.ppid, proc.pid, "parent", "ppid"))
    for p in container.processes:
        engine.edges.append(Edge(p.ppid, p.pid, "parent", "ppid"))


def sort_containers(engine: Engine) -> None:
    """Running first, then by name (numbers in names counted as numbers), unnamed last."""
    engine.containers.sort(
        key=lambda c: (not c.running, c.name is None, natural_key(c.name or ""), c.id)
    )


# -- the runtime -------------------------------------------------------------------------------


class ContainerdRuntime:
    name = "containerd"
    daemons = frozenset({"containerd"})
    usually_shared: Mapping[str, str] = {}

    def read_daemon(self, host: Host, daemon: Proc, read: Reader) -> None:
        read.file(config_path(daemon))

    def drawn(self, host: Host) -> Iterable[int]:
        """All that every shim runs (not the shim itself: it stays in the host's namespaces
        and nothing shows them)."""
        for proc, _ in shims(host):
            yield from (p.pid for p in host.descendants(proc.pid))

    def read_state(self, host: Host, read: Reader) -> None:
        """Each shim's bundle and the init.pid in it; failing that, runc's own record of the
        init under plain containerd's runc root."""
        for proc, shim in shims(host):
            if not read_bundle(read, proc) and shim.namespace:
                read.file(f"{RUNC_ROOT}/{shim.namespace}/{shim.id}/state.json")

    def endpoint(self, host: Host, daemon: Proc) -> str | None:
        return None  # containerd speaks gRPC; /proc and its files say what dtrace-tree needs

    def ask(self, endpoint: str) -> ApiView:
        return ApiView(error="not asked")

    def build(self, host: Host, answers: Mapping[int, ApiView], found: Found) -> None:
        """An engine for each containerd no dockerd took; the shims left go to the engine of
        their -address, or are orphans (their containerd is not running)."""
        mine: list[tuple[str | None, Engine]] = []
        for cd in host.running("containerd"):
            if cd.pid in found.claimed:
                continue
            sock, proven = socket_of(host, cd)
            daemon = Containerd(
                pid=cd.pid, cmdline=list(cd.cmdline), socket=sock or "?", proven=proven
            )
            engine = Engine(runtime=self.name, daemons=[daemon])
            engine.notes.append("no dockerd uses this containerd (dockerd down, or another client)")
            found.engines.append(engine)
            found.claimed.add(cd.pid)
            mine.append((sock, engine))
        for proc, shim in shims(host):
            if proc.pid in found.claimed:
                continue
            address = normalize(shim.address) if shim.address else None
            target = next((e for sock, e in mine if sock and sock == address), None)
            made = container(host, proc, shim)
            if target is None:
                found.orphans.append(made)
            else:
                adopt(target, proc, made)
            found.claimed.add(proc.pid)
        for _, engine in mine:
            sort_containers(engine)

    def explain(
        self, engine: Engine, container: Container, names: Mapping[str, str], root: HostRoot
    ) -> dict[str, str]:
        return {}

    def storage_root(self, engine: Engine, root: HostRoot) -> str | None:
        return None  # snapshots are shown as the container's mount says (runtimes/storage.py)


RUNTIME = ContainerdRuntime()
