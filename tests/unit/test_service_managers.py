"""survive and a dockerd that a service manager started, on recorded /proc trees (this machine
has no systemd as PID 1): restarted through systemctl where systemd is PID 1 (a user's manager
for rootless Docker), refused before anything is touched where it is not."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tracer.kernel.root import HostRoot
from tracer.ops import restart

PID = 4242
DOCKERD = ("/usr/bin/dockerd", "-H", "fd://", "--containerd=/run/containerd/containerd.sock")
SYSTEM_UNIT = "0::/system.slice/docker.service\n"
USER_UNIT = "0::/user.slice/user-1001.slice/user@1001.service/app.slice/docker.service\n"


def recorded(
    tmp_path: Path,
    argv: tuple[str, ...] = DOCKERD,
    env: dict[str, str] | None = None,
    cgroup: str = SYSTEM_UNIT,
    systemd: bool = True,
) -> HostRoot:
    """A host's / with one process in its /proc, as systemd's docker.service runs dockerd."""
    env = {"LISTEN_FDS": "1", "LISTEN_PID": str(PID), "PATH": "/usr/bin"} if env is None else env
    proc = tmp_path / "proc" / str(PID)
    (proc / "fd").mkdir(parents=True)
    (proc / "stat").write_text(f"{PID} (dockerd) S 1 {PID} {PID} 0 -1 0 " + "0 " * 12 + "777 0\n")
    (proc / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    (proc / "environ").write_bytes(b"".join(f"{k}={v}\0".encode() for k, v in env.items()))
    (proc / "cgroup").write_text(cgroup)
    os.symlink("/", proc / "cwd")
    os.symlink("/dev/null", proc / "fd" / "1")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text(
        "root:x:0:0::/root:/bin/sh\nrl:x:1001:1001::/home/rl:/bin/sh\n"
    )
    if systemd:
        (tmp_path / "run" / "systemd" / "system").mkdir(parents=True)
    return HostRoot(str(tmp_path))


def test_a_dockerd_of_docker_service_is_restarted_by_systemctl(tmp_path: Path) -> None:
    spec = restart.capture(PID, recorded(tmp_path))
    assert spec.ident.start == 777 and spec.cmdline == DOCKERD
    assert spec.unit == "docker.service"
    assert spec.manager is not None and spec.manager.evidence == (
        "-H fd://",
        f"LISTEN_FDS=1 and LISTEN_PID={PID} in its environment",
        "systemd unit docker.service in its cgroup",
    )
    assert restart.refusal(spec, "/run/docker.sock") is None
    assert spec.systemctl == ["systemctl"]
    assert spec.command() == "systemctl start docker.service"


def test_rootless_docker_s_unit_is_its_user_s_manager_s(tmp_path: Path) -> None:
    spec = restart.capture(PID, recorded(tmp_path, cgroup=USER_UNIT))
    assert spec.unit == "docker.service" and spec.manager and spec.manager.user == "rl"
    assert spec.systemctl == ["systemctl", "--user", "-M", "rl@"]
    assert spec.command() == "systemctl --user -M rl@ start docker.service"
    assert restart.refusal(spec) is None


def test_without_systemd_as_pid_1_a_unit_s_dockerd_is_refused_naming_the_unit(
    tmp_path: Path,
) -> None:
    spec = restart.capture(PID, recorded(tmp_path, systemd=False))
    assert spec.unit is None
    refused = restart.refusal(spec, "/run/docker.sock")
    assert refused is not None and refused.exit_code == 6
    assert refused.line() == (
        f"dockerd (pid {PID}) was started by a service manager (-H fd://; LISTEN_FDS=1 and "
        f"LISTEN_PID={PID} in its environment; systemd unit docker.service in its cgroup) and "
        "systemd is not PID 1 here: restarted by hand it would not get its listening socket "
        "back, so nothing was touched (restart it with: systemctl restart docker.service)"
    )


@pytest.mark.parametrize(
    ("argv", "env"),
    [
        (DOCKERD, {}),  # -H fd:// alone
        (("/usr/bin/dockerd", "--host=fd://"), {}),
        (("/usr/bin/dockerd",), {"LISTEN_FDS": "1", "LISTEN_PID": str(PID)}),  # env alone
    ],
)
def test_any_one_sign_of_socket_activation_is_refused_with_the_command_that_works(
    tmp_path: Path, argv: tuple[str, ...], env: dict[str, str]
) -> None:
    spec = restart.capture(PID, recorded(tmp_path, argv, env, cgroup="", systemd=False))
    refused = restart.refusal(spec, "/run/x/docker.sock")
    assert refused is not None and refused.hint == (
        f"to restart it: kill {PID}, then start it as it was started: "
        f"systemd-socket-activate -l /run/x/docker.sock {' '.join(argv)}"
    )


def test_a_dockerd_started_by_hand_is_restarted_by_hand(tmp_path: Path) -> None:
    """LISTEN_PID naming another process (inherited from a parent) is no sign."""
    argv = ("/usr/bin/dockerd", "-H", "unix:///run/x.sock")
    env = {"LISTEN_FDS": "1", "LISTEN_PID": "1"}
    spec = restart.capture(PID, recorded(tmp_path, argv, env, cgroup="", systemd=False))
    assert spec.manager is None and restart.refusal(spec) is None
