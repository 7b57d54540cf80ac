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


def daemon_of(engine: dict[str, Any], role: str) -> dict[str, Any] | None:
    """The daemon of that role in an engine of `show --json` (schema 2: a list of daemons)."""
    return next((d for d in engine.get("daemons", []) if d.get("role") == role), None)


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
        monitor=kw.pop("monitor", shim(shim_pid)),
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
    kw.setdefault("monitor", shim(shim_pid, 1 if reparented else 500))
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


# -- trace: made-up recordings of process events -------------------------------------------------

CID = "c0" * 32  # a container id (64 hex)
CID2 = "d1" * 32
NS_HOST = {"cgroup": 10, "ipc": 11, "mnt": 12, "net": 13, "pid": 14, "pid_for_children": 14,
           "time": 15, "time_for_children": 15, "user": 16, "uts": 17}  # fmt: skip
RUNC_ROOT = ("runc", "--root", "/run/docker/runtime-runc/moby", "--log", "/b/log.json",
             "--log-format", "json")  # fmt: skip


def ns_of(base: int, shared: tuple[str, ...] = ("cgroup", "time", "time_for_children", "user"),
          **inodes: int) -> dict[str, int]:  # fmt: skip
    """A container's namespaces: base + n for each type it does not share with the host."""
    out = {k: (v if k in shared else base + i) for i, (k, v) in enumerate(NS_HOST.items())}
    out["pid_for_children"] = out["pid"]
    out.update(inodes)
    return out


class Rec:
    """A recording written event by event, times in milliseconds since the trace began, with
    the daemons of an engine already running: containerd 500 and dockerd 600 (children of 1),
    both in the host's namespaces."""

    def __init__(self, *known: Any, containers: Any = (), everything: bool = False) -> None:
        from tracer.model.trace import Known

        base = [
            Known(1, 0, 1, "systemd", ("/sbin/init",), NS_HOST),
            Known(500, 1, 100, "containerd", ("/usr/bin/containerd",), NS_HOST),
            Known(600, 1, 110, "dockerd", ("/usr/sbin/dockerd", "-H", "fd://"), NS_HOST),
        ]
        self.known = {k.pid: k for k in [*base, *known]}
        self.containers = {c.id: c for c in containers}
        self.events: list[Any] = []
        self.everything = everything

    def fork(self, ms: float, parent: int, child: int) -> Rec:
        from tracer.model.trace import Raw

        self.events.append(Raw("fork", int(ms * 1e6), child, parent=parent))
        return self

    def exec(self, ms: float, pid: int, argv: Any, ns: Any = None, ppid: int | None = None,
             missing: str | None = None, comm: str | None = None) -> Rec:  # fmt: skip
        from tracer.kernel.procfs import program
        from tracer.model.trace import Raw, Sample

        args = tuple(argv) if argv is not None else None
        name = comm if comm is not None else (program(args or ()) if args else "")
        sample = Sample(args, name[:15], ppid, ns, missing if args is None else None)
        self.events.append(Raw("exec", int(ms * 1e6), pid, sample=sample))
        return self

    def comm(self, ms: float, pid: int, name: str, ns: Any = None) -> Rec:
        from tracer.model.trace import Raw, Sample

        sample = Sample(None, name, None, ns) if ns else None
        self.events.append(Raw("comm", int(ms * 1e6), pid, comm=name, sample=sample))
        return self

    def exit(self, ms: float, pid: int, parent: int, code: int = 0, signal: int = 0) -> Rec:
        from tracer.model.trace import Raw

        status = signal if signal else code << 8
        self.events.append(Raw("exit", int(ms * 1e6), pid, parent=parent, code=status))
        return self

    def recording(self, **kw: Any) -> Any:
        from tracer.model.trace import Recording

        last = self.events[-1].ts if self.events else 0
        return Recording(known=dict(self.known), events=list(self.events),
                         duration_ns=last + 500_000_000, all=self.everything,
                         host_ns=NS_HOST, containers=dict(self.containers), **kw)  # fmt: skip


def docker_run(rec: Rec, cid: str = CID, at: float = 0.0, pid: int = 1000,
               init_argv: tuple[str, ...] = ("sleep", "1000"),
               ns: dict[str, int] | None = None) -> Rec:  # fmt: skip
    """`docker run -d` as the proc connector showed it on these machines (DOCKER-INTERNALS §9):
    containerd forks the shim start (pid), which forks the shim (pid+1) and exits; the shim
    forks runc create (pid+2), which forks runc init (pid+3); runc init's stages [1:CHILD]
    (pid+4) and [2:INIT] (pid+5) are forked with CLONE_PARENT, so their fork names runc create;
    runc create forks the libnetwork-setkey hook (pid+6); the shim forks runc start (pid+7);
    [2:INIT] execs the container's command, by then a child of the shim."""
    b = f"/run/containerd/io.containerd.runtime.v2.task/moby/{cid}"
    shim_start = ("/usr/bin/containerd-shim-runc-v2", "-namespace", "moby", "-address",
                  "/run/containerd/containerd.sock", "-publish-binary", "/usr/bin/containerd",
                  "-id", cid, "start")  # fmt: skip
    shim = ("/usr/bin/containerd-shim-runc-v2", "-namespace", "moby", "-id", cid, "-address",
            "/run/containerd/containerd.sock")  # fmt: skip
    create = (*RUNC_ROOT, "create", "--bundle", b, "--pid-file", f"{b}/init.pid", cid)
    new = ns or ns_of(4026532000 + pid)
    s, t = pid, at
    (rec.fork(t, 500, s).exec(t + 0.1, s, shim_start)
        .fork(t + 8.4, s, s + 1).exec(t + 8.5, s + 1, shim)
        .exit(t + 9.0, s, 500)
        .fork(t + 13.7, s + 1, s + 2).exec(t + 13.8, s + 2, create, ns=NS_HOST)
        .fork(t + 26.0, s + 2, s + 3).exec(t + 26.1, s + 3, None, missing="empty", comm="exe")
        .exec(t + 26.9, s + 3, ("runc", "init"), ns=NS_HOST)
        .comm(t + 27.0, s + 3, "runc:[0:PARENT]", ns=NS_HOST)
        .fork(t + 27.1, s + 2, s + 4).comm(t + 27.2, s + 4, "runc:[1:CHILD]")
        .fork(t + 28.0, s + 2, s + 5).comm(t + 28.1, s + 5, "runc:[2:INIT]", ns=new)
        .exit(t + 29.0, s + 4, s + 2).exit(t + 31.0, s + 3, s + 2)
        .fork(t + 55.5, s + 2, s + 6)
        .exec(t + 55.6, s + 6, ("libnetwork-setkey", "-exec-root=/run/docker", cid, "d4dde141"))
        .exit(t + 200.0, s + 6, s + 2)
        .exit(t + 230.8, s + 2, s + 1)
        .fork(t + 236.0, s + 1, s + 7).exec(t + 236.1, s + 7, (*RUNC_ROOT, "start", cid))
        .exec(t + 245.7, s + 5, init_argv, ns=new, ppid=s + 1)
        .exit(t + 246.0, s + 7, s + 1))  # fmt: skip
    return rec


# -- serve: the real server, and a real browser ---------------------------------------------------


class Served:
    """A running `dtrace-tree serve`: its URL, base, token and process."""

    def __init__(self, proc: subprocess.Popen[str], url: str) -> None:
        self.proc = proc
        self.url = url
        self.base, _, self.token = url.partition("/?token=")
        self.stderr = ""

    def get(
        self,
        path: str,
        token: bool = True,
        headers: dict[str, str] | None = None,
        method: str = "GET",
        timeout: float = 30,
    ) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) of one request, made with http.client as it is (no
        redirect, no header added but Host)."""
        import http.client
        from urllib.parse import urlsplit

        where = urlsplit(self.base)
        conn = http.client.HTTPConnection(where.hostname, where.port, timeout=timeout)
        if token:
            path += ("&" if "?" in path else "?") + "token=" + self.token
        try:
            conn.request(method, path, headers=headers or {})
            answer = conn.getresponse()
            return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
        finally:
            conn.close()

    def json(self, path: str) -> Any:
        status, _, body = self.get(path)
        assert status == 200, (path, status, body[:300])
        return json.loads(body)


def serve_process(*args: str, timeout: float = 60) -> Any:
    """`dtrace-tree serve --port 0 ARGS` as a whole process, until the with block ends (then
    Ctrl-C, as a user stops it). Yields a Served once the URL is printed."""
    import contextlib
    import select
    import signal

    @contextlib.contextmanager
    def run() -> Any:
        proc = subprocess.Popen(
            [*CLI, "serve", "--port", "0", *args], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, cwd=ROOT,
            env={**os.environ, "NO_COLOR": "1"},
        )  # fmt: skip
        assert proc.stdout is not None and proc.stderr is not None
        try:
            ready, _, _ = select.select([proc.stdout], [], [], timeout)
            line = proc.stdout.readline().strip() if ready else ""
            if not line.startswith("http://"):
                proc.kill()
                raise AssertionError(f"serve printed no URL: {line!r} {proc.stderr.read()!r}")
            served = Served(proc, line)
            yield served
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            with contextlib.suppress(Exception):
                served.stderr = proc.stderr.read()

    return run()


class Browser:
    """Headless Chromium driven through chromedriver's WebDriver protocol (W3C, JSON over
    HTTP: the standard library is enough). A fresh profile, no network but what it is sent to,
    and the flags a root user in a container needs."""

    FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run",
             "--disable-dev-shm-usage")  # fmt: skip

    def __init__(self, profile: Path, width: int = 1280, height: int = 800) -> None:
        import shutil
        import socket
        import time

        driver, chromium = shutil.which("chromedriver"), shutil.which("chromium")
        if not driver or not chromium:
            raise FileNotFoundError("chromium and chromium-driver (Debian packages) are needed")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.driver = subprocess.Popen([driver, f"--port={port}"], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)  # fmt: skip
        self.base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                self._call("GET", "/status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        args = [*self.FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"]
        caps = {"browserName": "chrome", "goog:chromeOptions": {"binary": chromium, "args": args}}
        self.session = self._call("POST", "/session", {"capabilities": {"alwaysMatch": caps}})[
            "sessionId"
        ]
        self.viewport(width, height)

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        import urllib.request

        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(req, timeout=120) as answer:
            return json.loads(answer.read())["value"]

    def call(self, method: str, path: str, body: Any = None) -> Any:
        return self._call(method, f"/session/{self.session}{path}", body)

    def viewport(self, width: int, height: int, mobile: bool = False) -> None:
        """The page's viewport exactly (the window also has room for what headless keeps)."""
        params = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}
        self.call("POST", "/goog/cdp/execute",
                  {"cmd": "Emulation.setDeviceMetricsOverride", "params": params})  # fmt: skip

    def go(self, url: str) -> None:
        self.call("POST", "/url", {"url": url})

    def js(self, script: str, *args: Any) -> Any:
        return self.call("POST", "/execute/sync", {"script": script, "args": list(args)})

    def wait(self, script: str, *args: Any, timeout: float = 30, what: str = "") -> Any:
        """Poll a script until it returns something true; its value."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            value = self.js(script, *args)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"the page never showed {what or script}")
            time.sleep(0.05)

    def click(self, css: str) -> None:
        """A real click (pointer events) on the first element css selects."""
        found = self.call("POST", "/element", {"using": "css selector", "value": css})
        self.call("POST", f"/element/{next(iter(found.values()))}/click", {})

    def screenshot(self, path: Path) -> Path:
        import base64

        path.write_bytes(base64.b64decode(self.call("GET", "/screenshot")))
        return path

    def close(self) -> None:
        import contextlib

        with contextlib.suppress(Exception):
            self.call("DELETE", "")
        self.driver.terminate()
        try:
            self.driver.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.driver.kill()
