"""The lab: a real, private Docker engine with one demo container per shape."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess

import psutil
import pytest

from tests.support.cli import run_cli
from tests.support.lab import live, ns_inodes
from tracer.ops import lab, labconfig, labhost

PATHS = lab.LabPaths()


def _container(client, name):
    return client.api.inspect_container(name)


def _children(pid):
    return [p for p in psutil.Process(pid).children() if p.status() != psutil.STATUS_ZOMBIE]


def test_demo_containers_run_with_their_shapes(client):
    states = {c.name: c.status for c in client.containers.list(all=True)}
    assert states == {
        "lab-plain": "running",
        "lab-init": "running",
        "lab-web": "running",
        "lab-sidecar": "running",
        "lab-exec": "running",
        "lab-stopped": "exited",
    }
    # --init: PID 1 of the container is docker-init, and the app is its child.
    init = _container(client, "lab-init")
    pid = init["State"]["Pid"]
    assert psutil.Process(pid).cmdline()[0].endswith("docker-init")
    assert [c.name() for c in _children(pid)] == ["sleep"]

    # Published port: a docker-proxy child of the lab's dockerd, serving 127.0.0.1 only.
    web = _container(client, "lab-web")
    ip = web["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
    proxies = [p for p in _children(lab.dockerd_pid(PATHS)) if p.name() == "docker-proxy"]
    assert len(proxies) == 1
    cmd = proxies[0].cmdline()
    assert cmd[cmd.index("-container-ip") + 1] == ip
    assert cmd[cmd.index("-host-ip") + 1] == "127.0.0.1"
    port = int(cmd[cmd.index("-host-port") + 1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        reply = b"".join(iter(lambda: s.recv(4096), b""))
    assert b"dtrace-tree lab" in reply

    # Shared namespaces: the sidecar is in lab-web's network and pid namespaces.
    side = _container(client, "lab-sidecar")
    assert side["HostConfig"]["NetworkMode"] == f"container:{web['Id']}"
    assert side["HostConfig"]["PidMode"] == f"container:{web['Id']}"
    web_ns, side_ns = ns_inodes(web["State"]["Pid"]), ns_inodes(side["State"]["Pid"])
    assert web_ns["net"] == side_ns["net"] and web_ns["pid"] == side_ns["pid"]
    assert web_ns["mnt"] != side_ns["mnt"]

    # docker exec: a second child of the same shim, in the container's namespaces.
    ex = _container(client, "lab-exec")
    init_pid = ex["State"]["Pid"]
    shim = psutil.Process(init_pid).parent()
    assert "containerd-shim" in shim.cmdline()[0]
    others = [p for p in _children(shim.pid) if p.pid != init_pid]
    assert len(others) == 1
    assert ns_inodes(others[0].pid) == ns_inodes(init_pid)
    # (Not asked of ExecIDs: dockerd forgets exec sessions when it restarts; /proc does not.)

    # The stopped one has no process at all.
    assert _container(client, "lab-stopped")["State"]["Pid"] == 0


def test_lab_is_isolated_from_the_host_engine_settings(lab_engine):
    dockerd = psutil.Process(lab.dockerd_pid(PATHS)).cmdline()
    assert "--containerd" in dockerd  # or dockerd 20.10 would attach to the system containerd
    assert dockerd[dockerd.index("--containerd") + 1] == str(PATHS.containerd_sock)
    assert "--bridge=none" not in dockerd  # that deletes the host's docker0
    assert dockerd[dockerd.index("--bridge") + 1] == PATHS.bridge
    assert "--iptables=false" in dockerd
    assert json.loads(PATHS.daemon_json.read_text())["live-restore"] is True
    # dockerd 20.10 writes a trust key to /etc/docker/key.json unless told otherwise (25+ none).
    assert (PATHS.data / "key.json").exists() == (PATHS.stack == "2023")


def test_lab_sockets_are_private_and_nothing_listens_on_tcp(lab_engine):
    for sock in (PATHS.docker_sock, PATHS.containerd_sock):
        st = os.stat(sock)
        assert stat.S_ISSOCK(st.st_mode)
        assert st.st_mode & 0o007 == 0, f"{sock} is world-accessible"
        assert (st.st_uid, st.st_gid) == (0, 0)
    assert stat.S_IMODE(os.stat(PATHS.run).st_mode) == 0o700
    daemons = [lab.dockerd_pid(PATHS), lab.containerd_pid(PATHS)]
    for conn in psutil.net_connections(kind="inet"):
        if conn.status == psutil.CONN_LISTEN and conn.pid in daemons:
            pytest.fail(f"lab daemon {conn.pid} listens on TCP {conn.laddr}")
    proxy_listens = [
        c.laddr.ip
        for c in psutil.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
        and c.pid
        and psutil.Process(c.pid).name() == "docker-proxy"
        and psutil.Process(c.pid).ppid() == lab.dockerd_pid(PATHS)
    ]
    assert proxy_listens == ["127.0.0.1"]


def test_lab_up_twice_changes_nothing(client):
    before = {c.name: c.id for c in client.containers.list(all=True)}
    pids = (lab.dockerd_pid(PATHS), lab.containerd_pid(PATHS))
    out = run_cli("lab", "up", check=True)
    assert f"DOCKER_HOST=unix://{PATHS.docker_sock}" in out.stdout
    after = {c.name: c.id for c in client.containers.list(all=True)}
    assert after == before
    assert (lab.dockerd_pid(PATHS), lab.containerd_pid(PATHS)) == pids
    assert len(client.images.list()) == 1


def test_lab_status_says_what_runs(lab_engine):
    out = run_cli("lab", "status", "--json", check=True)
    doc = json.loads(out.stdout)
    assert doc["api"] is True and doc["live_restore"] is True
    assert doc["dockerd_pid"] == lab.dockerd_pid(PATHS)
    assert {c["name"]: c["state"] for c in doc["containers"]}["lab-stopped"] == "exited"
    text = run_cli("lab", "status", check=True).stdout
    assert "lab-sidecar" in text and f"dockerd pid {lab.dockerd_pid(PATHS)}" in text


# -- another engine on the default sockets ------------------------------------------------


def test_lab_down_and_up_leave_the_host_engine_untouched(lab_engine, host_engine):
    client = host_engine.client
    before = {
        c.id: client.api.inspect_container(c.id)["State"]["Pid"] for c in client.containers.list()
    }
    assert before or not host_engine.ours  # ours has the tests' container running
    daemons = _host_daemon_pids()
    iptables = _iptables()
    try:
        run_cli("lab", "down", check=True)
        _assert_lab_gone()
    finally:
        run_cli("lab", "up", check=True)
    assert _host_daemon_pids() == daemons
    after = {
        c.id: client.api.inspect_container(c.id)["State"]["Pid"] for c in client.containers.list()
    }
    assert after == before
    assert all(live(pid) for pid in before.values())
    assert subprocess.run(["ip", "link", "show", "docker0"], capture_output=True).returncode == 0
    assert os.path.exists("/run/containerd/containerd.sock")
    assert _iptables() == iptables


def _host_daemon_pids():
    out = {}
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = p.info["cmdline"] or []
        if (
            cmd
            and os.path.basename(cmd[0]) in ("dockerd", "containerd")
            and "dtrace-lab" not in " ".join(cmd)
        ):
            out[os.path.basename(cmd[0])] = p.info["pid"]
    return out


def _iptables():
    if not shutil.which("iptables-save"):
        return None
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    return sorted(line for line in rules.splitlines() if not line.startswith(("#", ":")))


def _assert_lab_gone():
    """Nothing of this lab's (the other stack's lab may run: /run/dtrace-lab-2026 is not
    /run/dtrace-lab)."""
    ours = (f"{PATHS.run}/", f"{PATHS.data}/")
    for p in psutil.process_iter(["cmdline", "status"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if p.info["status"] != psutil.STATUS_ZOMBIE and any(d in cmd for d in ours):
            pytest.fail(f"lab process left: {p.pid} {cmd}")
    assert labhost.mounts_under((PATHS.run, PATHS.data)) == []
    assert not PATHS.run.exists() and not PATHS.data.exists()
    assert subprocess.run(["ip", "link", "show", PATHS.bridge], capture_output=True).returncode != 0


def test_lab_down_removes_everything_and_up_restores(lab_engine):
    pre = {d: os.path.exists(d) for d in labconfig.SIDE_EFFECT_DIRS}
    state = json.loads(PATHS.state_json.read_text())
    try:
        out = run_cli("lab", "down", check=True)
        assert "lab is down" in out.stdout
        _assert_lab_gone()
        for d in labconfig.SIDE_EFFECT_DIRS:
            if d not in state["preexisting"]:
                assert not os.path.exists(d), f"{d} was made by the lab and left behind"
            elif pre[d]:
                assert os.path.exists(d)
        again = run_cli("lab", "down", check=True)
        assert "nothing to remove" in again.stdout
        assert run_cli("lab", "status").returncode == 5
    finally:
        run_cli("lab", "up", check=True)


# -- errors --------------------------------------------------------------------------------


def test_not_root_is_one_line_with_exit_3(monkeypatch):
    from typer.testing import CliRunner

    from tracer.cli import app

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    result = CliRunner().invoke(app, ["lab", "up"])
    assert result.exit_code == 3
    assert result.output.strip().splitlines() == [
        "dtrace-tree: error: the lab needs root (run it with sudo, or as root)"
    ]


def test_missing_binary_names_the_debian_package(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from tracer.cli import app

    for name in (
        "dockerd",
        "docker-proxy",
        "docker-init",
        "containerd",
        "containerd-shim-runc-v2",
        "runc",
        "ip",
    ):
        found = shutil.which(name, path=labhost.SEARCH_PATH)
        (tmp_path / name).symlink_to(found)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(labhost, "SEARCH_PATH", "")
    result = CliRunner().invoke(app, ["lab", "up"])
    assert result.exit_code == 4
    assert result.output.strip().splitlines() == [
        "dtrace-tree: error: 'busybox' was not found "
        "(install it with: apt-get install -y busybox-static)"
    ]


def test_cli_errors_never_show_a_traceback():
    out = run_cli("lab", "frobnicate")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr


def test_lab_down_says_what_it_could_not_remove(tmp_path):
    """A lab whose data directory holds an immutable file: down removes the rest, and names
    that directory with the reason instead of reporting it removed."""
    paths = labconfig.LabPaths(run=tmp_path / "run", data=tmp_path / "data", bridge="dtlabq")
    paths.run.mkdir()
    (paths.data / "docker").mkdir(parents=True)
    stuck = paths.data / "docker" / "stuck"
    stuck.write_text("x")
    subprocess.run(["chattr", "+i", str(stuck)], check=True)
    try:
        done = lab.down(paths)
        assert f"directory {paths.run}" in done.removed and not paths.run.exists()
        (left,) = done.left
        assert left.startswith(f"directory {paths.data} (") and "not permitted" in left
        assert not any(str(paths.data) in item for item in done.removed)
    finally:
        subprocess.run(["chattr", "-i", str(stuck)], check=True)
