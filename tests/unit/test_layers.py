"""The package's folders are its layers: a module imports only from its own layer or lower ones,
module-level imports make no cycle, and modules and folders stay small enough to read.

`app` (the Environment a command runs in, and the one service that looks at the host) sits
between ops and cli: it uses everything below to look, and the command line is only parsing and
rendering over it. The live page (output/web) is below it, so serve hands it the service's look
as a function instead of importing it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "tracer"
# Lowest first. errors.py and untrusted.py are the floor everything may stand on.
LAYERS = ["errors", "untrusted", "kernel", "model", "snapshot", "runtimes", "views", "output",
          "ops", "app", "cli", "__main__"]  # fmt: skip
MAX_LINES = 450
MAX_MODULES = 9  # per folder, __init__.py not counted


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 else LAYERS.index("cli")


def imports(path: Path, top_level_only: bool = False) -> set[str]:
    """The tracer modules a file imports (inside functions too, unless top_level_only)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("tracer")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tracer"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    known = modules()
    return {m for m in found if m in known}


MODULES = modules()


@pytest.mark.parametrize("name", sorted(MODULES))
def test_a_module_imports_only_its_own_layer_or_lower_ones(name: str) -> None:
    if name == "tracer":
        return
    upward = [m for m in imports(MODULES[name]) if layer(m) > layer(name)]
    assert not upward, f"{name} (layer {LAYERS[layer(name)]}) imports {upward}"


def test_module_level_imports_make_no_cycle() -> None:
    graph = {name: imports(path, top_level_only=True) - {name} for name, path in MODULES.items()}
    done: set[str] = set()

    def visit(name: str, stack: list[str]) -> None:
        if name in stack:
            cycle = stack[stack.index(name) :] + [name]
            # A package's __init__ importing its own submodules is not a cycle of ideas.
            if not all(m.startswith(cycle[0] + ".") or m == cycle[0] for m in cycle):
                pytest.fail("import cycle: " + " -> ".join(cycle))
            return
        if name in done:
            return
        for dep in sorted(graph.get(name, ())):
            visit(dep, [*stack, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_is_much_over_400_lines(name: str) -> None:
    lines = len(MODULES[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines"


def test_no_folder_holds_more_than_about_8_modules() -> None:
    for folder in [p for p in PACKAGE.rglob("*") if p.is_dir() and p.name != "__pycache__"]:
        count = len([p for p in folder.glob("*.py") if p.name != "__init__.py"])
        assert count <= MAX_MODULES, f"{folder.relative_to(PACKAGE)} holds {count} modules"
