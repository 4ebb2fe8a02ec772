"""What keeps the listener small: batches built in one buffer, responses framed in one,
schemas registered without being imported (docs/kafka-listener.md, "Measured")."""

from __future__ import annotations

import datetime

import pytest
from kafka.record.default_records import DefaultRecordBatch
from kio.schema.api_versions.v0.response import ApiVersionsResponse as ApiVersionsV0
from kio.schema.errors import ErrorCode
from kio.schema.heartbeat.v4.response import HeartbeatResponse

from broker import ConfigError
from broker.wire import Registry
from broker.wire._context import WIRE_CACHE_KIB
from broker.wire._framing import frame
from broker.wire._recordbatch import BatchBuilder, decode_batches, encode_batch
from broker.wire._schema import response_frame, write_response

from ._server import ThreadedListener

ROWS = [(40, 1_000, b"k", b"v" * 300, [("h", b"x"), ("none", None)]),
        (41, 900, None, b"earlier stamped", []),
        (43, 1_500, b"k2", None, [])]


def test_a_built_batch_is_what_kafka_python_reads_with_its_crc() -> None:
    data = encode_batch(ROWS)
    kp = DefaultRecordBatch(data)
    assert kp.validate_crc()
    assert (kp.base_offset, kp.max_timestamp, kp.last_offset_delta) == (40, 1_500, 3)
    got = [(r.offset, r.timestamp, r.key, r.value, list(r.headers)) for r in kp]
    assert got == [(o, ts, k, v, h) for o, ts, k, v, h in ROWS]
    [ours] = decode_batches(data)
    assert [r.value for r in ours.records] == [r[3] for r in ROWS]


def test_a_builder_without_records_refuses_to_finish() -> None:
    builder = BatchBuilder()
    with pytest.raises(ValueError, match="at least one record"):
        builder.finish()
    builder.add(*ROWS[0])
    assert len(builder) > 300 and builder.count == 1


@pytest.mark.parametrize("response", [
    ApiVersionsV0(error_code=ErrorCode.none, api_keys=()),
    HeartbeatResponse(throttle_time=datetime.timedelta(0), error_code=ErrorCode.rebalance_in_progress),
], ids=["header v0", "flexible header v1"])
def test_a_response_frame_is_its_body_framed(response: object) -> None:
    body, flexible = write_response(response)
    assert flexible is isinstance(response, HeartbeatResponse)
    assert response_frame(7, response) == frame(7, body, flexible_header=flexible)


def test_a_version_kio_has_no_schema_for_is_refused_at_registration() -> None:
    async def handler(*_args: object) -> None:
        return None

    with pytest.raises(ConfigError, match="api_key 0 v12: no message schema in kio"):
        Registry().register(0, 3, 99, handler)
    with pytest.raises(ConfigError, match="api_key 999 v0"):
        Registry().register(999, 0, 0, handler)


def test_the_listener_io_threads_keep_a_small_sqlite_page_cache(listener: ThreadedListener) -> None:
    ctx = listener.server.ctx
    assert ctx is not None

    def cache_size() -> int:
        return int(ctx.log.reader().execute("PRAGMA cache_size").fetchone()[0])

    assert listener.call(ctx.run_blocking(cache_size)) == -WIRE_CACHE_KIB
