"""Docker: dockerd, the containerd it uses, docker-proxy, daemon.json and the Engine API.

Every link is proven from the snapshot and says how: `parent` (ppid, with the parent older
than the child), `socket` (dockerd's containerd socket is a listener held by that containerd,
or dockerd holds a socket whose peer it holds), `runtime-root` (the shim runs runc with a root
under that dockerd's exec root: what tells apart two dockerds on one containerd and namespace),
`shim-address` and `reparented` (from tracer/runtimes/containerd/shim.py, which lends Docker
its shims). Names, images and states come
from the API's one container list per engine (tracer/runtimes/dockerapi.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tracer.kernel.root import HostRoot, normalize
from tracer.model.topology import (
    ApiView,
    Container,
    Containerd,
    Dockerd,
    Edge,
    Engine,
    Proxy,
)
from tracer.runtimes import containerd
from tracer.runtimes.base import Found, Look, RuntimeBase
from tracer.runtimes.flags import (
    flag_bool,
    flag_value,
    flag_values,
    parse_proxy,
    unix_path,
)
from tracer.runtimes.moby import dataroot, rootless
from tracer.runtimes.moby.namespaces import USUALLY_SHARED, sharing_flags
from tracer.snapshot.host import Host, Proc, is_parent
from tracer.snapshot.walk import Reader

DEFAULT_SOCK = "/run/docker.sock"
DEFAULT_CONFIG = "/etc/docker/daemon.json"
DEFAULT_EXEC_ROOT = "/run/docker"
NAMESPACE = "moby"  # dockerd's containerd namespace unless --containerd-namespace says otherwise


# -- dockerd's configuration ------------------------------------------------------------------


def config_path(dockerd: Proc | Dockerd) -> str:
    return flag_value(dockerd.cmdline, "--config-file") or DEFAULT_CONFIG


def exec_root(dockerd: Proc | Dockerd) -> str:
    return normalize(flag_value(dockerd.cmdline, "--exec-root") or DEFAULT_EXEC_ROOT)


def exec_roots(host: Host, dockerd: Proc) -> set[str]:
    """Where dockerd's exec root is: --exec-root (or the default), and the directory its
    managed containerd's config is in (<exec-root>/containerd/containerd.toml), which tells a
    rootless dockerd's ($XDG_RUNTIME_DIR/docker) without its environment. Once per dockerd
    and snapshot: it is asked for each shim."""
    key = f"docker.exec_roots.{dockerd.pid}.{dockerd.start}"
    return set(host.derived(key, lambda h: _exec_roots(h, dockerd)))


def _exec_roots(host: Host, dockerd: Proc) -> frozenset[str]:
    roots = {exec_root(dockerd)}
    for child in host.children(dockerd.pid):
        if child.program != "containerd":
            continue  # its docker-proxy children: one per published port
        config = flag_value(child.cmdline, "--config", "-c") or ""
        if config.endswith("/containerd/containerd.toml"):
            roots.add(normalize(config.rsplit("/", 2)[0]))
    return frozenset(roots)


def data_root(dockerd: Proc | Dockerd, root: HostRoot) -> str:
    """Where dockerd keeps its data, as dockerd decides it: --data-root (or the older -g,
    --graph), else daemon.json's "data-root" (or the older "graph"), else /var/lib/docker, or
    for a rootless dockerd (under RootlessKit) ~/.local/share/docker
    (tracer/runtimes/moby/dataroot.py). The one definition: `fs` finds the layers and
    `survive` the restart policies with it."""
    return dataroot.find(dockerd, root).path


def daemon_json(host: Host, dockerd: Proc) -> dict[str, Any]:
    """dockerd's daemon.json as the snapshot read it ({} if none, or not a JSON object)."""
    return dataroot.json_object(host.files.get(config_path(dockerd)))


def api_socket(host: Host, dockerd: Proc) -> str | None:
    """dockerd's API socket: from -H/--host, daemon.json hosts, or the default; checked
    against the unix sockets the process really listens on."""
    hosts = flag_values(dockerd.cmdline, "-H", "--host")
    if not hosts:
        configured = daemon_json(host, dockerd).get("hosts")
        hosts = (
            [h for h in configured if isinstance(h, str)] if isinstance(configured, list) else []
        )
    hosts = hosts or [f"unix://{DEFAULT_SOCK}"]
    listening = {normalize(p) for p in host.listeners.get(dockerd.pid, {}).values()}
    configured_paths = [normalize(p) for h in hosts if (p := unix_path(h))]
    for path in configured_paths:
        if path in listening:
            return path
    # fd:// (systemd socket activation) or a socket we could not see: what it listens on,
    # minus its own internal sockets (metrics, libnetwork, plugins under the exec root).
    internal = exec_root(dockerd) + "/"
    candidates = sorted(p for p in listening if not p.startswith(internal))
    preferred = [p for p in candidates if p.endswith("docker.sock")]
    if preferred or candidates:
        return (preferred or candidates)[0]
    return configured_paths[0] if configured_paths else None


def containerd_target(host: Host, dockerd: Proc) -> tuple[str | None, str]:
    """The containerd socket dockerd uses, and how we know (moby's own decision order)."""
    explicit = flag_value(dockerd.cmdline, "--containerd")
    if not explicit:
        value = daemon_json(host, dockerd).get("containerd")
        explicit = value if isinstance(value, str) else None
    if explicit:
        return normalize(unix_path(explicit) or explicit), "--containerd"
    for child in host.children(dockerd.pid):
        if child.program == "containerd":
            return containerd.socket_of(host, child)[0], "managed (child of dockerd)"
    if containerd.SYSTEM_SOCK in host.exists:
        return containerd.SYSTEM_SOCK, f"{containerd.SYSTEM_SOCK} exists"
    return None, "managed containerd not running"


def live_restore_configured(host: Host, dockerd: Proc) -> bool | None:
    if flag_bool(dockerd.cmdline, "--live-restore"):
        return True
    value = daemon_json(host, dockerd).get("live-restore")
    return value if isinstance(value, bool) else None


# -- the runtime -------------------------------------------------------------------------------


class DockerRuntime(RuntimeBase):
    name = "docker"
    daemons = frozenset({"dockerd"})
    usually_shared: Mapping[str, str] = USUALLY_SHARED
    look = Look(
        chain=("rootlesskit", "network helper", "rootlesskit child", "dockerd", "containerd"),
        monitor_parent="containerd", cli=frozenset({"docker"}),
        quiet=frozenset({"dockerd"}),
        missing={"dockerd": "dockerd not running", "containerd": "containerd not found"},
        edges={"socket": "dockerd -> containerd (gRPC; a listener held by containerd)",
               "runtime-root": "dockerd -> shim (its runc root is under dockerd's exec root)",
               **containerd.SHIM_EDGES, "forwards": "docker-proxy -> container (-container-ip)"},
    )  # fmt: skip

    def read_daemon(self, host: Host, daemon: Proc, read: Reader) -> None:
        read.file(config_path(daemon))

    def describe(self, engine: Engine) -> list[str]:
        return rootless.describe(engine)

    def drawn(self, host: Host) -> Iterable[int]:
        """docker-proxy processes (their network namespace is the host's, or not)."""
        yield from (p.pid for p in host.procs.values() if p.program == "docker-proxy")
        yield from rootless.drawn(host)  # rootlesskit's child: the user namespace

    def read_state(self, host: Host, read: Reader) -> None:
        """Whose each shim is: the containers runc keeps state for under each running
        dockerd's runtime roots, else the runtime root in the shim's bundle's options.json
        (a dockerd that is down, another client); runc's state.json for shims whose bundle
        gave no init.pid."""
        read.exists(containerd.SYSTEM_SOCK)  # moby uses it when it exists (containerd_target)
        rootless.read(host, read)
        roots = {DEFAULT_EXEC_ROOT} | {exec_root(d) for d in host.running("dockerd")}
        listed: set[tuple[str, str]] = set()  # (containerd namespace, container id)
        for d in host.running("dockerd"):
            namespace = flag_value(d.cmdline, "--containerd-namespace") or NAMESPACE
            for mine in exec_roots(host, d):
                for entry in read.listdir(mine) or []:
                    if entry.startswith("runtime-"):  # runtime-runc, one per --add-runtime
                        states = read.listdir(f"{mine}/{entry}/{namespace}") or []
                        listed.update((namespace, cid) for cid in states)
        for proc, shim in containerd.shims(host):
            if (shim.namespace or "", shim.id) not in listed:  # one listing proves hundreds
                containerd.read_options(read, proc)
            if shim.namespace and not containerd.read_bundle(read, proc):
                for root in sorted(roots):
                    read.file(f"{root}/runtime-runc/{shim.namespace}/{shim.id}/state.json")

    def endpoint(self, host: Host, daemon: Proc) -> str | None:
        return api_socket(host, daemon) if daemon.program == "dockerd" else None

    def ask(self, endpoint: str) -> ApiView:
        """One container list and one info call: constant in the number of containers."""
        from tracer.errors import ApiError
        from tracer.runtimes.dockerapi import DockerApi

        api = DockerApi(endpoint)
        try:
            rows = api.containers()
            info = api.info()
        except ApiError as exc:
            return ApiView(error=exc.reason)
        return ApiView(containers=rows, live_restore=bool(info.get("LiveRestoreEnabled")))

    def build(self, host: Host, answers: Mapping[int, ApiView], found: Found) -> None:
        """An engine per dockerd, with the containerd it uses and that containerd's shims."""
        cds = {p.pid: p for p in host.running("containerd")}
        sockets = {pid: containerd.socket_of(host, p) for pid, p in cds.items()}
        mine = []
        for d in host.running("dockerd"):
            engine, target = self._engine(host, d, answers.get(d.pid), cds, sockets, found)
            mine.append((engine, target))
        for proc, shim in containerd.shims(host):
            address = normalize(shim.address) if shim.address else None
            # By the socket dockerd uses, even while its containerd is down: the shims (and the
            # containers) are still dockerd's, and the API still names them.
            # Only Docker's namespace: ctr, nerdctl and CRI use the same containerd in others.
            matches = [(e, s) for e, s in mine if s and s == address and _ours(e, shim.namespace)]
            if len(matches) > 1:  # several dockerds on one containerd: their namespaces
                by_ns = [m for m in matches if _namespace(m[0]) == shim.namespace]
                matches = by_ns or matches
            owner = _owner(host, [e for e, _ in matches], proc, shim)
            if owner is not None:
                containerd.adopt(owner[0], proc, containerd.container(host, proc, shim))
                owner[0].edges.extend(owner[1:])
                found.claimed.add(proc.pid)
        for engine, _ in mine:
            dockerd = engine.daemon(Dockerd)
            assert dockerd is not None
            view = answers.get(dockerd.pid)
            _merge_api(engine, view)
            _attach_proxies(host, engine, view)
            containerd.sort_containers(engine)
            found.engines.append(engine)

    def _engine(
        self,
        host: Host,
        d: Proc,
        view: ApiView | None,
        cds: Mapping[int, Proc],
        sockets: dict[int, tuple[str | None, bool]],
        found: Found,
    ) -> tuple[Engine, str | None]:
        """dockerd's engine with its containerd (claimed), and the containerd socket."""
        view = view or ApiView(error="API not queried")
        dockerd = Dockerd(
            pid=d.pid,
            cmdline=list(d.cmdline),
            api_socket=api_socket(host, d),
            reachable=view.error is None,
            live_restore=view.live_restore
            if view.live_restore is not None
            else live_restore_configured(host, d),
            api_error=view.error,
            containerd_namespace=flag_value(d.cmdline, "--containerd-namespace") or NAMESPACE,
        )
        found.claimed.add(d.pid)
        engine = Engine(runtime=self.name, daemons=[dockerd])
        rootless.decorate(host, engine, d, found.claimed)
        target, how = containerd_target(host, d)
        unknown = [
            pid for pid, (sock, _) in sockets.items() if sock is None and pid not in found.claimed
        ]
        if target and len(unknown) == 1 and target not in {s for s, _ in sockets.values()}:
            # Not root: the one containerd whose socket we cannot read is taken to serve it,
            # and marked unproven (no `socket` edge is drawn for it).
            sockets[unknown[0]] = (target, False)
            engine.notes.append(
                f"containerd {unknown[0]} is assumed to serve {target}: its socket could not "
                "be read (run as root to prove it)"
            )
        for pid, (sock, proven) in sockets.items():
            if target and sock == target:  # two dockerds may share one containerd
                self._add_containerd(host, engine, d, cds[pid], sock, proven, how)
                found.claimed.add(pid)
                break
        else:
            engine.notes.append(
                f"containerd for this dockerd not found ({how}"
                + (f": {target}" if target else "")
                + ")"
            )
        if view.error:
            engine.notes.append(f"API unreachable ({view.error}): container names are missing")
        return engine, target

    def _add_containerd(
        self, host: Host, engine: Engine, d: Proc, cd: Proc, sock: str, proven: bool, how: str
    ) -> None:
        managed = is_parent(d, cd)
        connected = containerd.connected(host, d.pid, cd.pid)
        engine.daemons.append(
            Containerd(
                pid=cd.pid,
                cmdline=list(cd.cmdline),
                socket=sock,
                managed=managed,
                proven=proven,
                connected=connected,
            )
        )
        if managed:
            engine.edges.append(Edge(d.pid, cd.pid, "parent", "ppid"))
        if proven or connected:
            evidence = (
                [how] + (["listener"] if proven else []) + (["connected"] if connected else [])
            )
            engine.edges.append(Edge(d.pid, cd.pid, "socket", f"{sock} ({', '.join(evidence)})"))

    def explain(
        self, engine: Engine, container: Container, names: Mapping[str, str], root: HostRoot
    ) -> dict[str, str]:
        """The run flags that shared namespaces, from one inspect call (and a rootless
        engine's own user namespace)."""
        dockerd, own = engine.daemon(Dockerd), rootless.explain(engine, container)
        if not (dockerd and dockerd.reachable and dockerd.api_socket):
            return own
        from tracer.errors import ApiError
        from tracer.runtimes.dockerapi import DockerApi

        try:
            found = DockerApi(root.path(dockerd.api_socket)).inspect(container.id)
        except ApiError:
            return own
        return sharing_flags(found.get("HostConfig") if found else None, names) | own

    def storage_root(self, engine: Engine, root: HostRoot) -> str | None:
        """dockerd's data root (`data_root`); None when dockerd is not running (a running
        container's mount says where its storage is, tracer/runtimes/storage.py)."""
        dockerd = engine.daemon(Dockerd)
        return data_root(dockerd, root) if dockerd else None

    def storage_view(self, engine: Engine) -> int | None:
        """dockerd, which mounts its containers' layers in its own mount namespace; for a
        rootless one, rootlesskit's child, which holds that namespace while dockerd is down."""
        child = [d.pid for d in engine.daemons if d.role == "rootlesskit child"]
        dockerd = engine.daemon(Dockerd)
        return child[0] if child else (dockerd.pid if dockerd else None)


def _owner(
    host: Host, engines: list[Engine], proc: Proc, shim: containerd.ShimArgs
) -> tuple[Engine] | tuple[Engine, Edge] | None:
    """Which of the dockerds that share the shim's containerd and namespace made it, by
    evidence: the first that can prove it (with the edge that shows how); else the first that
    cannot be ruled out, unproven (nothing could be read: not root); else none (its dockerd is
    not running: the containers of a dockerd that is down are not another one's)."""
    unproven: list[Engine] = []
    for engine in engines:
        mine, via = _made_by(host, engine, proc, shim)
        if mine and (dockerd := engine.daemon(Dockerd)) is not None:
            return engine, Edge(dockerd.pid, proc.pid, "runtime-root", via)
        unproven += [engine] if mine is None else []
    return (unproven[0],) if unproven else None


def _made_by(
    host: Host, engine: Engine, proc: Proc, shim: containerd.ShimArgs
) -> tuple[bool | None, str]:
    """Did this engine's dockerd make the shim's container (its runtime root is under
    dockerd's exec root), and the evidence; None: nothing could be read."""
    dockerd = engine.daemon(Dockerd)
    d = host.procs.get(dockerd.pid) if dockerd else None
    if dockerd is None or d is None:
        return None, ""
    roots = exec_roots(host, d)
    return containerd.made_under(host, proc, shim.id, roots, dockerd.containerd_namespace)


def _namespace(engine: Engine) -> str | None:
    d = engine.daemon(Dockerd)
    return d.containerd_namespace if d else None


def _ours(engine: Engine, namespace: str | None) -> bool:
    """Is a shim of this containerd namespace the engine's? (A shim without -namespace, a v1
    shim of old, is taken to be.)"""
    mine = _namespace(engine)
    if namespace is None or namespace == mine:
        return True
    return mine == NAMESPACE and containerd.docker_namespace(namespace)


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
    dockerd = engine.daemon(Dockerd)
    d = host.procs.get(dockerd.pid) if dockerd else None
    if d is None:
        return
    rows = (view.containers if view else None) or ()
    owner = {ip: row.id for row in rows for ip in row.ips}
    by_id = {c.id: c for c in engine.containers}
    for child in host.children(d.pid):
        parsed = parse_proxy(child.cmdline)
        if parsed is None:
            continue
        proxy = Proxy(pid=child.pid, **vars(parsed))
        engine.edges.append(Edge(d.pid, child.pid, "parent", "ppid"))
        cid = owner.get(parsed.container_ip)
        if cid in by_id:
            by_id[cid].proxies.append(proxy)
        else:
            engine.unmatched_proxies.append(proxy)


RUNTIME = DockerRuntime()
