"""Command-line parsers: Go flag forms, shims (v1, v2, transient), docker-proxy, paths."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracer.argv import (
    ProxyArgs,
    ShimArgs,
    flag_bool,
    flag_value,
    flag_values,
    normalize_path,
    number,
    parse_proxy,
    parse_shim,
    program,
    unix_path,
)

CID = "cf9da2c2513feda41e50697cf9dd3f569cd8682d21840e388c7e9e5f2ebc8789"
SYSTEM_SOCK = "/run/containerd/containerd.sock"


# -- Go flag forms ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["dockerd", "-H", "unix:///a.sock"],
        ["dockerd", "--H", "unix:///a.sock"],
        ["dockerd", "-H=unix:///a.sock"],
        ["dockerd", "--H=unix:///a.sock"],
        ["dockerd", "--host", "unix:///a.sock"],
        ["dockerd", "-host", "unix:///a.sock"],
        ["dockerd", "--host=unix:///a.sock"],
        ["dockerd", "-host=unix:///a.sock"],
    ],
)
def test_flag_values_accepts_every_go_form(argv: list[str]) -> None:
    assert flag_values(argv, "-H", "--host") == ["unix:///a.sock"]
    assert flag_value(argv, "-H", "--host") == "unix:///a.sock"


def test_flag_values_collects_repeated_flags_in_order_and_flag_value_keeps_the_last() -> None:
    argv = [
        "/usr/bin/dockerd",
        "-H",
        "fd://",
        "--debug",
        "--host=unix:///run/docker.sock",
        "--containerd",
        "/run/containerd/containerd.sock",
        "-H=tcp://127.0.0.1:2375",
    ]
    assert flag_values(argv, "-H", "--host") == [
        "fd://",
        "unix:///run/docker.sock",
        "tcp://127.0.0.1:2375",
    ]
    assert flag_value(argv, "-H", "--host") == "tcp://127.0.0.1:2375"
    assert flag_value(argv, "--containerd") == "/run/containerd/containerd.sock"


def test_flag_values_stops_at_double_dash() -> None:
    argv = ["prog", "-id", "first", "--", "-id", "second", "--id=third"]
    assert flag_values(argv, "-id") == ["first"]
    assert flag_value(argv, "-id") == "first"


def test_flag_values_does_not_read_argv0_and_ignores_a_trailing_flag_without_value() -> None:
    assert flag_values(["-id", "x"], "-id") == []
    assert flag_values(["prog", "-id"], "-id") == []
    assert flag_value(["prog", "-id"], "-id") is None
    assert flag_value([], "-id") is None


def test_flag_values_keeps_empty_and_dash_values() -> None:
    assert flag_values(["prog", "-id=", "-x", "-id", "-y"], "-id") == ["", "-y"]
    # a value equal to "=" splits only on the first "="
    assert flag_values(["prog", "--label=a=b"], "--label") == ["a=b"]


def test_flag_values_does_not_match_other_flags_with_a_common_prefix() -> None:
    argv = ["prog", "--containerd-namespace", "other", "--containerd-binary=/x"]
    assert flag_values(argv, "--containerd") == []
    assert flag_value(argv, "--containerd-namespace") == "other"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["dockerd"], None),
        (["dockerd", "--live-restore"], True),
        (["dockerd", "-live-restore"], True),
        (["dockerd", "--live-restore=true"], True),
        (["dockerd", "--live-restore=false"], False),
        (["dockerd", "--live-restore=FALSE"], False),
        (["dockerd", "--live-restore=0"], False),
        (["dockerd", "--live-restore=f"], False),
        (["dockerd", "--live-restore=1"], True),
        (["dockerd", "--live-restore", "--live-restore=false"], False),
        (["dockerd", "--live-restore=false", "--live-restore"], True),
        (["dockerd", "--", "--live-restore"], None),
        (["dockerd", "--live-restore-x"], None),
        (["--live-restore"], None),  # argv[0] is the program
        (["dockerd", "live-restore"], None),  # a positional, not a flag
    ],
)
def test_flag_bool(argv: list[str], expected: bool | None) -> None:
    assert flag_bool(argv, "--live-restore") is expected


def test_program_is_the_basename_of_argv0() -> None:
    assert program(["/usr/bin/containerd-shim-runc-v2", "-id", "x"]) == "containerd-shim-runc-v2"
    assert program(["dockerd"]) == "dockerd"
    assert program([]) == ""


# -- shims -----------------------------------------------------------------------------------


def test_parse_shim_runc_v2_long_lived() -> None:
    argv = [
        "/usr/bin/containerd-shim-runc-v2",
        "-namespace",
        "moby",
        "-id",
        CID,
        "-address",
        SYSTEM_SOCK,
    ]
    assert parse_shim(argv) == ShimArgs(
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


# -- docker-proxy ----------------------------------------------------------------------------

PROXY = [
    "/usr/sbin/docker-proxy",
    "-proto",
    "tcp",
    "-host-ip",
    "127.0.0.1",
    "-host-port",
    "18080",
    "-container-ip",
    "172.29.213.4",
    "-container-port",
    "80",
]


def test_parse_proxy_full_line() -> None:
    assert parse_proxy(PROXY) == ProxyArgs(
        proto="tcp",
        host_ip="127.0.0.1",
        host_port=18080,
        container_ip="172.29.213.4",
        container_port=80,
    )


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


# -- paths -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/var/run", "/run"),
        ("/var/run/", "/run"),
        ("/var/run/docker.sock", "/run/docker.sock"),
        ("/var/run/docker/containerd/containerd.sock", "/run/docker/containerd/containerd.sock"),
        ("/run/containerd/containerd.sock", "/run/containerd/containerd.sock"),
        ("/var//run/./docker.sock", "/run/docker.sock"),
        ("/var/runner/x.sock", "/var/runner/x.sock"),  # not /var/run itself
        ("/var/lib/docker", "/var/lib/docker"),
        ("/run/../var/run/x", "/run/x"),
    ],
)
def test_normalize_path(path: str, expected: str) -> None:
    assert normalize_path(path) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("unix:///run/docker.sock", "/run/docker.sock"),
        ("unix:///var/run/docker.sock", "/var/run/docker.sock"),
        ("/run/containerd/containerd.sock", "/run/containerd/containerd.sock"),
        ("unix://", None),
        ("tcp://127.0.0.1:2375", None),
        ("fd://", None),
        ("npipe:////./pipe/docker_engine", None),
        ("relative.sock", None),
        ("", None),
    ],
)
def test_unix_path(url: str, expected: str | None) -> None:
    assert unix_path(url) == expected


# -- totality: command lines are attacker-controlled --------------------------------------------

# Text as /proc gives it: anything, plus NULs, escapes, undecodable bytes (lone surrogates),
# flag-looking words and the words the parsers look for.
_WORDS = st.sampled_from(
    [
        "--",
        "-",
        "=",
        "-id",
        "-id=",
        "--id=x",
        "-workdir",
        "-workdir=/",
        "-address",
        "-namespace",
        "start",
        "delete",
        "containerd-shim",
        "/usr/bin/containerd-shim-runc-v2",
        "docker-proxy",
        "/usr/sbin/docker-proxy",
        "-host-port",
        "-container-port",
        "-host-port=" + "9" * 5000,
        "\x00",
        "\udcff",
        "\udc80\udcfe",
        "\x1b]0;pwned\x07",
        "\x1b[31m",
        "\u202e",
        "\x9b",
        "unix://",
    ]
)
_TEXT = st.one_of(
    st.text(),
    st.text(st.characters(min_codepoint=0, max_codepoint=0x9F)),
    st.text(st.sampled_from("-=/\x00\udcff\udc80\x1b\u202e0123456789")),
)
_ARGV = st.lists(st.one_of(_WORDS, _TEXT), max_size=12)


@settings(max_examples=300)
@given(argv=_ARGV, names=st.lists(st.one_of(_WORDS, _TEXT), max_size=3))
def test_flag_parsers_are_total(argv: list[str], names: list[str]) -> None:
    values = flag_values(argv, *names)
    assert isinstance(values, list) and all(isinstance(v, str) for v in values)
    assert flag_value(argv, *names) == (values[-1] if values else None)
    assert flag_bool(argv, *names) in (True, False, None)


@settings(max_examples=300)
@given(argv=_ARGV)
def test_shim_and_proxy_parsers_are_total(argv: list[str]) -> None:
    shim = parse_shim(argv)
    if shim is not None:
        assert program(argv).startswith("containerd-shim")
        assert shim.id and shim.version in (1, 2)
    proxy = parse_proxy(argv)
    if proxy is not None:
        assert program(argv) == "docker-proxy"
        assert isinstance(proxy.host_port, int) and isinstance(proxy.container_port, int)


@settings(max_examples=300)
@given(text=st.one_of(_WORDS, _TEXT))
def test_path_helpers_are_total(text: str) -> None:
    result = unix_path(text)
    assert result is None or isinstance(result, str)
    normalized = normalize_path(text)
    assert not normalized.startswith("/var/run/") and normalized != "/var/run"
    assert normalize_path(normalized) == normalized


@pytest.mark.parametrize(
    ("text", "value"),
    [("42", 42), ("0042", 42), ("", None), ("-1", None), ("4_2", None), (" 42", None),
     ("\u0664\u0662", None), ("9" * 11, None), ("9" * 5000, None)],
)  # fmt: skip
def test_number_takes_ascii_digits_only(text: str, value: int | None) -> None:
    assert number(text) == value


@given(st.text())
def test_number_is_total(text: str) -> None:
    value = number(text)
    assert value is None or 0 <= value < 10**10
