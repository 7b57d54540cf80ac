"""Benchmark: `fs` on containerd's image store against overlay2, containerd's files read by
dtrace-tree's bolt reader against containerd's API, and whole-host export at 8 engines x 75
containers through the real `dot`.

Run as root from the repository:
    .venv/bin/python benchmarks/storage_bench.py --export
    .venv/bin/python benchmarks/storage_bench.py --store NAME --overlay2 NAME \
        --containerd-root DIR --ctr-address SOCK [--ctr PATH]
    .venv/bin/python benchmarks/storage_bench.py --rootless NAME@HOST --rootful NAME@HOST
--store and --overlay2 name a container on an engine with the containerd image store and one
on an engine with overlay2 (the same image and the same number of containers on each, made by
whoever runs this). Prints markdown; the figures are kept in benchmarks/STORAGE_RESULTS.md.
Not a test: absolute times depend on the machine.
"""

from __future__ import annotations

import argparse
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.topologies import many_engines  # noqa: E402
from tracer.kernel.root import HostRoot  # noqa: E402
from tracer.output import diagram  # noqa: E402
from tracer.runtimes.containerd import imagestore  # noqa: E402

PY = sys.executable


def timed(fn, repeat: int) -> tuple[float, object]:
    runs, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs), out


def whole(argv: list[str], repeat: int) -> float:
    def run() -> None:
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    return timed(run, repeat)[0]


def export(repeat: int) -> None:
    topo = many_engines(8, 75)
    print("| view | format | DOT source | dot | total | output | picture |")
    print("|---|---|---|---|---|---|---|")
    for compact, fmt in ((True, "svg"), (True, "png"), (False, "svg")):
        src_s, src = timed(lambda c=compact: diagram.source(topo, False, c), repeat)
        total, got = timed(lambda c=compact, f=fmt: diagram.draw(topo, f, False, c), repeat)
        data, notes = got  # type: ignore[misc]
        size = "-"
        if fmt == "png":
            w, h = struct.unpack(">II", data[16:24])
            size = f"{w} x {h} px"
        view = "one node per container" if compact else "every process (--full)"
        if notes:
            view += f"; fell back: {notes[-1]}"
        print(f"| {view} | {fmt} | {src_s:.2f} s | {total - src_s:.2f} s | {total:.2f} s "
              f"| {len(data) / 1e6:.1f} MB | {size} |")  # fmt: skip


def observe(host: str | None):  # the topology, as a command takes it
    from tracer.app.environment import Environment
    from tracer.app.service import Service

    return Service(Environment(), host or "all", None).topology()


def storage(args: argparse.Namespace) -> None:
    cli = [PY, "-m", "tracer", "fs", "--json"]
    rows = {
        "fs, containerd image store": whole([*cli, args.store], args.repeat),
        "fs, overlay2": whole([*cli, args.overlay2], args.repeat),
    }
    for what, seconds in rows.items():
        print(f"| {what} (whole process: the host's snapshot, then fs) | {seconds * 1000:.0f} ms |")
    from tracer.views.selection import resolve
    from tracer.views.storage import report_for

    topo = observe(None)
    for what, name in (("image store", args.store), ("overlay2", args.overlay2)):
        me = resolve(topo, name)
        took, doc = timed(lambda m=me: report_for(topo, m, HostRoot(), True), 20)
        layers = len(doc.layers)  # type: ignore[attr-defined]
        print(f"| fs's storage read and report alone, {what} ({layers} layers, --changes) "
              f"| {took * 1000:.1f} ms |")  # fmt: skip
    root = HostRoot()
    load, store = timed(lambda: imagestore.load(root, args.containerd_root, "moby"), 20)
    n = len(store.snapshots or {})  # type: ignore[attr-defined]
    print(f"| bolt reader: both files of {args.containerd_root} ({n} snapshots), in-process "
          f"| {load * 1000:.1f} ms |")  # fmt: skip
    ctr = [args.ctr, "-a", args.ctr_address, "-n", "moby"]
    for what in (["snapshots", "ls"], ["snapshots", "usage"], ["images", "ls"]):
        seconds = whole([*ctr, *what], args.repeat)
        print(f"| containerd's API: `ctr {' '.join(what)}` (a Go client, whole process) "
              f"| {seconds * 1000:.0f} ms |")  # fmt: skip


def rootless(args: argparse.Namespace) -> None:
    """fs of a rootless engine's container (its mount namespace read through /proc/<pid>)
    against a rootful one's: NAME@HOST each (HOST: the engine's -H)."""
    from tracer.views.selection import resolve
    from tracer.views.storage import report_for

    print("| what | rootless | rootful |")
    print("|---|---|---|")
    pair = [a.split("@", 1) for a in (args.rootless, args.rootful)]
    took = [whole([PY, "-m", "tracer", "fs", "--json", "-H", host, name], args.repeat)
            for name, host in pair]  # fmt: skip
    print(f"| fs --json (whole process: the engine's snapshot, then fs) "
          f"| {took[0] * 1000:.0f} ms | {took[1] * 1000:.0f} ms |")  # fmt: skip
    alone, layers = [], []
    for name, host in pair:
        topo = observe(host)
        me = resolve(topo, name)
        t, doc = timed(lambda m=me, tp=topo: report_for(tp, m, HostRoot(), True), 20)
        alone.append(t)
        layers.append(len(doc.layers))  # type: ignore[attr-defined]
    print(f"| fs's storage read and report alone (--changes; {layers[0]} and {layers[1]} "
          f"layers) | {alone[0] * 1000:.1f} ms | {alone[1] * 1000:.1f} ms |")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--export", action="store_true")
    p.add_argument("--store")
    p.add_argument("--overlay2")
    p.add_argument("--containerd-root")
    p.add_argument("--ctr-address")
    p.add_argument("--ctr", default="ctr")
    p.add_argument("--rootless")
    p.add_argument("--rootful")
    p.add_argument("--repeat", type=int, default=7)
    args = p.parse_args()
    if args.export:
        export(3)
    if args.store:
        storage(args)
    if args.rootless and args.rootful:
        rootless(args)


if __name__ == "__main__":
    main()
