"""The engine a docker user means: -H, DOCKER_HOST, DOCKER_CONTEXT, the current context."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tracer.errors import UsageError
from tracer.runtimes.dockercontext import choose

LAB = "unix:///run/dtrace-lab/docker.sock"


def context(config: Path, name: str, host: str, current: bool = False) -> None:
    """A docker context as `docker context create NAME --docker host=HOST` stores it."""
    meta = config / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest()
    meta.mkdir(parents=True)
    doc = {"Name": name, "Metadata": {}, "Endpoints": {"docker": {"Host": host}}}
    (meta / "meta.json").write_text(json.dumps(doc))
    if current:
        (config / "config.json").write_text(json.dumps({"currentContext": name}))


def test_nothing_chosen_means_every_engine(tmp_path: Path) -> None:
    got = choose(None, {"HOME": str(tmp_path)})
    assert (got.url, got.from_environment) == (None, False)


def test_the_flag_wins_and_all_means_every_engine(tmp_path: Path) -> None:
    env = {"DOCKER_HOST": LAB, "HOME": str(tmp_path)}
    assert choose("unix:///x.sock", env).url == "unix:///x.sock"
    assert not choose("unix:///x.sock", env).from_environment
    assert choose("all", env).url is None


def test_an_empty_flag_is_an_error() -> None:
    with pytest.raises(UsageError) as err:
        choose("", {})
    assert err.value.line() == (
        "-H is empty (give a socket, e.g. -H unix:///var/run/docker.sock, or -H all)"
    )


def test_docker_host_then_docker_context_then_the_current_context(tmp_path: Path) -> None:
    config = tmp_path / ".docker"
    config.mkdir()
    context(config, "lab", LAB, current=True)
    context(config, "other", "unix:///run/other.sock")
    home = {"HOME": str(tmp_path)}
    assert choose(None, home).url == LAB
    assert choose(None, home).why == "docker context lab"
    assert choose(None, {**home, "DOCKER_CONTEXT": "other"}).url == "unix:///run/other.sock"
    assert choose(None, {**home, "DOCKER_CONTEXT": "other"}).why == "DOCKER_CONTEXT other"
    env = {**home, "DOCKER_CONTEXT": "other", "DOCKER_HOST": "unix:///d.sock"}
    assert (choose(None, env).url, choose(None, env).why) == ("unix:///d.sock", "DOCKER_HOST")
    assert choose(None, {**home, "DOCKER_CONTEXT": "default"}).url is None


def test_docker_config_names_the_config_directory(tmp_path: Path) -> None:
    context(tmp_path / "cfg", "lab", LAB, current=True)
    assert choose(None, {"DOCKER_CONFIG": str(tmp_path / "cfg"), "HOME": "/nonexistent"}).url == LAB


def test_a_context_that_cannot_be_read_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as err:
        choose(None, {"HOME": str(tmp_path), "DOCKER_CONTEXT": "gone"})
    assert "docker context 'gone' cannot be read" in err.value.message
    assert err.value.hint == "list them with: docker context ls; or give -H"
