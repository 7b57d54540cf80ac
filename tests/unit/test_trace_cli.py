"""`trace` refuses what cannot work before it subscribes (a trace cannot be taken again), in
one line with a documented exit code, and its --help imports nothing heavy."""

from __future__ import annotations

import pytest

from tests.support.cli import HEAVY, modules_after, one_error_line, run_cli


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["--duration", "1", "--", "true"], 2, ["--duration is for tracing without a command"]),
        (["--duration", "0"], 2, ["--duration 0: give a positive number of seconds"]),
        (["--grace", "-1", "--", "true"], 2, ["--grace -1"]),
        (["--buffer", "100", "--", "true"], 2, ["--buffer 100: at least 4096 bytes"]),
        (["--svg", "--", "true"], 2, ["--svg needs -o FILE"]),
        (["--svg", "--png", "-o", "x.svg", "--", "true"], 2, ["choose one format"]),
        (["-o", "/tmp/story.pdf", "--", "true"], 2, ["say --svg, --png or --dot"]),
        (["--png", "-o", "/tmp/story.svg", "--", "true"], 2, ["does not end in .png"]),
        (["--svg", "-o", "-", "--", "true"], 2, ["the trace itself is on stdout"]),
        (["--dot", "-o", "/nonexistent-dir/x.dot", "--", "true"], 10, ["not writable"]),
        (["--", "no-such-command-dtrace"], 127, ["no-such-command-dtrace: command not found"]),
        (["--", "{tmp}/plain-file"], 126, ["plain-file: not executable"]),
    ],
)
def test_refused_before_tracing_in_one_line(args, code, words, tmp_path):
    (tmp_path / "plain-file").write_text("not a program")
    out = run_cli("trace", *[a.format(tmp=tmp_path) for a in args])
    assert out.returncode == code, out.stderr
    one_error_line(out.stderr, *words)
    assert out.stdout == ""


def test_help_names_the_command_and_imports_nothing_of_the_tracer():
    out = run_cli("trace", "--help")
    assert out.returncode == 0
    assert "dtrace-tree trace [OPTIONS] [command]..." in out.stdout
    for option in ("--all", "--duration", "--grace", "--buffer", "--json", "--svg", "-o"):
        assert option in out.stdout
    mods = modules_after("trace", "--help")
    heavy = {"tracer.kernel.connector", "tracer.snapshot.recorder", "tracer.views.lifecycle"}
    heavy |= {"tracer.runtimes", "tracer.output.terminal.trace", "graphviz", "rich.table"}
    assert not (heavy | HEAVY) & mods
