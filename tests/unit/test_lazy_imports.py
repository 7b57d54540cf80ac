"""Commands import only what they need: no graphviz for show, no rich tree for JSON, and no
docker SDK, http.client or psutil for reading the host (benchmarks/RESULTS.md: each costs
tens of milliseconds at every start)."""

from __future__ import annotations

from tests.support.cli import HEAVY, modules_after


def test_help_imports_no_engine_code():
    mods = modules_after("--help")
    assert not {"graphviz", "rich.tree", "tracer.snapshot.walk", "tracer.runtimes"} & mods
    assert not HEAVY & mods


def test_show_json_imports_neither_graphviz_nor_rich_rendering():
    mods = modules_after("show", "--json", "-H", "unix:///nonexistent.sock")
    assert "tracer.snapshot.walk" in mods  # it did walk the host
    assert not {"graphviz", "rich.tree", "rich.table", "tracer.output.terminal.tree"} & mods
    assert not {"tracer.output.diagram", "tracer.ops.lab"} & mods
    assert not HEAVY & mods


def test_ns_json_imports_no_graphviz():
    mods = modules_after("ns", "--json", "-H", "unix:///nonexistent.sock")
    assert not {"graphviz", "rich.table", "tracer.output.terminal.namespaces"} & mods
    assert not HEAVY & mods


def test_ns_all_json_imports_neither_rich_nor_graphviz():
    """`ns --all --json` is benchmarked against lsns (benchmarks/NS_RESULTS.md): JSON only."""
    mods = modules_after("ns", "--all", "--json")
    assert "tracer.snapshot.namespaces" in mods  # it did walk the namespaces
    assert not {"graphviz", "rich", "tracer.output.terminal", "tracer.output.diagram"} & mods
    assert not HEAVY & mods
