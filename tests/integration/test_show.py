"""`show` against the lab's real engine, compared with ground truth gathered independently."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading

import psutil
import pytest

from tests.support.cli import run_cli
from tests.support.lab import (
    LAB_HOST,
    daemon_of,
    lab_engine_json,
    live,
    ns_inodes,
    show_json,
    temporary,
)
from tracer import runtimes
from tracer.kernel.root import HostRoot
from tracer.ops import daemon, lab, labconfig
from tracer.snapshot import walk
from tracer.snapshot.host import is_parent

PATHS = lab.LabPaths()
DEMOS = [d.name for d in labconfig.demos(0) if d.running]  # the lab's running demo containers
HOSTILE = (
    "\x1b]0;pwned\x07[bold]markup[/bold]\x1b[2J\x1b[31mRED\x9b1m\u202eevil <script>x</script>"
    ' "quoted" ]]> {braces} &amp;'
)


def _shim_tree(shim_pid: int) -> set[int]:
    return {
        p.pid
        for p in psutil.Process(shim_pid).children(recursive=True)
        if p.status() != psutil.STATUS_ZOMBIE and p.name() != "runc"
    }


def test_show_json_matches_ground_truth(client):
    doc = show_json()
    engine = lab_engine_json(doc)
    assert daemon_of(engine, "dockerd")["pid"] == lab.dockerd_pid(PATHS)
    assert daemon_of(engine, "dockerd")["reachable"] is True
    assert daemon_of(engine, "dockerd")["live_restore"] is True
    assert engine["runtime"] == "docker" and engine["name"] == str(PATHS.docker_sock)
    assert [d["role"] for d in engine["daemons"]] == ["dockerd", "containerd"]
    assert daemon_of(engine, "containerd") == {
        "role": "containerd",
        "pid": lab.containerd_pid(PATHS),
        "socket": str(PATHS.containerd_sock),
        "managed": False,
        "cmdline": psutil.Process(lab.containerd_pid(PATHS)).cmdline(),
        "proven": True,
        "connected": True,
    }
    assert _ss_connected(lab.dockerd_pid(PATHS), lab.containerd_pid(PATHS))
    by_id = {c["id"]: c for c in engine["containers"]}
    # The lab's own running demos (other tests may run containers of their own in the lab)
    running = [c for c in client.containers.list() if c.name in DEMOS]
    assert sorted(c.name for c in running) == sorted(DEMOS)
    for ctr in running:
        truth = client.api.inspect_container(ctr.id)
        got = by_id[ctr.id]
        init_pid = truth["State"]["Pid"]
        shim_pid = psutil.Process(init_pid).ppid()
        assert got["name"] == truth["Name"].lstrip("/")
        assert got["image"] == truth["Config"]["Image"]
        assert got["state"] == "running"
        assert got["init_pid"] == init_pid
        assert got["shim_pid"] == shim_pid
        shim_cmd = psutil.Process(shim_pid).cmdline()
        assert shim_cmd[shim_cmd.index("-id") + 1] == ctr.id
        assert got["monitor"]["address"] == str(PATHS.containerd_sock)
        assert got["monitor"]["ppid"] == psutil.Process(shim_pid).ppid()
        assert {p["pid"] for p in got["processes"]} == _shim_tree(shim_pid)
        truth_ns = ns_inodes(init_pid)
        assert got["namespaces"] == {k: truth_ns[k] for k in got["namespaces"]}
        assert {"mnt", "net", "pid", "uts", "ipc", "user", "cgroup"} <= set(got["namespaces"])
        for p in got["processes"]:
            proc = psutil.Process(p["pid"])
            assert p["ppid"] == proc.ppid()
            assert p["cmdline"] == proc.cmdline()
        edges = {(e["from"], e["to"], e["kind"]) for e in engine["edges"]}
        assert (shim_pid, daemon_of(engine, "containerd")["pid"], "shim-address") in edges
        assert (shim_pid, init_pid, "parent") in edges
        assert (psutil.Process(shim_pid).ppid(), shim_pid, "reparented") in edges
    dockerd, containerd = (
        daemon_of(engine, "dockerd")["pid"],
        daemon_of(engine, "containerd")["pid"],
    )
    assert (dockerd, containerd, "socket") in {
        (e["from"], e["to"], e["kind"]) for e in engine["edges"]
    }


def test_roles_of_init_exec_and_docker_init(client):
    engine = lab_engine_json(show_json())
    by_name = {c["name"]: c for c in engine["containers"]}

    ex = by_name["lab-exec"]
    roles = {p["pid"]: p["role"] for p in ex["processes"]}
    init_pid = client.api.inspect_container("lab-exec")["State"]["Pid"]
    assert roles.pop(init_pid) == "init"
    assert list(roles.values()) == ["exec"]
    (exec_pid,) = roles
    assert psutil.Process(exec_pid).ppid() == ex["shim_pid"]
    assert ns_inodes(exec_pid) == ns_inodes(init_pid)  # exec joins, it does not create

    ini = by_name["lab-init"]
    assert ini["processes"][0]["role"] == "init"
    assert ini["processes"][0]["cmdline"][0] == "/sbin/docker-init"
    assert [p["role"] for p in ini["processes"][1:]] == ["child"]
    assert ini["processes"][1]["ppid"] == ini["init_pid"]

    web, side = by_name["lab-web"], by_name["lab-sidecar"]
    assert side["namespaces"]["net"] == web["namespaces"]["net"]
    assert side["namespaces"]["pid"] == web["namespaces"]["pid"]
    (proxy,) = web["proxies"]
    cmd = psutil.Process(proxy["pid"]).cmdline()
    assert proxy == {
        "pid": proxy["pid"],
        "proto": cmd[cmd.index("-proto") + 1],
        "host_ip": "127.0.0.1",
        "host_port": int(cmd[cmd.index("-host-port") + 1]),
        "container_ip": client.api.inspect_container("lab-web")["NetworkSettings"]["IPAddress"],
        "container_port": 80,
    }
    assert psutil.Process(proxy["pid"]).ppid() == daemon_of(engine, "dockerd")["pid"]


def test_stopped_containers_only_with_all(client):
    names = {c["name"] for c in lab_engine_json(show_json())["containers"]}
    assert "lab-stopped" not in names
    stopped = {c["name"]: c for c in lab_engine_json(show_json("-a"))["containers"]}["lab-stopped"]
    assert stopped["state"] == "exited"
    assert stopped["init_pid"] is None and stopped["processes"] == []


def test_filters_by_name_id_prefix_and_pid(client):
    web = client.api.inspect_container("lab-web")
    for query in ("lab-web", web["Id"], web["Id"][:6], str(web["State"]["Pid"])):
        engine = lab_engine_json(show_json("-H", LAB_HOST, query))
        assert [c["name"] for c in engine["containers"]] == ["lab-web"], query
    out = run_cli("show", "-H", LAB_HOST, "lab-wbe")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == (
        "dtrace-tree: error: no such container: 'lab-wbe' (did you mean lab-web?)"
    )


def _running(client) -> dict[str, int]:
    """name -> init PID of an engine's running containers, from its API."""
    return {
        c.name: client.api.inspect_container(c.id)["State"]["Pid"] for c in client.containers.list()
    }


def test_every_engine_on_the_host_is_shown(host_engine):
    # The host's own engine may be busy: compare what held still while show looked.
    before = _running(host_engine.client)
    doc = show_json()
    after = _running(host_engine.client)
    sockets = {
        daemon_of(e, "dockerd")["api_socket"] for e in doc["engines"] if daemon_of(e, "dockerd")
    }
    assert {str(PATHS.docker_sock), "/run/docker.sock"} <= sockets
    (default,) = [
        e
        for e in doc["engines"]
        if daemon_of(e, "dockerd") and daemon_of(e, "dockerd")["api_socket"] == "/run/docker.sock"
    ]
    truth = {name: pid for name, pid in before.items() if after.get(name) == pid}
    if host_engine.ours:
        assert host_engine.container in truth  # else the host's own: whatever runs there
    shown = {c["name"]: c["init_pid"] for c in default["containers"] if c["init_pid"]}
    assert {name: shown.get(name) for name in truth} == truth
    assert set(shown) <= set(before) | set(after)  # nothing invented
    assert daemon_of(default, "containerd")["socket"] == "/run/containerd/containerd.sock"
    only = show_json("-H", "unix:///var/run/docker.sock")
    assert [daemon_of(e, "dockerd")["api_socket"] for e in only["engines"]] == ["/run/docker.sock"]


def test_text_tree_is_plain_when_piped(lab_engine):
    out = run_cli("show", check=True).stdout
    assert "\x1b" not in out
    lines = out.splitlines()
    assert f"dockerd {lab.dockerd_pid(PATHS)}  api {PATHS.docker_sock}  live-restore on" in lines
    assert any("containerd-shim" in line and "lab-exec" in line for line in lines)
    assert any(" exec  sleep 2147483647" in line for line in lines)
    assert any("docker-proxy" in line and "lab-web" in line for line in lines)


def test_hostile_command_lines_are_inert(client):
    with temporary(
        client,
        "lab-hostile",
        ["sh", "-c", f"sleep 2147483647; : '{HOSTILE}'"],
    ):
        text = run_cli("show", "lab-hostile", check=True).stdout
        assert "\x1b" not in text and "\x07" not in text and "\x9b" not in text
        assert "\u202e" not in text
        assert "\\x1b]0;pwned\\x07" in text
        assert "[bold]markup[/bold]" in text
        doc = json.loads(run_cli("show", "--json", "lab-hostile", check=True).stdout)
        (got,) = lab_engine_json(doc)["containers"]
        assert got["processes"][0]["cmdline"][2] == f"sleep 2147483647; : '{HOSTILE}'"


def test_show_while_dockerd_is_down(client):
    """live-restore: stop the lab's dockerd; the shims and containers are still shown."""
    before = {
        c.name: client.api.inspect_container(c.id)["State"]["Pid"] for c in client.containers.list()
    }
    d_pid = lab.dockerd_pid(PATHS)
    try:
        assert daemon.stop(daemon.identify(d_pid), timeout=30)
        assert not live(d_pid)
        doc = show_json()
        (engine,) = [
            e
            for e in doc["engines"]
            if daemon_of(e, "containerd")
            and daemon_of(e, "containerd")["socket"] == str(PATHS.containerd_sock)
            and e["namespace"] == "moby"
        ]
        # schema 2: no longer a Docker engine missing its dockerd, but containerd's own, in
        # Docker's namespace, that says so
        assert engine["runtime"] == "containerd" and daemon_of(engine, "dockerd") is None
        assert sorted(c["init_pid"] for c in engine["containers"]) == sorted(before.values())
        assert all(c["name"] is None for c in engine["containers"])
        assert engine["notes"]
        text = run_cli("show", "-H", "all", check=True).stdout
        assert (
            f"containerd {lab.containerd_pid(PATHS)}  {PATHS.containerd_sock}  namespace moby"
            in text
        )
        assert "namespace moby is Docker's, but no running dockerd uses this containerd" in text
    finally:
        run_cli("lab", "up", check=True)
    after = {
        c.name: client.api.inspect_container(c.id)["State"]["Pid"] for c in client.containers.list()
    }
    assert after == before


def test_walk_under_churn_never_crashes_or_invents_links(lab_engine):
    """Thousands of short-lived processes while we walk: no crash, no phantom edge."""
    stop = threading.Event()

    def churn():
        while not stop.is_set():
            subprocess.run(
                ["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do (sleep 0.01 &) ; done"], check=False
            )

    workers = [threading.Thread(target=churn, daemon=True) for _ in range(2)]
    for w in workers:
        w.start()
    try:
        sizes = set()
        for _ in range(30):
            snap = walk.take(HostRoot(), runtimes.RUNTIMES)
            topo = runtimes.build(snap)
            sizes.add(len(snap.procs))
            for engine in topo.engines:
                for edge in engine.edges:
                    if edge.kind != "parent":
                        continue
                    child, parent = snap.procs[edge.dst], snap.procs.get(edge.src)
                    assert parent is not None and is_parent(parent, child), edge
                for c in engine.containers:
                    if c.init_pid is None:  # a stopped container (podman's store lists them)
                        continue
                    init = snap.procs[c.init_pid]
                    for p in c.processes:
                        pid_ns = snap.procs[p.pid].namespaces.get("pid")
                        assert pid_ns == init.namespaces.get("pid"), (c.id, p)
        assert len(sizes) > 1  # the process table really changed under the walks
    finally:
        stop.set()
        for w in workers:
            w.join()


@pytest.mark.parametrize("args", [["show"], ["show", "--json"], ["lab", "status"]])
def test_read_commands_exit_zero(lab_engine, args):
    assert run_cli(*args).returncode == 0


def _ss_connected(client: int, server: int) -> bool:
    """Ground truth from iproute2's `ss -xp`: client holds a unix socket whose peer server holds."""
    out = subprocess.run(["ss", "-xpn"], capture_output=True, text=True, check=True).stdout
    owner, peer = {}, {}
    for line in out.splitlines()[1:]:
        m = re.search(r"(\d+)\s+\S+\s+(\d+)\s+users:\(\(\"[^\"]*\",pid=(\d+)", line)
        if m:
            inode, other, pid = map(int, m.groups())
            owner[inode], peer[inode] = pid, other
    return any(pid == client and owner.get(peer[i]) == server for i, pid in owner.items())


def test_the_api_is_read_without_the_docker_sdk(lab_engine):
    """The names come from the lab's API, asked with the standard library: observing the
    host imports neither the docker SDK nor http.client nor psutil."""
    probe = (
        "import json, sys\n"
        "from tracer.runtimes import observe\n"
        f"topo = observe(only='unix://{PATHS.docker_sock}').topology\n"
        "names = sorted(c.name for c in topo.containers() if c.name)\n"
        "heavy = ('docker', 'requests', 'http.client', 'psutil')\n"
        "heavy = sorted(m for m in heavy if m in sys.modules)\n"
        "print(json.dumps({'names': names, 'heavy': heavy}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    got = json.loads(out.stdout)
    assert {"lab-plain", "lab-web", "lab-sidecar"} <= set(got["names"])
    assert got["heavy"] == []


# -- docker habits ------------------------------------------------------------------------------


def test_docker_host_chooses_the_engine_and_h_all_shows_every_one(host_engine):
    lab_url = f"unix://{PATHS.docker_sock}"
    out = run_cli("show", "--json", env={"DOCKER_HOST": lab_url}, check=True)
    assert [daemon_of(e, "dockerd")["api_socket"] for e in json.loads(out.stdout)["engines"]] == [
        str(PATHS.docker_sock)
    ]
    assert out.stderr.strip().splitlines()[-1] == (
        f"dtrace-tree: showing the engine at {lab_url} (from DOCKER_HOST; -H all shows every "
        "engine)"
    )
    every = run_cli("show", "--json", "-H", "all", env={"DOCKER_HOST": lab_url}, check=True)
    sockets = {
        daemon_of(e, "dockerd")["api_socket"]
        for e in json.loads(every.stdout)["engines"]
        if daemon_of(e, "dockerd")
    }
    assert {str(PATHS.docker_sock), "/run/docker.sock"} <= sockets
    assert "showing the engine" not in every.stderr


def test_any_pid_of_the_chain_finds_its_container_and_a_daemon_its_engine(client):
    web = client.api.inspect_container("lab-web")
    init = web["State"]["Pid"]
    shim = psutil.Process(init).ppid()
    proxy = next(
        p.pid
        for p in psutil.Process(lab.dockerd_pid(PATHS)).children()
        if p.name() == "docker-proxy"
    )
    for pid in (init, shim, proxy):
        (engine,) = show_json(str(pid))["engines"]
        assert [c["name"] for c in engine["containers"]] == ["lab-web"], pid
    for daemon_pid in (lab.dockerd_pid(PATHS), lab.containerd_pid(PATHS)):
        (engine,) = show_json(str(daemon_pid))["engines"]
        names = {c["name"] for c in engine["containers"]}
        assert names == {c.name for c in client.containers.list()}, daemon_pid
    out = run_cli("ns", str(lab.dockerd_pid(PATHS)))
    assert out.returncode == 2 and "not a process of a container" in out.stderr


def test_a_paused_container_is_marked_and_counted(client):
    client.api.pause("lab-plain")
    try:
        text = run_cli("show", "-H", LAB_HOST, check=True).stdout
    finally:
        client.api.unpause("lab-plain")
    (line,) = [line for line in text.splitlines() if "lab-plain" in line]
    assert "(Paused)" in line
    running = len(client.containers.list()) - 1
    assert f"containers: {running} running, 1 paused, 1 stopped" in text
