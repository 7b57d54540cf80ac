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

import docker  # noqa: TID251 - the benchmark drives the lab directly

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tracer.ops import lab  # noqa: E402

LABEL = "dtrace-tree.bench"
PY = sys.executable


def run_measured(argv: list[str], cwd: Path = ROOT) -> tuple[float, float]:
    """Wall time and CPU time (user + system, from wait4) in s of one whole process, run from
    cwd: `python -m tracer` imports the tracer/ of its working directory before any
    PYTHONPATH entry. CPU time is the steadier figure on a loaded machine, but only for
    commands that do their own work (`docker inspect`'s is mostly dockerd's, not counted)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{argv} exited {proc.returncode}")
    return elapsed, usage.ru_utime + usage.ru_stime


def median_of(argv: list[str], repeat: int) -> float:
    return medians({"": argv}, repeat)[0][""]


def medians(
    commands: dict[str, list[str]], repeat: int, cwds: dict[str, Path] | None = None
) -> tuple[dict[str, float], dict[str, float]]:
    """Median wall time and median CPU time of each command, run in turns (a, b, c, a, b, c,
    ...) so that a slower minute of a shared machine weighs on every command alike."""
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(repeat):
        for name, argv in commands.items():
            runs[name].append(run_measured(argv, (cwds or {}).get(name, ROOT)))
    return (
        {name: statistics.median(w for w, _ in got) for name, got in runs.items()},
        {name: statistics.median(c for _, c in got) for name, got in runs.items()},
    )


def load() -> str:
    """The load average (1, 5, 15 min): on a shared machine, what each figure was made in."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def peak_rss(argv: list[str], repeat: int = 3) -> int:
    """Peak RSS (KiB) of argv, or of the largest child it waits for, measured by GNU time.

    Not the ru_maxrss of a child of this script: Linux carries the RSS high-water mark across
    exec, so anything forked from this Python process (~40 MiB with the docker SDK) reports
    at least that much, whatever it execs. GNU time is small, so what it forks starts small.
    """
    peaks = []
    for _ in range(repeat):
        with tempfile.NamedTemporaryFile(suffix=".rss") as out:
            subprocess.run(
                ["/usr/bin/time", "-f", "%M", "-o", out.name, *argv],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=True,
                cwd=ROOT,
            )
            peaks.append(int(Path(out.name).read_text().split()[-1]))
    return max(peaks)


def api_requests(argv: list[str]) -> int:
    """Docker API requests one run makes, counted from its socket writes (strace)."""
    with tempfile.NamedTemporaryFile(suffix=".strace") as log:
        strace = ["strace", "-f", "-qq", "-s", "64", "-e", "trace=sendto,sendmsg,write"]
        subprocess.run(
            [*strace, "-o", log.name, *argv],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
            cwd=ROOT,
        )
        text = Path(log.name).read_text(errors="replace")
    return len(re.findall(r'"(GET|POST|PUT|DELETE|HEAD) /', text))


def scale(client: docker.DockerClient, n: int, label: str = LABEL) -> None:
    """Exactly n running benchmark containers (plain sleepers) in the lab. The lab's dockerd
    may restart meanwhile (other people's tests restart it): wait for it, and go on."""
    for attempt in range(30):
        try:
            have = client.containers.list(all=True, filters={"label": label})
            running = [c for c in have if c.status == "running"]
            for c in [c for c in have if c.status != "running"] + running[n:]:
                c.remove(force=True)
            for _ in range(len(running), n):
                client.containers.run(
                    lab.IMAGE, ["sleep", "2147483647"], detach=True, labels={label: "1"},
                    environment={"PATH": "/bin"},
                )  # fmt: skip
            return
        except Exception as exc:  # noqa: BLE001 - the SDK's and requests' errors alike
            print(f"the lab's dockerd: {exc}; again in {2 + attempt} s", file=sys.stderr)
            time.sleep(2 + attempt)
    sys.exit(f"could not bring the benchmark containers (label {label}) to {n}")


def remove_all(client: docker.DockerClient, label: str = LABEL) -> None:
    """Every benchmark container gone: the shared lab is left as it was found."""
    scale(client, 0, label)


def machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), platform.processor())  # fmt: skip
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 // 1024
    docker_v = subprocess.run(
        ["dockerd", "--version"], capture_output=True, text=True
    ).stdout.strip()
    return f"{os.cpu_count()} cores ({cpu}), {mem} GiB, Linux {platform.release()}, {docker_v}"


def options(description: str | None, sizes: str, repeat: int, out: str) -> argparse.ArgumentParser:
    """The options of a benchmark run at sizes: the numbers of containers, the turns at each,
    the results file (in benchmarks/)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--sizes", default=sizes, help="numbers of containers, comma-separated")
    parser.add_argument("--repeat", type=int, default=repeat, help="turns at each size")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / out))
    return parser


def main() -> None:
    parser = options(__doc__, "10,100,300", 11, "RESULTS.md")
    parser.add_argument("--background", type=int, default=300, help="other processes on the host")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark containers")
    parser.add_argument(
        "--before",
        metavar="REV",
        help="also time `show --json` of this git revision (checked out in a temporary "
        "worktree, run with this venv), in turns with the current code",
    )
    opts = parser.parse_args()
    before = _worktree(opts.before) if opts.before else None

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
            commands = {
                "show": [*tool, "show", "--json"],
                "ns": [*tool, "ns", "--json"],
                "inspect": [docker_cli, "inspect", "--format", "{{.State.Pid}}", *ids],
                "lsns": ["lsns", "-J"],
                "pstree": ["pstree", "-p"],
            }
            if before:
                # Run from the old checkout (its tracer/ first); its dependencies from this venv.
                commands["before"] = [*tool, "show", "--json"]
            load_before = load()
            got, cpu = medians(commands, opts.repeat, {"before": Path(before)} if before else None)
            show_t, ns_t = got["show"], got["ns"]
            inspect_t, lsns_t, pstree_t = got["inspect"], got["lsns"], got["pstree"]
            # The usual way: one `docker inspect` per container, as scripts do in a loop.
            loop = "".join(f"{docker_cli} inspect --format '{{{{.State.Pid}}}}' {i}; " for i in ids)
            each_t = median_of(["sh", "-c", loop], min(opts.repeat, 3))
            show_rss = peak_rss([*tool, "show", "--json"])
            ns_rss = peak_rss([*tool, "ns", "--json"])
            rows.append({
                "n": n, "running": len(ids), "procs": procs,
                "show": show_t, "ns": ns_t, "inspect": inspect_t, "each": each_t, "lsns": lsns_t,
                "pstree": pstree_t, "show_rss": show_rss, "ns_rss": ns_rss,
                "before": got.get("before"), "load": f"{load_before} -> {load()}",
                "show_cpu": cpu["show"], "before_cpu": cpu.get("before"),
                "show_api": api_requests([*tool, "show", "--json"]),
                "ns_api": api_requests([*tool, "ns", "--json"]),
            })  # fmt: skip
            print(rows[-1], file=sys.stderr)
    finally:
        if before:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", before])
        for p in sleepers:
            p.kill()
            p.wait()
        if not opts.keep:
            remove_all(client)
    out = Path(opts.out)
    kept = _ns_section(out.read_text()) if out.exists() else ""
    out.write_text(report(rows, opts.repeat, opts.before) + kept)
    print(f"wrote {opts.out}")


def _ns_section(text: str) -> str:
    """The `ns --all` section that benchmarks/ns_bench.py keeps in the same file."""
    start, end = "<!-- ns-bench -->", "<!-- /ns-bench -->\n"
    if start not in text or end not in text:
        return ""
    return "\n" + text[text.index(start) : text.index(end) + len(end)]


def _worktree(rev: str) -> str:
    """A temporary checkout of rev, compiled (as run.sh compiles the current code)."""
    path = tempfile.mkdtemp(prefix="dtrace-before-")
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", path, rev], check=True)
    subprocess.run([PY, "-m", "compileall", "-q", f"{path}/tracer"], check=True)
    return path


def report(rows: list[dict], repeat: int, before: str | None = None) -> str:
    def ms(seconds: float) -> str:
        return f"{seconds * 1000:.0f} ms"

    head = (
        "| N | running | host processes | show --json | ns --json | docker inspect, all ids "
        "in one call | docker inspect, one call per container | lsns -J | pstree -p "
        "| show / (inspect all + lsns) | show / (inspect each + lsns) "
        "| API requests show / ns | peak RSS show / ns (GNU time) | load average (start -> end) |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    body = "".join(
        f"| {r['n']} | {r['running']} | {r['procs']} | {ms(r['show'])} | {ms(r['ns'])} "
        f"| {ms(r['inspect'])} | {ms(r['each'])} | {ms(r['lsns'])} | {ms(r['pstree'])} "
        f"| {r['show'] / (r['inspect'] + r['lsns']):.2f} "
        f"| {r['show'] / (r['each'] + r['lsns']):.2f} | {r['show_api']} / {r['ns_api']} "
        f"| {r['show_rss'] / 1024:.0f} / {r['ns_rss'] / 1024:.0f} MiB | {r['load']} |\n"
        for r in rows
    )
    if before:
        body += (
            f"\n`show --json` of revision `{before}` (the code before), run in turns with "
            "the rest: wall time (CPU time)\n\n| N | before | now | now / before (wall, CPU) "
            "| before / (inspect all + lsns) | now / (inspect all + lsns) |\n"
            "|---|---|---|---|---|---|\n"
        )
        body += "".join(
            f"| {r['n']} | {ms(r['before'])} ({ms(r['before_cpu'])}) "
            f"| {ms(r['show'])} ({ms(r['show_cpu'])}) "
            f"| {r['show'] / r['before']:.2f}, {r['show_cpu'] / r['before_cpu']:.2f} "
            f"| {r['before'] / (r['inspect'] + r['lsns']):.2f} "
            f"| {r['show'] / (r['inspect'] + r['lsns']):.2f} |\n"
            for r in rows
        )
    growth = []
    for a, b in zip(rows, rows[1:], strict=False):
        added = max(b["procs"] - a["procs"], 1)
        growth.append(
            f"- N {a['n']} -> {b['n']}: +{b['procs'] - a['procs']} processes, "
            f"show +{(b['show'] - a['show']) * 1000:.0f} ms "
            f"({(b['show'] - a['show']) / added * 1e6:.0f} µs per added process), "
            f"ns +{(b['ns'] - a['ns']) * 1000:.0f} ms"
        )
    notes = ROOT / "benchmarks" / "NOTES.md"
    return (
        "# Benchmark results\n\n"
        f"Machine: {machine()}.\n\n"
        f"Produced by `./run.sh bench` (`benchmarks/{Path(__file__).name}`) on "
        f"{time.strftime('%Y-%m-%d')}: whole processes, median of {repeat} runs each, the "
        "commands taking turns (3 runs for the per-container loop), with the lab's demo "
        "containers plus N sleeping benchmark containers, and a few hundred other processes "
        "on the host.\n\n"
        + head
        + body
        + "\nCost growth between the sizes:\n\n"
        + "\n".join(growth)
        + "\n\n"
        + (notes.read_text() if notes.exists() else "")
    )


if __name__ == "__main__":
    main()
