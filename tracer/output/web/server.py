"""The HTTP side of `serve`: the standard library's ThreadingHTTPServer, read-only.

Why the standard library: the server answers a handful of GETs and a few event streams to
one person's browser, on loopback by default. `http.server` is maintained with Python, needs
nothing installed, and its threads fit the work (a snapshot is taken by one feed thread; a
stream waits on a condition). What it lacks is added here: every request is checked (guard.py)
before anything else is read or said, a refusal is one short 403 whatever failed, only GET is
served, connections and streams are bounded, slow or silent peers time out, and every answer
carries a Content-Security-Policy that allows no inline script and no other origin.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tracer.errors import ExitCode, TracerError, UsageError
from tracer.kernel.root import HostRoot
from tracer.output.web.documents import DETAILS, detail, diagram_key, every_namespace
from tracer.output.web.guard import Guard
from tracer.output.web.hub import Hub, encode

MAX_CONNECTIONS = 64  # at once; beyond, a connection is closed unanswered
TIMEOUT = 10.0  # s: a peer that sends or takes nothing this long is dropped
MAX_ENGINES = 8  # engines named in one diagram request
STATIC = {
    "common.js": "text/javascript",
    "app.js": "text/javascript",
    "namespaces.js": "text/javascript",
    "style.css": "text/css",
}
# The pages, by path: (title, script, body). Each is the one shell (static/page.html: the
# token, the stylesheet, common.js, then its own script) around its body.
PAGES = {
    "": ("live architecture", "app.js", "architecture.html"),
    "namespaces": ("every namespace", "namespaces.js", "namespaces.html"),
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}
# The answers to what a command would say with an exit code: the same line, as JSON.
HTTP_OF = {
    ExitCode.USAGE: HTTPStatus.NOT_FOUND,
    ExitCode.NOT_RUNNING: HTTPStatus.CONFLICT,
    ExitCode.PERMISSION: HTTPStatus.INTERNAL_SERVER_ERROR,
}


def page(name: str) -> bytes:
    """A file of the page, shipped in the package (static/)."""
    return resources.files("tracer.output.web").joinpath("static", name).read_bytes()


def html(path: str, token: str) -> bytes:
    """The page at path (a key of PAGES), its links and scripts carrying the token."""
    title, script, body = PAGES[path]
    shell = page("page.html").replace(b"__TITLE__", title.encode())
    shell = shell.replace(b"__SCRIPT__", script.encode()).replace(b"__BODY__", page(body))
    return shell.replace(b"__TOKEN__", token.encode())


class Server(ThreadingHTTPServer):
    """At most MAX_CONNECTIONS threads; daemon threads (a stream never holds up the exit)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], hub: Hub, root: HostRoot) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.hub = hub
        self.root = root
        self.guard: Guard | None = None  # set once the port is known
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # full: closed, unanswered
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a peer that went away mid-answer: nothing to say, nothing to log


def bind(address: str, port: int, hub: Hub, root: HostRoot) -> Server:
    """The listening server; UsageError (one line) when the address cannot be had."""
    try:
        return Server((address, port), hub, root)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(
                f"port {port} of {address} is in use",
                "choose another with --port N, or --port 0 for any free one",
            ) from exc
        if exc.errno == errno.EADDRNOTAVAIL:
            raise UsageError(f"--bind {address}: not an address of this host") from exc
        raise UsageError(f"cannot listen on {address} port {port}: {exc.strerror or exc}") from exc


class Handler(BaseHTTPRequestHandler):
    server: Server
    server_version = "dtrace-tree"
    sys_version = ""
    timeout = TIMEOUT

    def version_string(self) -> str:
        return self.server_version  # no Python version: nothing said that is not needed

    def log_message(self, format: str, *args: Any) -> None:  # `format`: the base's name
        pass  # the token is in every request line: never written anywhere

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (a malformed request, a line too long): short, plain."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self._answer(code, b"", "text/plain")

    def parse_request(self) -> bool:
        """Every request is checked here, before any handler runs: the token, the Host and
        Origin headers; then only GET is served."""
        if not super().parse_request():
            return False
        guard = self.server.guard
        if guard is None or not guard.allows(self.path, self.headers.items()):
            self.close_connection = True
            self._answer(HTTPStatus.FORBIDDEN, b"forbidden\n", "text/plain")
            return False
        if self.command != "GET":
            self.close_connection = True
            self._answer(HTTPStatus.METHOD_NOT_ALLOWED, b"read-only: GET only\n", "text/plain",
                         {"Allow": "GET"})  # fmt: skip
            return False
        return True

    def _answer(
        self, code: int, body: bytes, kind: str, extra: dict[str, str] | None = None
    ) -> None:
        self.send_response(code)
        for key, value in {**HEADERS, **(extra or {})}.items():
            self.send_header(key, value)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, code: int, body: bytes) -> None:
        self._answer(code, body, "application/json; charset=utf-8")

    def do_GET(self) -> None:  # the base's name
        self.close_connection = True
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.split("/") if p]
        hub = self.server.hub
        look = hub.look
        try:
            if "/".join(parts) in PAGES:  # the architecture; every namespace of the host
                body = html("/".join(parts), self.server.guard.token if self.server.guard else "")
                self._answer(HTTPStatus.OK, body, "text/html; charset=utf-8")
            elif parts[0] == "static" and len(parts) == 2 and parts[1] in STATIC:
                self._answer(HTTPStatus.OK, page(parts[1]), STATIC[parts[1]] + "; charset=utf-8")
            elif parts == ["api", "events"]:
                self._events()
            elif look is None:
                self._json(HTTPStatus.SERVICE_UNAVAILABLE, encode({"error": "no look yet"}))
            elif parts == ["api", "show"]:
                all_ = parse_qs(url.query).get("all") == ["1"]
                self._json(HTTPStatus.OK, look.get("show-all" if all_ else "show"))
            elif parts == ["api", "ns"]:
                self._json(HTTPStatus.OK, look.get("ns"))
            elif parts == ["api", "diagram.svg"]:
                query = parse_qs(url.query)
                view = "namespaces" if query.get("view") == ["ns"] else "architecture"
                key = diagram_key(view, query.get("engine", [])[:MAX_ENGINES])
                hub.asked(key)
                self._answer(HTTPStatus.OK, look.get(key), "image/svg+xml")
            elif parts == ["api", "namespaces"]:
                self._namespaces()
            elif parts == ["api", "state"]:
                self._json(HTTPStatus.OK, encode(look.state))
            elif len(parts) == 4 and parts[:2] == ["api", "containers"] and parts[3] in DETAILS:
                self._detail(look.version, parts[2], parts[3])
            else:
                self._json(HTTPStatus.NOT_FOUND, encode({"error": "no such page"}))
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            return  # the peer went away

    def _detail(self, version: int, ref: str, what: str) -> None:
        look = self.server.hub.look
        assert look is not None
        root = self.server.root
        try:
            data = self.server.hub.detail(
                version, ref, what, lambda: detail(look.topology, ref, what, root)
            )
        except TracerError as exc:
            status = HTTP_OF.get(exc.exit_code, HTTPStatus.INTERNAL_SERVER_ERROR)
            self._json(status, encode({"error": exc.line(), "exit_code": int(exc.exit_code)}))
            return
        self._json(HTTPStatus.OK, data)

    def _namespaces(self) -> None:
        """`ns --all --json` of the current look: walked once per look, on the first ask."""
        look = self.server.hub.look
        assert look is not None
        root = self.server.root
        data = self.server.hub.detail(
            look.version, "", "namespaces", lambda: every_namespace(look, root)
        )
        self._json(HTTPStatus.OK, data)

    def _events(self) -> None:
        hub = self.server.hub
        client = hub.join()
        if client is None:
            self._json(HTTPStatus.SERVICE_UNAVAILABLE, encode({"error": "too many clients"}))
            return
        try:
            self.send_response(HTTPStatus.OK)
            for key, value in HEADERS.items():
                self.send_header(key, value)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Connection", "close")
            self.end_headers()

            def write(data: bytes) -> None:
                self.wfile.write(data)
                self.wfile.flush()

            hub.stream(client, write)
        finally:
            hub.leave(client)


def serve(server: Server, guard: Guard) -> None:
    """Answer until shutdown() is called (from another thread)."""
    server.guard = guard
    server.serve_forever(poll_interval=0.5)
