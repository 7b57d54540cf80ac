"""Three dockerds on the lab's containerd, all in namespace moby (the lab's own, a second one,
and one started by socket activation): each container appears once, under the dockerd that
made it, with the evidence as an edge, and stays so while either dockerd is down."""

from __future__ import annotations

import json

import pytest

from tests.support.cli import run_cli
from tests.support.lab import daemon_of
from tracer.ops import daemon, lab
from tracer.ops.labconfig import LABEL
from tracer.ops.stacks import extras
from tracer.runtimes.dockerapi import DockerApi

PATHS = lab.LabPaths()
NAMES = ["second", "activated"]


@pytest.fixture(scope="module")
def dockerds(lab_engine):
    """The lab's dockerd and its two extra ones; the extras removed at the end unless they
    were up before."""
    had = {x["name"] for x in lab.status(PATHS).extras}
    try:
        lab.up(paths=PATHS, more=NAMES)
    except Exception as exc:  # noqa: BLE001 - in CI this must fail loudly, not skip
        pytest.fail(f"the lab's extra dockerds did not start: {exc}")
    socks = {"lab": str(PATHS.docker_sock)} | {
        e.extra.name: str(e.docker_sock) for e in extras.of(PATHS, NAMES)
    }
    yield socks
    gone = [n for n in NAMES if n not in had]
    if gone:
        lab.down(PATHS, only=gone)


def running(sock: str) -> set[str]:
    """The running containers the lab made there (other tests make and remove theirs in the
    lab's engine meanwhile)."""
    return {c.id for c in DockerApi(sock).containers(all=False) if LABEL in c.labels}


def engines_by_socket(doc: dict) -> dict[str, dict]:
    out = {}
    for e in doc["engines"]:
        d = daemon_of(e, "dockerd")
        if d and d.get("api_socket"):
            out[d["api_socket"]] = e
    return out


def shown(engine: dict) -> set[str]:
    return {c["id"] for c in engine["containers"] if c.get("state") == "running"}


def everywhere(doc: dict) -> list[str]:
    return [c["id"] for e in doc["engines"] for c in e["containers"]]


def show() -> dict:
    return json.loads(run_cli("show", "--json", "-H", "all", check=True).stdout)


def test_each_container_appears_once_under_the_dockerd_that_made_it(dockerds):
    doc = show()
    by_sock = engines_by_socket(doc)
    every = everywhere(doc)
    assert len(every) == len(set(every)), "a container is shown twice"
    for name, sock in dockerds.items():
        truth = running(sock)
        assert truth, f"{name} runs no container"
        engine = by_sock[sock]
        assert shown(engine) >= truth, name
        assert all(every.count(cid) == 1 for cid in truth), name
        # the evidence: an edge from that dockerd to each shim, naming its runtime root
        dockerd = daemon_of(engine, "dockerd")
        exec_root = (
            str(PATHS.exec_root)
            if name == "lab"
            else str(extras.ExtraDockerd(PATHS, extras.EXTRAS[name]).exec_root)
        )
        shims = {c["shim_pid"] for c in engine["containers"] if c.get("shim_pid")}
        edges = {x["to"]: x["via"] for x in engine["edges"] if x["kind"] == "runtime-root"}
        assert set(edges) == shims and all(x["from"] == dockerd["pid"] for x in engine["edges"]
                                           if x["kind"] == "runtime-root")  # fmt: skip
        assert all(via.startswith(f"{exec_root}/runtime-runc") for via in edges.values())


@pytest.mark.parametrize("down", ["second", "lab"])
def test_while_a_dockerd_is_down_its_containers_are_no_other_one_s(dockerds, down):
    truth = {name: running(sock) for name, sock in dockerds.items()}
    sock = dockerds[down]
    pid = lab.dockerd_pid(PATHS) if down == "lab" else extras.pid(extras.of(PATHS, [down])[0])
    ident = daemon.identify(pid)
    assert ident is not None
    daemon.stop(ident)  # live-restore: its containers keep running
    try:
        doc = show()
        by_sock = engines_by_socket(doc)
        every = everywhere(doc)
        assert sock not in by_sock
        for name, up_sock in dockerds.items():
            if name != down:
                assert shown(by_sock[up_sock]) >= truth[name], name
                assert not shown(by_sock[up_sock]) & truth[down], name
        # the stopped one's containers: once each, in containerd's namespace moby
        (rest,) = [e for e in doc["engines"] if truth[down] & {c["id"] for c in e["containers"]}]
        assert rest["runtime"] == "containerd" and rest["namespace"] == "moby"
        assert {c["id"] for c in rest["containers"]} >= truth[down]
        assert all(every.count(cid) == 1 for cid in truth[down])
        assert any("the dockerd that made them is down" in n for n in rest["notes"])
    finally:
        lab.up(paths=PATHS, more=NAMES)
    assert running(sock) == truth[down]


def test_ns_and_cgroup_of_a_second_dockerd_s_container_answer(dockerds):
    host = f"unix://{dockerds['second']}"
    name = extras.ExtraDockerd(PATHS, extras.EXTRAS["second"]).container
    for command in ("ns", "cgroup"):
        out = run_cli(command, name, "-H", host, "--json")
        assert out.returncode == 0, out.stderr
        assert name in out.stdout


def test_survive_refuses_the_socket_activated_dockerd_and_leaves_it_untouched(dockerds):
    from tracer.kernel.root import HostRoot

    e = extras.of(PATHS, ["activated"])[0]
    before = daemon.identify(extras.pid(e))
    assert before is not None
    ids = running(dockerds["activated"])
    out = run_cli("survive", "-H", f"unix://{dockerds['activated']}", "--yes")
    assert out.returncode == 6
    (line,) = out.stderr.strip().splitlines()
    assert "was started by a service manager (-H fd://; LISTEN_FDS=1 and LISTEN_PID=" in line
    assert "nothing was touched" in line
    assert f"systemd-socket-activate -l {e.docker_sock} " in line
    assert before.alive(HostRoot()) and daemon.identify(extras.pid(e)) == before
    assert running(dockerds["activated"]) == ids


def test_survive_of_the_second_dockerd_lists_its_containers_alone(dockerds):
    mine = running(dockerds["second"])
    out = run_cli("survive", "-H", f"unix://{dockerds['second']}", "--yes", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["verdict"] == "survived"
    listed = {c["id"] for c in report["containers"]}
    assert listed >= mine  # its own (and no other dockerd's)
    assert not listed & (running(dockerds["lab"]) | running(dockerds["activated"]))
