"""Whole-host export is bounded: dot is stopped after its time and something smaller is drawn
instead, and a PNG is never larger than a viewer opens. Through the real `dot`."""

from __future__ import annotations

import struct

import pytest

from tests.support.topologies import many_engines
from tracer.output import diagram
from tracer.output.diagram import dot


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_dot_is_stopped_when_it_runs_out_of_time():
    """Every process of 600 containers: dot needs far more than a second of CPU (its limit
    is counted in whole seconds)."""
    source = diagram.source(many_engines(8, 75), compact=False)
    with pytest.raises(dot.DotTooSlow, match="within 1 s"):
        dot.render(source, "svg", seconds=1)


def test_a_layout_out_of_time_falls_back_to_one_node_per_container_then_per_engine(monkeypatch):
    topo = many_engines(2, 3)
    drawn: list[str] = []
    real = dot.render

    def slow_unless_engines_only(source: str, fmt: str, seconds: float = 1.0) -> bytes:
        drawn.append(source)
        if "dtrace_tree_engines" not in source:
            raise dot.DotTooSlow(f"dot did not lay the diagram out within {seconds:g} s")
        return real(source, fmt)

    monkeypatch.setattr(dot, "render", slow_unless_engines_only)
    data, notes = diagram.draw(topo, "svg")
    assert len(drawn) == 3  # every process, one node per container, one node per engine
    assert notes == [
        "dot did not lay the diagram out within 1 s: drawing one node per container instead",
        "dot did not lay the diagram out within 1 s: drawing one node per engine, with its "
        "counts instead",
    ]
    svg = data.decode()
    assert "2 engines, 6 containers (one node per engine)" in svg
    assert svg.count("3 containers, 3 running") == 2


def test_when_even_one_node_per_engine_is_too_slow_the_error_is_said(monkeypatch):
    def always_slow(source: str, fmt: str, seconds: float = 1.0) -> bytes:
        raise dot.DotTooSlow("dot did not lay the diagram out within 1 s")

    monkeypatch.setattr(dot, "render", always_slow)
    with pytest.raises(dot.DotTooSlow):
        diagram.draw(many_engines(1, 2), "svg", compact=True)


def test_a_whole_host_png_of_600_containers_is_one_a_viewer_opens():
    source = diagram.source(many_engines(8, 75), compact=True)
    width, height = png_size(dot.render(source, "png", seconds=120))
    assert max(width, height) <= dot.MAX_INCHES * 96 and width * height < 200_000_000
