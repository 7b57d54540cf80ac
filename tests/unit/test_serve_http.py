"""`serve`'s HTTP side on a real local socket, with a made-up host: the token (403, nothing
else said), Host and Origin, read-only, the headers, the page's own files, the JSON, the
diagram with hostile text, the event stream and its bounds."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest

from tests.support import schemas
from tests.support.serve import Served
from tests.support.topologies import diagram_host, numbered
from tests.support.waiting import wait_for
from tracer.errors import TracerError
from tracer.kernel.root import HostRoot
from tracer.output.diagram import dot
from tracer.output.web import server as web
from tracer.output.web.documents import document
from tracer.output.web.feed import Feed
from tracer.output.web.guard import Guard
from tracer.output.web.hub import Client, Hub, Look
from tracer.output.web.state import state
from tracer.untrusted import for_terminal
from tracer.views.selection import select

EVIL = '<script>alert(1)</script>"&amp;\x1b[31m\u202e'


def made_up_host():
    topo = diagram_host()
    evil = numbered(7, EVIL, image=EVIL)
    evil.processes[0].cmdline = ["sh", "-c", EVIL]
    topo.engines[0].containers.append(evil)
    return topo


FEED = {"events": 0, "lost": 0, "live": True}


@contextlib.contextmanager
def serving(hub: Hub) -> Iterator[Served]:
    """The server of serve on a free local port, answering from hub, until the block ends."""
    httpd = web.bind("127.0.0.1", 0, hub, root=None)  # type: ignore[arg-type]
    port = httpd.server_address[1]
    token = "t0ken-" + "x" * 37
    guard = Guard.at(token, "127.0.0.1", port)
    thread = threading.Thread(target=web.serve, args=(httpd, guard), daemon=True)
    thread.start()
    try:
        yield Served(None, f"http://127.0.0.1:{port}/?token={token}")  # type: ignore[arg-type]
    finally:
        hub.close()
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def served():
    hub = Hub(max_clients=2, queue=4)
    topo = made_up_host()
    hub.show(Look(1, topo, state(topo, 1, 0.01, {}, FEED), document))
    with serving(hub) as s:
        s.hub = hub  # type: ignore[attr-defined]
        s.topo = topo  # type: ignore[attr-defined]
        yield s


PATHS = ["/", "/static/app.js", "/api/show", "/api/ns", "/api/state", "/api/diagram.svg",
         "/api/events", f"/api/containers/{'01' * 32}/ns", "/nothing-here", "/namespaces",
         "/static/namespaces.js", "/static/common.js", "/api/namespaces"]  # fmt: skip


@pytest.mark.parametrize("path", PATHS)
def test_without_the_token_every_path_is_the_same_403_and_nothing_else(served, path):
    for token in (False,):
        status, headers, body = served.get(path, token=token)
        assert (status, body) == (403, b"forbidden\n")
        assert headers["content-type"] == "text/plain"
    wrong = path + ("&" if "?" in path else "?") + "token=" + "x" * 43
    assert served.get(wrong, token=False)[::2] == (403, b"forbidden\n")
    assert served.get(path, token=False, method="POST")[::2] == (403, b"forbidden\n")


def test_with_the_token_the_page_and_its_files(served):
    status, headers, body = served.get("/")
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    html = body.decode()
    assert f'<meta name="dtrace-token" content="{served.token}">' in html
    scripts = re.findall(r"<script[^>]*>", html)
    assert scripts and all(" src=" in s for s in scripts)  # no inline script
    assert re.search(r"\son[a-z]+=", html) is None  # no inline handler
    assert "http" not in html.replace("http-equiv", "")  # no other origin: works offline
    for name, kind in (
        ("common.js", "text/javascript"),
        ("app.js", "text/javascript"),
        ("style.css", "text/css"),
    ):
        status, headers, body = served.get(f"/static/{name}")
        assert status == 200 and headers["content-type"].startswith(kind) and body
    for name in ("common.js", "app.js"):
        js = served.get(f"/static/{name}")[2].decode()
        assert "innerHTML" not in js and "eval(" not in js and "new Function" not in js
        assert "http://" not in js.replace('"http://www.w3.org/2000/svg"', "")


def test_every_namespace_has_a_page_of_its_own(served):
    status, headers, body = served.get("/namespaces")
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    html = body.decode()
    assert f'<meta name="dtrace-token" content="{served.token}">' in html
    assert re.findall(r"<script[^>]*>", html) == [
        f'<script src="/static/common.js?token={served.token}" defer>',
        f'<script src="/static/namespaces.js?token={served.token}" defer>',
    ]
    assert re.search(r"\son[a-z]+=", html) is None
    status, headers, js = served.get("/static/namespaces.js")
    assert status == 200 and b"innerHTML" not in js  # host text goes in as text only
    status, headers, body = served.get("/api/namespaces")
    assert status == 200 and headers["content-type"] == "application/json; charset=utf-8"
    doc = json.loads(body)
    assert doc["schema"] == "dtrace-tree/namespaces/1" and doc["namespaces"]
    assert served.get("/api/namespaces")[2] == body  # walked once per look
    assert b"/namespaces?token=" in served.get("/")[2]  # the main page links to it


def test_every_answer_carries_the_policy(served):
    for path in ("/", "/api/show", "/nothing-here"):
        headers = served.get(path)[1]
        csp = headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert "frame-ancestors 'none'" in csp
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["server"] == "dtrace-tree"  # no Python version


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
def test_read_only_get_only(served, method):
    status, headers, _ = served.get("/api/show", method=method)
    assert status == 405 and headers.get("allow") == "GET"


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "evil.example:8780"},
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"},
    ],
)
def test_dns_rebinding_and_other_sites_are_refused(served, headers):
    if "Host" in headers:
        headers = {"Host": headers["Host"].replace("8780", served.base.rsplit(":", 1)[1])}
    assert served.get("/api/show", headers=headers)[::2] == (403, b"forbidden\n")


def test_the_same_origin_is_served(served):
    port = served.base.rsplit(":", 1)[1]
    origin = {"Origin": f"http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin"}
    assert served.get("/api/show", headers=origin)[0] == 200
    assert served.get("/api/show", headers={"Host": f"localhost:{port}"})[0] == 200


def test_the_json_is_the_commands(served):
    shown = select(served.topo, [], include_stopped=False).to_json()
    assert served.json("/api/show") == json.loads(json.dumps(shown))
    everything = served.json("/api/show?all=1")["engines"]
    assert "old" in {c["name"] for e in everything for c in e["containers"]}
    assert "groups" in served.json("/api/ns")
    doc = served.json("/api/state")
    assert doc["version"] == 1 and len(doc["containers"]) == 6
    raw = served.get("/api/show")[2]
    assert b"<" not in raw  # written \u003c: no JSON can be read as markup
    names = {c["name"] for e in json.loads(raw)["engines"] for c in e["containers"]}
    assert EVIL in names  # the command's JSON: the text itself, escaped by JSON alone


def test_the_diagram_keeps_hostile_text_text(served):
    status, headers, body = served.get("/api/diagram.svg")
    assert status == 200 and headers["content-type"] == "image/svg+xml"
    svg = body.decode()
    assert "<script" not in svg and "\x1b" not in svg and "\u202e" not in svg
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in svg
    assert "<title>cluster_c_" + "07" * 32 + "</title>" in svg  # the page finds containers so
    ns = served.get("/api/diagram.svg?view=ns")[2].decode()
    assert ns != svg and "<script" not in ns


def test_a_container_s_details_say_what_the_command_would(served):
    status, _, body = served.get(f"/api/containers/{'ab' * 32}/ns")
    assert status == 404 and "no such container" in schemas.api_error(body)["error"]
    status, _, body = served.get("/api/containers/old/cgroup")
    assert status == 409 and schemas.api_error(body)["exit_code"] == 9
    assert served.get("/api/containers/web-0/bogus")[0] == 404


def test_a_malformed_request_is_told_nothing(served):
    host, port = served.base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        many = b"".join(b"X-%d: 1\r\n" % i for i in range(120))  # http.server's own error
        s.sendall(b"GET / HTTP/1.1\r\nHost: " + host.encode() + b"\r\n" + many + b"\r\n")
        answer = s.recv(65536)
    assert answer.startswith(b"HTTP/1.0 431") and answer.endswith(b"\r\n\r\n")  # no body
    assert b"Python" not in answer and b"headers" not in answer


def read_events(sock: socket.socket, until: bytes, timeout: float = 10) -> bytes:
    sock.settimeout(timeout)
    got = b""
    while until not in got:
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def stream(served) -> socket.socket:
    host, port = served.base.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(
        f"GET /api/events?token={served.token} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    )
    return s


def test_the_event_stream_sends_the_look_then_what_happens(served):
    with stream(served) as s:
        head = read_events(s, b"event: snapshot")
        assert b"text/event-stream" in head and b"retry: 2000" in head
        served.hub.publish("timeline", {"stories": [], "note": "<b>hi</b>"}, keep=True)
        got = read_events(s, b"event: timeline")
        assert b'"note": "\\u003cb>hi\\u003c/b>"' in got


def test_clients_are_bounded(served):
    first, second = stream(served), stream(served)
    try:
        read_events(first, b"event: snapshot")
        read_events(second, b"event: snapshot")
        status, _, body = served.get("/api/events")
        assert status == 503 and b"too many clients" in body
    finally:
        first.close()
        second.close()

    def all_gone() -> bool:
        served.hub.publish("status", {"problem": "ping"})  # noticed at the stream's next write
        return not served.hub.clients

    wait_for(all_gone, 30, "the server to let the closed streams go", every=0.1)


def test_a_slow_client_loses_events_not_the_server_its_memory():
    c = Client(limit=3)
    for i in range(10):
        c.offer(f"event: timeline\ndata: {i}\n\n".encode())
    assert len(c.queue) == 3 and c.dropped == 7
    out = c.take(0, None, lambda: False)
    assert out.startswith(b'event: dropped\ndata: {"count": 7}') and b"data: 2" in out
    assert (c.dropped, len(c.queue)) == (0, 0)


def test_a_look_s_documents_are_made_once_whoever_asks():
    calls = []

    def made(topo, what):
        calls.append(what)
        time.sleep(0.05)
        return what.encode()

    topo = diagram_host()
    look = Look(1, topo, {}, made)
    threads = [threading.Thread(target=look.get, args=("show",)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["show"] and look.get("show") == b"show"


def test_a_new_look_reaches_a_waiting_stream_without_a_queue():
    hub = Hub()
    client = hub.join()
    assert client is not None
    written: list[bytes] = []
    topo = diagram_host()
    thread = threading.Thread(target=hub.stream, args=(client, written.append))
    thread.start()
    for v in (1, 2, 3, 4):  # looks in quick succession: a stream may skip some, never queue
        hub.show(Look(v, topo, {"version": v}, document))
    wait_for(lambda: b'"version": 4' in b"".join(written), 20, "look 4 on the stream")
    hub.close()
    thread.join(timeout=20)
    versions = [int(m) for m in re.findall(rb'"version": (\d+)', b"".join(written))]
    assert versions == sorted(set(versions)) and versions[-1] == 4


# -- a diagram that cannot be drawn --------------------------------------------------------------


def svg_line(body: bytes) -> str:
    """The text of an SVG, which must parse."""
    root = ET.fromstring(body)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return "".join(root.itertext())


@pytest.mark.parametrize(
    "failure",
    [
        TracerError(f"dot failed to render svg: Segmentation fault {EVIL}"),
        dot.DotTooSlow("dot did not lay the diagram out within 10 s"),
    ],
    ids=["dot crashed", "dot out of time"],
)
def test_a_diagram_dot_cannot_draw_is_one_line_in_its_place_and_the_rest_is_served(
    monkeypatch, failure
):
    real = dot.render

    def fails(source: str, fmt: str, seconds: float = dot.DOT_SECONDS) -> bytes:
        raise failure

    monkeypatch.setattr(dot, "render", fails)
    said: list[str] = []
    hub = Hub()
    feed = Feed(HostRoot(), hub, look=lambda: None, say=said.append)  # type: ignore[arg-type,return-value]
    topo = made_up_host()
    client = hub.join()
    assert client is not None
    arch = f"the architecture diagram could not be drawn: {failure.line()}"
    with serving(hub) as s:
        hub.show(Look(1, topo, state(topo, 1, 0.01, {}, FEED), feed.document))
        status, headers, body = s.get("/api/diagram.svg")
        assert (status, headers["content-type"]) == (200, "image/svg+xml")
        assert svg_line(body) == for_terminal(arch)  # controls made visible
        assert b"<script" not in body and b"\x1b" not in body
        assert s.json("/api/state")["containers"]  # the state and the JSON, as ever
        assert s.json("/api/show")["engines"] and "groups" in s.json("/api/ns")
        assert "namespaces diagram could not" in svg_line(s.get("/api/diagram.svg?view=ns")[2])
        hub.show(Look(2, topo, state(topo, 2, 0.01, {}, FEED), feed.document))
        assert svg_line(s.get("/api/diagram.svg")[2]) == for_terminal(arch)  # said once
        monkeypatch.setattr(dot, "render", real)
        hub.show(Look(3, topo, state(topo, 3, 0.01, {}, FEED), feed.document))
        assert "web-0" in svg_line(s.get("/api/diagram.svg")[2])
    assert said[0] == arch and said[1].startswith("the namespaces diagram could not be drawn")
    assert said[2:] == [f"the diagram is drawn again (it was not: {arch})"]
    told = [json.loads(f.split(b"data: ", 1)[1]) for f in client.queue]
    assert [t["problem"] for t in told] == [for_terminal(x) for x in said]
