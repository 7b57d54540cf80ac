"""Exit codes and the errors the core raises; the CLI turns them into one line each.

Every expected failure is a `TracerError` that carries its exit code and, where it helps, the
fix. The CLI (tracer/cli/core.py) is the one place that turns them into a line on stderr.
"""

from __future__ import annotations

from enum import IntEnum, unique


@unique
class ExitCode(IntEnum):
    """Documented exit codes (see README, "Exit codes")."""

    OK = 0
    FAILURE = 1  # unexpected internal error (rerun with --debug for the traceback)
    USAGE = 2  # bad arguments; unknown/ambiguous container; a filter that matches nothing
    PERMISSION = 3  # needs root (or the capability named in the message)
    MISSING_DEPENDENCY = 4  # a binary or Debian package is missing
    ENGINE = 5  # an engine could not be reached, started or stopped
    REFUSED = 6  # a change was refused because it would lose containers (survive)
    LOST = 7  # survive: at least one container did not survive
    TIMEOUT = 8  # waited too long for a daemon
    NOT_RUNNING = 9  # the container is stopped: it has no process, hence no namespaces
    OUTPUT = 10  # an output file could not be written
    NOT_EXECUTABLE = 126  # trace: the command to trace could not be executed (as env(1) says)
    NOT_FOUND = 127  # trace: the command to trace was not found (as a shell says)
    INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT, as a shell reports it
    BROKEN_PIPE = 141  # the reader of stdout left (`| head`): 128 + SIGPIPE


class TracerError(Exception):
    """An expected failure: one line for people, plus an optional fix."""

    exit_code: ExitCode = ExitCode.FAILURE

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def line(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(TracerError):
    exit_code = ExitCode.USAGE


class SnapshotFormatError(UsageError):
    """A file given as a saved snapshot is not one (or not of the documented types)."""


class NotRootError(TracerError):
    exit_code = ExitCode.PERMISSION

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} needs root", "run it with sudo, or as root")


class DeniedError(TracerError):
    """Something could not be read for lack of privilege (the message says what)."""

    exit_code = ExitCode.PERMISSION


def cannot_read(path: str, capability: str = "SYS_PTRACE") -> DeniedError:
    """Reading another process's /proc files was refused: root is not enough without the
    capability (as in a container with --cap-drop ALL)."""
    return DeniedError(
        f"reading {path}: permission denied",
        f"run as root with CAP_{capability} (in a container: --cap-add {capability})",
    )


class MissingBinaryError(TracerError):
    exit_code = ExitCode.MISSING_DEPENDENCY

    def __init__(self, binary: str, package: str) -> None:
        super().__init__(
            f"'{binary}' was not found", f"install it with: apt-get install -y {package}"
        )
        self.binary = binary
        self.package = package


class EngineError(TracerError):
    exit_code = ExitCode.ENGINE


class ApiError(EngineError):
    """An engine's API did not answer; `reason` is the short why ("connection refused")."""

    def __init__(self, endpoint: str, reason: str) -> None:
        super().__init__(f"Docker API at {endpoint}: {reason}")
        self.endpoint = endpoint
        self.reason = reason


class RefusedError(TracerError):
    exit_code = ExitCode.REFUSED


class WaitTimeoutError(TracerError):
    exit_code = ExitCode.TIMEOUT


class NotRunningError(TracerError):
    exit_code = ExitCode.NOT_RUNNING


class OutputError(TracerError):
    exit_code = ExitCode.OUTPUT


class BlindError(TracerError):
    """trace: the kernel does not send this process the host's process events (it ignores
    subscriptions from a non-initial PID or user namespace)."""

    exit_code = ExitCode.PERMISSION


class CommandError(TracerError):
    """trace: the command to trace could not be started (not found: 127, else 126)."""

    def __init__(self, message: str, hint: str | None = None, found: bool = True) -> None:
        super().__init__(message, hint)
        self.exit_code = ExitCode.NOT_EXECUTABLE if found else ExitCode.NOT_FOUND
