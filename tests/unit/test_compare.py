"""`diff` of two snapshots: which containers kept running, by the one process identity."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.cli import invoke, one_error_line
from tests.support.topologies import LAB_SNAPSHOT
from tracer.errors import ExitCode
from tracer.model.show_json import from_json
from tracer.views.compare import compare

LAB = json.loads(LAB_SNAPSHOT.read_text())


def saved(tmp_path: Path, name: str, doc: dict) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return str(path)


def containers(doc: dict) -> dict[str, dict]:
    return {c["name"]: c for e in doc["engines"] for c in e["containers"]}


def changed(**how: str) -> dict:
    """The lab snapshot, then: name -> restarted | removed | stopped."""
    doc = json.loads(json.dumps(LAB))
    for e in doc["engines"]:
        for c in list(e["containers"]):
            if how.get(c["name"]) == "restarted":
                for p in c["processes"]:
                    p["create_time"] += 10.0
                    p["start"] = 999_999
            elif how.get(c["name"]) == "removed":
                e["containers"].remove(c)
            elif how.get(c["name"]) == "stopped":
                c.update(init_pid=None, shim_pid=None, shim=None, processes=[], state="exited")
    return doc


def test_the_same_snapshot_twice_keeps_everything() -> None:
    got = compare(from_json(LAB), from_json(LAB))
    assert got.all_kept and got.count("kept") == 5
    assert {c.verdict for c in got.containers} == {"kept"}


def test_restarted_stopped_removed_and_new_are_told_apart() -> None:
    after = changed(**{"lab-web": "restarted", "lab-init": "stopped", "lab-exec": "removed"})
    got = {c.label: c for c in compare(from_json(LAB), from_json(after)).containers}
    assert got["lab-web"].verdict == "restarted" and not got["lab-web"].start_time_same
    assert got["lab-init"].verdict == "stopped" and got["lab-init"].init_pid_after is None
    assert got["lab-exec"].verdict == "removed"
    assert got["lab-plain"].verdict == "kept"
    backwards = {c.label: c.verdict for c in compare(from_json(after), from_json(LAB)).containers}
    assert backwards["lab-exec"] == "new" and backwards["lab-init"] == "started"


def test_the_command_exits_as_diff_does(tmp_path: Path) -> None:
    before = saved(tmp_path, "before.json", LAB)
    same = invoke("diff", before, before)
    assert same.exit_code == 0 and "every container kept running, unchanged" in same.stdout
    after = saved(tmp_path, "after.json", changed(**{"lab-web": "restarted"}))
    differ = invoke("diff", before, after, "--json")
    assert differ.exit_code == 1
    doc = json.loads(differ.stdout)
    assert doc["schema"] == "dtrace-tree/diff/1"
    assert doc["summary"]["restarted"] == 1 and doc["summary"]["kept"] == 4
    bad = invoke("diff", before, saved(tmp_path, "bad.json", {"schema": "nope"}))
    assert bad.exit_code == ExitCode.USAGE
    one_error_line(bad.stderr, "bad.json", "not a dtrace-tree snapshot")


def test_equal_namespace_inodes_of_another_process_are_not_the_same_namespaces() -> None:
    """The kernel reuses a freed namespace's inode number: a restarted container often gets
    its old numbers back (seen with `docker restart` on the lab). Only the same process proves
    the same namespaces."""
    after = changed(**{"lab-web": "restarted"})  # namespaces left as they were
    got = {c.label: c for c in compare(from_json(LAB), from_json(after)).containers}
    assert got["lab-web"].verdict == "restarted" and got["lab-web"].namespaces_same is False
