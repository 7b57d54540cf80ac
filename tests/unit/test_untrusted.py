"""Untrusted text (tracer/untrusted.py): nothing read from a container may control the terminal
or break UTF-8, and a number read from it is ASCII digits, bounded."""

from __future__ import annotations

import json
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracer.untrusted import clean, for_json, for_terminal, json_bytes, number

C0 = {chr(c) for c in range(0x20)}
C1 = {chr(c) for c in range(0x80, 0xA0)}
DEL = "\x7f"
BIDI = set("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
FORBIDDEN = C0 | C1 | {DEL} | BIDI


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),  # OSC: set the window title
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),  # CSI: colours
        ("\x1b[2J\x1b[H", "\\x1b[2J\\x1b[H"),  # clear the screen, cursor home
        ("\x9b31m", "\\x9b31m"),  # C1 CSI
        ("\x9d0;t\x9c", "\\x9d0;t\\x9c"),  # C1 OSC ... ST
        ("a\x07b", "a\\x07b"),  # BEL
        ("a\x7fb", "a\\x7fb"),  # DEL
        ("a\x00b", "a\\x00b"),  # NUL
        ("line1\nline2", "line1\\nline2"),
        ("a\tb\rc", "a\\tb\\rc"),
        ("a\x08b", "a\\x08b"),  # backspace
        ("\u202eevil.sh", "\\u202eevil.sh"),  # right-to-left override
        ("a\u2066b\u2069c", "a\\u2066b\\u2069c"),  # isolates
        ("\u200e\u200f", "\\u200e\\u200f"),
        ("\ufeffx", "\\ufeffx"),
        ("nginx: worker process", "nginx: worker process"),
        ("caf\u00e9 \u65e5\u672c \U0001f433", "caf\u00e9 \u65e5\u672c \U0001f433"),
        ("", ""),
    ],
)
def test_for_terminal_makes_controls_visible(raw: str, shown: str) -> None:
    assert for_terminal(raw) == shown


def test_for_terminal_output_has_no_escape_bel_or_c1() -> None:
    hostile = "\x1b]0;pwned\x07\x1b[31m\x9b2J\x90q\x9c\u202e\r\n\x7f"
    out = for_terminal(hostile)
    assert not set(out) & FORBIDDEN
    assert "pwned" in out and "31m" in out  # still readable


def test_clean_turns_lone_surrogates_into_visible_bytes() -> None:
    assert clean("\udcff") == "\\xff"
    assert clean("a\udc80b\udcfec") == "a\\x80b\\xfec"
    assert clean("caf\u00e9") == "caf\u00e9"
    # clean only touches undecodable bytes, not controls
    assert clean("\x1b[31m") == "\x1b[31m"


def test_for_terminal_cleans_surrogates_too() -> None:
    raw = b"\xff\xfe\x1b[1m".decode("utf-8", "surrogateescape")
    assert for_terminal(raw) == "\\xff\\xfe\\x1b[1m"


def test_for_json_cleans_keys_values_and_nested_containers() -> None:
    doc = {
        "cmd\udcff": ["a\udc80", ("t\udcfe", 1), {"k": "\udcff"}],
        "n": 3,
        "f": 1.5,
        "b": True,
        "z": None,
        "esc": "\x1b[31m",
    }
    out = for_json(doc)
    assert out == {
        "cmd\\xff": ["a\\x80", ["t\\xfe", 1], {"k": "\\xff"}],
        "n": 3,
        "f": 1.5,
        "b": True,
        "z": None,
        "esc": "\x1b[31m",  # json.dumps escapes it itself
    }
    encoded = json.dumps(out, ensure_ascii=False).encode("utf-8")
    assert json.loads(encoded)["esc"] == "\x1b[31m"
    assert b"\x1b" not in encoded  # escaped as \u001b by json
    # the input is not modified
    assert "cmd\udcff" in doc


# -- properties -------------------------------------------------------------------------------

# Any text, with extra weight on what is dangerous: controls, bidi, undecodable bytes
# (the lone surrogates \udc80-\udcff that surrogateescape makes of bytes >= 0x80).
# Other lone surrogates are left out here: test_every_lone_surrogate_is_made_visible below
# says what they become.
_CHARS = st.characters(exclude_categories=("Cs",))
_DANGER = st.sampled_from(sorted(FORBIDDEN | {"\ufeff"}))
_SEQUENCES = st.sampled_from(["\x1b[31m", "\x1b]0;t\x07", "\x9b2J", "[bold]", "\\x1b"])
_SURROGATE_ESCAPED = st.integers(0xDC80, 0xDCFF).map(chr)
_ANY = st.lists(st.one_of(_CHARS, _DANGER, _SURROGATE_ESCAPED, _SEQUENCES)).map("".join)


@settings(max_examples=500)
@given(_ANY)
def test_for_terminal_output_is_inert_and_utf8(text: str) -> None:
    out = for_terminal(text)
    assert not set(out) & FORBIDDEN
    out.encode("utf-8")  # raises if a lone surrogate survived
    assert for_terminal(out) == out  # nothing left to escape


@settings(max_examples=300)
@given(st.text(st.sampled_from(string.printable[:-5])))  # printable ASCII, minus \t\n\r\x0b\x0c
def test_for_terminal_passes_printable_ascii_through(text: str) -> None:
    assert for_terminal(text) == text
    assert clean(text) == text


@settings(max_examples=300)
@given(st.text(st.characters(exclude_categories=("Cc", "Cf", "Cs", "Zl", "Zp"))))
def test_for_terminal_keeps_ordinary_unicode(text: str) -> None:
    assert for_terminal(text) == text


_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), _ANY),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_ANY, inner, max_size=4)),
    max_leaves=20,
)


@settings(max_examples=300)
@given(_JSON)
def test_for_json_always_encodes(doc: object) -> None:
    encoded = json.dumps(for_json(doc), ensure_ascii=False).encode("utf-8")
    assert isinstance(json.loads(encoded), type(for_json(doc)))


@settings(max_examples=300)
@given(doc=_JSON)
def test_json_bytes_make_the_same_document_in_one_pass(doc: object) -> None:
    """What `show --json` writes: lone surrogates escaped while encoding, as for_json does."""
    text = json.dumps(doc, ensure_ascii=False)
    assert json_bytes(text) == json.dumps(for_json(doc), ensure_ascii=False).encode("utf-8")


@pytest.mark.parametrize(
    ("text", "shown"),
    [("\ud800", "\\ud800"), ("x\udbffy", "x\\udbffy"), ("\udc00", "\\udc00"),
     ("\udc7f", "\\udc7f")],
)  # fmt: skip
def test_every_lone_surrogate_is_made_visible(text: str, shown: str) -> None:
    """Not an undecodable byte (those are \\udc80-\\udcff): shown as its code point."""
    assert for_terminal(text) == shown
    assert for_json({"k": text}) == {"k": shown}
    written = json_bytes(json.dumps({"k": text}, ensure_ascii=False))
    assert json.loads(written) == {"k": shown}


# -- numbers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [("42", 42), ("0042", 42), ("", None), ("-1", None), ("4_2", None), (" 42", None),
     ("\u0664\u0662", None), ("9" * 11, None), ("9" * 5000, None)],
)  # fmt: skip
def test_number_takes_ascii_digits_only(text: str, value: int | None) -> None:
    assert number(text) == value


@given(st.text())
def test_number_is_total(text: str) -> None:
    value = number(text)
    assert value is None or 0 <= value < 10**10


def test_number_bounds_the_digits_after_leading_zeros() -> None:
    # /proc's u64 fields (a process's start ticks) take up to 20 digits
    assert number("18446744073709551615", digits=20) == 2**64 - 1
    assert number("9" * 21, digits=20) is None
    assert number("0" * 30 + "7", digits=1) == 7
    assert number("9" * 10) == 10**10 - 1  # ten digits unless told
