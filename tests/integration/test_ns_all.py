"""`ns --all` on this host: namespaces the tests make themselves (bind-mounted by `ip netns add`
and `unshare --net=FILE`, held only by an fd, user and PID namespaces two deep, a leaked
Docker-like sandbox), the lab's containers (shared ones too) and rootless podman, checked with
ioctls made here and with `lsns`; and a walk under process churn. Each test selects what it
made: the host may hold hundreds of other namespaces."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.waiting import wait_for
from tracer.ops import lab

PATHS = lab.LabPaths()
NS_GET_USERNS, NS_GET_PARENT = 0xB701, 0xB702
TYPES = ("mnt", "net", "pid", "uts", "ipc", "user", "cgroup", "time")


def ns_all(*args: str) -> dict:
    proc = run_cli("ns", "--all", "--json", *args)
    assert proc.returncode == 0, proc.stderr  # root: nothing unreadable that matters
    assert "Traceback" not in proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["schema"] == "dtrace-tree/namespaces/1"
    return doc


def by_inode(doc: dict) -> dict[int, dict]:
    return {n["inode"]: n for n in doc["namespaces"]}


def inode(path: str) -> int:
    return os.stat(path).st_ino


def ioctl_inode(path: str, request: int) -> int | None:
    """What the kernel says, asked here: the inode of the owner or parent, None if refused."""
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            got = fcntl.ioctl(fd, request)
        except OSError:
            return None
        try:
            return os.fstat(got).st_ino
        finally:
            os.close(got)
    finally:
        os.close(fd)


def children_of(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def deepest(pid: int) -> int:
    """The last descendant of a chain of unshare --fork processes (the command itself)."""
    while kids := children_of(pid):
        pid = kids[0]
    return pid


@contextlib.contextmanager
def spawned(*argv: str, depth: int = 0) -> Iterator[tuple[subprocess.Popen, int]]:
    """A process tree (unshare ... sleep), and the PID of its command once it runs."""
    proc = subprocess.Popen(argv, start_new_session=True)
    try:
        found = {}

        def ready() -> bool:
            pid = deepest(proc.pid)
            chain, p = 0, pid
            while p != proc.pid:
                p = int(Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[1])
                chain += 1
            found["pid"] = pid
            return chain >= depth and Path(f"/proc/{pid}/comm").read_text().strip() == "sleep"

        wait_for(ready, 20, f"{argv} to run")
        yield proc, found["pid"]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)  # the whole chain: it is a session of its own
        proc.wait()


@contextlib.contextmanager
def fd_holder(path: str) -> Iterator[tuple[int, int]]:
    """A process that holds path open (a namespace, through /proc/<pid>/ns/<type>): its pid,
    and the fd number."""
    code = (
        "import os, sys, time\n"
        f"fd = os.open({path!r}, os.O_RDONLY)\n"
        "print(fd, flush=True)\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        fd = int(proc.stdout.readline())
        yield proc.pid, fd
    finally:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def persistent_netns(path: Path) -> Iterator[int]:
    """A network namespace bind-mounted on path (`unshare --net=FILE`), released after."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    try:
        subprocess.run(["unshare", f"--net={path}", "true"], check=True)
        yield inode(str(path))
    finally:
        subprocess.run(["umount", str(path)], capture_output=True)
        path.unlink(missing_ok=True)


def name() -> str:
    return "dt-nsall-" + secrets.token_hex(4)


# -- namespaces held without a process --------------------------------------------------------


def test_ip_netns_add_is_found_by_its_mount_and_is_nobodys_but_not_leaked():
    netns = name()
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        path = f"/run/netns/{netns}"
        me = inode(path)
        n = by_inode(ns_all())[me]
        host_mnt = inode("/proc/2/ns/mnt")
        assert n["type"] == "net"
        assert n["processes"] == [] and n["fds"] == []
        assert {"path": path, "mount_ns": host_mnt} in n["mounts"]
        assert n["owner"] == ioctl_inode(path, NS_GET_USERNS) == inode("/proc/2/ns/user")
        assert n["parent"] is None  # a network namespace has none
        assert n["containers"] == [] and n["host"] is False
        assert n["leaked"] is False  # the user's own: no runtime's sandbox
        text = run_cli("ns", "--all", env={"COLUMNS": "80"}).stdout
        assert max(len(line) for line in text.splitlines()) <= 80
        flat = "".join(text.replace("│", " ").split())
        assert f"net{me}nobody" in flat and f"mount{path}" in flat
    finally:
        subprocess.run(["ip", "netns", "delete", netns], check=True)


def test_unshare_net_file_and_an_fd_alone_hold_a_namespace(tmp_path):
    with persistent_netns(tmp_path / "persistent") as persistent:
        with spawned("unshare", "--net", "--uts", "sleep", "600") as (sleep, sleeper):
            held = inode(f"/proc/{sleeper}/ns/uts")
            with fd_holder(f"/proc/{sleeper}/ns/uts") as (holder, fd):
                sleep.kill()
                sleep.wait()  # reaped: no task is left in its namespaces
                doc = by_inode(ns_all())
        p = doc[persistent]
        assert p["mounts"][0]["path"] == str(tmp_path / "persistent")
        assert p["processes"] == [] and p["leaked"] is False
        f = doc[held]
        assert f["type"] == "uts"
        assert f["processes"] == [] and f["mounts"] == []
        assert f["fds"] == [{"pid": holder, "fd": fd}]


def test_a_user_namespace_two_deep_owns_a_net_namespace_held_by_an_fd():
    """unshare -> user U1 -> unshare -> user U2 + net N: N's owner is U2, U2's parent U1, U1's
    the host's. Then only an fd holds N: U1 and U2 have no process left, and are still found,
    as what N hangs from."""
    argv = ["unshare", "--user", "--map-root-user", "--fork",
            "unshare", "--user", "--map-root-user", "--net", "--fork", "sleep", "600"]  # fmt: skip
    with spawned(*argv, depth=2) as (chain, pid):
        net_path = f"/proc/{pid}/ns/net"
        net, u2 = inode(net_path), inode(f"/proc/{pid}/ns/user")
        u1 = ioctl_inode(f"/proc/{pid}/ns/user", NS_GET_PARENT)
        assert ioctl_inode(net_path, NS_GET_USERNS) == u2
        doc = by_inode(ns_all())
        assert doc[net]["owner"] == u2
        assert doc[u2]["parent"] == doc[u2]["owner"] == u1
        assert doc[u1]["parent"] == inode("/proc/2/ns/user")
        assert pid in doc[u2]["processes"] and pid in doc[net]["processes"]
        with fd_holder(net_path) as (holder, fd):
            os.killpg(chain.pid, 9)
            chain.wait()
            wait_for(lambda: not Path(f"/proc/{pid}").exists(), 10, "the chain to end")
            after = by_inode(ns_all())
    assert after[net]["fds"] == [{"pid": holder, "fd": fd}] and after[net]["processes"] == []
    assert after[u2]["processes"] == [] and after[u2]["parent"] == u1  # held by N alone
    assert after[u1]["processes"] == [] and after[u1]["parent"] == inode("/proc/2/ns/user")


def test_a_pid_namespace_two_deep_is_drawn_as_a_tree():
    argv = ["unshare", "--pid", "--fork", "unshare", "--pid", "--fork", "sleep", "600"]
    with spawned(*argv, depth=2) as (_, pid):
        p2 = inode(f"/proc/{pid}/ns/pid")
        p1 = ioctl_inode(f"/proc/{pid}/ns/pid", NS_GET_PARENT)
        host = inode("/proc/2/ns/pid")
        assert ioctl_inode(f"/proc/{pid}/ns/pid", NS_GET_PARENT) == p1 != host
        doc = by_inode(ns_all("--type", "pid"))
        assert {n["type"] for n in doc.values()} == {"pid"}
        assert doc[p2]["parent"] == p1 and doc[p1]["parent"] == host
        assert doc[host]["host"] is True and doc[host]["parent"] is None
        assert pid in doc[p2]["processes"]
        text = run_cli("ns", "--all", "--type", "pid", env={"COLUMNS": "80"}).stdout
    lines = text.splitlines()
    at = {n: next(i for i, line in enumerate(lines) if f"pid {n} " in line) for n in (p1, p2)}
    indent = {n: lines[at[n]].index(f"pid {n}") for n in at}
    assert at[p2] > at[p1] and indent[p2] > indent[p1]  # a child, drawn under its parent


# -- runtimes' sandboxes -------------------------------------------------------------------------


def test_a_leaked_docker_sandbox_is_flagged_with_its_release(lab_engine, client):
    """A network namespace bind-mounted in the lab engine's own sandbox directory under a
    sandbox-like name that no container's SandboxKey names: what a crashed sandbox leaves."""
    netns_dir = PATHS.exec_root / "netns"
    path = netns_dir / secrets.token_hex(6)
    with persistent_netns(path) as leaked:
        doc = ns_all("--leaked")
        found = by_inode(doc)
        assert leaked in found
        n = found[leaked]
        assert n["leaked"] is True and n["processes"] == [] and n["fds"] == []
        assert n["release"] == f"umount {path} && rm {path}"
        assert str(PATHS.docker_sock) in n["why"]
        assert all(x["leaked"] for x in doc["namespaces"])
        everything = by_inode(ns_all("--type", "net"))
        text = run_cli("ns", "--all", "--leaked", env={"COLUMNS": "80"}).stdout
    assert "LEAKED" in text and "release with:" in text
    for ctr in client.containers.list():  # the live sandboxes are not leaked
        key = client.api.inspect_container(ctr.id)["NetworkSettings"]["SandboxKey"]
        if key:
            live = everything[inode(key)]
            assert live["leaked"] is False and ctr.name in {c["name"] for c in live["containers"]}


def test_lab_containers_and_the_ones_that_share(client):
    doc = by_inode(ns_all())
    names = {}
    for ctr in client.containers.list():
        pid = client.api.inspect_container(ctr.id)["State"]["Pid"]
        for kind in TYPES:
            n = doc[inode(f"/proc/{pid}/ns/{kind}")]
            assert n["type"] == kind
            who = {(c["name"], c["id"]) for c in n["containers"]}
            assert (ctr.name, ctr.id) in who, (ctr.name, kind)
            assert all(c["engine"] for c in n["containers"])
            names[(ctr.name, kind)] = {c["name"] for c in n["containers"]}
    assert names[("lab-sidecar", "net")] >= {"lab-web", "lab-sidecar"}
    assert names[("lab-sidecar", "pid")] >= {"lab-web", "lab-sidecar"}
    assert "lab-web" not in names[("lab-sidecar", "mnt")]
    dockerd = int(PATHS.docker_pid.read_text())
    engines = doc[inode(f"/proc/{dockerd}/ns/mnt")]["engines"]
    assert str(PATHS.docker_sock) in {e["name"] for e in engines}


def test_rootless_podman_names_its_user_namespace(rootless_podman):
    run = rootless_podman.run
    out = subprocess.run([*run, "inspect", "-f", "{{.State.Pid}}", rootless_podman.name],
                         capture_output=True, text=True, check=True)  # fmt: skip
    pid = int(out.stdout)
    user = inode(f"/proc/{pid}/ns/user")
    n = by_inode(ns_all("--type", "user"))[user]
    assert rootless_podman.name in {c["name"] for c in n["containers"]}
    rootless = [e for e in n["engines"] if e["rootless"]]
    assert rootless and f"uid {rootless_podman.uid}" in rootless[0]["name"]
    assert n["parent"] == ioctl_inode(f"/proc/{pid}/ns/user", NS_GET_PARENT)
    assert n["host"] is False


# -- against lsns, and under churn -----------------------------------------------------------------


def lsns() -> dict[int, dict]:
    out = subprocess.run(["lsns", "-J", "-o", "NS,TYPE,NPROCS,PNS,ONS,NSFS"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return {int(n["ns"]): n for n in json.loads(out)["namespaces"]}


def test_every_namespace_lsns_lists_is_found_with_the_same_owner_and_parent():
    netns = name()
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        before = lsns()
        ours = by_inode(ns_all())
        after = lsns()
        hidden = inode(f"/run/netns/{netns}")
    finally:
        subprocess.run(["ip", "netns", "delete", netns], check=True)
    steady = before.keys() & after.keys()  # there all along: both walks must see them
    assert steady - ours.keys() == set()
    for ino in steady:
        theirs, mine = before[ino], ours[ino]
        assert mine["type"] == theirs["type"]
        assert (mine["owner"] or 0) == int(theirs["ons"] or 0), ino
        if theirs["type"] in ("pid", "user"):
            assert (mine["parent"] or 0) == int(theirs["pns"] or 0), ino
    assert hidden in ours and hidden not in before  # lsns misses what no process holds


def test_under_churn_no_crash_and_nothing_invented():
    """Processes that unshare and exit while the walk runs: every run ends well, and every
    namespace listed is held by something listed (a process, a mount, an fd, or a namespace
    below it): none is made up from a PID that was reused."""
    churn = subprocess.Popen(
        ["sh", "-c", "while :; do unshare --net --uts --ipc true; sh -c 'sleep 0.01 &'; done"],
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        runs = 0
        while time.monotonic() < deadline or runs < 3:
            doc = ns_all()
            runs += 1
            listed = by_inode(doc)
            holds = {n.get(k) for n in listed.values() for k in ("owner", "parent")}
            for ino, n in listed.items():
                held = n["processes"] or n["mounts"] or n["fds"] or n["for_children"]
                assert held or ino in holds, n
                assert n["type"] in TYPES
                if n["containers"]:  # churn never lands in a container
                    assert not any(
                        (c["name"] or "").startswith("dt-nsall") for c in n["containers"]
                    )
    finally:
        os.killpg(churn.pid, 9)
        churn.wait()
    assert runs >= 3


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to nobody")
def test_without_root_what_can_be_seen_and_exit_3():
    from tests.support.cli import run_as_nobody

    proc = run_as_nobody("ns", "--all", "--json")
    assert proc.returncode == 3, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["unreadable"] and doc["namespaces"]  # its own, at least
    assert "could not be read" in proc.stderr and "Traceback" not in proc.stderr
