"""Kafka's record batch format v2 as pure functions of bytes (KIP-98).

A batch: ``baseOffset int64, batchLength int32, partitionLeaderEpoch int32, magic int8 (2),
crc uint32`` (CRC-32C of everything after it), ``attributes int16, lastOffsetDelta int32,
baseTimestamp int64, maxTimestamp int64, producerId int64, producerEpoch int16,
baseSequence int32, records: int32 count`` then the records, compressed as a whole by the
codec in attributes' low 3 bits (1 gzip, 2 snappy, 3 lz4, 4 zstd).  A record:
``length varint, attributes int8, timestampDelta varlong, offsetDelta varint, key, value``
(varint length, -1 for null) and headers (varint count; key string, value bytes).

Compression goes through cramjam (the codecs the uplink already uses); batches written
here (Fetch responses) are uncompressed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import cramjam
from crc32c import crc32c

MAGIC = 2
_HEAD = struct.Struct(">qiibI")  # base offset, length, leader epoch, magic, crc
_BODY = struct.Struct(">hiqqqhii")  # attributes .. base sequence, record count
HEADER_SIZE = _HEAD.size + _BODY.size  # 61
_CODECS = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}
_XERIAL = b"\x82SNAPPY\x00"
TRANSACTIONAL = 0x10
CONTROL = 0x20


class RecordBatchError(ValueError):
    """Bytes that are not a valid v2 record batch (Kafka's CORRUPT_MESSAGE / INVALID_RECORD)."""


@dataclass(frozen=True, slots=True)
class Record:
    offset_delta: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]


@dataclass(frozen=True, slots=True)
class Batch:
    base_offset: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    records: list[Record]

    @property
    def codec(self) -> str:
        return _CODECS.get(self.attributes & 0x07, "unknown")

    @property
    def last_sequence(self) -> int:
        return (self.base_sequence + self.last_offset_delta) & 0x7FFFFFFF


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    shift = raw = 0
    while True:
        if pos >= len(buf):
            raise RecordBatchError("a varint runs past the end of the records")
        b = buf[pos]
        pos += 1
        raw |= (b & 0x7F) << shift
        if not b & 0x80:
            return (raw >> 1) ^ -(raw & 1), pos
        shift += 7
        if shift > 63:
            raise RecordBatchError("a varint longer than 10 bytes")


def _bytes(buf: bytes, pos: int) -> tuple[bytes | None, int]:
    n, pos = _varint(buf, pos)
    if n < 0:
        if n != -1:
            raise RecordBatchError(f"a length of {n}")
        return None, pos
    end = pos + n
    if end > len(buf):
        raise RecordBatchError("a key, value or header runs past the end of its record")
    return buf[pos:end], end


def _decompress(codec: int, data: bytes) -> bytes:
    try:
        if codec == 1:
            return bytes(cramjam.gzip.decompress(data))
        if codec == 2:
            if data.startswith(_XERIAL):  # Java's snappy stream: 16-byte header, then sized blocks
                out, pos = bytearray(), 16
                while pos < len(data):
                    (n,) = struct.unpack_from(">i", data, pos)
                    out += cramjam.snappy.decompress_raw(data[pos + 4:pos + 4 + n])
                    pos += 4 + n
                return bytes(out)
            return bytes(cramjam.snappy.decompress_raw(data))
        if codec == 3:
            return bytes(cramjam.lz4.decompress(data))
        if codec == 4:
            return bytes(cramjam.zstd.decompress(data))
    except (cramjam.DecompressionError, struct.error, ValueError) as exc:
        raise RecordBatchError(f"{_CODECS[codec]} records do not decompress: {exc}") from None
    raise RecordBatchError(f"unknown compression codec {codec}")


def decode_batches(data: bytes) -> list[Batch]:
    """Every batch in a Produce request's records; RecordBatchError if any is invalid."""
    out = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < HEADER_SIZE:
            raise RecordBatchError(f"{len(data) - pos} trailing bytes are not a record batch")
        base, length, _epoch, magic, crc = _HEAD.unpack_from(data, pos)
        end = pos + 12 + length
        if magic != MAGIC:
            raise RecordBatchError(f"message format v{magic}; only v2 (Kafka 0.11+) is accepted")
        if length < HEADER_SIZE - 12 or end > len(data):
            raise RecordBatchError(f"batch length {length} does not fit the {len(data) - pos} bytes given")
        body_start = pos + _HEAD.size
        if crc32c(data[body_start:end]) != crc:
            raise RecordBatchError("the batch's CRC-32C does not match its bytes")
        attrs, last_delta, base_ts, max_ts, pid, pepoch, bseq, count = _BODY.unpack_from(data, body_start)
        if attrs & CONTROL:
            raise RecordBatchError("control batches are written by a broker, never produced")
        if count < 0 or count > length:
            raise RecordBatchError(f"record count {count}")
        payload = data[body_start + _BODY.size:end]
        codec = attrs & 0x07
        if codec:
            payload = _decompress(codec, payload)
        out.append(Batch(base, attrs, last_delta, base_ts, max_ts, pid, pepoch, bseq,
                         _records(payload, count, base_ts)))
        pos = end
    return out


def _records(buf: bytes, count: int, base_ts: int) -> list[Record]:
    out = []
    pos = 0
    for _ in range(count):
        length, pos = _varint(buf, pos)
        end = pos + length
        if length < 0 or end > len(buf):
            raise RecordBatchError(f"a record of length {length} runs past the batch")
        pos += 1  # attributes: unused in v2
        ts_delta, pos = _varint(buf, pos)
        off_delta, pos = _varint(buf, pos)
        key, pos = _bytes(buf, pos)
        value, pos = _bytes(buf, pos)
        n, pos = _varint(buf, pos)
        if n < 0:
            raise RecordBatchError(f"a header count of {n}")
        headers = []
        for _ in range(n):
            hk, pos = _bytes(buf, pos)
            hv, pos = _bytes(buf, pos)
            if hk is None:
                raise RecordBatchError("a header with a null key")
            try:
                headers.append((hk.decode(), hv))
            except UnicodeDecodeError:
                raise RecordBatchError("a header key that is not UTF-8") from None
        if pos != end:
            raise RecordBatchError("a record's length does not match its fields")
        out.append(Record(off_delta, base_ts + ts_delta, key, value, headers))
    if pos != len(buf):
        raise RecordBatchError(f"{len(buf) - pos} bytes after the batch's {count} records")
    return out


def _put_varint(out: bytearray, value: int) -> None:
    v = (value << 1) ^ (value >> 63)
    while v > 0x7F:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)


def _put_bytes(out: bytearray, b: bytes | None) -> None:
    if b is None:
        out.append(1)  # zigzag(-1)
    else:
        _put_varint(out, len(b))
        out += b


class BatchBuilder:
    """One uncompressed batch built record by record, in one buffer (a Fetch response's).

    A fetch of 1 MB used to hold every row as Python objects, then the records, then two
    more copies while the header went in front: ~5 MB of peak RSS per fetch for a 1 MB
    answer. Here each record is appended to the buffer the batch ends up in, and the
    header is written into the room kept for it at the start.
    """

    def __init__(self) -> None:
        self._buf = bytearray(HEADER_SIZE)
        self._rec = bytearray()
        self.count = 0
        self._base_offset = self._base_ts = self._max_ts = self._last_offset = 0

    def __len__(self) -> int:
        """The batch's size so far, header included."""
        return len(self._buf)

    def add(self, offset: int, timestamp: int, key: bytes | None, value: bytes | None,
            headers: list[tuple[str, bytes | None]]) -> None:
        """Append a record; offsets must ascend (a batch's deltas are from its first)."""
        if self.count == 0:
            self._base_offset = offset
            self._base_ts = self._max_ts = timestamp
        elif timestamp > self._max_ts:
            self._max_ts = timestamp
        rec = self._rec
        rec.clear()
        rec.append(0)  # attributes
        _put_varint(rec, timestamp - self._base_ts)
        _put_varint(rec, offset - self._base_offset)
        _put_bytes(rec, key)
        _put_bytes(rec, value)
        _put_varint(rec, len(headers))
        for hk, hv in headers:
            _put_bytes(rec, hk.encode())
            _put_bytes(rec, hv)
        _put_varint(self._buf, len(rec))
        self._buf += rec
        self._last_offset = offset
        self.count += 1

    def finish(self) -> bytes:
        """The batch; the builder is spent. Raises RecordBatchError if nothing was added."""
        if self.count == 0:
            raise RecordBatchError("a record batch needs at least one record")
        buf, self._buf = self._buf, bytearray()
        crc_at = _HEAD.size
        _BODY.pack_into(buf, crc_at, 0, self._last_offset - self._base_offset, self._base_ts,
                        self._max_ts, -1, -1, -1, self.count)
        length = len(buf) - 12  # after base offset and the length itself
        with memoryview(buf) as view:
            crc = crc32c(view[crc_at:])
        _HEAD.pack_into(buf, 0, self._base_offset, length, 0, MAGIC, crc)
        return bytes(buf)


def encode_batch(rows: list[tuple[int, int, bytes | None, bytes | None, list[tuple[str, bytes | None]]]]) -> bytes:
    """One uncompressed batch of ``(offset, timestamp, key, value, headers)`` rows (offset order)."""
    builder = BatchBuilder()
    for row in rows:
        builder.add(*row)
    return builder.finish()
