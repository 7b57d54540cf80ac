"""docker-proxy's command line (tracer/runtimes/flags.py parse_proxy): the port mapping."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from tests.support.argv import ARGV
from tests.support.hosts import PROXY_CMD
from tracer.runtimes.flags import ProxyArgs, parse_proxy, program

PROXY = list(PROXY_CMD)


def test_parse_proxy_full_line() -> None:
    assert parse_proxy(PROXY) == ProxyArgs(
        proto="tcp",
        host_ip="127.0.0.1",
        host_port=18080,
        container_ip="172.29.213.4",
        container_port=80,
    )
    assert parse_proxy(PROXY_CMD) == parse_proxy(PROXY)  # a tuple, as Proc.cmdline holds it


def test_parse_proxy_udp_ipv6_and_equals_forms() -> None:
    argv = [
        "docker-proxy",
        "-proto=udp",
        "--host-ip=::",
        "--host-port=5353",
        "-container-ip",
        "fd00::2",
        "-container-port=53",
        "-use-listen-fd",
    ]
    assert parse_proxy(argv) == ProxyArgs("udp", "::", 5353, "fd00::2", 53)


def test_parse_proxy_defaults_proto_to_tcp() -> None:
    argv = [a for a in PROXY if a not in ("-proto", "tcp")]
    parsed = parse_proxy(argv)
    assert parsed is not None and parsed.proto == "tcp" and parsed.host_port == 18080


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["docker-proxy"],
        ["/usr/bin/socat", *PROXY[1:]],
        ["/usr/sbin/docker-proxy-x", *PROXY[1:]],
        [a for a in PROXY if a not in ("-host-port", "18080")],  # no host port
        [a for a in PROXY if a not in ("-container-port", "80")],  # no container port
        [*PROXY[:6], "http", *PROXY[7:]],  # host port not a number
        [*PROXY[:10], "80/tcp"],  # container port not a number
        [*PROXY[:6], "1e3", *PROXY[7:]],
        [*PROXY[:6], "", *PROXY[7:]],
        [PROXY[0], "--", *PROXY[1:]],  # everything after -- is positional
    ],
)
def test_parse_proxy_rejects_incomplete_or_garbage_lines(argv: list[str]) -> None:
    assert parse_proxy(argv) is None


def test_parse_proxy_rejects_a_line_without_container_ip() -> None:
    argv = [a for a in PROXY if a not in ("-container-ip", "172.29.213.4")]
    assert parse_proxy(argv) is None


@pytest.mark.parametrize("port", ["-1", "99999", "\u0668\u0660", " 8_0 "])
def test_parse_proxy_rejects_impossible_ports(port: str) -> None:
    assert parse_proxy([*PROXY[:6], port, *PROXY[7:]]) is None


# -- totality: command lines are attacker-controlled --------------------------------------------


@settings(max_examples=300)
@given(argv=ARGV)
def test_proxy_parser_is_total(argv: list[str]) -> None:
    proxy = parse_proxy(argv)
    if proxy is not None:
        assert program(argv) == "docker-proxy"
        assert isinstance(proxy.host_port, int) and isinstance(proxy.container_port, int)
