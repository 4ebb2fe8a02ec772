"""The stored header text is exactly what the JSON encoder made of the pairs before.

``encode_headers`` builds the text by hand (faster per record); other code and older data
read it as JSON, so the text itself, not only its round trip, must stay the same.
"""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from broker._headers import decode_headers, encode_headers


def _reference(headers: list[tuple[str, bytes | None]]) -> str:
    return json.dumps([[k, v.decode("utf-8", "surrogateescape") if v is not None else None]
                       for k, v in headers], ensure_ascii=True, separators=(",", ":"))


pairs = st.lists(st.tuples(st.text(max_size=10), st.one_of(st.none(), st.binary(max_size=16))),
                 min_size=1, max_size=6)


@settings(max_examples=300, deadline=None)
@given(pairs)
def test_header_text_is_the_encoders(headers: list[tuple[str, bytes | None]]) -> None:
    text = encode_headers(headers)
    assert text == _reference(headers)
    assert decode_headers(text) == headers


def test_header_text_escapes_quotes_controls_non_ascii_and_bad_utf8() -> None:
    headers = [("source", b"mqtt://h:1883/c"), ('q"\\', b'a"b\\c\n\x00\x7f'),
               ("\u00fc", "\u20ac".encode() + b"\xff"), ("none", None), ("empty", b"")]
    text = encode_headers(headers)
    assert text == _reference(headers)
    assert text.isascii()
    assert '["none",null]' in text
    assert decode_headers(text) == headers


def test_no_headers_is_no_text() -> None:
    assert encode_headers([]) is None
    assert encode_headers(None) is None
