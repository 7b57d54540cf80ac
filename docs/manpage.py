"""The man page, docs/dtrace-tree.1, generated from the command line itself.

    python docs/manpage.py > docs/dtrace-tree.1     write it again (after a command changed)
    python docs/manpage.py --check                  exit 1 if the committed page is stale

Every command, its usage, help, options and examples come from typer's command tree (the
same help records `--help` prints); the exit status from tracer/errors.py ExitCode; the JSON
documents from docs/schemas/. Only the sections no command knows (environment, files, see
also) are written here. tests/unit/test_manpage.py fails when the committed page differs from
what this writes, so the page cannot fall behind the CLI.

Hand-written roff (man(7) macros): no library turns a click tree into a man page without
adding a build step (click-man writes one page per command, and needs setuptools at run time).
"""

from __future__ import annotations

import inspect
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "dtrace-tree.1"
SCHEMAS = ROOT / "docs" / "schemas"
sys.path.insert(0, str(ROOT))

from typer.main import get_command  # noqa: E402 - after the repository is on the path

from tracer import __version__  # noqa: E402
from tracer.cli import app  # noqa: E402
from tracer.errors import ExitCode  # noqa: E402

NAME = "dtrace-tree"
SUMMARY = "make the architecture of containers visible on a live Linux host"

# Variables no option declares (an option's own `envvar` is listed from the tree).
ENVIRONMENT = [
    ("DOCKER_HOST", "The engine to show (a unix:// URL), as the docker CLI reads it, when -H "
     "is not given. -H all shows every engine whatever it says."),
    ("DOCKER_CONTEXT", "The docker context whose engine to show, when neither -H nor "
     "DOCKER_HOST is given; else the current context of the docker CLI's config file."),
    ("DOCKER_CONFIG", "Where the docker CLI's config.json and contexts are (default "
     "$HOME/.docker)."),
    ("HOME", "Whose ~/.docker to read the current docker context from."),
    ("DTRACE_DEBUG", "Any non-empty value: as --debug, errors are re-raised with their "
     "traceback."),
    ("DTRACE_LAB_STACK", "The lab's engine stack when --stack is not given: 2023 (the "
     "default) or 2026; the tests use it too."),
    ("DTRACE_TREE_CACHE", "Where lab up --stack 2026 keeps the Debian packages it downloads "
     "and extracts (default /var/cache/dtrace-tree)."),
    ("NO_COLOR", "Any non-empty value: no colour and no other escape sequence, on a terminal "
     "too."),
    ("COLUMNS", "The width of the terminal output; piped, it is 160 columns unless COLUMNS "
     "says otherwise."),
    ("DISPLAY, WAYLAND_DISPLAY", "serve --open opens the page only in a graphical session."),
    ("PATH", "Where trace finds the command to trace, and lab finds dockerd, containerd, "
     "podman and ctr (then in /usr/sbin, /usr/bin, /sbin and /bin)."),
]  # fmt: skip

FILES = [
    ("/proc, /sys/fs/cgroup", "What the tool reads: every process, its namespaces, mounts, "
     "sockets and cgroups. Reading commands change nothing."),
    ("/host", "The host's / when dtrace-tree runs in a container (with --pid=host), found "
     "without --host-root."),
    ("~/.docker/config.json, ~/.docker/contexts/", "The docker CLI's current context "
     "(read, never written)."),
    ("diagrams/", "Where export writes its diagram when -o is not given (a new file each "
     "time, never one that exists)."),
    ("/run/dtrace-lab/, /var/lib/dtrace-lab/", "The lab's sockets, configuration and data: "
     "everything lab up makes and lab down removes (the 2026 stack's lab: "
     "/run/dtrace-lab-2026/, /var/lib/dtrace-lab-2026/)."),
    ("/var/cache/dtrace-tree/", "The 2026 stack's packages, downloaded once."),
]  # fmt: skip

SEE_ALSO = ["docker(1)", "dockerd(8)", "containerd(8)", "ctr(8)", "podman(1)", "lsns(8)",
            "nsenter(1)", "pstree(1)", "dot(1)", "namespaces(7)", "cgroups(7)"]  # fmt: skip


# -- roff ----------------------------------------------------------------------------------------


def roff(text: str) -> str:
    """Text as roff shows it: backslashes and hyphens escaped (\\- is what one types, a plain
    - may be set as a typographic hyphen), no line read as a request."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + line if line[:1] in (".", "'") else line for line in text.split("\n"))


def bold(text: str) -> str:
    return f"\\fB{roff(text)}\\fR"


def paragraphs(text: str) -> list[str]:
    """A docstring's paragraphs, each on one line (roff fills them again)."""
    blocks = re.split(r"\n\s*\n", inspect.cleandoc(text or ""))
    return [" ".join(line.strip() for line in block.splitlines()) for block in blocks if block]


def examples(epilog: str | None) -> list[tuple[str, str]]:
    """(command, what it does) from an "Examples:" epilog (tracer/cli/core.py examples)."""
    out: list[tuple[str, str]] = []
    for line in (epilog or "").splitlines():
        if line.startswith("  " + NAME):
            out.append((line.strip(), ""))
        elif line.startswith("      ") and out:
            command, what = out[-1]
            out[-1] = (command, f"{what} {line.strip()}".strip())
    return out


def example_lines(pairs: list[tuple[str, str]]) -> Iterator[str]:
    for command, what in pairs:
        yield ".TP"
        yield bold(command)
        yield roff(what)


# -- the command tree ----------------------------------------------------------------------------


def commands(group: Any, ctx: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[Any, Any]]:
    """(command, its context) for every command that runs something, by name."""
    for name in sorted(group.list_commands(ctx)):
        cmd = group.get_command(ctx, name)
        sub = cmd.make_context(name, [], parent=ctx, resilient_parsing=True)
        if hasattr(cmd, "list_commands"):
            yield from commands(cmd, sub, (*path, name))
        else:
            yield cmd, sub


def usage(cmd: Any, ctx: Any) -> str:
    return " ".join([ctx.command_path, *cmd.collect_usage_pieces(ctx)])


def options(cmd: Any, ctx: Any) -> Iterator[str]:
    """Each parameter as --help shows it: its flags (or argument) and its help."""
    for param in cmd.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None:
            continue
        flags, text = record
        if param.param_type_name == "argument":
            flags = flags.upper()
        yield ".TP"
        yield bold(flags)
        yield roff(text)


def environment_of(group: Any, ctx: Any) -> list[tuple[str, str]]:
    """Variables that options read (`envvar`), and the ones listed above."""
    found = []
    everything = [(group, ctx), *commands(group, ctx)]
    for cmd, where in everything:
        for param in cmd.get_params(where):
            if getattr(param, "envvar", None):
                what = f"As {'/'.join(param.opts)}: {paragraphs(param.help or '')[0]}"
                found.append((param.envvar, what))
    return sorted(set(found)) + ENVIRONMENT


def exit_codes() -> list[tuple[int, str, str]]:
    """(code, name, meaning) from ExitCode's comments (tracer/errors.py)."""
    meaning = {}
    for line in inspect.getsource(ExitCode).splitlines():
        m = re.match(r"\s*([A-Z_]+) = \d+\s*#\s*(.+)$", line)
        if m:
            meaning[m.group(1)] = m.group(2)
    return [(int(c), c.name, meaning.get(c.name, "")) for c in ExitCode]


def documents() -> list[tuple[str, str]]:
    """(schema name, what writes it) from docs/schemas/."""
    out = []
    for path in sorted(SCHEMAS.glob("*.schema.json")):
        schema = json.loads(path.read_text())
        first = schema.get("description", "").split(". ")[0]  # names the commands in `...`
        writers = ", ".join(re.findall(r"`(dtrace-tree [^`]+)`", first))
        out.append((schema["title"], f"{writers}: docs/schemas/{path.name}"))
    return out


# -- the page -----------------------------------------------------------------------------------


def page() -> str:
    root = get_command(app)
    ctx = root.make_context(NAME, [], resilient_parsing=True)
    lines = [
        f'.\\" Generated by docs/manpage.py from {NAME} {__version__}: do not edit.',
        f'.TH {NAME.upper()} 1 "" "{NAME} {__version__}" "User Commands"',
        ".nh",  # no hyphenation: names, paths and options are typed as they are shown
        ".ad l",
        ".SH NAME",
        f"{NAME} \\- {roff(SUMMARY)}",
        ".SH SYNOPSIS",
        bold(usage(root, ctx)),
        ".SH DESCRIPTION",
    ]
    for text in paragraphs(root.help):
        lines += [".PP", roff(text)]
    lines += [
        ".PP",
        roff("Reading commands (show, ns, fs, cgroup, export, diff, trace, serve) only read "
             "the host. survive restarts a daemon; lab starts and removes its own engines. "
             "Most need root, to read every process's /proc."),
        ".SH OPTIONS",
        *options(root, ctx),
        ".SH COMMANDS",
    ]  # fmt: skip
    for cmd, sub in commands(root, ctx):
        lines += [".SS " + bold(usage(cmd, sub))]
        for text in paragraphs(cmd.help):
            lines += [".PP", roff(text)]
        lines += [*options(cmd, sub)]
        pairs = examples(cmd.epilog)
        if pairs:
            lines += [".PP", "\\fIExamples:\\fR", *example_lines(pairs)]
    lines += [".SH EXIT STATUS"]
    for code, name, meaning in exit_codes():
        lines += [".TP", bold(str(code)), roff(f"{name}: {meaning}" if meaning else name)]
    lines += [".SH ENVIRONMENT"]
    for name, what in environment_of(root, ctx):
        lines += [".TP", bold(name), roff(what)]
    lines += [".SH FILES"]
    for name, what in FILES:
        lines += [".TP", f"\\fI{roff(name)}\\fR", roff(what)]
    lines += [
        ".SH JSON",
        roff("--json writes one document (trace: JSON lines) that names its schema in its "
             "\"schema\" key; each is described by a JSON Schema (draft 2020-12) in the "
             "source's docs/schemas/."),
    ]  # fmt: skip
    for name, what in documents():
        lines += [".TP", bold(name), roff(what)]
    lines += [".SH EXAMPLES", *example_lines(examples(root.epilog))]
    lines += [".SH SEE ALSO", ",\n".join(f"\\fB{roff(p.split('(')[0])}\\fR({p.split('(')[1]}"
                                         for p in SEE_ALSO)]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    text = page()
    if argv[1:] == ["--check"]:
        if PAGE.read_text() != text:
            sys.stderr.write(f"{PAGE} is stale: python docs/manpage.py > docs/dtrace-tree.1\n")
            return 1
        return 0
    if argv[1:]:
        sys.stderr.write("usage: python docs/manpage.py [--check]\n")
        return 2
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
