"""The frame decoder against arbitrary bytes: it answers a request or FrameError, nothing else."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.wire import FrameError, default_registry
from broker.wire._framing import read_header, read_size, skip_tagged_fields
from broker.wire._schema import read_request

REGISTRY = default_registry()
SERVED = [(a.api_key, v) for a in REGISTRY.apis() for v in range(a.min_version, a.max_version + 1)]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.sampled_from(SERVED), st.binary(max_size=200))
def test_any_body_of_a_served_api_decodes_or_is_a_frame_error(api: tuple[int, int], body: bytes) -> None:
    api_key, version = api
    frame = struct.pack(">hhih", api_key, version, 1, 0) + body
    header, pos = read_header(frame)
    assert (header.api_key, header.api_version, header.client_id) == (api_key, version, "")
    try:
        read_request(api_key, version, frame, pos)
    except FrameError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_any_header_bytes_decode_or_are_a_frame_error(data: bytes) -> None:
    try:
        header, pos = read_header(data)
    except FrameError:
        return
    assert 0 < pos <= len(data)
    try:
        skip_tagged_fields(data, pos)
    except FrameError:
        pass


@given(st.integers(-(2**31), 2**31 - 1))
def test_a_size_prefix_is_accepted_only_within_bounds(size: int) -> None:
    try:
        assert 10 <= read_size(struct.pack(">i", size), 4096) <= 4096
    except FrameError:
        assert size < 10 or size > 4096


def test_a_request_with_bytes_after_its_body_is_refused() -> None:
    frame = struct.pack(">hhih", 18, 0, 1, 0) + b"\x00"
    with pytest.raises(FrameError, match="ends 1 bytes before the frame does"):
        read_request(18, 0, frame, 10)
