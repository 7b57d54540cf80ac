"""Untrusted text made safe: everything read from a container is attacker-controlled.

Command lines, names, labels and image tags can carry terminal escape sequences, invalid
UTF-8 and markup. Each output escapes them in its own way:
- `clean` turns undecodable bytes (kept by Python as lone surrogates) into a visible ``\\xNN``,
  so that every output is valid UTF-8;
- `for_terminal` additionally makes control characters (C0, DEL, C1) and bidirectional
  overrides visible as ``\\xNN`` / ``\\uNNNN``, so nothing can move the cursor, set a title
  or reorder a line;
- `for_json` cleans every string of a JSON document (json.dumps escapes controls itself).
DOT and SVG escaping live with the diagram code, on top of `clean`.
"""

from __future__ import annotations

import re
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]"
)
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\x1b": "\\x1b"}


def clean(text: str) -> str:
    """Replace lone surrogates (undecodable bytes from /proc) with a visible \\xNN."""
    if text.isascii():  # most text: no surrogate can be in it
        return text
    return _SURROGATE.sub(_escape_surrogate, text)


def _escape_surrogate(m: re.Match[str]) -> str:
    code = ord(m.group())
    # \udc80-\udcff are undecodable bytes kept by surrogateescape; others are just invalid.
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def for_terminal(text: str) -> str:
    """Text that cannot control the terminal: controls and bidi overrides made visible."""
    return _UNSAFE.sub(_escape_char, clean(text))


def _escape_char(m: re.Match[str]) -> str:
    ch = m.group()
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def for_json(doc: Any) -> Any:
    """A copy of doc whose every string (keys too) is valid UTF-8."""
    if isinstance(doc, str):
        return clean(doc)
    if isinstance(doc, dict):
        return {for_json(k): for_json(v) for k, v in doc.items()}
    if isinstance(doc, list | tuple):
        return [for_json(v) for v in doc]
    return doc
