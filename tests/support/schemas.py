"""The JSON documents of the tool, checked against their JSON Schema files (docs/schemas/).

Every document names its schema (`"schema": "dtrace-tree/show/2"`) and is checked against
docs/schemas/show-2.schema.json; one that names none is an error. `run_cli` and `invoke` check
every `--json` output this way (`check_output`), so each test that reads a document of the tool
reads one that matches its schema.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from referencing import Registry, Resource

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"
PREFIX = "dtrace-tree/"


def file_of(name: str) -> Path:
    """docs/schemas/show-2.schema.json for "dtrace-tree/show/2" (or "show/2")."""
    return SCHEMAS / f"{name.removeprefix(PREFIX).replace('/', '-')}.schema.json"


def every_file() -> list[Path]:
    return sorted(SCHEMAS.glob("*.schema.json"))


@cache
def _registry() -> Registry:
    resources = []
    for path in every_file():
        contents = json.loads(path.read_text())
        resources.append((path.name, Resource.from_contents(contents)))
    return Registry().with_resources(resources)


@cache
def validator(name: str) -> Draft202012Validator:
    path = file_of(name)
    assert path.exists(), f"no schema file {path.relative_to(SCHEMAS.parents[1])} for {name!r}"
    return Draft202012Validator(json.loads(path.read_text()), registry=_registry())


@cache
def _part(name: str, part: str) -> Draft202012Validator:
    ref = f"{file_of(name).name}#/$defs/{part}"
    return Draft202012Validator({"$ref": ref}, registry=_registry())


def validate_part(doc: Any, name: str, part: str) -> Any:
    """doc, once it matches the $defs `part` of a schema (a `serve` event other than the
    snapshot: timeline, daemon_event, status, error)."""
    _raise(best_match(_part(name, part).iter_errors(doc)), f"{file_of(name).name}#{part}")
    return doc


SERVE = "dtrace-tree/serve/1"
SSE_PARTS = {"timeline": "timeline", "daemon": "daemon_event", "status": "status"}


def serve_event(event: str, doc: Any) -> Any:
    """One event of serve's stream, checked: `snapshot` is the state, the others are parts."""
    if event == "snapshot":
        return validate(doc, SERVE)
    assert event in SSE_PARTS, f"serve sent an event no schema describes: {event!r}"
    return validate_part(doc, SERVE, SSE_PARTS[event])


def _raise(error: Any, where: str) -> None:
    if error is not None:
        raise AssertionError(f"{where}: at {error.json_path}: {error.message[:500]}")


def validate(doc: Any, name: str | None = None) -> Any:
    """doc, once it matches its schema (the one it names, else `name`); AssertionError naming
    the first key that does not, and where."""
    if name is None:
        assert isinstance(doc, dict) and isinstance(doc.get("schema"), str), (
            f"the document names no schema: {str(doc)[:200]}"
        )
        name = doc["schema"]
    _raise(best_match(validator(name).iter_errors(doc)), file_of(name).name)
    return doc


def parse(text: str, name: str | None = None) -> Any:
    """One JSON document of the tool, checked."""
    return validate(json.loads(text), name)


def parse_lines(text: str) -> list[Any]:
    """JSON lines of the tool (`trace --json`), each checked."""
    return [validate(json.loads(line)) for line in text.splitlines() if line.strip()]


COMMANDS = ("show", "diff", "ns", "fs", "cgroup", "trace", "survive", "serve", "export", "lab")


def check_output(args: tuple[str, ...] | list[str], stdout: str) -> None:
    """The stdout of `dtrace-tree ARGS`, checked when ARGS asked for --json and got output."""
    args = list(args)
    end = args.index("--") if "--" in args else len(args)
    head = args[:end]
    if "--json" not in head or "--help" in head or "-h" in head or not stdout.strip():
        return
    if [a for a in head if a in COMMANDS][:1] == ["trace"]:
        parse_lines(stdout)
        return
    validate(json.loads(stdout))


def api_answer(path: str, doc: Any) -> Any:
    """An answer of serve's API (200), checked: /api/state is serve's own document; /api/show,
    /api/ns, /api/namespaces and /api/containers/<ref>/<ns|fs|cgroup> are the commands'."""
    parts = [p for p in path.partition("?")[0].split("/") if p]
    if parts == ["api", "state"]:
        return validate(doc, SERVE)
    return validate(doc)  # show, ns, fs and cgroup name their schema


def api_error(body: bytes) -> Any:
    """An answer of serve's API other than 200: {"error": ..., "exit_code": ...}, checked."""
    return validate_part(json.loads(body), SERVE, "error")
