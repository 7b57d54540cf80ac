"""`show --json` out, and back in: the documented schema `dtrace-tree/show/1` (README).

Reading is strict, because a saved snapshot is a file anyone can write and its PIDs become
node names in a diagram: every field the outputs read must have its documented type, or the
whole file is refused with `SnapshotFormatError` (one line, exit 2).

An engine is written with one key per daemon role the schema knows ("dockerd", "containerd",
null when that role does not run), as schema 1 has always had them.
"""

from __future__ import annotations

from typing import Any

from tracer.errors import SnapshotFormatError
from tracer.model.topology import (
    Container,
    Containerd,
    Daemon,
    Dockerd,
    Edge,
    Engine,
    Process,
    Proxy,
    Shim,
    Topology,
)

SCHEMA = "dtrace-tree/show/1"


def to_json(topo: Topology) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "host": topo.host,
        "engines": [_engine_json(e) for e in topo.engines],
        "orphans": [_container_json(c) for c in topo.orphans],
        "notes": list(topo.notes),
    }


def _plain(flat: Any) -> dict[str, Any]:
    """The fields of a flat dataclass (Process, Shim, Proxy, a daemon), lists and dicts
    copied: dataclasses.asdict does the same through a deep copy of every value, and was a
    tenth of `show --json` at 300 containers."""
    return {
        k: list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v
        for k, v in vars(flat).items()
    }


def _daemon_json(engine: Engine, kind: type[Daemon]) -> dict[str, Any] | None:
    d = engine.daemon(kind)
    return _plain(d) if d else None


def _engine_json(engine: Engine) -> dict[str, Any]:
    return {
        "dockerd": _daemon_json(engine, Dockerd),
        "containerd": _daemon_json(engine, Containerd),
        "containers": [_container_json(c) for c in engine.containers],
        "edges": [{"from": x.src, "to": x.dst, "kind": x.kind, "via": x.via} for x in engine.edges],
        "unmatched_proxies": [_plain(p) for p in engine.unmatched_proxies],
        "notes": list(engine.notes),
    }


def _container_json(c: Container) -> dict[str, Any]:
    return {
        "id": c.id,
        "name": c.name,
        "image": c.image,
        "state": c.state,
        "init_pid": c.init_pid,
        "shim_pid": c.shim_pid,
        "shim": _plain(c.shim) if c.shim else None,
        "processes": [_plain(p) for p in c.processes],
        "proxies": [_plain(p) for p in c.proxies],
        "namespaces": dict(c.namespaces),
    }


# -- reading a saved snapshot back ------------------------------------------------------------


def from_json(doc: Any) -> Topology:
    """A Topology from `show --json` output; SnapshotFormatError if doc is not one."""
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise SnapshotFormatError(f"not a dtrace-tree snapshot (expected schema {SCHEMA!r})")
    try:
        host = _obj(doc.get("host") or {}, "host")
        for key in ("hostname", "taken_at", "namespaces_from"):
            _text(host.get(key), f"host.{key}", optional=True)
        _ns(host.get("namespaces") or {}, "host")
        return Topology(
            engines=[_engine(e) for e in _list(doc.get("engines"), "engines")],
            orphans=[_container(c) for c in _list(doc.get("orphans", []), "orphans")],
            host=dict(host),
            notes=[_text(n, "note") for n in _list(doc.get("notes") or [], "notes")],
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SnapshotFormatError(f"malformed dtrace-tree snapshot: {exc!r}") from exc


def _fail(what: str) -> SnapshotFormatError:
    return SnapshotFormatError(f"malformed dtrace-tree snapshot: {what}")


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(f"{what} is not an object")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise _fail(f"{what} is not a list")
    return value


def _num(value: Any, what: str, optional: bool = False) -> Any:
    """A PID, port or inode: a non-negative int (never a bool, a float or text)."""
    if value is None and optional:
        return None
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        raise _fail(f"{what} is not a number")
    return value


def _text(value: Any, what: str, optional: bool = False) -> Any:
    if not (isinstance(value, str) or (optional and value is None)):
        raise _fail(f"{what} is not text")
    return value


def _argv(value: Any, what: str) -> list[str]:
    if not (isinstance(value, list) and all(isinstance(a, str) for a in value)):
        raise _fail(f"{what} command line is not a list of text")
    return list(value)


def _ns(value: Any, what: str) -> dict[str, int]:
    return {
        _text(k, f"{what} namespace type"): _num(v, f"{what} namespace inode")
        for k, v in _obj(value, f"{what} namespaces").items()
    }


def _engine(e: Any) -> Engine:
    e = _obj(e, "engine")
    daemons: list[Daemon] = []
    if e.get("dockerd"):
        d = _obj(e["dockerd"], "dockerd")
        daemons.append(
            Dockerd(
                **{
                    **d,
                    "pid": _num(d.get("pid"), "dockerd pid"),
                    "cmdline": _argv(d.get("cmdline"), "dockerd"),
                    "api_socket": _text(d.get("api_socket"), "dockerd api_socket", True),
                    "api_error": _text(d.get("api_error"), "dockerd api_error", True),
                }
            )
        )
    if e.get("containerd"):
        c = _obj(e["containerd"], "containerd")
        daemons.append(
            Containerd(
                **{
                    **c,
                    "pid": _num(c.get("pid"), "containerd pid"),
                    "cmdline": _argv(c.get("cmdline", []), "containerd"),
                    "socket": _text(c.get("socket"), "containerd socket"),
                }
            )
        )
    return Engine(
        runtime="docker" if e.get("dockerd") else "containerd",
        daemons=daemons,
        containers=[_container(c) for c in _list(e.get("containers", []), "containers")],
        edges=[_edge(x) for x in _list(e.get("edges", []), "edges")],
        notes=[_text(n, "note") for n in _list(e.get("notes") or [], "notes")],
        unmatched_proxies=[_proxy(p) for p in _list(e.get("unmatched_proxies", []), "proxies")],
    )


def _edge(x: Any) -> Edge:
    x = _obj(x, "edge")
    return Edge(
        _num(x["from"], "edge from"),
        _num(x["to"], "edge to"),
        _text(x["kind"], "edge kind"),
        _text(x.get("via", ""), "edge via"),
    )


def _proxy(p: Any) -> Proxy:
    p = _obj(p, "proxy")
    return Proxy(
        pid=_num(p["pid"], "proxy pid"),
        proto=_text(p["proto"], "proxy address"),
        host_ip=_text(p["host_ip"], "proxy address"),
        host_port=_num(p["host_port"], "proxy host_port"),
        container_ip=_text(p["container_ip"], "proxy address"),
        container_port=_num(p["container_port"], "proxy container_port"),
    )


def _container(c: Any) -> Container:
    c = _obj(c, "container")
    shim = None
    if c.get("shim"):
        s = _obj(c["shim"], "shim")
        shim = Shim(
            **{
                **s,
                "pid": _num(s.get("pid"), "shim pid"),
                "ppid": _num(s.get("ppid"), "shim ppid"),
                "cmdline": _argv(s.get("cmdline"), "shim"),
                "address": _text(s.get("address"), "shim address", True),
            }
        )
    return Container(
        id=_text(c["id"], "container id"),
        name=_text(c.get("name"), "container name, image or state", True),
        image=_text(c.get("image"), "container name, image or state", True),
        state=_text(c["state"], "container name, image or state"),
        init_pid=_num(c.get("init_pid"), "init_pid", optional=True),
        shim_pid=_num(c.get("shim_pid"), "shim_pid", optional=True),
        shim=shim,
        processes=[_process(p) for p in _list(c.get("processes", []), "processes")],
        proxies=[_proxy(p) for p in _list(c.get("proxies", []), "proxies")],
        namespaces=_ns(c.get("namespaces") or {}, "container"),
    )


def _process(p: Any) -> Process:
    p = _obj(p, "process")
    return Process(
        **{
            **p,
            "pid": _num(p.get("pid"), "process pid"),
            "ppid": _num(p.get("ppid"), "process ppid"),
            "cmdline": _argv(p.get("cmdline"), "process"),
            "role": _text(p.get("role"), "process role"),
            "name": _text(p.get("name", ""), "process name"),
            "namespaces": _ns(p.get("namespaces") or {}, "process"),
            "start": _num(p.get("start"), "process start", optional=True),
        }
    )
