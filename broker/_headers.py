"""The header codec: record headers as JSON text in the ``records.headers`` column.

Text rather than a blob so that plain SQL can read them; values are bytes, kept
lossless as surrogate-escaped strings (``\\udcXX`` for bytes that are not UTF-8).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

# Built once: json.dumps with options builds a new encoder on every call, which showed
# in profiles of stream processing (a header list per output record).
# ensure_ascii: lone surrogates (non-UTF-8 bytes) must survive as \u escapes.
_encode_json = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode
_quote = json.encoder.encode_basestring_ascii  # a JSON string literal, ASCII-only


def encode_headers(headers: Sequence[tuple[str, bytes | None]] | None) -> str | None:
    """Headers as JSON text, readable in SQL and lossless for any bytes; None for none."""
    if not headers:
        return None
    try:
        # The same text as _encode_json of the pairs (the encoder quotes strings with this
        # very function), without building a list per pair and an encoder per call: this
        # runs once per appended record.
        return "[" + ",".join([
            f"[{_quote(k)},{_quote(v.decode('utf-8', 'surrogateescape')) if v is not None else 'null'}]"
            for k, v in headers
        ]) + "]"
    except TypeError:  # a key that is not a str: let the encoder say what it makes of it
        pass
    return _encode_json(
        [[k, v.decode("utf-8", "surrogateescape") if v is not None else None] for k, v in headers]
    )


def decode_headers(text: str | None) -> list[tuple[str, bytes | None]]:
    """The pairs ``encode_headers`` wrote (and what older versions wrote: plain ``json.dumps``)."""
    if not text:
        return []
    return [(k, v.encode("utf-8", "surrogateescape") if v is not None else None) for k, v in json.loads(text)]
