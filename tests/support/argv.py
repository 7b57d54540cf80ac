"""Untrusted command lines for property tests (hypothesis): words that mean something to the
parsers, and text that means nothing."""

from __future__ import annotations

from hypothesis import strategies as st

# Words that mean something to the parsers, and text that means nothing.
WORDS = st.sampled_from(
    [
        "--",
        "-",
        "=",
        "-id",
        "-id=",
        "--id=x",
        "-workdir",
        "-workdir=/",
        "-address",
        "-namespace",
        "start",
        "delete",
        "containerd-shim",
        "/usr/bin/containerd-shim-runc-v2",
        "docker-proxy",
        "/usr/sbin/docker-proxy",
        "-host-port",
        "-container-port",
        "-host-port=" + "9" * 5000,
        "\x00",
        "\udcff",
        "\udc80\udcfe",
        "\x1b]0;pwned\x07",
        "\x1b[31m",
        "\u202e",
        "\x9b",
        "unix://",
    ]
)
TEXT = st.one_of(
    st.text(),
    st.text(st.characters(min_codepoint=0, max_codepoint=0x9F)),
    st.text(st.sampled_from("-=/\x00\udcff\udc80\x1b\u202e0123456789")),
)
ARGV = st.lists(st.one_of(WORDS, TEXT), max_size=12)
