"""The `survive` diagram: every container before and after a daemon's restart, kept or lost."""

from __future__ import annotations

import shutil

import pytest

from tracer.model.survival import ContainerFate, DaemonPids, SurviveReport
from tracer.output.diagram.dot import render
from tracer.output.diagram.survival import survival

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="needs graphviz's dot")


def fate(
    cid: str, name: str, init: tuple[int, int | None], shim: tuple[int, int | None]
) -> ContainerFate:
    """A container's init and shim before and after; it survived when its init is the same."""
    survived = init[0] == init[1]
    return ContainerFate(
        id=cid,
        name=name,
        init_pid_before=init[0],
        init_pid_after=init[1],
        start_time_same=survived,
        namespaces_same=survived,
        shim_pid_before=shim[0],
        shim_pid_after=shim[1],
        restart_policy=None,
        survived=survived,
    )


@needs_dot
def test_survival_diagram_marks_each_container_kept_or_lost() -> None:
    report = SurviveReport(
        daemon="dockerd",
        engine="/run/x.sock",
        owned=True,
        live_restore=False,
        verdict="lost",
        downtime_ms=12,
        before=DaemonPids(dockerd_pid=10, containerd_pid=11),
        after=DaemonPids(dockerd_pid=20, containerd_pid=11),
        containers=[
            fate("a" * 64, "kept", init=(100, 100), shim=(99, 99)),
            fate("b" * 64, "<gone>\\N", init=(200, None), shim=(199, None)),
        ],
    )
    src = survival(report)
    assert src == survival(report)  # deterministic
    assert src.count('label="same process"') == 1 and src.count("label=lost") == 1
    assert "pid 10" in src and "pid 20" in src and "no process" in src
    svg = render(src, "svg").decode()
    assert "&lt;gone&gt;" in svg and "<gone>" not in svg
