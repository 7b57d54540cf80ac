"""`serve` on a host where two dockerds share one containerd, both in namespace moby (the lab's
and its second one, `lab up --second-dockerd`): issue 22 found no URL within 60 s there. The
URL is printed, and the page's state lists each container once, under the dockerd that made
it."""

from __future__ import annotations

from tests.support.serve import serve_process
from tracer.ops import lab
from tracer.ops.labconfig import LABEL
from tracer.runtimes.dockerapi import DockerApi

PATHS = lab.LabPaths()


def made_by(sock: str) -> set[str]:
    """The running containers the lab made in the engine at sock (other tests make and remove
    theirs meanwhile; the host may run hundreds the tests did not make)."""
    return {c.id for c in DockerApi(sock).containers(all=False) if LABEL in c.labels}


def test_serve_prints_its_url_and_lists_each_container_once_under_the_dockerd_that_made_it(
    second_dockerd,
):
    socks = {"lab": str(PATHS.docker_sock), "second": second_dockerd}
    before = {name: made_by(sock) for name, sock in socks.items()}
    assert all(before.values()), before
    with serve_process(timeout=60) as served:  # the URL, or it fails
        state = served.json("/api/state")
        status, headers, body = served.get("/api/diagram.svg", timeout=120)
    assert status == 200 and headers["content-type"] == "image/svg+xml"
    assert b"<svg" in body and b"could not be drawn" not in body
    listed = [c["id"] for c in state["containers"]]
    assert len(listed) == len(set(listed)), "a container is listed twice"
    engine = {c["id"]: c["engine"] for c in state["containers"]}  # None: under no engine
    for name, sock in socks.items():
        # those that ran before and after the look (another test may remove one meanwhile)
        mine = before[name] & made_by(sock)
        assert mine, f"{name} runs no container of the lab's"
        for cid in mine:
            assert cid in engine, f"{name}'s container {cid[:12]} is not on the page"
            assert engine[cid] is not None, f"{name}'s container {cid[:12]} is under no engine"
            under = state["engines"][engine[cid]]
            dockerds = [d["address"] for d in under["daemons"] if d["role"] == "dockerd"]
            assert dockerds == [sock], f"{name}'s container {cid[:12]} is under {under['title']}"
