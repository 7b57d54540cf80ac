"""containerd shims' command lines (tracer/runtimes/containerd.py parse_shim): v1, v2, transient."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from tests.support.argv import ARGV
from tests.support.hosts import shim_cmd
from tracer.runtimes.containerd import SYSTEM_SOCK, ShimArgs, parse_shim
from tracer.runtimes.flags import program

CID = "cf9da2c2513feda41e50697cf9dd3f569cd8682d21840e388c7e9e5f2ebc8789"


def test_parse_shim_runc_v2_long_lived() -> None:
    assert parse_shim(shim_cmd(CID)) == ShimArgs(
        namespace="moby", id=CID, address=SYSTEM_SOCK, version=2, transient=False
    )


def test_parse_shim_runc_v2_transient_start() -> None:
    argv = [
        "/usr/bin/containerd-shim-runc-v2",
        "-namespace",
        "moby",
        "-address",
        SYSTEM_SOCK,
        "-publish-binary",
        "/usr/bin/containerd",
        "-id",
        CID,
        "start",
    ]
    assert parse_shim(argv) == ShimArgs(
        namespace="moby", id=CID, address=SYSTEM_SOCK, version=2, transient=True
    )


def test_parse_shim_runc_v2_transient_delete() -> None:
    argv = ["containerd-shim-runc-v2", "-namespace", "k8s.io", "-id", "abc", "delete"]
    parsed = parse_shim(argv)
    assert parsed is not None
    assert (parsed.id, parsed.namespace, parsed.address, parsed.transient) == (
        "abc",
        "k8s.io",
        None,
        True,
    )


def test_parse_shim_v1_takes_id_from_workdir() -> None:
    workdir = f"/var/lib/containerd/io.containerd.runtime.v1.linux/moby/{CID}"
    argv = [
        "containerd-shim",
        "-namespace",
        "moby",
        "-workdir",
        workdir,
        "-address",
        "/var/run/docker/containerd/containerd.sock",
        "-containerd-binary",
        "/usr/bin/containerd",
        "-runtime-root",
        "/var/run/docker/runtime-runc",
    ]
    assert parse_shim(argv) == ShimArgs(
        namespace="moby",
        id=CID,
        address="/var/run/docker/containerd/containerd.sock",
        version=1,
        transient=False,
    )
    # a trailing slash on the workdir does not empty the id
    argv[4] = workdir + "/"
    parsed = parse_shim(argv)
    assert parsed is not None and parsed.id == CID


def test_parse_shim_prefers_id_over_workdir() -> None:
    argv = ["containerd-shim-runc-v2", "-workdir", "/x/other", "-id", "mine"]
    parsed = parse_shim(argv)
    assert parsed is not None and parsed.id == "mine"


@pytest.mark.parametrize(
    "argv",
    [
        [],
        [""],
        ["/usr/bin/containerd", "--config", "/etc/containerd/config.toml"],
        ["/usr/sbin/dockerd", "-id", CID],
        ["runc", "--root", "/run/docker/runtime-runc/moby", "start", CID],
        ["/bin/sh", "-c", f"containerd-shim-runc-v2 -id {CID}"],
        ["my-containerd-shim", "-id", CID],
        ["containerd-shim-runc-v2", "-namespace", "moby"],  # no id at all
        ["containerd-shim-runc-v2", "-id", ""],  # an empty id
        ["containerd-shim", "-workdir", "/"],  # the workdir's basename is empty
        ["[containerd-shim]"],  # what a zombie shim shows
    ],
)
def test_parse_shim_rejects_non_shims(argv: list[str]) -> None:
    assert parse_shim(argv) is None


# -- totality: command lines are attacker-controlled --------------------------------------------


@settings(max_examples=300)
@given(argv=ARGV)
def test_shim_parser_is_total(argv: list[str]) -> None:
    shim = parse_shim(argv)
    if shim is not None:
        assert program(argv).startswith("containerd-shim")
        assert shim.id and shim.version in (1, 2)
