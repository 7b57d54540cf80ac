"""What the tests build, in one place: processes and snapshots of made-up hosts, model objects,
the recorded lab, and the CLI run as a user runs it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from typer.testing import CliRunner

from tracer.model.show_json import from_json
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
from tracer.snapshot.host import Host, Proc

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "unit" / "data"
LAB_SNAPSHOT = DATA / "lab-snapshot.json"
CLI = [sys.executable, "-m", "tracer"]
TICKS = 100  # clock ticks per second in the made-up hosts (SC_CLK_TCK on Linux)

SOCK = "/run/containerd/containerd.sock"
DOCKER_SOCK = "/run/docker.sock"

# A docker-proxy command line as dockerd 20.10 writes it.
PROXY_CMD = (
    "/usr/sbin/docker-proxy",
    "-proto",
    "tcp",
    "-host-ip",
    "127.0.0.1",
    "-host-port",
    "18080",
    "-container-ip",
    "172.29.213.4",
    "-container-port",
    "80",
)


# -- snapshots of made-up hosts ------------------------------------------------------------------


def proc(
    pid: int,
    ppid: int,
    name: str,
    cmdline: tuple[str, ...] | list[str],
    create_time: float,
    ns: dict[str, int] | None = None,
    **kw: Any,
) -> Proc:
    """A process started create_time seconds after boot (its start ticks follow from it)."""
    start = round(create_time * TICKS)
    return Proc(pid, ppid, name, tuple(cmdline), create_time, start=start, ns=ns or {}, **kw)


def shim_cmd(cid: str, address: str = SOCK, namespace: str = "moby") -> tuple[str, ...]:
    """The long-lived containerd-shim-runc-v2's command line."""
    return ("/usr/bin/containerd-shim-runc-v2", "-namespace", namespace, "-id", cid,
            "-address", address)  # fmt: skip


def bundle(cid: str, namespace: str = "moby") -> str:
    return f"/run/containerd/io.containerd.runtime.v2.task/{namespace}/{cid}"


def make_host(*procs: Proc, **kw: Any) -> Host:
    return Host(procs={p.pid: p for p in procs}, taken_at=1_700_000_000.0, hostname="h", **kw)


# -- the model -----------------------------------------------------------------------------------


def dockerd(pid: int = 600, socket: str | None = DOCKER_SOCK, **kw: Any) -> Dockerd:
    kw.setdefault("reachable", True)
    kw.setdefault("live_restore", True)
    return Dockerd(pid=pid, cmdline=kw.pop("cmdline", ["dockerd"]), api_socket=socket, **kw)


def containerd(pid: int = 500, socket: str = SOCK, **kw: Any) -> Containerd:
    kw.setdefault("proven", True)
    return Containerd(pid=pid, cmdline=kw.pop("cmdline", ["containerd"]), socket=socket, **kw)


def engine(*daemons: Daemon, **kw: Any) -> Engine:
    """An engine of these daemons: Docker's when a dockerd is among them."""
    runtime = "docker" if any(isinstance(d, Dockerd) for d in daemons) else "containerd"
    return Engine(runtime=runtime, daemons=list(daemons), **kw)


def shim(pid: int, ppid: int = 1, address: str = SOCK, reparented: bool | None = None) -> Shim:
    cmd = ["/usr/bin/containerd-shim-runc-v2", "-namespace", "moby", "-address", address]
    return Shim(pid, ppid, cmd, "moby", address, ppid == 1 if reparented is None else reparented)


def running(
    cid: str,
    name: str | None,
    shim_pid: int,
    pids: list[int],
    namespaces: dict[str, int] | None = None,
    **kw: Any,
) -> Container:
    """A running container: its shim, an init (the first pid) and the init's children."""
    init, *rest = pids
    ns = dict(namespaces or {})
    procs = [Process(init, shim_pid, ["init"], "init", "init", namespaces=dict(ns))]
    procs += [Process(p, init, [f"p{p}"], "child", f"p{p}", namespaces=dict(ns)) for p in rest]
    kw.setdefault("image", "img")
    return Container(
        id=cid,
        name=name,
        state="running",
        init_pid=init,
        shim_pid=shim_pid,
        shim=kw.pop("shim", shim(shim_pid)),
        processes=procs,
        namespaces=ns,
        **kw,
    )


def lab_topology() -> Topology:
    """The lab as `show --json` recorded it (tests/unit/data/lab-snapshot.json)."""
    return from_json(json.loads(LAB_SNAPSHOT.read_text()))


# -- the command line ---------------------------------------------------------------------------


def invoke(*args: str, **env: str) -> Any:
    """The CLI in this process (typer's CliRunner), without colour."""
    from tracer.cli import app

    return CliRunner().invoke(app, list(args), env={"NO_COLOR": "1", **env})


def run_cli(
    *args: str, check: bool = False, env: dict[str, str] | None = None, **kw: Any
) -> subprocess.CompletedProcess[str]:
    """The real CLI as a whole process, like a user runs it (no colour, 200 columns)."""
    proc = subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})},
        timeout=300,
        **kw,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} exited {proc.returncode}: {proc.stderr}")
    return proc


def one_error_line(stderr: str, *words: str) -> str:
    """The single `dtrace-tree: error: ...` line of stderr, holding every word; no traceback."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {lines}"
    assert lines[0].startswith("dtrace-tree: error: "), lines[0]
    assert "Traceback" not in stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


# -- diagrams ------------------------------------------------------------------------------------

HOST_NS = {"cgroup": 10, "ipc": 11, "mnt": 12, "net": 13, "pid": 14, "time": 15, "user": 16}


def numbered(
    i: int, name: str | None, procs: int = 2, reparented: bool = True, **kw: Any
) -> Container:
    """Container number i: shim 1000+10i (re-parented to pid 1, or else a child of containerd
    500), `procs` processes from pid 1000+10i+1 on (the init, then its children), in its own
    mnt, net and pid namespaces (inodes 100+i, 200+i, 300+i) and the host's others."""
    shim_pid = 1000 + 10 * i
    spaces = {**HOST_NS, "mnt": 100 + i, "net": 200 + i, "pid": 300 + i}
    pids = [shim_pid + 1 + k for k in range(procs)]
    kw.setdefault("image", "busybox")
    kw.setdefault("shim", shim(shim_pid, 1 if reparented else 500))
    return running(f"{i:02d}" * 32, name, shim_pid, pids, spaces, **kw)


def engine_edges(containers: list[Container]) -> list[Edge]:
    """The edges `show` proves for these containers of dockerd 600 and containerd 500."""
    out = [Edge(600, 500, "socket", f"{SOCK} (--containerd)")]
    for c in containers:
        assert c.shim
        out.append(Edge(c.shim.pid, 500, "shim-address", SOCK))
        kind = "reparented" if c.shim.reparented else "parent"
        out.append(Edge(c.shim.ppid, c.shim.pid, kind, "pid 1"))
        out += [Edge(p.ppid, p.pid, "parent", "ppid") for p in c.processes]
        out += [Edge(600, p.pid, "parent", "ppid") for p in c.proxies]
    return out


def diagram_host(n: int = 3) -> Topology:
    """A host to draw, with something of every kind: dockerd 600 and containerd 500; web-0 ..
    web-<n-1> (web-0 publishes a port through docker-proxy 650); one of unknown name, a child
    of containerd; `side`, in web-0's network namespace; and `old`, stopped."""
    ctrs = [numbered(i, f"web-{i}") for i in range(n)]
    ctrs[0].proxies.append(Proxy(650, "tcp", "127.0.0.1", 18080, "172.29.213.4", 80))
    ctrs.append(numbered(n, None, procs=1, reparented=False))
    side = numbered(n + 1, "side")
    for spaces in [side.namespaces, *(p.namespaces for p in side.processes)]:
        spaces["net"] = ctrs[0].namespaces["net"]
    ctrs.append(side)
    stopped = Container(id="ff" * 32, name="old", image="busybox", state="exited")
    docker = engine(
        dockerd(cmdline=["/usr/sbin/dockerd"]),
        containerd(cmdline=["/usr/bin/containerd"]),
        containers=[*ctrs, stopped],
        edges=engine_edges(ctrs),
    )
    host = {"hostname": "box", "taken_at": "2026-11-28T17:00:00+00:00", "namespaces": HOST_NS}
    return Topology(engines=[docker], host={**host, "namespaces_from": "pid 1"})


def dot_edges(dot: str) -> list[tuple[str, str, dict[str, str]]]:
    """(tail, head, attributes) of every edge statement in DOT made by the graphviz package."""
    out = []
    for line in dot.splitlines():
        m = re.match(r"\s*(\S+) -> (\S+)(?: \[(.*)\])?$", line)
        if m:
            attrs = re.findall(r'([\w-]+)=("(?:[^"\\]|\\.)*"|[^\s"]+)', m.group(3) or "")
            out.append((m.group(1), m.group(2), {k: v.strip('"') for k, v in attrs}))
    return out


# -- untrusted command lines (hypothesis) --------------------------------------------------------

# Words that mean something to the parsers, and text that means nothing.
WORDS = st.sampled_from(
    [
        "--",
        "-",
        "=",
        "-id",
        "-id=",
        "--id=x",
        "-workdir",
        "-workdir=/",
        "-address",
        "-namespace",
        "start",
        "delete",
        "containerd-shim",
        "/usr/bin/containerd-shim-runc-v2",
        "docker-proxy",
        "/usr/sbin/docker-proxy",
        "-host-port",
        "-container-port",
        "-host-port=" + "9" * 5000,
        "\x00",
        "\udcff",
        "\udc80\udcfe",
        "\x1b]0;pwned\x07",
        "\x1b[31m",
        "\u202e",
        "\x9b",
        "unix://",
    ]
)
TEXT = st.one_of(
    st.text(),
    st.text(st.characters(min_codepoint=0, max_codepoint=0x9F)),
    st.text(st.sampled_from("-=/\x00\udcff\udc80\x1b\u202e0123456789")),
)
ARGV = st.lists(st.one_of(WORDS, TEXT), max_size=12)
