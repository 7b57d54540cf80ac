"""The JSON Schema files of docs/schemas/: each is a valid draft 2020-12 schema, every schema
name the code writes has one (and no file describes a document nobody writes), the recorded
snapshots match theirs, and a renamed or missing key is caught."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from tests.support import schemas
from tracer.model.show_json import from_json

TRACER = Path(__file__).resolve().parents[2] / "tracer"
DATA = Path(__file__).parent / "data"
NAMED = re.compile(r"""["'](dtrace-tree/[a-z-]+/\d+)["']""")


def names_in_the_code() -> set[str]:
    """Every `dtrace-tree/<doc>/<version>` string literal under tracer/."""
    return {m for f in TRACER.rglob("*.py") for m in NAMED.findall(f.read_text())}


@pytest.mark.parametrize("path", schemas.every_file(), ids=lambda p: p.name)
def test_each_schema_file_is_a_valid_draft_2020_12_schema(path: Path):
    schema = json.loads(path.read_text())
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == path.name
    assert schemas.file_of(schema["title"]) == path  # its title is the name documents give


def test_every_schema_the_code_writes_has_a_file_and_every_file_a_writer():
    written = names_in_the_code()
    assert {"dtrace-tree/show/2", "dtrace-tree/trace/1", "dtrace-tree/serve/1"} <= written
    assert {"dtrace-tree/ns/1", "dtrace-tree/survive/1", "dtrace-tree/lab-status/1"} <= written
    missing = sorted(n for n in written if not schemas.file_of(n).exists())
    assert missing == [], f"no schema file in docs/schemas/ for {missing}"
    described = {schemas.file_of(n) for n in written}
    stale = sorted(p.name for p in schemas.every_file() if p not in described)
    assert stale == [], f"schema files no code writes: {stale}"


@pytest.mark.parametrize("path", sorted(DATA.glob("*.json")), ids=lambda p: p.name)
def test_the_recorded_snapshots_match_their_schema_and_read_back_as_show_2(path: Path):
    doc = schemas.validate(json.loads(path.read_text()))
    schemas.validate(from_json(doc).to_json(), "dtrace-tree/show/2")


SNAPSHOT = json.loads((DATA / "all-runtimes-snapshot.json").read_text())


def broken(change) -> dict:
    doc = copy.deepcopy(SNAPSHOT)
    change(doc)
    return doc


def _rename(d: dict, old: str, new: str) -> None:
    d[new] = d.pop(old)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda d: _rename(d["engines"][2]["containers"][0], "init_pid", "init"), "init_pid"),
        (lambda d: d["engines"][2]["daemons"][0].pop("api_socket"), "api_socket"),
        (lambda d: d["engines"][0]["containers"][0]["processes"][0].pop("start"), "start"),
        (lambda d: d["engines"][0]["edges"][0].update(kind="sibling"), "sibling"),
        (lambda d: d["engines"][0]["containers"][0].update(init_pid="23341"), "23341"),
        (lambda d: d["host"].update(namespaces={"net": None}), "None"),
        (lambda d: d.update(schema="dtrace-tree/show/3"), "'dtrace-tree/show/2' was expected"),
        (lambda d: _rename(d["engines"][0], "namespace", "ns"), "'namespace' is a required"),
        (lambda d: d["engines"][0].update(facts=["a"]), "['a'] is not of type"),
        (lambda d: d["engines"][0]["daemons"][0].update(role="crio"), "'kind' is a required"),
    ],
    ids=[
        "renamed",
        "missing-daemon-key",
        "missing-process-key",
        "unknown-edge-kind",
        "pid-as-text",
        "null-inode",
        "other-version",
        "renamed-engine-key",
        "engine-fact-not-plain",
        "service-without-its-keys",
    ],
)
def test_a_renamed_missing_or_mistyped_key_is_caught(change, words):
    schemas.validate(copy.deepcopy(SNAPSHOT))  # the recorded one passes
    with pytest.raises(AssertionError) as caught:
        schemas.validate(broken(change), "dtrace-tree/show/2")
    assert words in str(caught.value)


def test_the_cli_outputs_are_checked_by_the_schema_they_name():
    """run_cli and invoke check --json output by its schema key; a document without one is
    an error, whichever command wrote it."""
    matrix = {"schema": "dtrace-tree/ns/1", "host": {}, "host_from": None, "containers": [],
              "groups": [], "unreadable": []}  # fmt: skip
    schemas.check_output(["ns", "--json"], json.dumps(matrix))
    with pytest.raises(AssertionError, match="unreadable"):
        schemas.check_output(["ns", "--json"], json.dumps({**matrix, "unreadable": None}))
    unnamed = {k: v for k, v in matrix.items() if k != "schema"}
    for command in (["ns", "--json"], ["--debug", "show", "--json"]):
        with pytest.raises(AssertionError, match="names no schema"):
            schemas.check_output(command, json.dumps(unnamed))
    schemas.check_output(["ns"], "not JSON: no --json, not checked")
    schemas.check_output(["trace", "--", "sh", "--json"], "the traced command's --json")


def test_ns_survive_and_lab_status_name_their_schema_first_and_keep_every_key():
    """The key is added, first, to the documents that had none: nothing else changes (a
    script that read them goes on reading them)."""
    from tracer.model.namespaces import NsMatrix, NsReport, NsSubject
    from tracer.model.survival import DaemonPids, SurviveReport
    from tracer.ops.lab import LabStatus

    matrix = NsMatrix(host={}, host_from=None, containers=[], groups=[])
    report = NsReport(NsSubject("ab" * 32, "web", 10), {}, None, [], [])
    lab = LabStatus("unix:///run/x.sock", True, 1, 2, True, True, [])
    survived = SurviveReport("dockerd", "/run/x.sock", True, True, DaemonPids(2, 1), "refused")
    for doc, name, before in [
        (matrix.to_json(), "dtrace-tree/ns/1", dataclasses.asdict(matrix)),
        (report.to_json(), "dtrace-tree/ns/1", dataclasses.asdict(report)),
        (lab.to_json(), "dtrace-tree/lab-status/1", dataclasses.asdict(lab)),
        (survived.to_json(), "dtrace-tree/survive/1", dataclasses.asdict(survived)),
    ]:
        schemas.validate(doc)
        assert next(iter(doc)) == "schema" and doc["schema"] == name
        assert set(doc) == {"schema", *before}  # and every key it had
    with pytest.raises(AssertionError, match="'schema' is a required"):
        schemas.validate({k: v for k, v in lab.to_json().items() if k != "schema"},
                         "dtrace-tree/lab-status/1")  # fmt: skip
