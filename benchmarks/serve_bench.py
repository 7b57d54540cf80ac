"""Benchmark of `serve`: how soon after `docker run` returns the page's event stream carries a
look with the new container, beside `docker events` (the push tool people use) and
`watch -n 1 docker ps` (the poll people use), at N containers; and serve's CPU while nothing
changes.

Run as root from the repository: `.venv/bin/python benchmarks/serve_bench.py` (or
`./run.sh bench serve`). Writes benchmarks/SERVE_RESULTS.md. Not a test: absolute times depend
on the machine (the tests check that the look comes, not how soon).

Each `docker run -d` is watched by all three at once, so every round is the same moment of a
shared machine for each of them. The stream is read as the page's EventSource reads it; the
page's own fetch and drawing of the SVG come on top (measured in Chromium for issue 18: 0.17 to
0.38 s at 300 containers).
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import docker  # noqa: TID251 - the benchmark drives the lab directly

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench import machine, options, scale  # noqa: E402

from tracer.ops import lab  # noqa: E402

PY = sys.executable
PROBE = "dtrace-serve-bench"


class Stream:
    """serve's /api/events, frame by frame, each with the time it was read."""

    def __init__(self, url: str) -> None:
        host_port, _, query = url.removeprefix("http://").partition("/?")
        host, port = host_port.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=60)
        self.sock.sendall(f"GET /api/events?{query} HTTP/1.1\r\nHost: {host_port}\r\n\r\n".encode())
        self.buffer = b""

    def frames(self) -> list[tuple[float, str, dict]]:
        """What has arrived (non-blocking)."""
        out = []
        self.sock.setblocking(False)
        try:
            while chunk := self.sock.recv(1 << 20):
                self.buffer += chunk
        except BlockingIOError:
            pass
        finally:
            self.sock.setblocking(True)
        now = time.time()
        while b"\n\n" in self.buffer:
            frame, self.buffer = self.buffer.split(b"\n\n", 1)
            fields = dict(
                line.split(": ", 1)
                for line in frame.decode(errors="replace").splitlines()
                if ": " in line and not line.startswith(":")
            )
            if "event" in fields and "data" in fields:
                out.append((now, fields["event"], json.loads(fields["data"])))
        return out


def one_run(docker_cli: list[str], stream: Stream, events: subprocess.Popen[bytes]) -> dict:
    """docker run -d once; when each watcher saw the new container, after run returned."""
    subprocess.run([*docker_cli, "rm", "-f", PROBE], capture_output=True)
    stream.frames()  # drop what came before
    run = subprocess.run(
        [*docker_cli, "run", "-d", "--name", PROBE, "-e", "PATH=/bin", lab.IMAGE, "sleep", "600"],
        capture_output=True,
        text=True,
        check=True,
    )
    returned, cid = time.time(), run.stdout.strip()
    seen: dict[str, float] = {}
    sel = selectors.DefaultSelector()
    sel.register(stream.sock, selectors.EVENT_READ, "serve")
    assert events.stdout is not None
    fd, pending = events.stdout.fileno(), b""
    sel.register(fd, selectors.EVENT_READ, "events")
    deadline = time.monotonic() + 30
    while len(seen) < 2 and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.5):
            if key.data == "serve":
                for at, kind, doc in stream.frames():
                    if kind == "snapshot" and any(c["id"] == cid for c in doc["containers"]):
                        seen.setdefault("serve", at - returned)
            else:
                pending += os.read(fd, 65536)
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    # `docker events` may tell the start before `run` returns: the line is
                    # stamped by the daemon (nanoseconds), compared on the same clock.
                    stamp, _, rest = line.decode().strip().partition(" ")
                    if rest == cid:
                        seen.setdefault("events", int(stamp) / 1e9 - returned)
    sel.close()
    # `watch -n 1 docker ps`: a poll lands on average half a period after the change, and
    # shows it when its own `docker ps` has answered.
    start = time.perf_counter()
    subprocess.run([*docker_cli, "ps", "-q"], capture_output=True, check=True)
    seen["watch"] = 0.5 + (time.perf_counter() - start)
    subprocess.run([*docker_cli, "rm", "-f", PROBE], capture_output=True)
    return seen


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = options(__doc__, "10,300", 9, "SERVE_RESULTS.md")
    parser.add_argument("--idle", type=float, default=30.0, help="seconds of idle CPU measure")
    opts = parser.parse_args()

    lab.up()
    paths = lab.LabPaths()
    client = docker.DockerClient(base_url=paths.docker_host, timeout=120)
    docker_cli = [shutil.which("docker") or "docker", "-H", paths.docker_host]
    rows = []
    try:
        for n in (int(x) for x in opts.sizes.split(",")):
            print(f"N = {n}: starting containers", file=sys.stderr)
            scale(client, max(0, n - 5))  # the lab's five demo containers count too
            serve = subprocess.Popen(
                [PY, "-m", "tracer", "serve", "--port", "0"],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                cwd=ROOT,
            )
            assert serve.stdout is not None
            url = serve.stdout.readline().strip()
            events = subprocess.Popen(
                [*docker_cli, "events", "--filter", "event=start", "--format",
                 "{{.TimeNano}} {{.ID}}"],
                stdout=subprocess.PIPE,
            )  # fmt: skip
            try:
                stream = Stream(url)
                time.sleep(2)  # the first look, and the kernel's subscription
                runs = [one_run(docker_cli, stream, events) for _ in range(opts.repeat)]
                time.sleep(3)  # what the runs set going settles
                stream.frames()
                before, start = cpu_seconds(serve.pid), time.monotonic()
                time.sleep(opts.idle)
                looks = sum(1 for _, kind, _ in stream.frames() if kind == "snapshot")
                idle = (cpu_seconds(serve.pid) - before) / (time.monotonic() - start)
            finally:
                events.kill()
                serve.send_signal(2)
                serve.wait(timeout=30)
            row = {
                "n": n,
                "running": len(client.containers.list()),
                "idle_cpu": idle,
                "idle_looks": looks,
                "idle_s": opts.idle,
            }
            for who in ("serve", "events", "watch"):
                got = [r[who] for r in runs if who in r]
                row[who] = (statistics.median(got), min(got), max(got), len(got))
            rows.append(row)
            print(row, file=sys.stderr)
    finally:
        scale(client, 0)
    Path(opts.out).write_text(report(rows, opts.repeat))
    print(f"wrote {opts.out}")


def report(rows: list[dict], repeat: int) -> str:
    lines = [
        "# serve: how soon a `docker run` is on the page",
        "",
        f"Machine: {machine()}. `benchmarks/serve_bench.py`, {repeat} `docker run -d` per size, "
        "each watched by the three at once. Seconds after `docker run -d` returned: median "
        "(min–max).",
        "",
        "| containers | serve's stream: a look with it | `docker events` (start) | "
        "`watch -n 1 docker ps` (expected) | serve / watch | idle: serve's CPU, looks |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:

        def cell(key: str, r: dict = r) -> str:
            med, low, high, count = r[key]
            missed = "" if count == repeat else f", seen {count}/{repeat}"
            return f"{med:.2f} ({low:.2f}–{high:.2f}{missed})"

        lines.append(
            f"| {r['running']} | {cell('serve')} | {cell('events')} | {cell('watch')} | "
            f"{r['serve'][0] / r['watch'][0]:.2f} | {100 * r['idle_cpu']:.2f} % of a CPU, "
            f"{r['idle_looks']} looks in {r['idle_s']:.0f} s |"
        )
    lines += [
        "",
        "`docker events` tells the start, not what runs: no shim, no init PID, no namespaces; "
        "it is the floor. Negative: the daemon stamped the event before `run` returned. "
        "`watch`: half a 1 s period plus one `docker ps`, and it shows a list, not the chain. "
        "The page's fetch and drawing of the SVG come on top of serve's column.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
