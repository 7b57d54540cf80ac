"""What survive tells a person who must recover a daemon by hand: a command that pastes."""

from __future__ import annotations

import subprocess

import pytest

from tracer.kernel.procfs import ProcessId
from tracer.ops.restart import DaemonSpec
from tracer.ops.survive import recovery_hint


@pytest.mark.parametrize("unit", [None, "docker.service"])
def test_the_recovery_command_is_last_and_pastes_into_a_shell(unit: str | None) -> None:
    spec = DaemonSpec(
        ident=ProcessId(4242, 1),
        argv=("/usr/bin/dockerd", "--data-root", "/var/lib/my docker", "-H", "unix:///x.sock"),
        env={},
        cwd="/",
        log="/tmp/dtrace tree.log",
        unit=unit,
    )
    hint = recovery_hint(spec)
    command = hint.split("start it by hand with: ", 1)[1]
    assert command == spec.command()
    checked = subprocess.run(["bash", "-n", "-c", command], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
