"""The dedupe indexes, the log tail they are primed from (a real log), and the config key."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import weakref

import pytest

from broker import KafkaProducer
from devices import Delivery
from edge._config import parse_config
from edge._dedupe import DELIVERY_HEADER, ContentIndex, RedeliveryIndex, TailRecord, read_tail
from edge._errors import ConfigError
from edge._example import EXAMPLE_CONFIG

DEVICE = """
edge_id = "edge-1"
data_dir = "/tmp/edge"

[[devices]]
name = "cuffs"
kind = "blood_pressure"
transport = "mqtt"
host = "127.0.0.1"
codec = "bp.json"
"""


async def _resolved() -> asyncio.Future[None]:
    f = asyncio.get_running_loop().create_future()
    f.set_result(None)
    return f


async def _failed() -> asyncio.Future[None]:
    f = asyncio.get_running_loop().create_future()
    f.set_exception(OSError("disk gone"))
    return f


def test_mqtt_delivery_names_session_packet_part_and_payload() -> None:
    a = Delivery.mqtt("edge-1-cuffs", 7, b'{"systolic":120}', 0, redelivered=True)
    assert a.redelivered and a.identity == Delivery.mqtt("edge-1-cuffs", 7, b'{"systolic":120}').identity
    others = {Delivery.mqtt("edge-1-cuffs", 8, b'{"systolic":120}').identity,
              Delivery.mqtt("edge-1-cuffs", 7, b'{"systolic":121}').identity,
              Delivery.mqtt("edge-1-cuffs", 7, b'{"systolic":120}', 1).identity,
              Delivery.mqtt("edge-2-cuffs", 7, b'{"systolic":120}').identity,
              # A new session's packet ids start over; the same payload on another topic
              # is another message (the broker-restart loss of issue #10).
              Delivery.mqtt("edge-1-cuffs", 7, b'{"systolic":120}', session="9f0e").identity,
              Delivery.mqtt("edge-1-cuffs", 7, b'{"systolic":120}', topic="bp/b").identity}
    assert a.identity not in others and len(others) == 6


async def test_priming_keeps_the_newest_identities_across_partitions() -> None:
    # read_tail returns a topic partition by partition; the bound must keep the newest.
    tail = [TailRecord(b"k", 0, b"{}", {DELIVERY_HEADER: b"new", "ingest_ms": b"300"}),
            TailRecord(b"k", 0, b"{}", {DELIVERY_HEADER: b"old", "ingest_ms": b"100"}),
            TailRecord(b"k", 0, b"{}", {DELIVERY_HEADER: b"mid", "ingest_ms": b"200"})]
    index = RedeliveryIndex(limit=2)
    assert index.prime(tail, await _resolved()) == 3
    assert index.prior(b"old") is None
    assert index.prior(b"mid") is not None and index.prior(b"new") is not None


async def test_redelivery_index_waits_on_a_write_in_flight_and_forgets_a_failed_one() -> None:
    index = RedeliveryIndex(limit=2)
    pending: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    index.add(b"a", pending)
    assert index.prior(b"a") is pending  # the copy is acked only when the first is durable
    assert index.prior(b"b") is None
    index.add(b"b", await _failed())
    assert index.prior(b"b") is None, "a failed first write must not swallow its redelivery"
    index.add(b"c", await _resolved())
    index.add(b"d", await _resolved())
    assert index.prior(b"a") is None and len(index) == 2, "bounded: the oldest goes"
    pending.cancel()


async def test_redelivery_index_evicts_the_least_recently_written_first() -> None:
    index = RedeliveryIndex(limit=3)
    done = await _resolved()
    for identity in (b"a", b"b", b"c"):
        index.add(identity, done)
    index.add(b"a", done)  # written again: the newest now
    index.add(b"d", done)
    assert [i for i in (b"a", b"b", b"c", b"d") if index.prior(i) is not None] == [b"a", b"c", b"d"]
    for n in range(100):  # evictions one after another, as at full load
        index.add(b"x%d" % n, done)
    assert len(index) == 3
    assert [n for n in range(100) if index.prior(b"x%d" % n) is not None] == [97, 98, 99]


async def test_redelivery_index_lets_go_of_durable_writes_futures() -> None:
    # Each entry held its write's future for as long as it was remembered: 20,000 futures
    # per device (8.6 MB at three MQTT devices) for what one resolved future says.
    loop = asyncio.get_running_loop()
    index = RedeliveryIndex(limit=1000)
    alive: list[weakref.ref[asyncio.Future[None]]] = []
    in_flight: list[asyncio.Future[None]] = []
    for n in range(5020):  # the last 20 stay in flight
        write: asyncio.Future[None] = loop.create_future()
        index.add(b"id-%d" % n, write)
        alive.append(weakref.ref(write))
        in_flight.append(write)
        if len(in_flight) == 50:  # the log completes a commit's writes together, in order
            for w in in_flight:
                w.set_result(None)
            in_flight.clear()
        del write
    held = sum(ref() is not None for ref in alive)
    assert held <= 50 + 1, f"{held} write futures held by a 1000-entry index"
    assert len(index) == 1000
    assert index.prior(b"id-4020") is not None and index.prior(b"id-4019") is None
    assert index.prior(b"id-5019") is in_flight[-1], "a write in flight is still waited on"
    for w in in_flight:
        w.set_result(None)


async def test_content_index_lets_go_of_durable_writes_futures() -> None:
    loop = asyncio.get_running_loop()
    index = ContentIndex(300.0, clock=lambda: 0.0, limit=1000)
    alive: list[weakref.ref[asyncio.Future[None]]] = []
    in_flight: list[asyncio.Future[None]] = []
    for n in range(5020):  # the last 20 stay in flight
        write: asyncio.Future[None] = loop.create_future()
        index.add(ContentIndex.key(b"bed-1", n, b"{}"), write)
        alive.append(weakref.ref(write))
        in_flight.append(write)
        if len(in_flight) == 50:
            for w in in_flight:
                w.set_result(None)
            in_flight.clear()
        del write
    held = sum(ref() is not None for ref in alive)
    assert held <= 50 + 1, f"{held} write futures held by a 1000-entry index"
    assert len(index) == 1000
    assert index.prior(ContentIndex.key(b"bed-1", 4020, b"{}")) is not None
    assert index.prior(ContentIndex.key(b"bed-1", 5019, b"{}")) is in_flight[-1]
    for w in in_flight:
        w.set_result(None)


async def test_redelivery_index_stays_bounded_when_a_write_never_completes() -> None:
    loop = asyncio.get_running_loop()
    index = RedeliveryIndex(limit=10)
    stuck: asyncio.Future[None] = loop.create_future()
    index.add(b"stuck", stuck)
    for n in range(100):
        index.add(b"id-%d" % n, await _resolved())
    assert len(index) == 10 and len(index._writing) <= 10
    stuck.cancel()


async def test_redelivery_index_primes_from_delivery_headers() -> None:
    tail = [TailRecord(b"k", 1, b"{}", {DELIVERY_HEADER: b"mqtt:x:1:0:ab"}),
            TailRecord(b"k", 2, b"{}", {"source": b"/dev/ttyUSB0"})]
    index = RedeliveryIndex()
    assert index.prime(tail, await _resolved()) == 1
    assert index.prior(b"mqtt:x:1:0:ab") is not None


async def test_a_device_primes_only_its_own_clients_deliveries() -> None:
    # Devices sharing a topic each read the same tail back; each keeps its own identities.
    tail = [TailRecord(b"k", 1, b"{}", {DELIVERY_HEADER: b"mqtt:edge-a:e1:7:0:ab"}),
            TailRecord(b"k", 2, b"{}", {DELIVERY_HEADER: b"mqtt:edge-ab:e1:8:0:cd"}),
            TailRecord(b"k", 3, b"{}", {DELIVERY_HEADER: b"mqtt:edge-b:e1:9:0:ef"})]
    index = RedeliveryIndex()
    assert index.prime(tail, await _resolved(), b"mqtt:edge-a:") == 1
    assert index.prior(b"mqtt:edge-a:e1:7:0:ab") is not None
    assert index.prior(b"mqtt:edge-ab:e1:8:0:cd") is None and len(index) == 1


async def test_content_index_drops_within_the_window_only() -> None:
    now = [100.0]
    index = ContentIndex(60, clock=lambda: now[0])
    key = ContentIndex.key(b"bed-1", 1_700_000_000_000, b'{"systolic_mmhg":120}')
    assert index.prior(key) is None
    index.add(key, await _resolved())
    assert index.prior(key) is not None
    assert index.prior(ContentIndex.key(b"bed-1", 1_700_000_000_000, b'{"systolic_mmhg":121}')) \
        is None, "same time, other value: another reading"
    assert index.prior(ContentIndex.key(b"bed-2", 1_700_000_000_000, b'{"systolic_mmhg":120}')) \
        is None, "same time and value, other device: another reading"
    now[0] += 61
    assert index.prior(key) is None and len(index) == 0, "past the window it is forgotten"


async def test_content_index_primes_what_arrived_within_the_window() -> None:
    index = ContentIndex(60, clock=lambda: 1000.0)
    now_ms = 1_700_000_100_000
    tail = [TailRecord(b"bed-1", 5, b"old", {"ingest_ms": str(now_ms - 120_000).encode()}),
            TailRecord(b"bed-1", 6, b"new", {"ingest_ms": str(now_ms - 10_000).encode()}),
            TailRecord(b"bed-1", 7, b"none", {})]
    assert index.prime(tail, await _resolved(), now_ms) == 1
    assert index.prior(ContentIndex.key(b"bed-1", 6, b"new")) is not None
    assert index.prior(ContentIndex.key(b"bed-1", 5, b"old")) is None


def test_read_tail_reads_the_last_records_of_every_partition(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "data"
    with KafkaProducer(data_dir=str(data)) as producer:
        for i in range(30):
            producer.send("bp", f'{{"i":{i}}}'.encode(), f"bed-{i % 3}".encode(),
                          [(DELIVERY_HEADER, f"mqtt:c:{i}:0:x".encode())], None, 1000 + i)
        producer.flush()
    tail = read_tail(data, "bp", per_partition=4)
    by_key: dict[bytes, list[int]] = {}
    for r in tail:
        by_key.setdefault(r.key, []).append(r.timestamp_ms)
    total = sum(len(v) for v in by_key.values())
    assert 4 <= total <= 4 * len({r.key for r in tail}) and total < 30
    assert max(r.timestamp_ms for r in tail) == 1029, "the newest record is in the tail"
    assert all(r.headers[DELIVERY_HEADER].startswith(b"mqtt:c:") for r in tail)
    assert read_tail(data, "no-such-topic") == []


@pytest.mark.parametrize(("value", "shown"), [("-1", "-1"), ("86401", "86401"), ('"5m"', '"5m"'),
                                              ("true", "true")])
def test_dedupe_window_errors_name_file_key_and_expectation(value: str, shown: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(DEVICE + f"dedupe_window = {value}\n", "edge.toml")
    assert [str(p) for p in info.value.errors] == [
        f"edge.toml: devices[0].dedupe_window: expected a number of seconds in 0..86400 (0: off), "
        f"got {shown}"]


def test_dedupe_window_is_off_by_default_and_in_the_example() -> None:
    assert parse_config(DEVICE).devices[0].dedupe_window == 0
    assert parse_config(DEVICE + "dedupe_window = 90.5\n").devices[0].dedupe_window == 90.5
    example = subprocess.run([sys.executable, "-m", "edge", "config", "example"],
                             capture_output=True, text=True, check=True).stdout
    assert example == EXAMPLE_CONFIG and "\ndedupe_window = 300" in example
    assert [d.dedupe_window for d in parse_config(example).devices] == [0, 0, 300]
