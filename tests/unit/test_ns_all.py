"""`ns --all`, piece by piece: the nsfs parsers and ioctls on this process's own namespaces,
the analysis on made-up snapshots (who uses a namespace, by process identity; which sandbox
mounts are leaked), and the terminal trees at 80 columns."""

from __future__ import annotations

import io
import os
import subprocess

import pytest
from rich.console import Console

from tracer.kernel import nsfs
from tracer.kernel.root import HostRoot
from tracer.model.namespaces import NsFd, NsHeld, NsMount, NsProc, NsScan, NsVerdict
from tracer.model.topology import Container, Dockerd, Engine, Pod, Process, Topology
from tracer.output.terminal import namespaces as view
from tracer.runtimes import netns
from tracer.snapshot.host import Host, Proc
from tracer.views.namespaces import inventory

ELSEWHERE = HostRoot("/nonexistent-host")  # another host's /: its mounts are not re-checked
HOST = {"mnt": 10, "net": 11, "pid": 12, "user": 13, "uts": 14, "ipc": 15, "cgroup": 16, "time": 17}


# -- the kernel's words ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("link", "want"),
    [
        ("net:[4026531840]", ("net", 4026531840)),
        ("user:[4026531837]", ("user", 4026531837)),
        ("socket:[123]", None),  # an fd that is not a namespace
        ("pipe:[5]", None),
        ("anon_inode:[eventfd]", None),
        ("/run/netns/x", None),
        ("net:[-1]", None),
        ("net:[4026531840", None),
        ("pid_for_children:[1]", None),  # a file name, never a link's type
    ],
)
def test_a_namespace_link_is_its_type_and_inode(link, want):
    assert nsfs.parse_link(link) == want


def test_nsfs_rows_of_a_mount_table_with_escapes():
    table = (
        b"22 1 0:4 net:[4026532185] /run/docker/netns/400abe11f360 rw shared:5 - nsfs nsfs rw\n"
        b"23 1 0:4 net:[4026532186] /run/netns/with\\040space rw - nsfs nsfs rw\n"
        b"24 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
        b"25 1 0:4 mnt:[4026532187] /run/m rw - nsfs nsfs rw\n"
        b"not a row - nsfs \n"
    )
    assert nsfs.nsfs_mounts(table) == [
        nsfs.NsMountRow("net", 4026532185, "/run/docker/netns/400abe11f360"),
        nsfs.NsMountRow("net", 4026532186, "/run/netns/with space"),
        nsfs.NsMountRow("mnt", 4026532187, "/run/m"),
    ]


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_owner_and_parent_of_our_own_namespaces_and_no_fd_left_open():
    dev = nsfs.nsfs_device()
    before = _fds()
    user = os.stat("/proc/self/ns/user").st_ino
    for kind in nsfs.TYPES:
        inode = os.stat(f"/proc/self/ns/{kind}").st_ino
        got = nsfs.relatives(f"/proc/self/ns/{kind}", kind, inode, dev)
        assert got is not None, kind
        mine, above = got
        if kind != "user":
            assert mine.owner == user, kind
        if kind not in ("pid", "user"):
            assert mine.parent is None  # only PID and user namespaces have parents
        for up_kind, _ in above.values():
            assert up_kind in ("user", "pid")
    assert _fds() == before


def test_a_path_that_names_another_namespace_now_gives_nothing():
    net = os.stat("/proc/self/ns/net").st_ino
    assert nsfs.relatives("/proc/self/ns/net", "net", net + 1, nsfs.nsfs_device()) is None
    assert nsfs.relatives("/proc/self/ns/nothing", "net", net) is None


def test_an_ordinary_file_is_never_opened_as_a_namespace(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # an open() for reading would block: O_PATH first, then the inode check
    assert nsfs.relatives(str(fifo), "net", fifo.stat().st_ino, nsfs.nsfs_device()) is None


@pytest.mark.skipif(os.geteuid() != 0, reason="unshare needs root")
def test_a_child_pid_namespace_has_ours_as_parent():
    child = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", "sleep", "30"])
    try:
        for _ in range(100):
            kids = subprocess.run(
                ["pgrep", "-P", str(child.pid)], capture_output=True, text=True
            ).stdout.split()
            if kids:
                break
            subprocess.run(["sleep", "0.05"], check=True)
        pid = int(kids[0])
        inode = os.stat(f"/proc/{pid}/ns/pid").st_ino
        got = nsfs.relatives(f"/proc/{pid}/ns/pid", "pid", inode, nsfs.nsfs_device())
        assert got is not None
        assert got[0].parent == os.stat("/proc/self/ns/pid").st_ino
    finally:
        child.kill()
        child.wait()


# -- one read of each process for show's walk and the namespace walk -------------------------


def test_the_namespace_walk_gives_show_s_walk_what_it_would_read_itself():
    """Read through the same pinned fd: this process's own links as Pinned.namespaces reads
    them, its sockets' links as unix.socket_inodes reads them; and its threads counted."""
    import socket
    import threading

    from tracer.kernel import procfs, unix
    from tracer.snapshot.namespaces import NsWalk

    root, me, stop = HostRoot(), os.getpid(), threading.Event()
    worker = threading.Thread(target=stop.wait)
    worker.start()
    a, b = socket.socketpair()
    try:
        walk = NsWalk(root)
        with procfs.Pinned(root, me) as p:
            got = walk.process(p)
            assert got.namespaces == p.namespaces()
        assert got.sockets is not None
        assert unix.inodes_of(got.sockets) == unix.socket_inodes(root, me)
        scan = walk.finish()
        net = scan.namespaces[os.stat("/proc/self/ns/net").st_ino]
        assert net.processes == {me: p.stat.start_ticks}
        assert net.tasks == len(os.listdir("/proc/self/task"))  # this one and the worker
    finally:
        a.close()
        b.close()
        stop.set()
        worker.join()


def test_show_s_walk_takes_the_namespaces_read_for_it_instead_of_reading_again():
    from tracer.snapshot.walk import Also, Walk

    me, parent = os.getpid(), os.getppid()

    class Drawn:  # a runtime that draws this process
        daemons: frozenset[str] = frozenset()

        def read_daemon(self, host, daemon, read):
            pass

        def drawn(self, host):
            return [me, parent]

        def read_state(self, host, read):
            pass

    told = ({"net": 1234}, False)  # not what the kernel says: so it was not read again
    walk = Walk(HostRoot(), [Drawn()], also=lambda p, uid: Also(told if p.pid == me else None,
                                                                None))  # fmt: skip
    walk.processes()
    host = walk.details()
    assert host.procs[me].namespaces == {"net": 1234}
    # told nothing of the parent: the walk read it itself
    assert host.procs[parent].namespaces["net"] == os.stat(f"/proc/{parent}/ns/net").st_ino


# -- who uses a namespace ------------------------------------------------------------------


def _container(cid: str, name: str, procs: list[tuple[int, int]], pod: Pod | None = None):
    processes = [
        Process(pid, 1, ["sh"], "init" if i == 0 else "child", "sh", start=start)
        for i, (pid, start) in enumerate(procs)
    ]
    return Container(cid, name, "img", "running", init_pid=procs[0][0], processes=processes,
                     pod=pod)  # fmt: skip


def _scan(*held: NsHeld, procs: dict[int, int] | None = None) -> NsScan:
    names = {pid: NsProc(pid, start, f"p{pid}", 0) for pid, start in (procs or {}).items()}
    return NsScan(namespaces={h.inode: h for h in held}, procs=names)


def _topo() -> tuple[Topology, Host]:
    web = _container("a" * 64, "web", [(100, 1000)])
    side = _container("b" * 64, "side", [(200, 2000)])
    pm = _container("c" * 64, "pm", [(300, 3000)])
    dockerd = Dockerd(pid=50, cmdline=["dockerd", "--exec-root", "/run/lab"], api_socket="/x.sock")
    docker = Engine("docker", daemons=[dockerd], containers=[web, side])
    podman = Engine("podman", containers=[pm], owner=1000, named="podman /home/u/.local (uid 1000)")
    topo = Topology([docker, podman], host={"namespaces": HOST})
    host = Host(procs={50: Proc(50, 1, "dockerd", ("dockerd",), 0.0, start=500, uid=0)})
    return topo, host


def test_every_container_in_a_namespace_is_named_by_process_identity():
    topo, host = _topo()
    shared = NsHeld(20, "net", processes={100: 1000, 200: 2000}, confirmed=True)
    reused = NsHeld(21, "net", processes={300: 9999}, confirmed=True)  # pm's PID, not pm
    engine = NsHeld(22, "mnt", processes={50: 500}, confirmed=True)
    inv = inventory.inventory(_scan(shared, reused, engine), topo, host)
    by = {n.inode: n for n in inv.namespaces}
    assert [c.name for c in by[20].containers] == ["side", "web"]
    assert by[21].containers == []  # a PID reused between the walks lends nothing
    assert [e.name for e in by[22].engines] == ["/x.sock"]


def test_a_rootless_engine_is_named_on_its_user_namespace():
    topo, host = _topo()
    user = NsHeld(30, "user", processes={300: 3000}, owner=13, parent=13, confirmed=True)
    inv = inventory.inventory(_scan(user), topo, host)
    (n,) = inv.namespaces
    assert [(e.name, e.rootless) for e in n.engines] == [("podman /home/u/.local (uid 1000)", True)]
    assert inventory.label(n) == "pm; rootless podman /home/u/.local (uid 1000)"


def test_host_nobody_and_the_trees():
    topo, host = _topo()
    root_user = NsHeld(13, "user", processes={1: 1}, confirmed=True)
    child_user = NsHeld(40, "user", owner=13, parent=13, confirmed=True, above=True)
    grandchild = NsHeld(41, "user", processes={7: 70}, owner=40, parent=40, confirmed=True)
    owned_net = NsHeld(42, "net", mounts=[NsMount("/run/netns/x", 10)], owner=41,
                       confirmed=True)  # fmt: skip
    held_by_fd = NsHeld(43, "uts", fds=[NsFd(7, 5)], owner=13, confirmed=True)
    scan = _scan(root_user, child_user, grandchild, owned_net, held_by_fd, procs={1: 1, 7: 70})
    inv = inventory.inventory(scan, topo, host)
    by = {n.inode: n for n in inv.namespaces}
    assert by[13].host and not by[40].host
    assert inventory.label(by[42]) == "nobody"
    assert inventory.label(by[41]) == "7 p7"
    (top,) = inventory.tree(inv, "user")
    assert top.ns.inode == 13
    assert [c.ns.inode for c in top.children] == [40]
    assert [c.ns.inode for c in top.children[0].children] == [41]
    assert [n.inode for n in inventory.owned(inv)[41]] == [42]
    assert {n.inode for n in inventory.hidden(inv)} == {40, 42, 43}


def test_only_one_type_and_only_the_leaked():
    topo, host = _topo()
    a = NsHeld(50, "net", mounts=[NsMount("/run/lab/netns/0123456789ab", 10)], confirmed=True)
    b = NsHeld(51, "uts", processes={1: 1}, confirmed=True)
    verdicts = {50: NsVerdict(True, "no sandbox", "umount /run/lab/netns/0123456789ab")}
    assert [n.inode for n in inventory.inventory(_scan(a, b), topo, host, kinds=("uts",))
            .namespaces] == [51]  # fmt: skip
    leaked = inventory.inventory(_scan(a, b), topo, host, verdicts, leaked_only=True)
    assert [(n.inode, n.leaked, n.release) for n in leaked.namespaces] == [
        (50, True, "umount /run/lab/netns/0123456789ab")
    ]


# -- which sandbox mounts are leaked ---------------------------------------------------------


def test_pinned_cni_and_podman_namespaces_with_no_process_are_leaked():
    topo, _ = _topo()
    cni = "/run/netns/cni-0f3e2a1b-1c2d-3e4f-5a6b-7c8d9e0f1a2b"
    held = NsHeld(60, "net", mounts=[NsMount(cni, 10)], confirmed=True)
    mine = NsHeld(61, "net", mounts=[NsMount("/run/netns/mine", 10)], confirmed=True)
    busy = NsHeld(62, "net", mounts=[NsMount(cni[:-1] + "c", 10)], processes={5: 5},
                  confirmed=True)  # fmt: skip
    verdicts = netns.judge(topo, _scan(held, mine, busy), ELSEWHERE, host_mnt=10)
    assert set(verdicts) == {60}  # `ip netns add mine` is the user's; a busy one is live
    assert verdicts[60].leaked
    assert verdicts[60].release == f"ip netns delete {os.path.basename(cni)}"


def test_a_sandbox_mount_gone_by_the_time_it_is_judged_was_being_torn_down():
    topo, _ = _topo()
    cni = "/run/netns/cni-0f3e2a1b-1c2d-3e4f-5a6b-7c8d9e0f1a2f"  # not on this host
    held = NsHeld(63, "net", mounts=[NsMount(cni, 10)], confirmed=True)
    verdict = netns.judge(topo, _scan(held), HostRoot(), host_mnt=10)[63]
    assert not verdict.leaked and "torn down" in verdict.why


def test_a_docker_sandbox_no_dockerd_uses_is_not_called_leaked():
    topo, _ = _topo()
    held = NsHeld(70, "net", mounts=[NsMount("/run/docker/netns/0123456789ab", 10)],
                  confirmed=True)  # fmt: skip
    swarm = NsHeld(71, "net", mounts=[NsMount("/run/lab/netns/1-abcdef0123", 10)],
                   confirmed=True)  # fmt: skip
    verdicts = netns.judge(topo, _scan(held, swarm), ELSEWHERE, host_mnt=10)
    assert set(verdicts) == {70}  # an overlay network's namespace is no sandbox
    assert not verdicts[70].leaked and verdicts[70].why.startswith("cannot ask")


def test_a_mount_in_another_mount_namespace_is_released_from_inside_it():
    inside = NsHeld(80, "mnt", processes={900: 9}, confirmed=True)
    held = NsHeld(81, "net", mounts=[NsMount("/run/netns/cni-0f3e2a1b-1c2d-3e4f-5a6b-"
                                             "7c8d9e0f1a2b", 80)], confirmed=True)  # fmt: skip
    topo, _ = _topo()
    verdict = netns.judge(topo, _scan(inside, held), ELSEWHERE, host_mnt=10)[81]
    assert verdict.release == (
        "nsenter --mount=/proc/900/ns/mnt umount "
        "/run/netns/cni-0f3e2a1b-1c2d-3e4f-5a6b-7c8d9e0f1a2b"
    )


# -- on a terminal -------------------------------------------------------------------------------


def render(renderable: object, width: int = 80) -> str:
    out = io.StringIO()
    Console(color_system=None, width=width, file=out).print(renderable)
    return out.getvalue()


def test_the_trees_fit_80_columns_and_name_everything():
    topo, host = _topo()
    long = "/run/lab/netns/" + "x" * 120
    scan = _scan(
        NsHeld(13, "user", processes={1: 1, 100: 1000}, confirmed=True),
        NsHeld(12, "pid", processes={1: 1}, owner=13, confirmed=True),
        NsHeld(90, "pid", processes={100: 1000, 200: 2000}, owner=13, parent=12, confirmed=True),
        NsHeld(91, "net", mounts=[NsMount(long, 10)], owner=13, confirmed=True),
        NsHeld(
            92, "net", mounts=[NsMount("/run/lab/netns/0123456789ab", 10)], owner=13, confirmed=True
        ),  # fmt: skip
        procs={1: 1, 100: 1000, 200: 2000},
    )
    verdicts = {92: NsVerdict(True, "no running container's SandboxKey names it",
                              "umount /run/lab/netns/0123456789ab")}  # fmt: skip
    inv = inventory.inventory(scan, topo, host, verdicts)
    out = render(view.everything(inv))
    assert max(len(line.rstrip()) for line in out.splitlines()) <= 80
    assert "…" not in out
    flat = "".join(out.replace("│", " ").split())
    assert "pid90side,web2processes" in flat
    assert "x" * 120 in flat  # folded, not cut
    assert "LEAKED" in out and "release with: umount /run/lab/netns/0123456789ab" in out
    assert "5 namespaces" in out and "1 leaked" in out


def test_text_from_a_container_cannot_drive_the_terminal():
    topo, host = _topo()
    topo.engines[0].containers[0].name = "evil\x1b[2J"
    scan = _scan(NsHeld(90, "pid", processes={100: 1000}, confirmed=True), procs={100: 1000})
    out = render(view.everything(inventory.inventory(scan, topo, host)))
    assert "\x1b" not in out and "evil\\x1b[2J" in out


# -- export --ns --all, and the command line ---------------------------------------------------


def test_the_diagram_draws_both_trees_owners_and_leaks_with_hostile_text_inert():
    from tracer.output.diagram.namespaces import inventory_diagram

    topo, host = _topo()
    topo.engines[0].containers[0].name = 'web"]; evil [label="x'
    scan = _scan(
        NsHeld(13, "user", processes={1: 1}, confirmed=True),
        NsHeld(12, "pid", processes={1: 1}, owner=13, confirmed=True),
        NsHeld(90, "pid", processes={100: 1000}, owner=13, parent=12, confirmed=True),
        NsHeld(
            92, "net", mounts=[NsMount("/run/lab/netns/0123456789ab", 10)], owner=13, confirmed=True
        ),  # fmt: skip
        procs={1: 1, 100: 1000},
    )
    verdicts = {92: NsVerdict(True, "no sandbox", "umount /run/lab/netns/0123456789ab")}
    dot = inventory_diagram(inventory.inventory(scan, topo, host, verdicts), topo)
    assert "ns12 -> ns90" in dot  # the PID tree
    assert "ns13 -> ns92" in dot  # the owner of a hidden one
    assert 'web\\"]; evil [label=\\"x' in dot  # a label, not DOT
    assert "evil [" not in dot.replace('\\"]; evil [label', "")
    leaked = next(line for line in dot.splitlines() if line.strip().startswith("ns92 "))
    assert "LEAKED: umount /run/lab/netns/0123456789ab" in leaked and "#c92a2a" in leaked


@pytest.mark.parametrize(
    "args",
    [
        ["ns", "--all", "lab-web"],
        ["ns", "--type", "net"],
        ["ns", "--leaked"],
        ["ns", "--all", "--type", "bogus"],
        ["ns", "--all", "--from", "x.json"],
        ["export", "--ns", "--all", "--from", "x.json"],
    ],
)
def test_what_does_not_go_with_all_is_a_usage_error(args):
    from tests.support.cli import invoke, one_error_line

    result = invoke(*args)
    assert result.exit_code == 2
    one_error_line(result.stderr if hasattr(result, "stderr") else result.output)


def test_the_json_holds_every_field_of_a_namespace():
    """The JSON is written by hand (asdict is slow): it must stay every field, as asdict has."""
    from dataclasses import asdict

    from tracer.model.namespaces import Namespace, NsContainerRef, NsEngineRef, NsInventory

    n = Namespace(1, "net", [1], [NsMount("/a", 2)], [NsFd(1, 3)], 4, None,
                  [NsContainerRef("a", "b", "c")], False, True,
                  [NsEngineRef("e", "docker", [5], True)], ["p"], 2, [7], "sh", "umount",
                  "why")  # fmt: skip
    doc = NsInventory([n], {"net": 9}).to_json()
    assert doc["namespaces"] == [asdict(n)]
    assert set(doc) == {"schema", "namespaces", "initial", "unreadable", "notes"}
