"""What survive tells a person who must recover a daemon by hand: a command that pastes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tracer.kernel.procfs import ProcessId
from tracer.ops.restart import DaemonSpec
from tracer.ops.survive import recovery_hint


def spec(argv: tuple[str, ...], cwd: str, log: str, unit: str | None = None) -> DaemonSpec:
    return DaemonSpec(ident=ProcessId(4242, 1), cmdline=argv, env={}, cwd=cwd, log=log, unit=unit)


def pasted(hint: str) -> str:
    """What a person pastes: the hint after its last words, to the end."""
    return hint.split("start it by hand with: ", 1)[1]


def test_a_systemd_unit_is_started_by_systemctl() -> None:
    hint = recovery_hint(spec(("/usr/bin/dockerd",), "/", "/tmp/d.log", "docker.service"))
    assert hint == ("its log: /tmp/d.log; to recover, start it by hand with: "
                    "systemctl start docker.service")  # fmt: skip


def test_the_recovery_command_is_last_quoted_and_pastes_into_bash(tmp_path: Path) -> None:
    where = tmp_path / "a dir"
    where.mkdir()
    program = tmp_path / "my dockerd"  # a stand-in that writes its arguments and directory
    program.write_text('#!/bin/sh\nprintf "%s\\n" "$PWD" "$@"\n')
    program.chmod(0o755)
    log = tmp_path / "dtrace tree.log"
    argv = (str(program), "--data-root", "/var/lib/my docker", "-H", "unix:///x.sock", "it's")
    hint = recovery_hint(spec(argv, str(where), str(log)))
    assert pasted(hint) == (
        f"cd '{where}' && '{program}' --data-root '/var/lib/my docker' -H unix:///x.sock "
        f"'it'\"'\"'s' >>'{log}' 2>&1 &"
    )
    # Pasted into bash, it starts the program in the background, in its directory, with every
    # argument as it was, its output appended to the log.
    done = subprocess.run(["bash", "-c", pasted(hint) + " wait"], capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"]}, timeout=30)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert log.read_text().splitlines() == [str(where), *argv[1:]]
