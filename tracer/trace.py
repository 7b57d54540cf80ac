"""Trace the host: one snapshot, one container list per engine, then the topology.

The only place where the snapshot meets the Docker API; everything after is pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tracer import argv as args
from tracer.apiworker import ApiWorker
from tracer.errors import EngineError, UsageError
from tracer.model import ApiView, Container, Topology

if TYPE_CHECKING:
    from tracer.host import Host


def query_api(socket_path: str | None) -> ApiView:
    """One list call and one info call: constant in the number of containers."""
    if not socket_path:
        return ApiView(error="no API socket found")
    from tracer.dockerapi import Api

    try:
        with Api(f"unix://{socket_path}") as api:
            rows = api.containers(all=True)
            info = api.info()
        return ApiView(containers=rows, live_restore=bool(info.get("LiveRestoreEnabled")))
    except EngineError as exc:
        return ApiView(error=exc.message.rsplit(": ", 1)[-1])


def query_apis(sockets: Sequence[str | None]) -> list[ApiView]:
    """query_api for every engine, all at once."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, min(8, len(sockets)))) as pool:
        return list(pool.map(query_api, sockets))


def _import_sdk() -> None:
    """What query_apis imports: the SDK is the cost the worker hides."""
    import concurrent.futures  # noqa: F401

    import tracer.dockerapi  # noqa: F401


def trace(host_url: str | None = None, proc_root: str = "/proc") -> Topology:
    """Every engine on the host (or only the one at host_url)."""
    sockets: dict[int, str | None] = {}

    # The API is asked from a child that imports the SDK while we walk /proc (and import
    # what the walk needs: the fork comes first), and answers while we read the namespaces.
    with ApiWorker(_import_sdk, query_apis) as api:
        from tracer import host as hostmod
        from tracer import topology

        def ask(snap: Host) -> None:  # as soon as the daemons are known
            for d in topology.dockerds(snap):
                sock = topology.api_socket(snap, d)
                if not host_url or _same_socket(host_url, sock):
                    sockets[d.pid] = sock
            api.ask(list(sockets.values()))

        snap = hostmod.take(proc_root, on_daemons=ask)
        views = dict(zip(sockets, api.answers(), strict=True))
    topo = topology.build(snap, views)
    return only_engine(topo, host_url) if host_url else topo


def _same_socket(url: str, path: str | None) -> bool:
    wanted = args.unix_path(url)
    return bool(wanted and path and args.normalize_path(wanted) == args.normalize_path(path))


def only_engine(topo: Topology, url: str) -> Topology:
    """The engine whose API (or containerd) socket is url; UsageError if there is none."""
    if not args.unix_path(url):
        raise UsageError(f"-H {url}: only unix:// sockets can be traced on this host")
    keep = [
        e
        for e in topo.engines
        if (e.dockerd and _same_socket(url, e.dockerd.api_socket))
        or (e.containerd and _same_socket(url, e.containerd.socket))
    ]
    if not keep:
        found = ", ".join(e.title for e in topo.engines) or "none"
        raise UsageError(f"no engine listens on {url} (engines found: {found})")
    return Topology(engines=keep, orphans=[], host=topo.host, notes=topo.notes)


def host_config(topo: Topology, container: Container) -> dict[str, Any] | None:
    """The container's HostConfig (one inspect call), or None when its API is unreachable."""
    engine = next((e for e in topo.engines if container in e.containers), None)
    if not (engine and engine.dockerd and engine.dockerd.reachable and engine.dockerd.api_socket):
        return None
    from tracer.dockerapi import Api

    try:
        with Api(f"unix://{engine.dockerd.api_socket}") as api:
            found = api.inspect(container.id)
    except EngineError:
        return None
    return dict(found.get("HostConfig") or {}) if found else None
