"""`fs` and `cgroup` of a rootless Docker container, on a host tree recorded from the lab's
rootless engine (Docker 20.10, overlay2 with userxattr, cgroup v1): the data root under the
user's home, the container's overlay mounted in RootlessKit's mount namespace (seen through
/proc/<pid>/root), the user.* opaque xattr, and no cgroup of its own.

The mountinfo rows are the ones read from the lab (`lab up --rootless`, container rlfs-probe),
with its ids shortened; tests/integration/test_rootless_fs.py checks the same against the
engine itself.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.topologies import dockerd, engine, running
from tests.support.trees import Tree, v1_mounts
from tracer.kernel.root import HostRoot, seen_by
from tracer.model.topology import Service, Topology
from tracer.runtimes import runtime_of, storage
from tracer.views import cgroups
from tracer.views import storage as view

UID, KIT, CHILD, DOCKERD, INIT = 1002, 5275, 5286, 5314, 6728
HOME = "/home/rl"
DATA = f"{HOME}/.local/share/docker"
CID = "9205cd7cc0f7" + "1" * 52
MOUNT, CACHE = "f3" * 32, "16" * 32
DIFF = "sha256:" + "dc" * 32  # one layer: its chain id is its diff id
HOST_MNT, ENGINE_MNT = "mnt:[4026531841]", "mnt:[4026533228]"
HOST_USER, ENGINE_USER = "user:[4026531837]", "user:[4026533227]"
OV = f"{DATA}/overlay2"
LOWERS = f"{OV}/l/INIT:{OV}/l/BASE"
CONTAINER_MOUNTS = f"""\
4133 219 0:171 / / rw,relatime master:19 - overlay overlay rw,lowerdir={LOWERS},upperdir={OV}/{MOUNT}/diff,workdir={OV}/{MOUNT}/work,redirect_dir=nofollow,userxattr
4134 4133 0:198 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
4135 4133 0:199 / /dev rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755,uid=1002,gid=1002
4149 4135 0:203 / /dev/shm rw,nosuid,nodev,noexec,relatime - tmpfs shm rw,size=65536k,uid=1002,gid=1002
4150 4133 254:0 {DATA}/volumes/rlfs-vol/_data /data rw,relatime master:17 - ext4 /dev/vda rw
4151 4133 254:0 /tmp /hosttmp ro,relatime - ext4 /dev/vda rw
4152 4133 0:204 / /scratch rw,nosuid,nodev,noexec,relatime - tmpfs tmpfs rw,uid=1002,gid=1002
4153 4133 254:0 {DATA}/containers/{CID}/resolv.conf /etc/resolv.conf rw,relatime - ext4 /dev/vda rw
4156 4135 0:6 /null /dev/null rw,relatime - devtmpfs devtmpfs rw,mode=755
"""  # noqa: E501
HOST_MOUNTS = "27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
ENGINE_MOUNTS = f"""\
343 219 254:0 / / rw,relatime master:1 - ext4 /dev/vda rw
350 343 0:6 / /dev rw,relatime master:2 - devtmpfs devtmpfs rw,mode=755
2830 343 0:171 / {OV}/{MOUNT}/merged rw,relatime shared:19 - overlay overlay rw,lowerdir={LOWERS},upperdir={OV}/{MOUNT}/diff,workdir={OV}/{MOUNT}/work,userxattr
"""  # noqa: E501
SPEC = (
    '{"mounts": [{"destination": "/data", "type": "bind", "options": ["rbind"]},'
    ' {"destination": "/hosttmp", "type": "bind", "options": ["rbind", "ro"]},'
    ' {"destination": "/scratch", "type": "tmpfs"}, {"destination": "/dev", "type": "tmpfs"},'
    ' {"destination": "/etc/resolv.conf", "type": "bind", "options": ["rbind"]}]}'
)


def _write(top: Path, path: str, text: str | bytes = "") -> Path:
    where = top / path.lstrip("/")
    where.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        where.write_bytes(text)
    else:
        where.write_text(text)
    return where


def _ns(top: Path, pid: int, mnt: str, user: str) -> None:
    ns = top / "proc" / str(pid) / "ns"
    ns.mkdir(parents=True, exist_ok=True)
    os.symlink(mnt, ns / "mnt")
    os.symlink(user, ns / "user")


def _environ(top: Path, pid: int, **env: str) -> None:
    _write(top, f"/proc/{pid}/environ", b"".join(f"{k}={v}\0".encode() for k, v in env.items()))


def rootless_host(top: Path) -> HostRoot:
    """The host as the tool sees it: PID 1 in the host's namespaces, rootlesskit's child and
    dockerd in RootlessKit's, whose root is the same file system (no copy-up under $HOME)."""
    _ns(top, 1, HOST_MNT, HOST_USER)
    _write(top, "/proc/1/mountinfo", HOST_MOUNTS)
    for pid in (CHILD, DOCKERD):
        _ns(top, pid, ENGINE_MNT, ENGINE_USER)
        os.symlink(top, top / "proc" / str(pid) / "root")
    _write(top, f"/proc/{CHILD}/mountinfo", ENGINE_MOUNTS)
    _environ(top, DOCKERD, HOME=HOME, ROOTLESSKIT_STATE_DIR=f"/run/user/{UID}/dockerd-rootless")
    _write(top, f"/proc/{INIT}/mountinfo", CONTAINER_MOUNTS)
    _write(top, "/bundle/config.json", SPEC)
    (top / "proc" / "90").mkdir(parents=True)
    os.symlink(top / "bundle", top / "proc" / "90" / "cwd")  # the shim's bundle
    # overlay2: the image's one layer, the init layer, the writable layer as the kernel left it
    _write(top, f"{OV}/{CACHE}/diff/www/index.html", "<h1>\n")
    _write(top, f"{OV}/{CACHE}/diff/bin/ls", "ls")
    os.symlink(f"../{CACHE}/diff", _write(top, f"{OV}/l/.keep").parent / "BASE")
    os.symlink(f"../{MOUNT}-init/diff", top / OV.lstrip("/") / "l" / "INIT")
    _write(top, f"{OV}/{MOUNT}-init/diff/.dockerenv")
    _write(top, f"{OV}/{MOUNT}-init/lower", "l/BASE")
    _write(top, f"{OV}/{MOUNT}/lower", "l/INIT:l/BASE")
    upper = top / OV.lstrip("/") / MOUNT / "diff"
    _write(top, f"{OV}/{MOUNT}/diff/added", "hi\n")
    (upper / "www").mkdir()
    os.setxattr(upper / "www", "user.overlay.opaque", b"y")  # rm -rf /www; mkdir /www
    _write(top, f"{OV}/{MOUNT}/diff/www/new", "n\n")
    (upper / "bin").mkdir()
    os.mknod(upper / "bin" / "ls", 0o600 | 0o020000, os.makedev(0, 0))  # rm /bin/ls
    db = f"{DATA}/image/overlay2/layerdb"
    for name, text in (("mount-id", MOUNT), ("init-id", f"{MOUNT}-init"), ("parent", DIFF)):
        _write(top, f"{db}/mounts/{CID}/{name}", text)
    for name, text in (("diff", DIFF), ("cache-id", CACHE), ("size", "1984157")):
        _write(top, f"{db}/sha256/{DIFF.removeprefix('sha256:')}/{name}", text)
    return HostRoot(str(top))


def rootless_engine():
    kit = Service(KIT, ["rootlesskit", "--net=slirp4netns"], kind="rootlesskit")
    child = Service(CHILD, ["/proc/self/exe"], kind="rootlesskit child")
    me = running(CID, "rlfs-probe", 90, [INIT], image="dtrace-lab/busybox:latest")
    return engine(dockerd(DOCKERD), kit, child, containers=[me], owner=UID), me


def needs_root() -> None:
    if os.geteuid() != 0:  # a whiteout is a device: mknod needs root (CI runs as root)
        if os.environ.get("CI"):
            pytest.fail("these tests need root in CI")
        pytest.skip("needs root")


@pytest.mark.parametrize(
    ("env", "config", "where"),
    [
        ({"HOME": HOME, "ROOTLESSKIT_STATE_DIR": "/run/user/1002/x"}, None, DATA),
        ({"HOME": HOME, "ROOTLESSKIT_STATE_DIR": "/s", "XDG_DATA_HOME": "/srv/xdg"}, None,
         "/srv/xdg/docker"),
        ({"HOME": HOME, "ROOTLESSKIT_STATE_DIR": "/s"}, (f"{HOME}/.config/docker/daemon.json",
         "/srv/rl"), "/srv/rl"),
        ({"HOME": HOME, "ROOTLESSKIT_STATE_DIR": "/s", "XDG_CONFIG_HOME": "/cfg"},
         ("/cfg/docker/daemon.json", "/srv/cfg"), "/srv/cfg"),
        ({"HOME": HOME}, None, "/var/lib/docker"),  # not under RootlessKit: the system's
        (None, None, "/var/lib/docker"),  # its environment unreadable: the system's, said
    ],
)  # fmt: skip
def test_a_rootless_dockerd_s_data_root_is_the_one_it_decides(tmp_path, env, config, where):
    if env is not None:
        _environ(tmp_path, DOCKERD, **env)
    if config is not None:
        _write(tmp_path, config[0], f'{{"data-root": "{config[1]}"}}')
    docker, _ = rootless_engine()
    assert runtime_of(docker).storage_root(docker, HostRoot(str(tmp_path))) == where


def test_daemon_json_is_read_in_the_engine_s_own_mount_namespace(tmp_path):
    """RootlessKit copies up /etc: a dockerd started there with --config-file /etc/… reads
    its own copy, not the host's file of that name."""
    engine_fs = tmp_path / "engine"
    _write(engine_fs, "/etc/docker/daemon.json", '{"data-root": "/srv/inside"}')
    _write(tmp_path, "/etc/docker/daemon.json", '{"data-root": "/srv/host"}')
    _ns(tmp_path, 1, HOST_MNT, HOST_USER)
    _ns(tmp_path, DOCKERD, ENGINE_MNT, ENGINE_USER)
    os.symlink(engine_fs, tmp_path / "proc" / str(DOCKERD) / "root")
    root = HostRoot(str(tmp_path))
    assert seen_by(root, 1) is None
    docker = engine(dockerd(DOCKERD, cmdline=["dockerd", "--config-file",
                                              "/etc/docker/daemon.json"]))  # fmt: skip
    assert runtime_of(docker).storage_root(docker, root) == "/srv/inside"


def test_fs_of_a_rootless_container_reads_the_engine_s_mount_namespace(tmp_path):
    needs_root()
    root = rootless_host(tmp_path)
    docker, me = rootless_engine()
    topo = Topology(engines=[docker])
    doc = view.report_for(topo, me, root, list_changes=True)
    assert (doc.driver, doc.data_root, doc.seen_from) == ("overlay2", DATA, f"/proc/{CHILD}/root")
    assert doc.root is not None and doc.root.merged == f"{OV}/{MOUNT}/merged"  # not the host's
    rows = [(x.role, x.cache_id, x.chain_id, x.size_bytes, x.path) for x in doc.layers]
    assert rows == [
        ("rw", MOUNT, None, len("hi\n") + len("n\n"), f"{OV}/{MOUNT}/diff"),
        ("init", f"{MOUNT}-init", None, 0, f"{OV}/{MOUNT}-init/diff"),
        ("image", CACHE, DIFF, 1984157, f"{OV}/{CACHE}/diff"),
    ]
    assert doc.changes is not None and doc.changes.files is not None
    # as docker diff said of the container these rows were recorded from: the opaque /www
    # (user.overlay.opaque, an overlay mounted with userxattr) hides the image's index.html
    assert [(c.kind, c.path) for c in doc.changes.files] == [
        ("A", "/added"), ("C", "/bin"), ("D", "/bin/ls"),
        ("C", "/www"), ("D", "/www/index.html"), ("A", "/www/new"),
    ]  # fmt: skip
    kinds = {m.destination: (m.kind, m.source, m.volume) for m in doc.mounts or []}
    assert kinds["/data"] == ("volume", f"{DATA}/volumes/rlfs-vol/_data", "rlfs-vol")
    assert kinds["/hosttmp"] == ("bind", "/tmp", None)
    assert kinds["/scratch"] == ("tmpfs", None, None)
    assert kinds["/etc/resolv.conf"] == ("generated", f"{DATA}/containers/{CID}/resolv.conf", None)
    assert kinds["/dev/null"][0] == "system"  # runc's bind of the device, in a user namespace
    assert any(f"/proc/{CHILD}/root" in n for n in doc.notes)
    assert not any("userns-remap" in n or "not mounted" in n for n in doc.notes)


def test_a_stopped_rootless_container_is_read_from_its_records_with_user_xattrs(tmp_path):
    needs_root()
    root = rootless_host(tmp_path)
    docker, me = rootless_engine()
    me.init_pid, me.processes, me.state = None, [], "exited"
    doc = view.report_for(Topology(engines=[docker]), me, root, list_changes=True)
    assert doc.mounts is None and doc.root is not None and doc.root.merged is None
    assert doc.changes is not None and doc.changes.deleted == 2  # /bin/ls and /www/index.html


def test_the_engine_s_namespace_unreadable_is_said_and_the_host_s_used(tmp_path):
    needs_root()
    root = rootless_host(tmp_path)
    (tmp_path / "proc" / str(CHILD) / "mountinfo").unlink()
    docker, me = rootless_engine()
    found = storage.read_in(Topology(engines=[docker]), me, root)
    assert found.view_pid is None and found.host_from == "pid 1"
    assert any("the engine's mount namespace could not be read" in e for e in found.errors)


def test_a_rootless_container_on_cgroup_v1_has_no_cgroup_of_its_own(tmp_path):
    lines = ["9:name=systemd:/", "4:memory:/user.slice/session-3.scope", "3:pids:/", "0::/"]
    tree = Tree(tmp_path, v1_mounts(), lines)  # written for pid 4242: ours is INIT
    for pid in (INIT, DOCKERD):
        tree.write(f"/proc/{pid}/cgroup", "\n".join(lines) + "\n")
    docker, me = rootless_engine()
    doc = cgroups.report_for(Topology(engines=[docker]), me, HostRoot(str(tmp_path)))
    assert (doc.version, doc.driver, doc.paths, doc.processes) == (1, "none", {}, [])
    assert set(doc.limits.values()) == {None} and set(doc.usage.values()) == {None}
    assert all("no cgroup of its own" in why for why in doc.why_null.values())
    assert "rootless Docker on cgroup v1" in doc.notes[0]
    assert f"dockerd {DOCKERD}" in doc.notes[1] and "session-3.scope" in doc.notes[1]


def test_a_container_in_cgroups_of_its_own_is_not_said_to_borrow(tmp_path):
    lines = ["4:memory:/user.slice", "3:pids:/", "0::/"]
    tree = Tree(tmp_path, v1_mounts(), lines)
    tree.write(f"/proc/{INIT}/cgroup", "4:memory:/user.slice/x\n3:pids:/\n0::/\n")
    tree.write(f"/proc/{DOCKERD}/cgroup", "\n".join(lines) + "\n")
    docker, me = rootless_engine()
    doc = cgroups.report_for(Topology(engines=[docker]), me, HostRoot(str(tmp_path)))
    assert doc.driver == "unknown" and doc.paths  # not the engine's: read as it is
