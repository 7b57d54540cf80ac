"""The command line: one module per command group, the error funnel in core.py.

`python -m tracer` and the `dtrace-tree` script both enter `main`.
"""

from __future__ import annotations

import tracer.cli.fs  # registers `fs` and `cgroup`
import tracer.cli.serve  # noqa: F401 - registers `serve`
from tracer.cli import export, lab, namespaces, show, survive, trace  # noqa: F401 - they register
from tracer.cli.core import app, main

__all__ = ["app", "main"]
