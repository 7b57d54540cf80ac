"""A real `dtrace-tree serve` process, and requests to it made with http.client as it is."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from tests.support import schemas
from tests.support.cli import CLI, ROOT
from tests.support.waiting import read_line


class Served:
    """A running `dtrace-tree serve`: its URL, base, token and process."""

    def __init__(self, proc: subprocess.Popen[str], url: str) -> None:
        self.proc = proc
        self.url = url
        self.base, _, self.token = url.partition("/?token=")
        self.stderr = ""

    def get(
        self,
        path: str,
        token: bool = True,
        headers: dict[str, str] | None = None,
        method: str = "GET",
        timeout: float = 30,
    ) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) of one request, made with http.client as it is (no
        redirect, no header added but Host)."""
        import http.client
        from urllib.parse import urlsplit

        where = urlsplit(self.base)
        conn = http.client.HTTPConnection(where.hostname, where.port, timeout=timeout)
        if token:
            path += ("&" if "?" in path else "?") + "token=" + self.token
        try:
            conn.request(method, path, headers=headers or {})
            answer = conn.getresponse()
            return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
        finally:
            conn.close()

    def json(self, path: str) -> Any:
        status, _, body = self.get(path)
        assert status == 200, (path, status, body[:300])
        return schemas.api_answer(path, json.loads(body))


def serve_process(*args: str, timeout: float = 60) -> Any:
    """`dtrace-tree serve --port 0 ARGS` as a whole process, until the with block ends (then
    Ctrl-C, as a user stops it). Yields a Served once the URL is printed."""
    import contextlib
    import signal

    @contextlib.contextmanager
    def run() -> Any:
        proc = subprocess.Popen(
            [*CLI, "serve", "--port", "0", *args], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, cwd=ROOT,
            env={**os.environ, "NO_COLOR": "1"},
        )  # fmt: skip
        assert proc.stdout is not None and proc.stderr is not None
        try:
            try:
                line = read_line(proc.stdout, timeout, "serve's URL").strip()
            except AssertionError as exc:
                proc.kill()
                raise AssertionError(f"{exc}; its stderr: {proc.stderr.read()!r}") from None
            if not line.startswith("http://"):
                proc.kill()
                raise AssertionError(f"serve printed no URL: {line!r} {proc.stderr.read()!r}")
            served = Served(proc, line)
            yield served
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            with contextlib.suppress(Exception):
                served.stderr = proc.stderr.read()

    return run()
