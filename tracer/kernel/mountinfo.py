"""/proc/<pid>/mountinfo: the mounts a process sees."""

from __future__ import annotations

import re
from collections.abc import Iterable

_OCTAL = re.compile(r"\\([0-7]{3})")


def parse_mount_points(lines: Iterable[str]) -> list[str]:
    """Mount points (field 5) of /proc/<pid>/mountinfo rows, with the kernel's octal escapes
    (space, tab, newline, backslash) undone."""
    points = []
    for line in lines:
        fields = line.split(" ")
        if len(fields) > 4 and fields[4]:
            points.append(_OCTAL.sub(lambda m: chr(int(m.group(1), 8)), fields[4]))
    return points
