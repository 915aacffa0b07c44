"""The bridge's fast path for MAIL/RCPT paths gives exactly what aiosmtpd's parser gives (or defers to it)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtp_bridge.protocol import _SIMPLE_PATH, BridgeSMTP


class Parser(BridgeSMTP):
    def __init__(self) -> None:  # only the parsing methods are used: no runtime, no transport
        self.local_part_limit = 0


CASES = ["<a@b>", "<a@b> SIZE=5", "<a@b>  BODY=8BITMIME SIZE=3", "<a.b+c@d.e>", " <a@b>", "<a@b>(x) SIZE=1",
         "<a@b> (x)", "<A@B.C>\t", "<a@b.>", "<a..b@c>", "<a@b> ", "<@relay:a@b>", "<a%b@c>", "<a!b@c>",
         "<a@b> SIZE=5 (x)", "<>", "a@b", "<a@[127.0.0.1]>", "<\"q\"@b>", "<a@b>>", "<a@b><c@d>"]  # fmt: skip


@pytest.mark.parametrize("arg", CASES)
def test_fast_path_matches_the_parser(arg: str) -> None:
    assert Parser()._getaddr(arg) == Parser()._parsed_path(arg)


@given(st.text(alphabet='ab.@<> \t()+%!"[]:-=SIZE', max_size=30))
def test_fast_path_matches_the_parser_on_noise(arg: str) -> None:
    if _SIMPLE_PATH.fullmatch(arg):
        assert Parser()._getaddr(arg) == Parser()._parsed_path(arg)
