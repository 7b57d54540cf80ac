"""trace's outputs on made-up recordings: the terminal as exact text, JSON lines, the DOT
source, and hostile text (escape sequences, bidi overrides, markup, DOT syntax) kept inert."""

from __future__ import annotations

import io
import json
import subprocess

from rich.console import Console

from tests.support import schemas
from tests.support.recordings import CID, Rec, docker_run
from tracer.model.trace import Loss
from tracer.output import jsondoc
from tracer.output.diagram.trace import story_diagram
from tracer.output.terminal.trace import ns_words, render
from tracer.views.lifecycle import trace

HOSTILE = (
    "sh",
    "-c",
    "\x1b]0;pwned\x07\x1b[31mred [bold]x[/bold] \u202eevil\udcff",
    '"}; a -> b; <b>',
)


def shown(t, width=200):
    console = Console(color_system=None, width=width, record=True, file=io.StringIO())
    console.print(render(t))
    return console.export_text()


def run_trace(**kw):
    rec = docker_run(Rec()).exit(900, 1005, 1001, signal=9)
    kw.setdefault("command", ["docker", "run", "-d", "x"])
    return trace(rec.recording(command_pid=999, command_status=0, received=100, threads=40, **kw))


def test_the_timeline_and_the_story_as_text():
    out = shown(run_trace()).splitlines()
    assert out[0] == "trace of `docker run -d x` (exit 0)"
    assert out[1] == (
        "1.40 s, 26 events of 8 processes (100 from the kernel, 40 thread events folded, "
        "0 not concerning containers), 0 lost"
    )
    assert out[2] == "      ms  role              pid          lived  end        what"
    assert out[3].startswith(
        "     0.0  shim-start        1000        9.0 ms  exit 0     (containerd 500) "
        "/usr/bin/containerd-shim-runc-v2 -namespace moby"
    )
    assert "    27.1  runc-init         1004        1.9 ms  exit 0           runc:[1:CHILD]" in out
    assert "    28.0  runc-init         1005      872.0 ms  signal 9         runc:[2:INIT]" in out
    assert (
        "   245.7  container-init    1005                                 exec sleep 1000  "
        "new ipc mnt net pid uts  (ppid now 1001)"
    ) in out
    story = out[out.index("containers") + 1 :]
    assert story == [
        "  (name unknown) c0c0c0c0c0c0: shim start -> create -> start -> init exec -> "
        "init signal 9",
        "    engine     shim-start 1000 (9.0 ms) -> shim 1001 -> runc-create 1002 (217.1 ms) -> "
        "runc-start 1007 (10.0 ms)",
        "    runc init  1003 runc:[0:PARENT] (5.0 ms), 1004 runc:[1:CHILD] (1.9 ms), "
        "1005 runc:[2:INIT] (872.0 ms, signal 9)  (forked by runc-create 1002)",
        "    hooks      1006 libnetwork-setkey (144.5 ms)",
        "    init       1005 `sleep 1000` at 245.7 ms, 245.7 ms after the engine began; its "
        "parent is now the shim 1001",
        "    namespaces new ipc mnt net pid uts; shared with runc (the host's): cgroup time user",
        "    init end   1005 at 900.0 ms: signal 9",
    ]


def test_each_event_is_one_line_even_on_a_narrow_terminal():
    out = shown(run_trace(), width=80).splitlines()
    head = next(i for i, line in enumerate(out) if line.lstrip().startswith("ms  role"))
    timeline = out[head + 1 : out.index("")]
    assert len(timeline) == 11  # 8 forks, the re-exec, a rename, the init's exec
    assert all(len(line) <= 80 for line in timeline)


def test_an_empty_trace_says_so_and_how_to_see_more():
    t = trace(Rec().recording(received=812, threads=700, skipped=112))
    out = shown(t)
    assert "no process concerning containers in 0.50 s (812 events from the kernel, 700 of " in out
    assert "--all shows every process" in out


def test_lost_events_are_said_loudly_in_text_and_json():
    t = run_trace(loss=Loss(lost=3036, gaps=3036, overflows=4, drops=3036), buffer=212992)
    out = shown(t)
    assert (
        "LOST at least 3036 events (sequence gaps 3036, buffer overflows 4, socket drops 3036)"
        in out
    )
    assert "this trace is incomplete" in out
    last = list(t.json_lines())[-1]
    assert last["lost"] == 3036 and last["summary"]["loss"]["overflows"] == 4


def test_namespace_words():
    assert ns_words({"mnt": "new", "pid": "new", "pid_for_children": "new"}) == "new mnt pid"
    assert ns_words({"net": f"joined:{CID}", "mnt": "new"}) == "new mnt; joined c0c0c0c0c0c0: net"
    assert ns_words({}) == "same namespaces as its parent"


def hostile_trace():
    return trace(docker_run(Rec(), init_argv=HOSTILE).recording(command=list(HOSTILE)))


def test_hostile_command_lines_are_inert_on_the_terminal():
    out = shown(hostile_trace())
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "\\x1b]0;pwned\\x07\\x1b[31mred [bold]x[/bold] \\u202eevil\\xff" in out


def test_hostile_command_lines_are_valid_json_lines():
    buf = io.BytesIO()
    out = io.TextIOWrapper(buf, encoding="utf-8")
    jsondoc.write_lines(hostile_trace().json_lines(), out)
    lines = buf.getvalue().decode("utf-8").splitlines()  # valid UTF-8, or this raises
    docs = [schemas.validate(json.loads(line)) for line in lines]
    init = [d for d in docs[:-1] if d["event"] == "exec" and d["role"] == "container-init"]
    assert init[0]["cmdline"][2].startswith("\x1b]0;pwned\x07")
    assert init[0]["cmdline"][2].endswith("\\xff")  # the undecodable byte, as text


def test_hostile_text_stays_text_in_the_diagram():
    dot = story_diagram(hostile_trace())
    assert "\x1b" not in dot and "\u202e" not in dot
    plain = subprocess.run(["dot", "-Tplain"], input=dot.encode(), capture_output=True, check=True)
    nodes = [
        line.split()[1] for line in plain.stdout.decode().splitlines() if line.startswith("node")
    ]
    assert "a" not in nodes and "b" not in nodes  # `"}; a -> b;` made no node or edge
    svg = subprocess.run(["dot", "-Tsvg"], input=dot.encode(), capture_output=True, check=True)
    assert b"<b>" not in svg.stdout and b"&lt;b&gt;" in svg.stdout and b"pwned" in svg.stdout


def test_the_diagram_draws_processes_forks_and_the_init_s_exec():
    dot = story_diagram(run_trace())
    assert "cluster_0" in dot
    assert "p1002_13700000 -> p1005_28000000" in dot  # runc:[2:INIT] hangs from runc create
    assert 'x500 -> p1000_0 [label="fork +0.0"]' in dot  # containerd forks the shim start
    assert "p1005_28000000 -> e1005_245700000" in dot  # the init's exec, a node of its own
    assert "new ipc mnt net pid uts" in dot
    assert "rounded,filled,dashed" in dot  # transient processes


def test_a_trace_without_containers_draws_a_note():
    assert "no container was created" in story_diagram(trace(Rec().recording()))
