"""containerd's daemons, their sockets, and the shims that hold the containers.

A containerd serves a gRPC socket (`--address`, its config's `[grpc] address`, or
/run/containerd/containerd.sock). It starts one `containerd-shim-runc-v2` per container (per
pod for CRI), which re-parents to PID 1 or a subreaper and is the parent of the container's
init; the shim's `-address` names its containerd, `-namespace` the containerd namespace
(`moby` for Docker), `-id` the container, its working directory is the bundle, whose
`init.pid` names the init. Docker (tracer/runtimes/docker.py), CRI (cri.py) and bare
containerd (engine.py) all build their containers from these.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from tracer.kernel.root import HostRoot, normalize
from tracer.model.topology import (
    SHIM,
    Container,
    Containerd,
    Edge,
    Engine,
    Monitor,
    Process,
    natural_key,
)
from tracer.runtimes.flags import flag_dict, flag_value, program
from tracer.snapshot.host import Host, Proc, is_parent
from tracer.snapshot.walk import Reader
from tracer.untrusted import number

SYSTEM_SOCK = "/run/containerd/containerd.sock"
DEFAULT_CONFIG = "/etc/containerd/config.toml"
RUNC_ROOT = "/run/containerd/runc"  # runc's state of plain containerd: <root>/<ns>/<id>
_REMAPPED = re.compile(r"moby-\d+\.\d+")  # moby daemon/daemon.go RemapContainerdNamespaces


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


def config_path(containerd: Proc, host: Host | None = None) -> str:
    """Its --config, made absolute from its working directory (`containerd --config
    cd.toml`), or the default."""
    path = flag_value(containerd.cmdline, "--config", "-c") or DEFAULT_CONFIG
    cwd = host.cwd.get(containerd.pid) if host is not None else None
    return os.path.join(cwd, path) if cwd and not path.startswith("/") else path


def socket_of(host: Host, containerd: Proc) -> tuple[str | None, bool]:
    """containerd's gRPC socket and whether it is proven (a listener held by this process).

    None when it cannot be known: no --address, and its --config could not be read (not root).
    """
    address = flag_value(containerd.cmdline, "--address", "-a")
    listening = {normalize(p) for p in host.listeners.get(containerd.pid, {}).values()}
    if not address:
        explicit = flag_value(containerd.cmdline, "--config", "-c")
        config = config_path(containerd, host)
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


def read_options(read: Reader, shim: Proc) -> None:
    """Read the runtime options in the shim's bundle (options.json)."""
    cwd = read.cwd(shim.pid)
    if cwd:
        read.file(f"{cwd}/options.json", limit=64 << 10)


def runtime_root(host: Host, shim: Proc) -> str | None:
    """The runc root the shim runs runc with: "root" in its bundle's options.json, where the
    runc v2 shim keeps the options its client gave (Docker: <exec-root>/runtime-runc); None
    when that was not read or says none. The bundle outlives the client, so this still holds
    while dockerd is down."""
    cwd = host.cwd.get(shim.pid)
    text = host.files.get(f"{cwd}/options.json") if cwd else None
    try:
        root = json.loads(text).get("root") if text else None
    except (ValueError, AttributeError):
        return None
    return normalize(root) if isinstance(root, str) and root.startswith("/") else None


def made_under(
    host: Host, proc: Proc, cid: str, roots: set[str], namespace: str
) -> tuple[bool | None, str]:
    """Was the shim's container made by a client whose runtime roots lie under roots (Docker:
    its exec root), and the evidence: the shim runs runc with a root under one of them (its
    bundle's options.json), or runc keeps the container's state there (<root>/runtime-*/<ns>/
    <id>, read with the walk). False: the evidence names another place; None: none was read."""
    root = runtime_root(host, proc)
    if root is not None:
        return any(root.startswith(r + "/") for r in roots), f"{root} (the shim's options.json)"
    readable = False
    for mine in sorted(roots):
        for entry in host.dirs.get(mine, ()):
            states = f"{mine}/{entry}/{namespace}"
            if entry.startswith("runtime-") and cid in host.dirs.get(states, ()):
                return True, f"{states}/{cid} (runc's state)"
        readable = readable or mine in host.dirs
    return (False if readable else None), ""


# -- a container from its shim -------------------------------------------------------------------


OCI_RUNTIMES = frozenset({"runc", "crun"})


def connected(host: Host, client: int, server: int) -> bool | None:
    """Does client (dockerd, kubelet) hold a unix socket whose peer server (containerd) holds
    (sock_diag)? None: unknown."""
    mine, theirs = host.sockets.get(client), host.sockets.get(server)
    if not mine or not theirs or not host.peers:
        return None
    return any(host.peers.get(inode) in theirs for inode in mine)


# What the edges of every engine built from shims mean (tracer/runtimes/base.py Look.edges).
SHIM_EDGES = {
    "shim-address": "shim -> its containerd (-address)",
    "reparented": "shim adopted by pid 1 or a subreaper",
}


def is_runtime(proc: Proc, monitor: Proc) -> bool:
    """Not a container's process but a transient child of its monitor (shim or conmon): an OCI
    runtime invocation (create/start/exec/kill/delete, `runc init`), or a fork of the monitor
    that has not exec'd yet (to start runc, the monitor forks: for that moment the child is a
    copy of it, in the monitor's cgroup, not the container's; seen under container churn)."""
    # runc's init stages rename themselves runc:[0:PARENT], runc:[1:CHILD], runc:[2:INIT].
    return (
        proc.program in OCI_RUNTIMES
        or proc.name in OCI_RUNTIMES
        or proc.name.startswith("runc:[")
        or (proc.cmdline == monitor.cmdline and proc.name == monitor.name)
    )


def find_init(host: Host, shim: Proc) -> Proc | None:
    """The container's init: named by init.pid in the bundle, or by runc's state.json,
    and always a child of this very shim."""
    kids = [k for k in host.children(shim.pid) if not is_runtime(k, shim)]
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


def as_process(proc: Proc, role: str) -> Process:
    return Process(
        pid=proc.pid,
        ppid=proc.ppid,
        cmdline=list(proc.cmdline),
        role=role,
        name=proc.name,
        uid=proc.uid,
        create_time=proc.create_time,
        namespaces=dict(proc.namespaces),
        start=proc.start,
    )


def init_tree(host: Host, init: Proc | None) -> list[Process]:
    """init and its subtree (`child`)."""
    if init is None:
        return []
    return [as_process(init, "init")] + [as_process(p, "child") for p in host.descendants(init.pid)]


def exec_tree(host: Host, proc: Proc) -> list[Process]:
    """A process joined to a running container (`exec`) and its subtree."""
    return [as_process(p, "exec") for p in (proc, *host.descendants(proc.pid))]


def container_processes(host: Host, shim: Proc, init: Proc | None) -> list[Process]:
    """init, its subtree (`child`), and other children of the shim (`exec`) with theirs."""
    out = init_tree(host, init)
    for proc in host.children(shim.pid):
        if proc is init or is_runtime(proc, shim):
            continue
        out += exec_tree(host, proc)
    return out


def monitor(host: Host, proc: Proc, shim: ShimArgs) -> Monitor:
    """The shim as the container's monitor; re-parented unless containerd is its parent."""
    parent = host.procs.get(proc.ppid)
    reparented = not (parent and is_parent(parent, proc) and parent.program == "containerd")
    return Monitor(
        pid=proc.pid,
        ppid=proc.ppid,
        cmdline=list(proc.cmdline),
        namespace=shim.namespace,
        address=shim.address,
        reparented=reparented,
        create_time=proc.create_time,
    )


def container(host: Host, proc: Proc, shim: ShimArgs) -> Container:
    """The container a shim holds, as /proc shows it (names come from an API, if any)."""
    init = find_init(host, proc)
    return Container(
        id=shim.id,
        name=None,
        image=None,
        state="running" if init else "unknown",
        init_pid=init.pid if init else None,
        shim_pid=proc.pid,
        monitor=monitor(host, proc, shim),
        processes=container_processes(host, proc, init),
        namespaces=dict(init.namespaces) if init else {},
    )


def adopt(engine: Engine, proc: Proc, container: Container) -> None:
    """Put a shim's container into engine, with the shim's edges."""
    engine.containers.append(container)
    monitor_edges(engine, proc, container.shim)
    for p in container.processes:
        engine.edges.append(Edge(p.ppid, p.pid, "parent", "ppid"))


def monitor_edges(engine: Engine, proc: Proc, shim: Monitor | None) -> None:
    """A shim's own edges: to its containerd (-address), and from its actual parent."""
    cd = engine.daemon(Containerd)
    if cd and shim is not None:
        engine.edges.append(Edge(proc.pid, cd.pid, "shim-address", shim.address or ""))
    if shim is not None and shim.reparented:
        why = "pid 1" if proc.ppid == 1 else f"subreaper {proc.ppid}"
        engine.edges.append(Edge(proc.ppid, proc.pid, "reparented", why))
    else:
        engine.edges.append(Edge(proc.ppid, proc.pid, "parent", "ppid"))


def sort_containers(engine: Engine) -> None:
    """Running first, then by name (numbers in names counted as numbers), unnamed last."""
    engine.containers.sort(
        key=lambda c: (not c.running, c.name is None, natural_key(c.name or ""), c.id)
    )


# -- the bundle's OCI spec -------------------------------------------------------------------


def read_config(read: Reader, bundle: str) -> str | None:
    """The bundle's config.json (the OCI spec: its annotations name pods and containers)."""
    return read.file(f"{bundle}/config.json", limit=4 << 20)


def oci_annotations(host: Host, bundle: str | None) -> dict[str, str]:
    """The OCI annotations in the bundle's config.json, as read by the walk ({} if it was
    not); parsed once per snapshot."""
    if not bundle:
        return {}
    cache: dict[str, dict[str, str]] = host.derived("containerd.annotations", lambda _h: {})
    if bundle not in cache:
        try:
            doc = json.loads(host.files.get(f"{bundle}/config.json", "{}"))
            found = doc.get("annotations") if isinstance(doc, dict) else None
        except ValueError:
            found = None
        cache[bundle] = (
            {k: v for k, v in found.items() if isinstance(k, str) and isinstance(v, str)}
            if isinstance(found, dict)
            else {}
        )
    return cache[bundle]


def configured_mounts(root: HostRoot, container: Container) -> dict[str, str] | None:
    """destination -> type, from the OCI spec in the container's bundle (what `docker inspect`
    Mounts and `podman inspect` say, in the runtime-neutral form every runtime hands runc: a
    volume or a bind is "bind" (or options rbind/bind), --tmpfs is "tmpfs"). The bundle is
    the shim's working directory (opened through /proc/<pid>/cwd: a rootless engine's shim
    has it in RootlessKit's mount namespace, not the host's), or conmon's -b."""
    m = container.monitor
    if m is None:
        return None
    bundle = flag_value(m.cmdline, "-b", "--bundle") if m.kind != SHIM else None
    spec_path = (
        root.path(f"{bundle}/config.json") if bundle else f"{root.proc}/{m.pid}/cwd/config.json"
    )
    try:
        with open(spec_path, "rb") as f:
            spec = json.loads(f.read(4 << 20))
    except (OSError, ValueError):
        return None
    mounts = spec.get("mounts") if isinstance(spec, dict) else None
    out: dict[str, str] = {}
    for entry in mounts if isinstance(mounts, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("destination"), str):
            options = entry.get("options")
            kind = entry.get("type") if isinstance(entry.get("type"), str) else ""
            if isinstance(options, list) and ("bind" in options or "rbind" in options):
                kind = "bind"
            out[os.path.normpath(entry["destination"])] = kind or "none"
    return out


def daemon(host: Host, cd: Proc) -> Containerd:
    """A containerd as an engine's daemon, its socket proven or not."""
    sock, proven = socket_of(host, cd)
    return Containerd(pid=cd.pid, cmdline=list(cd.cmdline), socket=sock or "?", proven=proven)


def sockets(host: Host) -> dict[int, tuple[str | None, bool]]:
    """Each running containerd's socket (and whether it is proven), once per snapshot."""
    return host.derived(
        "containerd.sockets", lambda h: {cd.pid: socket_of(h, cd) for cd in h.running("containerd")}
    )


def serving(host: Host, address: str | None) -> Proc | None:
    """The running containerd whose gRPC socket is address (a shim's -address)."""
    if not address:
        return None
    address = normalize(address)
    for pid, (sock, _) in sockets(host).items():
        if sock == address:
            return host.procs[pid]
    return None


def docker_namespace(namespace: str | None) -> bool:
    """Is this containerd namespace Docker's (`moby`; `moby-<uid>.<gid>` with userns-remap)?"""
    return namespace is not None and (
        namespace == "moby" or _REMAPPED.fullmatch(namespace) is not None
    )
