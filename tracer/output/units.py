"""Quantities for people, the same in every output (the terminal, the diagrams)."""

from __future__ import annotations


def size(n: int | None, unknown: str = "?") -> str:
    """Bytes for people: 0 B, 812 B, 1.9 MiB (binary units, as du -h); `unknown` for None."""
    if n is None:
        return unknown
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # not reached: TiB ends the loop
