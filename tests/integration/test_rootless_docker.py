"""Rootless Docker (the lab's: dockerd-rootless.sh, rootlesskit, slirp4netns): the engine says
whose it is, shows rootlesskit and its network helper, and its containers' user namespace is
the engine's, with uid 0 inside being the user on the host."""

from __future__ import annotations

import json
import os
import pwd

import pytest

from tests.support.cli import run_cli
from tracer.ops import lab
from tracer.ops.stacks import rootless

PATHS = lab.LabPaths()
ENGINE = rootless.RootlessEngine(PATHS)


@pytest.fixture(scope="module")
def rootless_docker(lab_engine):
    """The lab's rootless engine, with a second container of the test's; the engine removed
    at the end unless it was up before."""
    was_up = any(x["name"] == "rootless" for x in lab.status(PATHS).extras)
    try:
        lab.up(paths=PATHS, more=["rootless"])
    except Exception as exc:  # noqa: BLE001 - in CI this must fail loudly, not skip
        pytest.fail(f"the lab's rootless engine did not start: {exc}")
    entry = pwd.getpwnam(ENGINE.user)
    host = f"unix://{ENGINE.docker_sock(entry.pw_uid)}"
    from tracer.runtimes.dockersdk import Api

    with Api(host, timeout=60) as api:
        api.run("dtrace-lab/busybox:latest", ["sleep", "2147483647"], "rl-two",
                environment={"PATH": "/bin"})  # fmt: skip
    try:
        yield host, entry
    finally:
        with Api(host, timeout=60) as api:
            api.remove("rl-two")
        if not was_up:
            lab.down(PATHS, only=["rootless"])


def test_a_rootless_engine_shows_its_owner_rootlesskit_and_network_helper(rootless_docker):
    host, entry = rootless_docker
    doc = json.loads(run_cli("show", "--json", "-H", host, check=True).stdout)
    (engine,) = doc["engines"]
    assert engine["owner"] == entry.pw_uid and engine["rootless_user"] == ENGINE.user
    roles = {d["role"]: d for d in engine["daemons"]}
    assert {"rootlesskit", "rootlesskit child", "network helper", "dockerd", "containerd"} <= set(
        roles
    )
    assert os.path.basename(roles["network helper"]["cmdline"][0]) == "slirp4netns"
    kit, child = roles["rootlesskit"]["pid"], roles["rootlesskit child"]["pid"]
    edges = {(x["from"], x["to"], x["kind"]) for x in engine["edges"]}
    assert (kit, child, "parent") in edges and (child, roles["dockerd"]["pid"], "parent") in edges
    userns = os.stat(f"/proc/{child}/ns/user").st_ino
    assert engine["rootless_userns"] == userns
    assert engine["rootless_uid_map"].startswith(f"0->{entry.pw_uid} (1), 1->")
    assert all(c["namespaces"]["user"] == userns for c in engine["containers"] if c["init_pid"])
    text = run_cli("show", "-H", host, check=True).stdout
    assert text.splitlines()[0].startswith(f"rootlesskit {kit}  uid {entry.pw_uid} ({ENGINE.user}")


def test_ns_says_the_user_namespace_is_the_rootless_engine_s(rootless_docker):
    host, entry = rootless_docker
    doc = json.loads(run_cli("ns", ENGINE.container, "-H", host, "--json", check=True).stdout)
    (user,) = [n for n in doc["namespaces"] if n["type"] == "user"]
    assert user["why"] == (
        f"the rootless engine's user namespace (uid 0 is uid {entry.pw_uid} on the host)"
    )
    assert "rl-two" in user["shared_with"]  # shared indeed, but that is not why
