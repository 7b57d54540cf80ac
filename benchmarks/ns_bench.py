"""Benchmark of `ns --all --json` beside `lsns -J --output-all` (what lists namespaces today, from
processes only) and beside what one must run today to see as much: `lsns` + `findmnt -t nsfs`
+ a scan of /proc/*/fd for namespace fds.

Run as root from the repository: `.venv/bin/python benchmarks/ns_bench.py` (or
`./run.sh bench ns`). Writes benchmarks/NS_RESULTS.md and the section `ns --all` of
benchmarks/RESULTS.md. Not a test: absolute times depend on the machine.

The commands take turns (a, b, c, a, b, c, ...), so a slower minute of a shared machine weighs
on each alike; each figure is the median of --repeat runs, in wall time and in CPU time (user +
system, from wait4: on a loaded machine the wall time is mostly the wait for a CPU). With
--containers N, N sleeping containers are started in the lab first (the benchmark host's size
whatever else runs: each brings a shim with its threads and fds, and five namespaces) and
removed at the end; with --extra N, N more sleeping processes each in four namespaces of
their own (net, uts, ipc, pid) are started for each size, and taken down after. --before REV
also times that revision's `ns --all --json` (a temporary checkout) in the same turns.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import bench  # the lab's benchmark containers and the checkout of an older revision

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
TODAY = (
    "lsns -J --output-all; findmnt -J -t nsfs; "
    "find /proc/[0-9]*/fd -maxdepth 1 -type l -lname '*:\\[*\\]' 2>/dev/null"
)
COMMANDS = {
    "ns --all --json": [PY, "-m", "tracer", "ns", "--all", "--json"],
    "lsns -J --output-all": ["lsns", "-J", "--output-all"],
    "lsns + findmnt + /proc/*/fd": ["sh", "-c", TODAY],
}
MARK = ("<!-- ns-bench -->", "<!-- /ns-bench -->")


BEFORE = "ns --all --json, before"
LABEL = "dtrace-tree.bench-ns"


def run_measured(argv: list[str], cwd: Path = ROOT) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of one whole run, its output discarded; run from
    cwd (`python -m tracer` imports the tracer/ of its working directory first)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd)
    _, _, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime


def turns(repeat: int, before: Path | None) -> dict[str, tuple[float, float]]:
    commands = dict(COMMANDS)
    if before is not None:
        commands[BEFORE] = COMMANDS["ns --all --json"]
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(repeat):
        for name, argv in commands.items():
            cwd = before if name == BEFORE and before is not None else ROOT
            runs[name].append(run_measured(argv, cwd))
    return {
        name: (statistics.median(w for w, _ in got), statistics.median(c for _, c in got))
        for name, got in runs.items()
    }


def counts() -> dict[str, int]:
    """Namespaces each sees, and the host's size."""
    ours = json.loads(subprocess.run(COMMANDS["ns --all --json"], capture_output=True,
                                     text=True, cwd=ROOT).stdout)  # fmt: skip
    theirs = json.loads(subprocess.run(["lsns", "-J"], capture_output=True, text=True).stdout)
    nsfs = subprocess.run(["findmnt", "-rn", "-t", "nsfs"], capture_output=True, text=True)
    names = ours["namespaces"]
    return {
        "ours": len(names),
        "lsns": len(theirs["namespaces"]),
        "hidden": sum(1 for n in names if not n["processes"]),
        "containers": len({c["id"] for n in names for c in n["containers"]}),
        "leaked": sum(1 for n in names if n["leaked"]),
        "processes": sum(1 for p in os.listdir("/proc") if p.isdigit()),
        "nsfs mounts": len(nsfs.stdout.splitlines()),
    }


def extra(n: int) -> list[subprocess.Popen[bytes]]:
    """n sleepers, each in a net, uts, ipc and pid namespace of its own."""
    return [
        subprocess.Popen(
            ["unshare", "--net", "--uts", "--ipc", "--pid", "--fork", "sleep", "3600"],
            start_new_session=True,
        )  # fmt: skip
        for _ in range(n)
    ]


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())  # fmt: skip
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 // 1024
    lsns = subprocess.run(["lsns", "--version"], capture_output=True, text=True).stdout.strip()
    return f"{os.cpu_count()} cores ({cpu}), {mem} GiB, Linux {platform.release()}, {lsns}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--extra", default="0,250", help="sizes: more sleepers, 4 namespaces each")
    parser.add_argument("--containers", type=int, default=0, help="sleepers started in the lab")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--before", metavar="REV", help="also time this revision's ns --all")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "NS_RESULTS.md"))
    opts = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("ns_bench: run as root (ns --all and lsns see everything only as root)")
    before = Path(bench._worktree(opts.before)) if opts.before else None
    client = None
    if opts.containers:
        client = bench.docker.DockerClient(base_url=bench.lab.LabPaths().docker_host, timeout=120)
    rows = []
    try:
        if client is not None:
            print(f"starting {opts.containers} containers in the lab", file=sys.stderr)
            bench.scale(client, opts.containers, LABEL)
        for size in [int(s) for s in opts.extra.split(",")]:
            made = extra(size)
            try:
                time.sleep(1 + size / 200)  # every sleeper in its namespaces
                seen = counts()
                at_start = load()
                times = turns(opts.repeat, before)
                seen["load"] = f"{at_start} -> {load()}"
            finally:
                for p in made:
                    os.killpg(p.pid, 9)
                    p.wait()
            rows.append((size, seen, times))
            print(size, seen, times, flush=True)
    finally:
        if client is not None:
            bench.remove_all(client, LABEL)
        if before is not None:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)])
    text = report(rows, opts.repeat, opts.before)
    Path(opts.out).write_text(text)
    results = ROOT / "benchmarks" / "RESULTS.md"
    old = results.read_text() if results.exists() else "# Benchmark results\n"
    section = f"{MARK[0]}\n{text.replace('# ', '## ', 1)}{MARK[1]}\n"
    pattern = re.compile(re.escape(MARK[0]) + ".*?" + re.escape(MARK[1]) + "\n", re.S)
    results.write_text(pattern.sub(lambda _: section, old) if MARK[0] in old
                       else old.rstrip("\n") + "\n\n" + section)  # fmt: skip
    print(opts.out)


def report(rows: list, repeat: int, before: str | None = None) -> str:
    def ms(s: float) -> str:
        return f"{s * 1000:.0f} ms"

    names = list(COMMANDS)
    out = [
        "# ns --all\n",
        f"Machine: {machine()}.\n",
        f"Produced by `./run.sh bench ns` (`benchmarks/ns_bench.py`) on {time.strftime('%Y-%m-%d')}"
        f": whole processes, median of {repeat} runs each, the commands taking turns; wall time "
        "(CPU time, user + system). `today` is `lsns -J --output-all; findmnt -J -t nsfs; "
        "find /proc/[0-9]*/fd -lname '*:[*]'`: what one runs today to see as much (and still "
        "without owners of hidden namespaces, mounts of other mount namespaces, or users). "
        "The machine is shared: the load average is given for each row.\n",
        "| extra sleepers | processes | namespaces: ns --all / lsns | with no process | "
        "nsfs mounts | containers | "
        + " | ".join(f"`{n}`" for n in names)
        + " | ns / lsns (wall, CPU) | ns / today (wall, CPU) | load average (start -> end) |",
        "|" + "---|" * (9 + len(names)),
    ]
    for size, seen, times in rows:
        cells = [f"{ms(w)} ({ms(c)})" for w, c in (times[n] for n in names)]
        (nw, nc), (lw, lc), (tw, tc) = (times[n] for n in names)
        out.append(
            f"| {size} | {seen['processes']} | {seen['ours']} / {seen['lsns']} | "
            f"{seen['hidden']} | {seen['nsfs mounts']} | {seen['containers']} | "
            + " | ".join(cells)
            + f" | {nw / lw:.2f}, {nc / lc:.2f} | {nw / tw:.2f}, {nc / tc:.2f} | {seen['load']} |"
        )
    if before:
        out += [
            f"\n`ns --all --json` of revision `{before}` (the code before), in the same turns:\n",
            "| extra sleepers | before | now | now / before (wall, CPU) | before / lsns (CPU) |",
            "|---|---|---|---|---|",
        ]
        for size, _, times in rows:
            (bw, bc), (nw, nc), (_, lc) = times[BEFORE], times[names[0]], times[names[1]]
            out.append(
                f"| {size} | {ms(bw)} ({ms(bc)}) | {ms(nw)} ({ms(nc)}) "
                f"| {nw / bw:.2f}, {nc / bc:.2f} | {bc / lc:.2f} |"
            )
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
