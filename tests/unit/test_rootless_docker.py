"""A rootless dockerd on a made-up host: rootlesskit -> its child (the user namespace) ->
dockerd -> its containerd; slirp4netns beside the child."""

from __future__ import annotations

from tests.support.hosts import make_host, managed_containerd, proc, shim_cmd
from tracer.model.topology import Dockerd
from tracer.runtimes import build, runtime_of

UID, USERNS = 1001, 4026533611
XDG = f"/run/user/{UID}"
SOCK = f"{XDG}/docker/containerd/containerd.sock"
CID = "c" * 64


def rootless_host(uid_map: bool = True):
    kit = ["rootlesskit", f"--state-dir={XDG}/dockerd-rootless", "--net=slirp4netns",
           "/usr/share/docker.io/contrib/dockerd-rootless.sh"]  # fmt: skip
    h = make_host(
        proc(1, 0, "systemd", ["/sbin/init"], 1.0, {"user": 1}),
        proc(100, 1, "rootlesskit", kit, 10.0, {"user": 1}, uid=UID),
        proc(101, 100, "exe", ["/proc/self/exe", *kit[1:]], 11.0, {"user": USERNS}, uid=UID),
        proc(
            102, 100, "slirp4netns", ["slirp4netns", "--mtu", "65520", "101", "tap0"], 12.0, uid=UID
        ),  # fmt: skip
        proc(103, 101, "dockerd", ["dockerd"], 13.0, {"user": USERNS}, uid=UID),
        managed_containerd(104, 103, f"{XDG}/docker", 14.0, uid=UID),
        proc(200, 1, "containerd-shim", shim_cmd(CID, SOCK), 20.0, uid=UID),
        proc(201, 200, "sleep", ["sleep", "1"], 21.0, {"user": USERNS}, uid=UID),
    )
    h.listeners = {104: {1: SOCK}, 103: {2: f"{XDG}/docker.sock"}}
    h.files = {"/etc/passwd": f"root:x:0:0::/root:/bin/sh\nrl:x:{UID}:{UID}::/home/rl:/bin/sh\n"}
    if uid_map:
        h.files["/proc/101/uid_map"] = (
            f"         0       {UID}          1\n         1     100000      65536\n"
        )
    return h


def test_the_engine_is_its_user_s_with_rootlesskit_and_its_network_helper() -> None:
    (engine,) = [e for e in build(rootless_host()).engines if e.daemon(Dockerd)]
    assert engine.owner == UID
    assert [(d.role, d.pid) for d in engine.daemons] == [
        ("dockerd", 103), ("rootlesskit", 100), ("rootlesskit child", 101),
        ("network helper", 102), ("containerd", 104),
    ]  # fmt: skip
    assert engine.facts["rootless_user"] == "rl" and engine.facts["rootless_userns"] == USERNS
    assert engine.facts["rootless_uid_map"] == f"0->{UID} (1), 1->100000 (65536)"
    assert runtime_of(engine).describe(engine) == [f"uid {UID} (rl, rootless)"]
    assert [c.id for c in engine.containers] == [CID]
    (note,) = [n for n in engine.notes if n.startswith("rootless")]
    assert f"uid 0 inside is uid {UID} on the host; uid map 0->{UID} (1)" in note
    # the chain as it is drawn: rootlesskit first, dockerd under its child
    levels = [d.role for d in runtime_of(engine).look.levels(engine)]
    assert levels == ["rootlesskit", "network helper", "rootlesskit child", "dockerd", "containerd"]


def test_a_container_in_the_engine_s_user_namespace_is_told_so() -> None:
    from tracer.kernel.root import HostRoot

    (engine,) = [e for e in build(rootless_host()).engines if e.daemon(Dockerd)]
    engine.daemon(Dockerd).reachable = False  # the API is not asked: the words are the engine's
    (c,) = engine.containers
    told = runtime_of(engine).explain(engine, c, {}, HostRoot())
    assert told == {
        "user": f"the rootless engine's user namespace (uid 0 is uid {UID} on the host)"
    }


def test_a_dockerd_not_under_rootlesskit_is_not_rootless() -> None:
    h = rootless_host()
    h.procs[100] = proc(100, 1, "sh", ["sh", "-c", "x"], 10.0, uid=UID)
    (engine,) = [e for e in build(h).engines if e.daemon(Dockerd)]
    assert engine.owner is None and "rootless_user" not in engine.facts
