"""`export` run as a user runs it (in-process, through typer's CliRunner): the formats, -o and
the default file name, drawing a saved snapshot (--from), and each error as one line."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import invoke, one_error_line
from tests.support.topologies import LAB_SNAPSHOT, lab_topology
from tracer.errors import ExitCode, SnapshotFormatError
from tracer.model.show_json import from_json
from tracer.model.topology import Topology
from tracer.output import diagram
from tracer.views.selection import select

LAB = str(LAB_SNAPSHOT)
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="needs graphviz's dot")


def lab(include_stopped: bool = True) -> Topology:
    """The recorded lab (with lab-stopped); as `export` draws it by default without."""
    return select(lab_topology(), [], include_stopped=include_stopped)


def fails(result: Any, code: int, *words: str) -> None:
    """The command wrote nothing on stdout, one error line holding every word, and exited code."""
    assert result.exit_code == code, result.output
    assert result.stdout == ""
    one_error_line(result.stderr, *words)


# -- formats and files ---------------------------------------------------------------------------


@needs_dot
@pytest.mark.parametrize(
    ("fmt", "magic"),
    [("svg", b"<?xml"), ("png", b"\x89PNG"), ("pdf", b"%PDF"), ("dot", b"digraph")],
)
def test_each_format_is_written(tmp_path: Path, fmt: str, magic: bytes) -> None:
    out = tmp_path / f"lab.{fmt}"
    result = invoke("export", "--from", LAB, f"--{fmt}", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{out}\n"
    assert out.read_bytes().startswith(magic)
    assert out.stat().st_size > 1000


@needs_dot
def test_default_is_svg_under_diagrams_named_by_host_and_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke("export", "--from", LAB, "--ns")
    assert result.exit_code == 0, result.output
    assert result.stdout == "diagrams/vm-20261128-181444-ns.svg\n"
    ET.fromstring((tmp_path / "diagrams/vm-20261128-181444-ns.svg").read_bytes())


def test_format_from_the_output_suffix(tmp_path: Path) -> None:
    result = invoke("export", "--from", LAB, "-o", str(tmp_path / "x.dot"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "x.dot").read_text() == diagram.source(lab(include_stopped=False))


# -- a saved snapshot (--from) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "ns_view", "compact", "stopped"),
    [
        ((), False, False, False),
        (("--ns", "--compact"), True, True, False),
        (("-a",), False, False, True),
    ],
)
def test_from_file_equals_the_same_snapshot_in_memory(
    tmp_path: Path, args: tuple[str, ...], ns_view: bool, compact: bool, stopped: bool
) -> None:
    out = tmp_path / "x.dot"
    result = invoke("export", "--from", LAB, "--dot", "-o", str(out), *args)
    assert result.exit_code == 0, result.output
    want = diagram.source(lab(include_stopped=stopped), ns=ns_view, compact=compact)
    assert out.read_text() == want
    assert ("lab-stopped" in want) == stopped


def test_from_file_reads_nothing_of_this_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No engine and no root needed: neither /proc nor any Docker API is read."""
    import tracer.runtimes
    import tracer.snapshot.walk
    from tracer.runtimes.dockerapi import DockerApi

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("export --from read the live host")

    monkeypatch.setattr(tracer.runtimes, "observe", forbidden)
    monkeypatch.setattr(tracer.snapshot.walk, "take", forbidden)
    monkeypatch.setattr(tracer.snapshot.walk.Walk, "processes", forbidden)
    monkeypatch.setattr(DockerApi, "_request", forbidden)
    out = tmp_path / "x.dot"
    result = invoke("export", "--from", LAB, "--dot", "-o", str(out), DOCKER_HOST="unix:///no")
    assert result.exit_code == 0, result.output
    assert out.read_text() == diagram.source(lab(include_stopped=False))


def test_filters_apply_to_a_saved_snapshot(tmp_path: Path) -> None:
    out = tmp_path / "x.dot"
    result = invoke("export", "--from", LAB, "--dot", "-o", str(out), "lab-web")
    assert result.exit_code == 0, result.output
    dot = out.read_text()
    assert "lab-web" in dot and "lab-exec" not in dot
    bad = invoke("export", "--from", LAB, "--dot", "-o", str(out), "-H", "unix:///nope.sock")
    assert bad.exit_code == ExitCode.USAGE


def test_from_json_accepts_the_lab_and_rejects_wrong_types() -> None:
    """A saved snapshot is read strictly: a PID that is not a number, or a command line that is
    not a list of text, refuses the whole file (it would become a node name or a label)."""
    good = lab().to_json()
    from_json(good)
    doc = json.loads(json.dumps(good))
    doc["engines"][0]["containers"][0]["processes"][0]["pid"] = True
    with pytest.raises(SnapshotFormatError, match="process pid is not a number"):
        from_json(doc)
    doc = json.loads(json.dumps(good))
    doc["engines"][0]["containers"][0]["processes"][0]["cmdline"] = "sleep"
    with pytest.raises(SnapshotFormatError, match="command line is not a list of text"):
        from_json(doc)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("root:x:0:0:root:/root:/bin/bash\n", ["not JSON", "show --json"]),
        ('{"schema": "something/else"}', ["not a dtrace-tree snapshot"]),
        ("[1, 2]", ["not a dtrace-tree snapshot"]),
        ('{"schema": "dtrace-tree/show/1"}', ["malformed"]),
        (
            '{"schema": "dtrace-tree/show/1", "engines": [{"containers": [{"id": "x", '
            '"state": "running", "processes": [{"pid": "1 -> 2", "ppid": 1, "cmdline": [], '
            '"role": "init"}]}]}]}',
            ["malformed", "pid is not a number"],
        ),
        ("\udcff\udcfe[]", ["not JSON"]),
        ("[" * 100_000, ["not JSON"]),
    ],
)
def test_bad_from_file_is_one_line_usage_error(
    tmp_path: Path, content: str, words: list[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(content.encode("utf-8", "surrogateescape"))
    out = tmp_path / "x.svg"
    fails(invoke("export", "--from", str(bad), "-o", str(out)), ExitCode.USAGE, *words)
    assert not out.exists()


def test_missing_or_unreadable_from_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    fails(invoke("export", "--from", str(missing)), ExitCode.USAGE, "No such file")
    fails(invoke("export", "--from", str(tmp_path)), ExitCode.USAGE, "Is a directory")


# -- errors --------------------------------------------------------------------------------------


def test_unwritable_output_is_one_line(tmp_path: Path) -> None:
    fails(
        invoke("export", "--from", LAB, "--dot", "-o", "/proc/nope/x.dot"),
        ExitCode.OUTPUT,
        "cannot write /proc/nope/x.dot",
    )
    fails(
        invoke("export", "--from", LAB, "--dot", "-o", str(tmp_path)),
        ExitCode.OUTPUT,
        "Is a directory",
    )


@needs_dot
def test_unwritable_svg_is_one_line() -> None:
    fails(invoke("export", "--from", LAB, "-o", "/proc/nope/x.svg"), ExitCode.OUTPUT, "x.svg")


def test_a_diagram_dot_cannot_draw_is_one_line_and_exit_1_and_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As `serve` goes on without it (it draws the reason instead), `export` has nothing to
    write: dot's own line, its documented code."""
    from tracer.errors import TracerError
    from tracer.output.diagram import dot

    def crashes(source: str, fmt: str, seconds: float = dot.DOT_SECONDS) -> bytes:
        raise TracerError("dot failed to render svg: Segmentation fault")

    monkeypatch.setattr(dot, "render", crashes)
    out = tmp_path / "lab.svg"
    fails(invoke("export", "--from", LAB, "-o", str(out)), ExitCode.FAILURE, "Segmentation")
    assert not out.exists()


def test_one_format_only(tmp_path: Path) -> None:
    fails(invoke("export", "--from", LAB, "--svg", "--png"), ExitCode.USAGE, "--svg and --png")
    fails(
        invoke("export", "--from", LAB, "--svg", "-o", str(tmp_path / "x.png")),
        ExitCode.USAGE,
        "x.png",
    )


def test_missing_dot_binary_exits_4(tmp_path: Path) -> None:
    result = invoke("export", "--from", LAB, "-o", str(tmp_path / "x.svg"), PATH="/nonexistent")
    fails(result, ExitCode.MISSING_DEPENDENCY, "'dot'", "apt-get install -y graphviz")


# -- a whole host -----------------------------------------------------------------------------


def big_snapshot(tmp_path: Path, n: int) -> str:
    from tests.support.topologies import diagram_host

    path = tmp_path / f"host-{n}.json"
    path.write_text(json.dumps(diagram_host(n).to_json()))
    return str(path)


@pytest.mark.parametrize(
    ("view", "n", "compact"),
    [([], 45, True), ([], 30, False), (["--ns"], 30, True), (["--ns"], 20, False)],
)
def test_a_big_host_is_drawn_one_node_per_container_and_says_so(
    tmp_path: Path, view: list[str], n: int, compact: bool
) -> None:
    snap = big_snapshot(tmp_path, n)
    result = invoke("export", "--from", snap, *view, "--dot", "-o", str(tmp_path / "a.dot"))
    assert result.exit_code == 0, result.output
    dot = (tmp_path / "a.dot").read_text()
    assert ("one node per container" in result.stderr) is compact
    assert ("nsc_" in dot or "cluster_e0_all" in dot) is compact
    full = invoke("export", "--from", snap, *view, "--full", "--dot", "-o", str(tmp_path / "f.dot"))
    assert "one node per container" not in full.stderr
    assert "nsc_" not in (tmp_path / "f.dot").read_text()


def test_default_names_never_overwrite_an_earlier_diagram(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    first = invoke("export", "--from", LAB, "--dot", "lab-web")
    second = invoke("export", "--from", LAB, "--dot", "lab-plain")  # same snapshot, same time
    assert first.exit_code == second.exit_code == 0
    a, b = first.stdout.strip(), second.stdout.strip()
    assert a != b and b == a.replace(".dot", "-2.dot")
    assert "lab-web" in Path(a).read_text() and "lab-plain" in Path(b).read_text()


def test_dash_writes_the_diagram_to_stdout() -> None:
    result = invoke("export", "--from", LAB, "--dot", "-o", "-")
    assert result.exit_code == 0
    assert result.stdout.startswith("digraph dtrace_tree {")
