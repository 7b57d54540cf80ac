"""Terminal rendering with rich: the only module (besides the CLI) that imports it.

Every piece of text from the host goes through `for_terminal` and into a `Text` object, never
into markup, so a container cannot inject escape sequences or rich markup into the tree.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from tracer.model import Container, Engine, Process, Proxy, Topology
from tracer.textsafe import for_terminal

MAX_CMDLINE = 120
STYLE = {
    "dockerd": "bold blue",
    "containerd": "bold cyan",
    "shim": "magenta",
    "init": "green",
    "child": "default",
    "exec": "yellow",
    "proxy": "blue",
    "dim": "dim",
    "name": "bold",
}


def _t(*parts: tuple[str, str] | str) -> Text:
    """Build a Text from (text, style) parts; every text part is escaped for the terminal."""
    out = Text()
    for part in parts:
        if isinstance(part, tuple):
            out.append(for_terminal(part[0]), style=part[1])
        else:
            out.append(for_terminal(part))
    return out


def cmdline(argv: Iterable[str], limit: int = MAX_CMDLINE) -> str:
    text = " ".join(argv)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def topology(topo: Topology) -> RenderableType:
    parts: list[RenderableType] = [engine(e) for e in topo.engines]
    if topo.orphans:
        tree = Tree(_t(("shims whose containerd is not running", "bold red")))
        for c in topo.orphans:
            _container(tree, c, via=f"containerd {c.shim.address if c.shim else '?'} gone")
        parts.append(tree)
    if not parts:
        parts.append(_t(("no Docker engine on this host", STYLE["dim"])))
    return Group(*parts)


def engine(e: Engine) -> Tree:
    if e.dockerd:
        d = e.dockerd
        lr = {True: "on", False: "off", None: "?"}[d.live_restore]
        root = Tree(
            _t(
                ("dockerd", STYLE["dockerd"]),
                f" {d.pid}",
                (f"  api {d.api_socket or '?'}", STYLE["dim"]),
                f"  live-restore {lr}",
                ("" if d.reachable else f"  API unreachable: {d.api_error}", "red"),
            )
        )
    else:
        root = Tree(_t(("dockerd not running", "bold red"), (f"  ({e.title})", STYLE["dim"])))
    if e.containerd:
        cd = e.containerd
        how = "child of dockerd, " if cd.managed else ""
        link = "socket" if cd.proven and e.dockerd else "serves"
        node = root.add(
            _t(
                ("containerd", STYLE["containerd"]),
                f" {cd.pid}",
                (f"  {cd.socket}", STYLE["dim"]),
                (f"  [{how}{link}]", STYLE["dim"]),
            )
        )
    else:
        node = root.add(_t(("containerd not found", "red")))
    for c in e.containers:
        _container(node, c, via="")
    for p in [p for c in e.containers for p in c.proxies]:
        owner = next(c for c in e.containers if p in c.proxies)
        root.add(_proxy(p, owner.label))
    for p in e.unmatched_proxies:
        root.add(_proxy(p, None))
    for line in e.notes:
        root.add(_t(("note: " + line, STYLE["dim"])))
    return root


def _proxy(p: Proxy, owner: str | None) -> Text:
    return _t(
        ("docker-proxy", STYLE["proxy"]),
        f" {p.pid}  {p.proto} {p.host_ip}:{p.host_port} -> {p.container_ip}:{p.container_port}",
        (f"  {owner}" if owner else "  (container unknown)", STYLE["name"]),
    )


def _container(parent: Tree, c: Container, via: str) -> None:
    ident: list[tuple[str, str] | str] = [
        (c.name or "(name unknown)", STYLE["name"]),
        f" {c.short_id}",
    ]
    image: list[tuple[str, str] | str] = [(f"  {c.image}", STYLE["dim"])] if c.image else []
    if c.shim is None:
        parent.add(
            _t(("○ ", STYLE["dim"]), *ident, *image, (f"  {c.state}, no process", STYLE["dim"]))
        )
        return
    link = f"re-parented: ppid {c.shim.ppid}" if c.shim.reparented else "child of containerd"
    node = parent.add(
        _t(
            ("containerd-shim", STYLE["shim"]),
            f" {c.shim.pid} ",
            (f"[{via + ', ' if via else ''}{link}]", STYLE["dim"]),
            "  ",
            *ident,
            *image,
        )
    )
    _processes(node, c.processes, c.shim.pid)


def _processes(node: Tree, procs: list[Process], root_pid: int) -> None:
    by_parent: dict[int, list[Process]] = {}
    for p in procs:
        by_parent.setdefault(p.ppid, []).append(p)
    seen: set[int] = set()

    def add(tree: Tree, ppid: int) -> None:
        for p in by_parent.get(ppid, []):
            if p.pid in seen:
                continue
            seen.add(p.pid)
            sub = tree.add(
                _t(
                    f"{p.pid} ",
                    (f"{p.role:<5}", STYLE.get(p.role, "")),
                    f" {cmdline(p.cmdline or [p.name])}",
                )
            )
            add(sub, p.pid)

    add(node, root_pid)


# -- namespaces ------------------------------------------------------------------------------


def _ns_state(entry: dict[str, Any]) -> Text:
    if entry["isolated"] is None:
        return _t(("?", STYLE["dim"]))
    if not entry["isolated"]:
        return _t(("host", "red"))
    if entry["shared_with"]:
        return _t(("shared with ", "yellow"), (", ".join(entry["shared_with"]), "yellow"))
    return _t(("isolated", "green"))


def _ns_rows(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """*_for_children rows only where they differ from their parent type (after unshare)."""
    by_type = {e["type"]: e for e in entries}
    return [
        e
        for e in entries
        if not e["type"].endswith("_for_children")
        or by_type.get(e["type"].removesuffix("_for_children"), {}).get("inode") != e["inode"]
    ]


def ns_container(doc: dict[str, Any]) -> RenderableType:
    """`ns CONTAINER`: one row per namespace type, then every process against init."""
    c = doc["container"]
    head = _t(
        (c["name"] or c["id"][:12], STYLE["name"]),
        f" {c['id'][:12]}  init pid {c['init_pid']}",
        (f"  (host namespaces from {doc['host_from']})", STYLE["dim"]),
    )
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("type", no_wrap=True)
    table.add_column("inode", no_wrap=True)
    table.add_column("host", no_wrap=True)
    table.add_column("", no_wrap=True)
    table.add_column("why", overflow="fold", style=STYLE["dim"])
    for e in _ns_rows(doc["namespaces"]):
        why = e["why"] if (e["why"] and not e["why"].startswith("shared with ")) else ""
        table.add_row(
            e["type"],
            str(e["inode"]),
            str(e["host_inode"] if e["host_inode"] is not None else "?"),
            _ns_state(e),
            _t(why),
        )
    procs = Tree(_t(("processes (docker exec joins these namespaces with setns)", STYLE["dim"])))
    for p in doc["processes"]:
        if p["same_as_init"]:
            where = _t(("same namespaces as init", "green"))
        else:
            where = _t(("differs from init", "red"))
        procs.add(
            _t(
                f"{p['pid']} ",
                (f"{p['role']:<5}", STYLE.get(p["role"], "")),
                f" {cmdline(p['cmdline'], 50)}  ",
            ).append_text(where)
        )
    return Group(head, table, procs)


def ns_matrix(doc: dict[str, Any]) -> RenderableType:
    """`ns`: containers x namespace types (own / host / = other), then the shared groups."""
    kinds = ["mnt", "uts", "ipc", "pid", "net", "user", "cgroup", "time"]
    table = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0), header_style="bold")
    table.add_column("container", no_wrap=True)
    table.add_column("init", no_wrap=True)
    for k in kinds:
        table.add_column(k, no_wrap=True)
    for c in doc["containers"]:
        cells = []
        for k in kinds:
            value = c["cells"].get(k, "?")
            if value.startswith("shared:"):
                others = value[len("shared:") :].split(",")
                more = f"+{len(others) - 1}" if len(others) > 1 else ""
                cells.append(_t(("=" + others[0] + more, "yellow")))
            else:
                cells.append(_t(("own" if value == "isolated" else value, _CELL.get(value, ""))))
        table.add_row(_t((c["name"] or c["id"][:12], STYLE["name"])), str(c["init_pid"]), *cells)
    parts: list[RenderableType] = [
        table,
        _t(
            (
                "own: private to the container; host: the host's; =X: shared with container X"
                f" (host namespaces from {doc['host_from']})",
                STYLE["dim"],
            )
        ),
    ]
    shared = [
        g
        for g in doc["groups"]
        if len(g["containers"]) > 1 and not g["host"] and not g["type"].endswith("_for_children")
    ]
    for g in shared:
        parts.append(_t(f"{g['type']} {g['inode']}: ", (", ".join(g["containers"]), STYLE["name"])))
    if not doc["containers"]:
        parts.append(_t(("no running containers", STYLE["dim"])))
    return Group(*parts)


_CELL = {"host": "red", "isolated": "green"}


# -- survive -----------------------------------------------------------------------------------


def survive(r: dict[str, Any]) -> RenderableType:
    """The before/after table and the verdict of a restart."""
    parts: list[RenderableType] = []
    lr = {True: "on", False: "off", None: "?"}[r["live_restore"]]
    parts.append(
        _t(("survive: ", "bold"), f"restart {r['daemon']} of {r['engine']} (live-restore {lr})")
    )
    if r["restart"]:
        b, a = r["before"], r["after"] or {}
        parts.append(
            _t(
                f"dockerd {b['dockerd_pid']} -> {a.get('dockerd_pid')}   "
                f"containerd {b['containerd_pid']} -> {a.get('containerd_pid')}   "
                f"(restarted {r['restart']['how']})"
            )
        )
        parts.append(
            _t(
                f"{r['daemon']} was down {r['downtime_ms']} ms; "
                f"the API answered again {r['api_back_ms']} ms after the stop request"
            )
        )
    during = r.get("during")
    if during:

        def pid(value: int | None) -> str:
            return f"pid {value}" if value else "missing"

        parts.append(
            _t(
                ("while it was down: ", STYLE["dim"]),
                f"dockerd {pid(during['dockerd_pid'])}, "
                f"containerd {pid(during['containerd_pid'])}, "
                f"{during['containers_running']} containers running under shims "
                f"{', '.join(map(str, during['shims']))}",
            )
        )
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    refused = r["verdict"] == "refused"
    cols = ("container", "init pid", "shim", "policy", "") if refused else (
        "container", "init pid", "start time", "namespaces", "shim", "policy", "")  # fmt: skip
    for col in cols:
        table.add_column(col, no_wrap=True)
    for c in r["containers"]:
        name = _t((c["name"] or c["id"][:12], STYLE["name"]))
        policy = _t(c["restart_policy"] or "?")
        row: list[RenderableType]
        if refused:
            row = [name, str(c["init_pid_before"]), str(c["shim_pid_before"]), policy,
                   _t(("would stop", "yellow"))]  # fmt: skip
        else:
            after = c["init_pid_after"]
            row = [
                name,
                f"{c['init_pid_before']} -> {after if after is not None else 'gone'}",
                "same" if c["start_time_same"] else "-",
                "same" if c["namespaces_same"] else "-",
                f"{c['shim_pid_before']} -> {c['shim_pid_after'] or 'gone'}",
                policy,
                _t(("survived", "green") if c["survived"] else ("LOST", "bold red")),
            ]
        table.add_row(*row)
    parts.append(table)
    for p in r["ports"]:
        parts.append(_t(f"published port {p['port']} refused connections for {p['refused_ms']} ms"))
    for line in r["notes"]:
        parts.append(_t(("note: " + line, STYLE["dim"])))
    verdict = {
        "survived": (
            "verdict: survived - every container kept its PID, start time and namespaces",
            "bold green",
        ),
        "lost": (
            "verdict: lost - "
            + ", ".join(c["name"] or c["id"][:12] for c in r["containers"] if not c["survived"]),
            "bold red",
        ),
        "refused": ("verdict: refused - nothing was restarted", "bold yellow"),
    }[r["verdict"]]
    parts.append(_t(verdict))
    return Group(*parts)
