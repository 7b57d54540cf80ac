"""The Docker Engine API's read-only calls, over its unix socket, with the standard library.

Reading needs a handful of GET requests: the container list and info (every command, once per
engine), one inspect (`ns CONTAINER`), `_ping` and `top` (survive's wait). Written by hand
because both libraries cost more than the requests: the docker SDK (requests, urllib3) takes
~90-130 ms to import, and http.client ~25 ms more than this module (it imports the email
package to parse headers), measured with `python -X importtime` on the 2-core VM: for a
command that starts, asks twice and exits, that was the largest fixed cost. This client speaks
exactly the HTTP/1.1 that dockerd answers (Go's net/http): a status line, headers, a body
sized by Content-Length or chunked, `Connection: close`. It only ever sends GET. The docker
SDK stays for what the lab creates (tracer/runtimes/dockersdk.py).

Safe to call from several threads at once: each call has its own socket.
"""

from __future__ import annotations

import errno
import json
import re
import socket
from typing import Any

from tracer.errors import ApiError
from tracer.model.topology import ApiContainer

VERSION = "1.41"  # Docker 20.10, served by every daemon from 20.10 to today: no negotiation
TIMEOUT = 5.0  # seconds per socket operation: a daemon that is down must not stall a reader
MAX_BODY = 256 << 20  # an answer larger than this is not an engine's
_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")  # a container id or name


class DockerApi:
    """GET requests to one engine's API socket."""

    def __init__(self, socket_path: str, timeout: float = TIMEOUT) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    @property
    def endpoint(self) -> str:
        return f"unix://{self.socket_path}"

    # -- the calls ---------------------------------------------------------------------------

    def containers(self, all: bool = True) -> list[ApiContainer]:
        """GET /containers/json: every container (all=False: running ones)."""
        rows = self.get("/containers/json?all=1" if all else "/containers/json")
        if not isinstance(rows, list):
            raise ApiError(self.endpoint, "the container list is not a list")
        return [_container(row) for row in rows if isinstance(row, dict) and row.get("Id")]

    def info(self) -> dict[str, Any]:
        doc = self.get("/info")
        return doc if isinstance(doc, dict) else {}

    def inspect(self, ref: str) -> dict[str, Any] | None:
        """GET /containers/<ref>/json; None when the engine knows no such container."""
        if not _REF.fullmatch(ref):
            return None
        status, doc = self._json(f"/containers/{ref}/json")
        if status == 404:
            return None
        self._check(status, doc)
        return doc if isinstance(doc, dict) else None

    def ping(self) -> bool:
        try:
            status, _ = self._request("/_ping")
        except ApiError:
            return False
        return status == 200

    def reaches_containerd(self) -> bool:
        """Can dockerd talk to its containerd? (`top` of a running container goes through it.)

        True when no container runs: then there is nothing to ask containerd about.
        """
        try:
            # filters={"status":["running"]}, URL-encoded
            running = self.get(
                "/containers/json?limit=1&filters=%7B%22status%22%3A%5B%22running%22%5D%7D"
            )
            if isinstance(running, list) and running and isinstance(running[0], dict):
                self.get(f"/containers/{running[0].get('Id', '')}/top")
            return True
        except ApiError:
            return False

    # -- HTTP ----------------------------------------------------------------------------------

    def get(self, path: str) -> Any:
        """The JSON answer to GET path; ApiError unless the status is 2xx."""
        status, doc = self._json(path)
        self._check(status, doc)
        return doc

    def _check(self, status: int, doc: Any) -> None:
        if not 200 <= status < 300:
            message = doc.get("message") if isinstance(doc, dict) else None
            raise ApiError(self.endpoint, f"HTTP {status}: {str(message or '')[:200]}".strip())

    def _json(self, path: str) -> tuple[int, Any]:
        status, body = self._request(path)
        try:
            return status, json.loads(body) if body else None
        except ValueError as exc:
            raise ApiError(self.endpoint, "the answer is not JSON") from exc

    def _request(self, path: str) -> tuple[int, bytes]:
        request = (
            f"GET /v{VERSION}{path.replace(' ', '%20')} HTTP/1.1\r\n"
            "Host: docker\r\nUser-Agent: dtrace-tree\r\nConnection: close\r\n\r\n"
        )
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.socket_path)
            sock.sendall(request.encode("ascii", "replace"))
            chunks, size = [], 0
            while chunk := sock.recv(1 << 16):
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_BODY:
                    raise ApiError(self.endpoint, "the answer is too large")
        except OSError as exc:
            raise ApiError(self.endpoint, reason(exc)) from exc
        finally:
            sock.close()
        return parse_response(b"".join(chunks), self.endpoint)


def parse_response(data: bytes, endpoint: str = "") -> tuple[int, bytes]:
    """(status, body) of one whole HTTP/1.1 response; ApiError if it is not one."""
    head, sep, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if not sep or len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise ApiError(endpoint, "not an HTTP answer")
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(b":")
        headers[key.strip().lower()] = value.strip()
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        body = _dechunk(body, endpoint)
    elif b"content-length" in headers:
        length = headers[b"content-length"]
        if not length.isdigit() or len(body) < int(length):
            raise ApiError(endpoint, "the answer was cut short")
        body = body[: int(length)]
    return int(parts[1]), body


def _dechunk(data: bytes, endpoint: str) -> bytes:
    out: list[bytes] = []
    pos = 0
    while True:
        end = data.find(b"\r\n", pos)
        size_text = data[pos:end].split(b";", 1)[0].strip() if end >= 0 else b""
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ApiError(endpoint, "the answer was cut short") from None
        if size == 0:
            return b"".join(out)
        start = end + 2
        if start + size > len(data):
            raise ApiError(endpoint, "the answer was cut short")
        out.append(data[start : start + size])
        pos = start + size + 2


def reason(exc: OSError) -> str:
    """Why a socket failed, in the words people know from the docker CLI."""
    if isinstance(exc, TimeoutError | socket.timeout):
        return "no answer (timed out)"
    return {
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.ENOENT: "no such file or directory",
        errno.ECONNREFUSED: "connection refused",
    }.get(exc.errno or 0, exc.strerror or type(exc).__name__)


def _container(row: dict[str, Any]) -> ApiContainer:
    """One row of GET /containers/json."""
    names = row.get("Names") or []
    networks = (row.get("NetworkSettings") or {}).get("Networks") or {}
    ips = {str(n.get("IPAddress") or "") for n in networks.values() if isinstance(n, dict)}
    labels = row.get("Labels") or {}
    return ApiContainer(
        id=str(row["Id"]),
        name=str(names[0]).lstrip("/") if isinstance(names, list) and names else None,
        image=str(row["Image"]) if row.get("Image") is not None else None,
        state=str(row.get("State") or "unknown"),
        labels={str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
        ips=tuple(sorted(ips - {""})),
    )
