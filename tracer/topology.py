"""From one host snapshot (and each engine's container list) to engines and their chains.

Pure functions: no /proc, no API. Every link is proven from the snapshot and says how:
`parent` (ppid, with the parent older than the child), `socket` (dockerd's containerd socket is
a listener held by that containerd), `shim-address` (the shim's -address is that socket) and
`reparented` (the shim's parent is PID 1 or a subreaper, not containerd).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tracer import argv as args
from tracer.host import SYSTEM_CONTAINERD_SOCK, Host, Proc, is_parent
from tracer.model import (
    ApiView,
    Container,
    Containerd,
    Dockerd,
    Edge,
    Engine,
    Process,
    Proxy,
    Shim,
    Topology,
)

DEFAULT_DOCKER_SOCK = "/run/docker.sock"


# -- daemons -------------------------------------------------------------------------------


def dockerds(host: Host) -> list[Proc]:
    return sorted(
        (p for p in host.procs.values() if p.program == "dockerd" and not p.zombie),
        key=lambda p: p.pid,
    )


def containerds(host: Host) -> list[Proc]:
    return sorted(
        (p for p in host.procs.values() if p.program == "containerd" and not p.zombie),
        key=lambda p: p.pid,
    )


def daemon_json(host: Host, dockerd: Proc) -> dict[str, Any]:
    path = args.flag_value(dockerd.cmdline, "--config-file") or "/etc/docker/daemon.json"
    try:
        doc = json.loads(host.files.get(path, "{}"))
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def api_socket(host: Host, dockerd: Proc) -> str | None:
    """dockerd's API socket: from -H/--host, daemon.json hosts, or the default; checked
    against the unix sockets the process really listens on."""
    hosts = args.flag_values(dockerd.cmdline, "-H", "--host")
    if not hosts:
        configured = daemon_json(host, dockerd).get("hosts")
        hosts = (
            [h for h in configured if isinstance(h, str)] if isinstance(configured, list) else []
        )
    hosts = hosts or [f"unix://{DEFAULT_DOCKER_SOCK}"]
    listening = {args.normalize_path(p) for p in host.listeners.get(dockerd.pid, {}).values()}
    configured_paths = [args.normalize_path(p) for h in hosts if (p := args.unix_path(h))]
    for path in configured_paths:
        if path in listening:
            return path
    # fd:// (systemd socket activation) or a socket we could not see: what it listens on,
    # minus its own internal sockets (metrics, libnetwork, plugins under the exec root).
    exec_root = args.normalize_path(
        args.flag_value(dockerd.cmdline, "--exec-root") or "/run/docker"
    )
    candidates = sorted(p for p in listening if not p.startswith(exec_root + "/"))
    preferred = [p for p in candidates if p.endswith("docker.sock")]
    if preferred or candidates:
        return (preferred or candidates)[0]
    return configured_paths[0] if configured_paths else None


def containerd_socket(host: Host, containerd: Proc) -> tuple[str | None, bool]:
    """containerd's gRPC socket and whether it is proven (a listener held by this process).

    None when it cannot be known: no --address, and its --config could not be read (not root).
    """
    address = args.flag_value(containerd.cmdline, "--address", "-a")
    listening = {args.normalize_path(p) for p in host.listeners.get(containerd.pid, {}).values()}
    if not address:
        explicit = args.flag_value(containerd.cmdline, "--config", "-c")
        config = explicit or "/etc/containerd/config.toml"
        if explicit and config not in host.files and not listening:
            return None, False
        import tomllib  # only for a containerd started without --address

        try:
            grpc = tomllib.loads(host.files.get(config, "")).get("grpc", {})
            found = grpc.get("address") if isinstance(grpc, dict) else None
            address = found if isinstance(found, str) else None
        except tomllib.TOMLDecodeError:
            address = None
    address = args.normalize_path(address or SYSTEM_CONTAINERD_SOCK)
    if address in listening:
        return address, True
    grpc_socks = sorted(p for p in listening if p.endswith("containerd.sock"))
    if grpc_socks:
        return grpc_socks[0], True
    return address, False


def containerd_target(host: Host, dockerd: Proc) -> tuple[str | None, str]:
    """The containerd socket dockerd uses, and how we know (moby's own decision order)."""
    explicit = args.flag_value(dockerd.cmdline, "--containerd")
    if not explicit:
        value = daemon_json(host, dockerd).get("containerd")
        explicit = value if isinstance(value, str) else None
    if explicit:
        return args.normalize_path(args.unix_path(explicit) or explicit), "--containerd"
    for child in host.children(dockerd.pid):
        if child.program == "containerd":
            return containerd_socket(host, child)[0], "managed (child of dockerd)"
    if SYSTEM_CONTAINERD_SOCK in host.exists:
        return SYSTEM_CONTAINERD_SOCK, f"{SYSTEM_CONTAINERD_SOCK} exists"
    return None, "managed containerd not running"


# -- containers ----------------------------------------------------------------------------


def _is_runtime(proc: Proc) -> bool:
    """Transient runc invocations under a shim (create/start/exec/delete, `runc init`)."""
    # runc's init stages rename themselves runc:[0:PARENT], runc:[1:CHILD], runc:[2:INIT].
    return proc.program == "runc" or proc.name == "runc" or proc.name.startswith("runc:[")


def find_init(host: Host, shim: Proc) -> Proc | None:
    """The container's init: named by init.pid in the bundle, or by runc's state.json
    (with its start time), and always a child of this very shim."""
    kids = [k for k in host.children(shim.pid) if not _is_runtime(k)]
    by_pid = {k.pid: k for k in kids}
    cwd = host.cwd.get(shim.pid)
    if cwd:
        pid = args.number(host.files.get(f"{cwd}/init.pid", "").strip())
        if pid in by_pid:
            return by_pid[pid]
    parsed = args.parse_shim(shim.cmdline)
    if parsed:
        for path, text in host.files.items():
            if path.endswith(f"/runtime-runc/{parsed.namespace}/{parsed.id}/state.json"):
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
            )
        )

    if init:
        add(init, "init")
        for proc in host.descendants(init.pid):
            add(proc, "child")
    for proc in host.children(shim.pid):
        if proc is init or _is_runtime(proc):
            continue
        add(proc, "exec")
        for sub in host.descendants(proc.pid):
            add(sub, "exec")
    return out


@dataclass
class _Draft:
    """An engine under construction."""

    engine: Engine
    socket: str | None = None
    namespaces: set[str] = field(default_factory=set)


def build(host: Host, apis: Mapping[int, ApiView] | None = None) -> Topology:
    """Every engine on the host, from the snapshot and each dockerd's API view (by PID)."""
    apis = apis or {}
    drafts: list[_Draft] = []
    cds = {p.pid: p for p in containerds(host)}
    cd_sockets = {pid: containerd_socket(host, p) for pid, p in cds.items()}
    claimed: set[int] = set()

    for d in dockerds(host):
        view = apis.get(d.pid, ApiView(error="API not queried"))
        dockerd = Dockerd(
            pid=d.pid,
            cmdline=list(d.cmdline),
            api_socket=api_socket(host, d),
            reachable=view.error is None,
            live_restore=view.live_restore
            if view.live_restore is not None
            else _live_restore_configured(host, d),
            api_error=view.error,
            containerd_namespace=args.flag_value(d.cmdline, "--containerd-namespace") or "moby",
        )
        engine = Engine(dockerd=dockerd, containerd=None)
        target, how = containerd_target(host, d)
        unknown = [
            pid for pid, (sock, _) in cd_sockets.items() if sock is None and pid not in claimed
        ]
        if target and len(unknown) == 1 and target not in {s for s, _ in cd_sockets.values()}:
            # Not root: the one containerd whose socket we cannot read is taken to serve it,
            # and marked unproven (no `socket` edge is drawn for it).
            cd_sockets[unknown[0]] = (target, False)
            engine.notes.append(
                f"containerd {unknown[0]} is assumed to serve {target}: its socket could not "
                "be read (run as root to prove it)"
            )
        for pid, (sock, proven) in cd_sockets.items():
            if target and sock == target:
                cd = cds[pid]
                managed = is_parent(d, cd)
                connected = _connected(host, d.pid, pid)
                engine.containerd = Containerd(
                    pid=pid,
                    socket=sock,
                    managed=managed,
                    cmdline=list(cd.cmdline),
                    proven=proven,
                    connected=connected,
                )
                claimed.add(pid)
                if managed:
                    engine.edges.append(Edge(d.pid, pid, "parent", "ppid"))
                if proven or connected:
                    evidence = (
                        [how]
                        + (["listener"] if proven else [])
                        + (["connected"] if connected else [])
                    )
                    engine.edges.append(
                        Edge(d.pid, pid, "socket", f"{sock} ({', '.join(evidence)})")
                    )
                break
        else:
            engine.notes.append(
                f"containerd for this dockerd not found ({how}"
                + (f": {target}" if target else "")
                + ")"
            )
        if view.error:
            engine.notes.append(f"API unreachable ({view.error}): container names are missing")
        drafts.append(_Draft(engine, target, {dockerd.containerd_namespace}))

    for pid, cd in cds.items():
        if pid in claimed:
            continue
        sock, proven = cd_sockets[pid]
        engine = Engine(
            dockerd=None,
            containerd=Containerd(
                pid=pid, socket=sock or "?", managed=False, cmdline=list(cd.cmdline), proven=proven
            ),
        )
        engine.notes.append("no dockerd uses this containerd (dockerd down, or another client)")
        drafts.append(_Draft(engine, sock, set()))

    orphans: list[Container] = []
    for proc in sorted(host.procs.values(), key=lambda p: p.create_time):
        shim = args.parse_shim(proc.cmdline)
        if shim is None or shim.transient or proc.zombie:
            continue
        container = _container_from_shim(host, proc, shim)
        draft = _engine_for_shim(drafts, shim)
        if draft is None:
            orphans.append(container)
            continue
        engine = draft.engine
        engine.containers.append(container)
        _shim_edges(host, engine, proc, container)

    for draft in drafts:
        engine = draft.engine
        if engine.dockerd:
            api_view = apis.get(engine.dockerd.pid)
            _merge_api(engine, api_view)
            _attach_proxies(host, engine, api_view)
        engine.containers.sort(key=lambda c: (not c.running, c.name or "~", c.id))

    topo = Topology(engines=[d.engine for d in drafts], orphans=orphans, host=_host_json(host))
    denied = sum(1 for p in host.procs.values() if p.denied)
    if denied and host.euid != 0:
        topo.notes.append(
            f"{denied} processes could not be fully read: run as root (or with CAP_SYS_PTRACE) "
            "for the full view"
        )
    if not topo.engines and not orphans:
        topo.notes.append("no Docker engine found on this host (no dockerd, containerd or shim)")
    return topo


def _connected(host: Host, client: int, server: int) -> bool | None:
    """Does client hold a unix socket whose peer server holds (sock_diag)? None: unknown."""
    mine, theirs = host.sockets.get(client), host.sockets.get(server)
    if not mine or not theirs or not host.peers:
        return None
    return any(host.peers.get(inode) in theirs for inode in mine)


def _live_restore_configured(host: Host, dockerd: Proc) -> bool | None:
    if args.flag_bool(dockerd.cmdline, "--live-restore"):
        return True
    value = daemon_json(host, dockerd).get("live-restore")
    return value if isinstance(value, bool) else None


def _engine_for_shim(drafts: list[_Draft], shim: args.ShimArgs) -> _Draft | None:
    address = args.normalize_path(shim.address) if shim.address else None
    matches = [d for d in drafts if d.socket and d.socket == address and d.engine.containerd]
    if len(matches) > 1:  # several dockerds on one containerd: their containerd namespaces
        by_ns = [d for d in matches if shim.namespace in d.namespaces]
        matches = by_ns or matches
    return matches[0] if matches else None


def _container_from_shim(host: Host, proc: Proc, shim: args.ShimArgs) -> Container:
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
        namespaces={k: v for k, v in (init.ns if init else {}).items()},
    )


def _shim_edges(host: Host, engine: Engine, proc: Proc, container: Container) -> None:
    assert container.shim is not None
    if engine.containerd:
        engine.edges.append(
            Edge(proc.pid, engine.containerd.pid, "shim-address", container.shim.address or "")
        )
    if container.shim.reparented:
        why = "pid 1" if proc.ppid == 1 else f"subreaper {proc.ppid}"
        engine.edges.append(Edge(proc.ppid, proc.pid, "reparented", why))
    else:
        engine.edges.append(Edge(proc.ppid, proc.pid, "parent", "ppid"))
    for p in container.processes:
        engine.edges.append(Edge(p.ppid, p.pid, "parent", "ppid"))


def _merge_api(engine: Engine, view: ApiView | None) -> None:
    """Names, images and states from the engine's one list call; stopped containers too."""
    if view is None or view.containers is None:
        return
    by_id = {c.id: c for c in engine.containers}
    for row in view.containers:
        found = by_id.get(row.id)
        if found is None:
            found = Container(id=row.id, name=None, image=None, state=row.state)
            engine.containers.append(found)
            by_id[row.id] = found
        found.name, found.image, found.state = row.name, row.image, row.state


def _attach_proxies(host: Host, engine: Engine, view: ApiView | None) -> None:
    """docker-proxy children of dockerd, tied to the container that owns -container-ip."""
    assert engine.dockerd is not None
    d = host.procs.get(engine.dockerd.pid)
    if d is None:
        return
    rows = (view.containers if view else None) or ()
    owner = {ip: row.id for row in rows for ip in row.ips}
    by_id = {c.id: c for c in engine.containers}
    for child in host.children(d.pid):
        parsed = args.parse_proxy(child.cmdline)
        if parsed is None:
            continue
        proxy = Proxy(pid=child.pid, **parsed.__dict__)
        engine.edges.append(Edge(d.pid, child.pid, "parent", "ppid"))
        cid = owner.get(parsed.container_ip)
        if cid in by_id:
            by_id[cid].proxies.append(proxy)
        else:
            engine.unmatched_proxies.append(proxy)


def _host_json(host: Host) -> dict[str, Any]:
    import datetime as dt

    return {
        "hostname": host.hostname,
        "taken_at": dt.datetime.fromtimestamp(host.taken_at, dt.UTC).isoformat(timespec="seconds"),
        "root": host.euid == 0,
        "processes": len(host.procs),
        "namespaces": dict(host.host_ns),
        "namespaces_from": host.host_ns_source,
    }
