"""`serve`: the host's container architecture as a live web page, for whoever has its URL."""

from __future__ import annotations

import os
import signal
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from tracer.cli.core import app, environment, examples, service

if TYPE_CHECKING:
    from tracer.app.environment import Environment

DEFAULT_PORT = 8780


@app.command(
    epilog=examples(
        ("dtrace-tree serve", "a live page of this host at http://127.0.0.1:8780/?token=..."),
        ("dtrace-tree serve --port 0 --open", "on any free port, opened in this machine's browser"),
    ),
)
def serve(
    ctx: typer.Context,
    bind: Annotated[
        str,
        typer.Option(
            "--bind",
            help="The address to listen on. Anything but loopback lets every host that reaches "
            "this one ask (the token still needed): a warning says so.",
        ),
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", help="The port to listen on; 0 for any free one.")
    ] = DEFAULT_PORT,
    open_: Annotated[
        bool, typer.Option("--open", help="Open the page in this machine's browser.")
    ] = False,
) -> None:
    """A live web page of every engine on this host: the architecture diagram, updated after
    each burst of process events (docker run, exec, a daemon's restart), a click on a
    container for its namespaces, storage and cgroups, and the lifecycle events as a
    timeline. Read-only; a random token in the URL; loopback only unless --bind (needs root).
    Ctrl-C stops it."""
    from tracer.errors import NotRootError, UsageError

    env, looking = environment(ctx), service(ctx)
    address = _address(bind)
    if not 0 <= port <= 65535:
        raise UsageError(f"--port {port}: give a port from 0 to 65535")
    if os.geteuid() != 0:
        raise NotRootError("serve (the kernel's process events, and every container's /proc)")
    import shutil

    if shutil.which("dot") is None:
        from tracer.errors import MissingBinaryError

        raise MissingBinaryError("dot", "graphviz")
    from tracer.output.web import guard as guards
    from tracer.output.web import server as web
    from tracer.output.web.feed import Feed
    from tracer.output.web.hub import Hub

    root = looking.root()
    hub = Hub()
    httpd = web.bind(address, port, hub, root)  # before the rest: a port in use fails at once
    feed = Feed(root, hub, looking.observation, say=env.note)
    try:
        feed.open()
    except BaseException:
        httpd.server_close()
        raise
    import socket

    port = httpd.server_address[1]
    token = guards.new_token()
    names = (socket.gethostname(), socket.getfqdn())
    guard = guards.Guard.at(token, address, port, names)
    url = f"http://{_url_host(address)}:{port}/?token={token}"
    if not guards.is_loopback(address):
        env.note(
            f"warning: listening on {address}, not on loopback only: whoever reaches this host "
            "on that port and has the URL sees every container's command line"
        )
    import threading

    def stop(signum: int, frame: FrameType | None) -> None:
        """SIGTERM ends `serve` as Ctrl-C does (the kernel subscription dropped, streams
        closed): serve_forever is told to return, from a thread (it waits for its loop).
        Installed before the URL is printed: whoever reads it may send SIGTERM at once."""
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        feed.start()
        env.echo(url)
        env.stdout.flush()
        env.note(f"serving the host's container architecture at {url} (Ctrl-C stops)")
        if open_:
            _open(env, url)
        web.serve(httpd, guard)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        hub.close()
        httpd.server_close()
        feed.stop()
    env.note("stopped")


def _address(bind: str) -> str:
    """--bind as an IP address (`localhost` is 127.0.0.1); UsageError otherwise."""
    import ipaddress

    from tracer.errors import UsageError

    text = bind.strip("[]")
    if text == "localhost":
        return "127.0.0.1"
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise UsageError(
            f"--bind {bind}: give an IP address of this host (127.0.0.1, ::1, 0.0.0.0, ...)"
        ) from None


def _url_host(address: str) -> str:
    from tracer.output.web.guard import is_wildcard

    if is_wildcard(address):
        return "127.0.0.1" if ":" not in address else "[::1]"
    return f"[{address}]" if ":" in address else address


def _open(env: Environment, url: str) -> None:
    """The page in a browser of this machine, when it has a graphical one: a console browser
    (what Python's webbrowser falls back to) would take over this terminal."""
    if not (env.environ.get("DISPLAY") or env.environ.get("WAYLAND_DISPLAY")):
        env.note("no graphical session here (no DISPLAY): open the URL above in a browser")
        return
    import webbrowser

    if not webbrowser.open(url):
        env.note("no browser found: open the URL above in one")
