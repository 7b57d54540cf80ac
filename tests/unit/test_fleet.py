"""Several hosts side by side: show, export and the fleet's summary, from saved snapshots."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.support.cli import invoke, one_error_line
from tests.support.topologies import LAB_SNAPSHOT
from tracer.errors import ExitCode
from tracer.model.show_json import from_json
from tracer.views.fleet import fleet

LAB = json.loads(LAB_SNAPSHOT.read_text())


def another_host(name: str, live_restore: bool | None, host_net: str | None = None) -> dict:
    """The lab as if saved on another host: its name, live-restore, and optionally one
    container in the host's network namespace."""
    doc = json.loads(json.dumps(LAB))
    doc["host"]["hostname"] = name
    for engine in doc["engines"]:
        if engine["dockerd"]:
            engine["dockerd"]["live_restore"] = live_restore
        for c in engine["containers"]:
            if c["name"] == host_net:
                c["namespaces"]["net"] = doc["host"]["namespaces"]["net"]
    return doc


def saved(tmp_path: Path, name: str, doc: dict) -> str:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(doc))
    return str(path)


def test_the_summary_names_what_would_die_and_what_is_not_isolated() -> None:
    hosts = [
        ("a.json", from_json(another_host("node-a", True))),
        ("b.json", from_json(another_host("node-b", False, host_net="lab-web"))),
        ("c.json", from_json(another_host("node-c", None))),
    ]
    got = fleet(hosts)
    assert [(h.hostname, h.engines, h.containers) for h in got.hosts] == [
        ("node-a", 1, 5), ("node-b", 1, 5), ("node-c", 1, 5)
    ]  # fmt: skip
    assert [(e.hostname, e.why) for e in got.no_live_restore] == [("node-b", "live-restore off")]
    assert [e.hostname for e in got.unknown_live_restore] == ["node-c"]
    assert [(e.hostname, e.what, e.why) for e in got.host_namespaces] == [
        ("node-b", "lab-web", "net")
    ]


def test_show_several_hosts_as_json_and_as_trees(tmp_path: Path) -> None:
    a = saved(tmp_path, "a", another_host("node-a", True))
    b = saved(tmp_path, "b", another_host("node-b", False))
    out = invoke("show", "--json", "--from", a, "--from", b)
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["schema"] == "dtrace-tree/fleet/1"
    assert [h["host"]["hostname"] for h in doc["hosts"]] == ["node-a", "node-b"]
    assert doc["summary"]["containers"] == 10
    assert doc["summary"]["no_live_restore"][0]["hostname"] == "node-b"
    text = invoke("show", "--from", a, "--from", b).stdout
    assert text.index("host node-a") < text.index("host node-b")
    assert "fleet: 2 hosts, 2 engines, 10 running containers" in text
    assert "engines without live-restore (their containers die with the daemon): 1" in text


def test_export_draws_each_host_in_its_own_cluster(tmp_path: Path) -> None:
    a = saved(tmp_path, "a", another_host("node-a", True))
    b = saved(tmp_path, "b", another_host("node-b", True))
    out = invoke("export", "--from", a, "--from", b, "--dot", "-o", "-")
    assert out.exit_code == 0, out.output
    dot = out.stdout
    assert "subgraph cluster_h0 {" in dot and "subgraph cluster_h1 {" in dot
    names = re.findall(r"^\s*(h\d+_c_\w+) \[", dot, re.M)
    assert len(names) == 10 == len(set(names))  # the same containers, apart per host


def test_a_bad_file_among_several_is_named(tmp_path: Path) -> None:
    a = saved(tmp_path, "a", another_host("node-a", True))
    bad = saved(tmp_path, "bad", {"schema": "nope"})
    out = invoke("show", "--from", a, "--from", bad)
    assert out.exit_code == ExitCode.USAGE
    one_error_line(out.stderr, "bad.json", "not a dtrace-tree snapshot")
