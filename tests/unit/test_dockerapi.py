"""The standard-library Docker API client against a real unix socket that answers as dockerd
would (Go's net/http: chunked or sized bodies), and against sockets that fail."""

from __future__ import annotations

import errno
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracer.errors import ApiError
from tracer.runtimes.dockerapi import DockerApi, parse_response, reason

ROW = {
    "Id": "a" * 64,
    "Names": ["/web"],
    "Image": "nginx:alpine",
    "State": "running",
    "Labels": {"k": "v"},
    "NetworkSettings": {"Networks": {"bridge": {"IPAddress": "172.17.0.2"}, "x": {}}},
}


def chunked(body: bytes, size: int = 7) -> bytes:
    parts = [b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size])
             for i in range(0, len(body), size)]  # fmt: skip
    return b"".join(parts) + b"0\r\n\r\n"


def answer(status: int, doc: object, how: str = "chunked") -> bytes:
    body = json.dumps(doc).encode()
    head = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
    if how == "chunked":
        return (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + chunked(body)
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


@contextmanager
def engine(tmp_path: Path, replies: dict[str, bytes]) -> Iterator[tuple[str, list[bytes]]]:
    """A unix socket that answers each request line's path from replies, then closes."""
    path = str(tmp_path / "docker.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(8)
    seen: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                request = b""
                while b"\r\n\r\n" not in request:
                    request += conn.recv(4096)
                seen.append(request)
                target = request.split(b" ")[1].decode()
                conn.sendall(replies.get(target, answer(404, {"message": "page not found"})))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield path, seen
    finally:
        server.close()


def test_the_container_list_chunked_as_dockerd_sends_it(tmp_path):
    replies = {"/v1.41/containers/json?all=1": answer(200, [ROW, {"no": "id"}])}
    with engine(tmp_path, replies) as (path, seen):
        (row,) = DockerApi(path).containers()
    assert (row.id, row.name, row.image, row.state) == ("a" * 64, "web", "nginx:alpine", "running")
    assert row.labels == {"k": "v"} and row.ips == ("172.17.0.2",)
    assert seen[0].startswith(b"GET /v1.41/containers/json?all=1 HTTP/1.1\r\n")
    assert b"Connection: close" in seen[0]


def test_info_with_a_sized_body(tmp_path):
    replies = {"/v1.41/info": answer(200, {"LiveRestoreEnabled": True}, how="sized")}
    with engine(tmp_path, replies) as (path, _):
        assert DockerApi(path).info() == {"LiveRestoreEnabled": True}


def test_inspect_of_an_unknown_container_is_none(tmp_path):
    replies = {f"/v1.41/containers/{'b' * 64}/json": answer(200, {"HostConfig": {}})}
    with engine(tmp_path, replies) as (path, seen):
        api = DockerApi(path)
        assert api.inspect("b" * 64) == {"HostConfig": {}}
        assert api.inspect("nope") is None  # 404
        assert api.inspect("../../info") is None  # not an id or a name: never sent
    assert len(seen) == 2


def test_an_error_status_carries_the_engines_message(tmp_path):
    replies = {"/v1.41/info": answer(500, {"message": "boom"})}
    with engine(tmp_path, replies) as (path, _), pytest.raises(ApiError) as err:
        DockerApi(path).info()
    assert err.value.reason == "HTTP 500: boom"
    assert err.value.endpoint == f"unix://{path}"


def test_only_get_requests_are_ever_sent(tmp_path):
    with engine(tmp_path, {}) as (path, seen):
        api = DockerApi(path)
        api.ping()
        api.reaches_containerd()
        for call in (api.info, api.containers):
            with pytest.raises(ApiError):
                call()
    assert seen and all(r.startswith(b"GET /v1.41/") for r in seen)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"", "not an HTTP answer"),
        (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP answer"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n[]", "the answer was cut short"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n[]", "cut short"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "cut short"),
    ],
)
def test_what_is_not_a_whole_answer_is_an_api_error(raw, why):
    with pytest.raises(ApiError) as err:
        parse_response(raw, "unix:///x")
    assert why in err.value.reason


def test_a_body_that_is_not_json(tmp_path):
    replies = {"/v1.41/info": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n<a>"}
    with engine(tmp_path, replies) as (path, _), pytest.raises(ApiError) as err:
        DockerApi(path).info()
    assert err.value.reason == "the answer is not JSON"


@given(st.binary(max_size=300))
def test_the_response_parser_is_total(raw):
    try:
        status, body = parse_response(raw)
    except ApiError:
        return
    assert isinstance(status, int) and isinstance(body, bytes)


def test_sockets_that_fail_say_why_in_the_docker_clis_words(tmp_path):
    missing = DockerApi(str(tmp_path / "missing.sock"))
    with pytest.raises(ApiError) as err:
        missing.info()
    assert err.value.reason == "no such file or directory"
    assert missing.ping() is False
    dead = tmp_path / "dead.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(dead))  # bound, never listening: connect() is refused
    with pytest.raises(ApiError) as err:
        DockerApi(str(dead)).info()
    assert err.value.reason == "connection refused"
    assert reason(PermissionError(errno.EACCES, "Permission denied")) == "permission denied"
    assert reason(TimeoutError()) == "no answer (timed out)"


def test_a_daemon_that_never_answers_times_out(tmp_path):
    path = str(tmp_path / "slow.sock")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(path)
        server.listen(1)  # accepts into the backlog, never reads or writes
        with pytest.raises(ApiError) as err:
            DockerApi(path, timeout=0.2).info()
    assert err.value.reason == "no answer (timed out)"
