"""Untrusted text: everything read from a container is attacker-controlled.

Command lines, names, labels, image tags and the files a process can write (pidfiles, state)
can carry terminal escape sequences, invalid UTF-8, markup and absurd numbers. Reading them:
- `number` is the one definition of a number taken from such text: ASCII digits, bounded.
Printing them, each output escapes in its own way:
- `clean` turns undecodable bytes (kept by Python as lone surrogates) into a visible ``\\xNN``,
  so that every output is valid UTF-8;
- `for_terminal` additionally makes control characters (C0, DEL, C1) and bidirectional
  overrides visible as ``\\xNN`` / ``\\uNNNN``, so nothing can move the cursor, set a title
  or reorder a line;
- `for_json` cleans every string of a JSON document (json.dumps escapes controls itself).
DOT and SVG escaping live with the diagram code (tracer/output/diagram/dot.py), on top of
`clean`.
"""

from __future__ import annotations

import codecs
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
    return _visible(ord(m.group()))


def _visible(code: int) -> str:
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


JSON_ERRORS = "dtrace-tree-json"


def _json_surrogates(err: UnicodeError) -> tuple[str, int]:
    """A codecs error handler for JSON text being encoded to UTF-8: each lone surrogate (they
    can only stand inside JSON strings) becomes what `clean` makes of it, its backslash escaped
    for JSON, so the document decodes to the same strings as `for_json` would give."""
    if not isinstance(err, UnicodeEncodeError):
        raise err
    bad = err.object[err.start : err.end]
    return "".join("\\" + _visible(ord(ch)) for ch in bad), err.end


codecs.register_error(JSON_ERRORS, _json_surrogates)


def json_bytes(text: str) -> bytes:
    """JSON text (from json.dumps with ensure_ascii=False) as valid UTF-8, in one pass in C:
    `for_json` walked the whole document in Python first (20 ms of `show --json` at 300
    containers, benchmarks/NOTES.md)."""
    return text.encode("utf-8", JSON_ERRORS)


def for_json(doc: Any) -> Any:
    """A copy of doc whose every string (keys too) is valid UTF-8."""
    if isinstance(doc, str):
        return clean(doc)
    if isinstance(doc, dict):
        return {for_json(k): for_json(v) for k, v in doc.items()}
    if isinstance(doc, list | tuple):
        return [for_json(v) for v in doc]
    return doc


def number(text: str, digits: int = 10) -> int | None:
    """text as a non-negative int if it is ASCII digits only, at most `digits` of them (after
    leading zeros); else None. int() alone would take '-1', '٨٠', '8_0' and ' 8', and raises
    on more than 4,300 digits: every one of these can be planted in an argv or a file."""
    if not (text.isascii() and text.isdigit()) or len(text.lstrip("0")) > digits:
        return None
    return int(text)
