"""Uplink throughput beside a plain aiokafka producer sending the same records from memory.

    .venv/bin/python bench/bench_uplink.py [--records N] [--value-bytes B] [--brokers 1|3]

Starts its own Kafka cluster (deploy.kafka), writes N records (100 keys) to a
fresh local log, then for exactly-once and at-least-once:
  plain  = AIOKafkaProducer with the uplink's settings (idempotent, acks=all, lz4,
           linger 5 ms, 256 KiB batches; transactional with one transaction per
           batch of 1000 records for exactly-once) sending the records from a list;
  uplink = edge.uplink.Uplink replicating the same records from the local log
           (timed from "online" to the last record committed upstream).
Floor: the uplink reaches 70% of the plain producer's records/s.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaProducer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from broker import KafkaConsumer, KafkaProducer  # noqa: E402
from deploy.kafka import KafkaCluster  # noqa: E402
from edge.uplink import Uplink, UplinkConfig, UplinkState  # noqa: E402

BATCH = 1000


def write_local(data_dir: Path, topic: str, n: int, value_bytes: int) -> list:
    with KafkaProducer(data_dir) as producer:
        futures = [producer.send(topic, f"{i}".encode().ljust(value_bytes, b"x"),
                                 key=f"dev-{i % 100}".encode(), headers=[("source", b"bench")])
                   for i in range(n)]
        for f in futures:
            f.get(timeout=60)
    with KafkaConsumer(topic, data_dir=data_dir, auto_offset_reset="earliest",
                       consumer_timeout_ms=2000) as consumer:
        return list(consumer)


async def plain(servers: str, records: list, eos: bool) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=servers, acks="all", enable_idempotence=True, compression_type="lz4",
        linger_ms=5, max_batch_size=256 * 1024,
        transactional_id=f"bench-{uuid.uuid4().hex[:6]}" if eos else None)
    await producer.start()
    topic = f"plain-{uuid.uuid4().hex[:6]}"
    try:
        if eos:
            await producer.begin_transaction()
        await producer.send_and_wait(topic, b"warm-up")
        if eos:
            await producer.commit_transaction()
        t0 = time.perf_counter()
        for i in range(0, len(records), BATCH):
            if eos:
                await producer.begin_transaction()
            futures = [await producer.send(topic, r.value, r.key, timestamp_ms=r.timestamp,
                                           headers=r.headers + [("edge.id", b"bench")])
                       for r in records[i:i + BATCH]]
            await asyncio.gather(*futures)
            if eos:
                await producer.commit_transaction()
        return time.perf_counter() - t0
    finally:
        await producer.stop()


async def uplink(servers: str, data_dir: Path, topic: str, n: int, delivery: str) -> float:
    cfg = UplinkConfig(edge_id=f"bench-{uuid.uuid4().hex[:6]}", bootstrap_servers=servers,
                       data_dir=data_dir, topics={topic: f"up-{uuid.uuid4().hex[:6]}"},
                       delivery=delivery, batch_records=BATCH, replicate_drop_ledger=False)
    async with Uplink(cfg) as up:
        while up.state != UplinkState.ONLINE:
            await asyncio.sleep(0.01)
        t0 = time.perf_counter()
        while up.status().records_total < n:
            await asyncio.sleep(0.005)
        return time.perf_counter() - t0


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=50_000)
    ap.add_argument("--value-bytes", type=int, default=100)
    ap.add_argument("--brokers", type=int, default=1, choices=(1, 3))
    args = ap.parse_args()
    with KafkaCluster(brokers=args.brokers) as cluster, tempfile.TemporaryDirectory() as tmp:
        data_dir, topic = Path(tmp) / "log", "bench"
        records = await asyncio.to_thread(write_local, data_dir, topic, args.records, args.value_bytes)
        nbytes = sum(len(r.key) + len(r.value) for r in records)
        print(f"{args.records} records of {args.value_bytes} B, {args.brokers} broker(s), lz4,"
              f" batches of {BATCH}")
        print(f"{'delivery':<15}{'plain rec/s':>13}{'uplink rec/s':>14}{'uplink MB/s':>13}{'ratio':>8}")
        for delivery in ("exactly-once", "at-least-once"):
            p = await plain(cluster.bootstrap_servers, records, delivery == "exactly-once")
            u = await uplink(cluster.bootstrap_servers, data_dir, topic, args.records, delivery)
            print(f"{delivery:<15}{args.records / p:>13,.0f}{args.records / u:>14,.0f}"
                  f"{nbytes / u / 1e6:>13.2f}{p / u:>8.0%}")


if __name__ == "__main__":
    asyncio.run(main())
