"""`ns` on terminals of 60, 80 and 200 columns: every value readable, nothing cut."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from tests.support.topologies import lab_topology
from tracer.output.terminal import namespaces as view
from tracer.runtimes.moby.namespaces import USUALLY_SHARED, sharing_flags
from tracer.views import namespaces

WIDTHS = [60, 80, 200]


def render(renderable: object, width: int) -> str:
    out = io.StringIO()
    Console(color_system=None, width=width, file=out).print(renderable)
    return out.getvalue()


@pytest.mark.parametrize("width", WIDTHS)
def test_the_matrix_fits_and_cuts_nothing(width: int) -> None:
    topo = lab_topology()
    doc = namespaces.matrix(topo)
    text = render(view.matrix(doc), width)
    lines = text.splitlines()
    assert "…" not in text
    assert max(len(line.rstrip()) for line in lines) <= width
    for row in doc.containers:
        line = next(line for line in lines if line.startswith(f"{row.name} "))
        assert f" {row.init_pid} " in line  # the whole PID
        words = line.split()[2:]
        assert len(words) == len(namespaces.MATRIX_TYPES)  # a readable word in every column
        assert set(words) <= {"own", "host", "A", "B", "?"}
    assert "A net " in text and "B pid " in text  # the shared groups, named below
    assert "lab-sidecar, lab-web" in text


@pytest.mark.parametrize("width", WIDTHS)
def test_one_container_fits_and_says_why_from_both_sides(width: int) -> None:
    topo = lab_topology()
    names = {c.id: c.label for c in topo.containers()}
    web = next(c for c in topo.containers() if c.name == "lab-web")
    side = next(c for c in topo.containers() if c.name == "lab-sidecar")
    side_told = sharing_flags(
        {"NetworkMode": f"container:{web.id}", "PidMode": f"container:{web.id}"}, names
    )
    doc = namespaces.container_report(topo, web, {}, USUALLY_SHARED, {side.id: side_told})
    text = render(view.container(doc), width)
    flat = " ".join(text.split())  # what folding at this width split over lines
    assert "…" not in text
    assert max(len(line.rstrip()) for line in text.splitlines()) <= width
    assert "lab-sidecar joined it (--network container:lab-web)" in flat
    assert "lab-sidecar joined it (--pid container:lab-web)" in flat
    for entry in doc.namespaces:  # *_for_children only where they differ (after unshare)
        if not entry.type.endswith("_for_children"):
            assert f"{entry.type} " in text and str(entry.inode) in text


def test_unreadable_namespaces_are_question_marks_not_an_empty_table() -> None:
    topo = lab_topology()
    for c in topo.containers():
        c.namespaces = {}
    doc = namespaces.matrix(topo)
    assert doc.unreadable == sorted(c.label for c in topo.containers() if c.init_pid)
    text = render(view.matrix(doc), 80)
    assert "no running containers" not in text
    assert "lab-web" in text and "?" in text
