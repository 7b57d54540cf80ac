"""Benchmark: dtrace-tree against the tools people use today, at N = 10, 100, 300 containers.

Run as root from the repository: `./run.sh bench` (or `.venv/bin/python benchmarks/bench.py`).
Whole processes, median of repeated runs, on a host that also runs a few hundred other
processes. Writes benchmarks/RESULTS.md. Not a test: absolute times depend on the machine;
the targets are ratios.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tracer import lab  # noqa: E402

LABEL = "dtrace-tree.bench"
PY = sys.executable


def run_measured(argv: list[str]) -> tuple[float, int]:
    """Wall time (s) and peak RSS (KiB) of one whole process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{argv} exited {proc.returncode}")
    return elapsed, usage.ru_maxrss


def median_of(argv: list[str], repeat: int) -> tuple[float, int]:
    runs = [run_measured(argv) for _ in range(repeat)]
    return statistics.median(t for t, _ in runs), max(r for _, r in runs)


def api_requests(argv: list[str]) -> int:
    """Docker API requests one run makes, counted from its socket writes (strace)."""
    with tempfile.NamedTemporaryFile(suffix=".strace") as log:
        subprocess.run(
            ["strace", "-f", "-qq", "-s", "64", "-e", "trace=sendto,sendmsg,write", "-o", log.name, *argv],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
        )  # fmt: skip
        text = Path(log.name).read_text(errors="replace")
    return len(re.findall(r'"(GET|POST|PUT|DELETE|HEAD) /', text))


def scale(client: docker.DockerClient, n: int) -> None:
    """Exactly n running benchmark containers (plain sleepers) in the lab."""
    have = client.containers.list(filters={"label": LABEL})
    for c in have[n:]:
        c.remove(force=True)
    for i in range(len(have), n):
        client.containers.run(
            lab.IMAGE, ["sleep", "2147483647"], detach=True, labels={LABEL: "1"},
            name=f"bench-{i:03d}", environment={"PATH": "/bin"},
        )  # fmt: skip


def machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), platform.processor())  # fmt: skip
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 // 1024
    docker_v = subprocess.run(
        ["dockerd", "--version"], capture_output=True, text=True
    ).stdout.strip()
    return f"{os.cpu_count()} cores ({cpu}), {mem} GiB, Linux {platform.release()}, {docker_v}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10,100,300")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--background", type=int, default=300, help="other processes on the host")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "RESULTS.md"))
    parser.add_argument("--keep", action="store_true", help="keep the benchmark containers")
    opts = parser.parse_args()

    lab.up()
    paths = lab.LabPaths()
    env_host = paths.docker_host
    os.environ["DOCKER_HOST"] = env_host
    client = docker.DockerClient(base_url=env_host, timeout=120)
    docker_cli = shutil.which("docker") or "docker"
    sleepers = [subprocess.Popen(["sleep", "3600"]) for _ in range(opts.background)]
    tool = [PY, "-m", "tracer"]
    rows = []
    try:
        for n in (int(x) for x in opts.sizes.split(",")):
            print(f"N = {n}: starting containers", file=sys.stderr)
            scale(client, n)
            ids = [c.id for c in client.containers.list()]
            procs = len(os.listdir("/proc"))
            show_t, show_rss = median_of([*tool, "show", "--json"], opts.repeat)
            ns_t, ns_rss = median_of([*tool, "ns", "--json"], opts.repeat)
            inspect_t, _ = median_of(
                [docker_cli, "inspect", "--format", "{{.State.Pid}}", *ids], opts.repeat
            )
            lsns_t, _ = median_of(["lsns", "-J"], opts.repeat)
            pstree_t, _ = median_of(["pstree", "-p"], opts.repeat)
            rows.append({
                "n": n, "running": len(ids), "procs": procs,
                "show": show_t, "ns": ns_t, "inspect": inspect_t, "lsns": lsns_t,
                "pstree": pstree_t, "show_rss": show_rss, "ns_rss": ns_rss,
                "show_api": api_requests([*tool, "show", "--json"]),
                "ns_api": api_requests([*tool, "ns", "--json"]),
            })  # fmt: skip
            print(rows[-1], file=sys.stderr)
    finally:
        for p in sleepers:
            p.kill()
            p.wait()
        if not opts.keep:
            scale(client, 0)
    Path(opts.out).write_text(report(rows, opts.repeat))
    print(f"wrote {opts.out}")


def report(rows: list[dict], repeat: int) -> str:
    head = (
        "| N | running | processes | show --json | ns --json | docker inspect (all) | lsns -J "
        "| pstree -p | show / (inspect + lsns) | API requests show / ns | peak RSS show / ns |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    body = "".join(
        f"| {r['n']} | {r['running']} | {r['procs']} | {r['show'] * 1000:.0f} ms | {r['ns'] * 1000:.0f} ms "
        f"| {r['inspect'] * 1000:.0f} ms | {r['lsns'] * 1000:.0f} ms | {r['pstree'] * 1000:.0f} ms "
        f"| {r['show'] / (r['inspect'] + r['lsns']):.2f} | {r['show_api']} / {r['ns_api']} "
        f"| {r['show_rss'] / 1024:.0f} / {r['ns_rss'] / 1024:.0f} MiB |\n"
        for r in rows
    )
    per = [
        f"- N = {r['n']}: show --json costs {r['show'] / r['procs'] * 1e6:.0f} µs per host process"
        for r in rows
    ]
    return (
        "# Benchmark results\n\n"
        f"Machine: {machine()}.\n"
        f"Produced by `./run.sh bench` ({Path(__file__).name}) on {time.strftime('%Y-%m-%d')}: "
        f"whole processes, median of {repeat} runs each, with the lab's demo containers plus "
        "N benchmark containers and a few hundred other processes on the host.\n\n"
        + head
        + body
        + "\n"
        + "\n".join(per)
        + "\n"
    )


if __name__ == "__main__":
    main()
