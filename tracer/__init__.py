"""dtrace-tree: Docker's architecture, traced on the live host."""

__version__ = "0.1.0"
