"""Go daemons' command lines (tracer/runtimes/flags.py): the flag forms, the program, socket
addresses; and the one spelling of a host path (tracer/kernel/root.py normalize).

The parsers of the runtimes' own command lines are tested with their runtime: shims in
test_containerd_args.py, docker-proxy in test_docker_args.py.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.argv import ARGV, TEXT, WORDS
from tracer.kernel.root import normalize
from tracer.runtimes.flags import (
    flag_bool,
    flag_value,
    flag_values,
    program,
    same_socket,
    unix_path,
)

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
def test_normalize_writes_a_host_path_in_one_spelling(path: str, expected: str) -> None:
    assert normalize(path) == expected


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


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("unix:///run/docker.sock", "/run/docker.sock"),
        ("unix:///var/run/docker.sock", "/run/docker.sock"),  # /var/run is /run
        ("unix:///run/docker.sock", "/var/run/docker.sock"),
        ("/run/containerd/containerd.sock", "/run/containerd/containerd.sock"),  # a bare path
        ("unix:///run//docker.sock", "/run/./docker.sock"),
    ],
)
def test_same_socket_compares_host_paths_in_one_spelling(url: str, path: str) -> None:
    assert same_socket(url, path)


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("unix:///run/docker.sock", "/run/other.sock"),
        ("unix:///run/docker.sock", None),  # the daemon's socket is unknown
        ("unix:///run/docker.sock", ""),
        ("tcp://127.0.0.1:2375", "/run/docker.sock"),  # not a unix socket at all
        ("fd://", "/run/docker.sock"),
        ("unix://", "/run/docker.sock"),
        ("relative.sock", "relative.sock"),
    ],
)
def test_same_socket_is_false_for_other_or_unknown_sockets(url: str, path: str | None) -> None:
    assert not same_socket(url, path)


# -- totality: command lines are attacker-controlled --------------------------------------------

# Text as /proc gives it: anything, plus NULs, escapes, undecodable bytes (lone surrogates),
# flag-looking words and the words the parsers look for. The shim and docker-proxy parsers'
# tests (test_containerd_args.py, test_docker_args.py) take their command lines from ARGV too.


@settings(max_examples=300)
@given(argv=ARGV, names=st.lists(st.one_of(WORDS, TEXT), max_size=3))
def test_flag_parsers_are_total(argv: list[str], names: list[str]) -> None:
    values = flag_values(argv, *names)
    assert isinstance(values, list) and all(isinstance(v, str) for v in values)
    assert flag_value(argv, *names) == (values[-1] if values else None)
    assert flag_bool(argv, *names) in (True, False, None)


@settings(max_examples=300)
@given(text=st.one_of(WORDS, TEXT))
def test_path_helpers_are_total(text: str) -> None:
    result = unix_path(text)
    assert result is None or isinstance(result, str)
    normalized = normalize(text)
    assert not normalized.startswith("/var/run/") and normalized != "/var/run"
    assert normalize(normalized) == normalized
    assert same_socket(text, text) in (True, False)
