"""`show --json` out, and back in: the documented schema `dtrace-tree/show/2` (README); files
of schema 1 are read too.

Reading is strict, because a saved snapshot is a file anyone can write and its PIDs become
node names in a diagram: every field the outputs read must have its documented type, or the
whole file is refused with `SnapshotFormatError` (one line, exit 2).

Schema 2 is one shape for every runtime: an engine says its `runtime` (docker, containerd, cri,
podman) and lists its `daemons`, each with its `role` (none for podman); a container names its
`monitor` (a containerd shim or conmon) and its `pod`. Schema 1 had one key per daemon role
("dockerd", "containerd", null when that role did not run): a containerd engine with
"dockerd": null meant "dockerd not running", which is now a containerd engine of its own.
"""

from __future__ import annotations

from typing import Any

from tracer.errors import SnapshotFormatError
from tracer.model.topology import (
    DAEMON_TYPES,
    SHIM,
    Container,
    Containerd,
    Daemon,
    Dockerd,
    Edge,
    Engine,
    Monitor,
    Pod,
    Process,
    Proxy,
    Service,
    Topology,
)

SCHEMA = "dtrace-tree/show/2"
SCHEMA_1 = "dtrace-tree/show/1"
ROLES: dict[str, type[Daemon]] = {t.ROLE: t for t in DAEMON_TYPES}
# An engine's facts (Engine.facts: what only its runtime knows) are keys of its object. Schema
# 2 documents one, podman's storage root, as text on every engine (null when not podman's).
DOCUMENTED_FACTS = ("store",)
_ENGINE_KEYS = frozenset({"runtime", "name", "namespace", "owner", "daemons", "containers",
                          "edges", "unmatched_proxies", "notes"})  # fmt: skip


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


def _engine_json(engine: Engine) -> dict[str, Any]:
    return {
        "runtime": engine.runtime,
        "name": engine.title,
        "namespace": engine.namespace,
        **dict.fromkeys(DOCUMENTED_FACTS),
        **{k: v for k, v in engine.facts.items() if k not in _ENGINE_KEYS},
        "owner": engine.owner,
        "daemons": [{"role": d.role, **_plain(d)} for d in engine.daemons],
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
        "monitor": _plain(c.monitor) if c.monitor else None,
        "pod": _plain(c.pod) if c.pod else None,
        "processes": [_plain(p) for p in c.processes],
        "proxies": [_plain(p) for p in c.proxies],
        "namespaces": dict(c.namespaces),
    }


# -- reading a saved snapshot back ------------------------------------------------------------


def from_saved(doc: Any) -> Topology:
    """A Topology from a saved document: `show --json` output, or a `survive --json` report,
    whose snapshot taken while the daemon was down (its `during.topology`) is read instead;
    SnapshotFormatError for anything else. A report is known by its schema, or, written
    before it named one, by its verdict."""
    from tracer.model.survival import SCHEMA as SURVIVE

    report = isinstance(doc, dict) and (doc.get("schema") == SURVIVE or "verdict" in doc)
    during = doc.get("during") if report else None
    if isinstance(during, dict) and "topology" in during:
        doc = during["topology"]  # a survive report: what /proc showed while it was down
    return from_json(doc)


def from_json(doc: Any) -> Topology:
    """A Topology from `show --json` output (schema 2 or 1); SnapshotFormatError if doc is not
    one."""
    if not isinstance(doc, dict) or doc.get("schema") not in (SCHEMA, SCHEMA_1):
        raise SnapshotFormatError(f"not a dtrace-tree snapshot (expected schema {SCHEMA!r})")
    v1 = doc["schema"] == SCHEMA_1
    try:
        host = _obj(doc.get("host") or {}, "host")
        for key in ("hostname", "taken_at", "namespaces_from"):
            _text(host.get(key), f"host.{key}", optional=True)
        _ns(host.get("namespaces") or {}, "host")
        return Topology(
            engines=[
                (_engine_v1 if v1 else _engine)(e) for e in _list(doc.get("engines"), "engines")
            ],
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


def _daemon(kind: type[Daemon], d: dict[str, Any]) -> Daemon:
    """One daemon of a known role, its fields typed as the outputs read them."""
    role = kind.ROLE
    fields = {k: v for k, v in d.items() if k != "role"}
    fields["pid"] = _num(d.get("pid"), f"{role} pid")
    fields["cmdline"] = _argv(d.get("cmdline", [] if kind is Containerd else None), role)
    for key in ("api_socket", "api_error", "endpoint"):
        if key in fields:
            fields[key] = _text(fields[key], f"{role} {key}", True)
    if kind is Containerd:
        fields["socket"] = _text(d.get("socket"), "containerd socket")
    return kind(**fields)


def _service(role: str, d: dict[str, Any]) -> Service:
    """A daemon of a role the model has no class for (a runtime's own)."""
    return Service(
        pid=_num(d.get("pid"), f"{role} pid"),
        cmdline=_argv(d.get("cmdline"), role),
        kind=role,
        socket=_text(d.get("socket"), f"{role} socket", True),
    )


def _rest(e: dict[str, Any], runtime: str, daemons: list[Daemon], **extra: Any) -> Engine:
    return Engine(
        runtime=runtime,
        daemons=daemons,
        containers=[_container(c) for c in _list(e.get("containers", []), "containers")],
        edges=[_edge(x) for x in _list(e.get("edges", []), "edges")],
        notes=[_text(n, "note") for n in _list(e.get("notes") or [], "notes")],
        unmatched_proxies=[_proxy(p) for p in _list(e.get("unmatched_proxies", []), "proxies")],
        **extra,
    )


def _engine(e: Any) -> Engine:
    e = _obj(e, "engine")
    daemons = []
    for d in _list(e.get("daemons", []), "daemons"):
        d = _obj(d, "daemon")
        role = _text(d.get("role"), "daemon role")
        kind = ROLES.get(role)
        daemons.append(_daemon(kind, d) if kind is not None else _service(role, d))
    return _rest(
        e,
        _text(e.get("runtime"), "engine runtime"),
        daemons,
        namespace=_text(e.get("namespace"), "engine namespace", True),
        owner=_num(e.get("owner"), "engine owner", optional=True),
        named=_text(e.get("name"), "engine name", True),
        facts=_facts(e),
    )


def _facts(e: dict[str, Any]) -> dict[str, str | int | bool | None]:
    """The keys of an engine that are its runtime's facts: the documented ones typed as
    documented, any other one kept when it is plain text, a number or a truth value (a
    runtime this version does not know may have written it); null ones are not facts."""
    out: dict[str, str | int | bool | None] = {}
    for key, value in e.items():
        if key in _ENGINE_KEYS or value is None:
            continue
        if key in DOCUMENTED_FACTS:
            out[key] = _text(value, f"engine {key}")
        elif isinstance(value, str | int | bool):  # not a list or an object: nothing reads it
            out[key] = value
    return out


def _engine_v1(e: Any) -> Engine:
    """Schema 1: one key per daemon role."""
    e = _obj(e, "engine")
    daemons: list[Daemon] = []
    for kind in (Dockerd, Containerd):
        if e.get(kind.ROLE):
            daemons.append(_daemon(kind, _obj(e[kind.ROLE], kind.ROLE)))
    return _rest(e, "docker" if e.get("dockerd") else "containerd", daemons)


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


def _monitor(m: Any, what: str) -> Monitor:
    m = _obj(m, what)
    return Monitor(
        **{
            **m,
            "pid": _num(m.get("pid"), f"{what} pid"),
            "ppid": _num(m.get("ppid"), f"{what} ppid"),
            "cmdline": _argv(m.get("cmdline"), what),
            "namespace": _text(m.get("namespace"), f"{what} namespace", True),
            "address": _text(m.get("address"), f"{what} address", True),
            "kind": _text(m.get("kind", SHIM), f"{what} kind"),
        }
    )


def _pod(p: Any) -> Pod:
    p = _obj(p, "pod")
    return Pod(
        id=_text(p.get("id"), "pod id"),
        name=_text(p.get("name"), "pod name", True),
        namespace=_text(p.get("namespace"), "pod namespace", True),
        uid=_text(p.get("uid"), "pod uid", True),
        sandbox=bool(p.get("sandbox")),
    )


def _container(c: Any) -> Container:
    c = _obj(c, "container")
    found = c.get("monitor") or c.get("shim")  # schema 1: the shim
    return Container(
        id=_text(c["id"], "container id"),
        name=_text(c.get("name"), "container name, image or state", True),
        image=_text(c.get("image"), "container name, image or state", True),
        state=_text(c["state"], "container name, image or state"),
        init_pid=_num(c.get("init_pid"), "init_pid", optional=True),
        shim_pid=_num(c.get("shim_pid"), "shim_pid", optional=True),
        monitor=_monitor(found, "monitor") if found else None,
        processes=[_process(p) for p in _list(c.get("processes", []), "processes")],
        proxies=[_proxy(p) for p in _list(c.get("proxies", []), "proxies")],
        namespaces=_ns(c.get("namespaces") or {}, "container"),
        pod=_pod(c["pod"]) if c.get("pod") else None,
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
