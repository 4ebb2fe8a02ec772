"""The fleet's control channel at scale: many lightweight boxes against a 3-broker cluster.

    .venv/bin/python bench/bench_fleet.py                       # 200 clients, 4 processes
    .venv/bin/python bench/bench_fleet.py --clients 40 --processes 2 --seconds 5 --runs 1

Starts its own 3-broker KRaft cluster (deploy.kafka: replication factor 3,
min.insync.replicas 2) and --clients control clients, asyncio tasks spread over
--processes processes. Each client is what a box's control side holds: its own
AIOKafkaConsumer of the desired and commands topics (every partition assigned, no group:
a box reads all of the compacted desired topic) and a producer of its reported state.

  transactions  each client, for --seconds, in a loop: begin a transaction, send its
                reported document (~600 B, keyed by its id, to the compacted reported
                topic), add its uplink checkpoint (send_offsets_to_transaction for group
                edge-uplink-<id>, the uplink's own shape: offset + JSON metadata on
                partition 0 of an upstream topic), commit. Peer ("plain"): the same
                clients sending the same records with an idempotent, non-transactional
                producer, one acks=all send at a time. Phases interleaved, --runs times.
  push          the operator publishes --pushes signed desired states for group:all
                (edge.fleet.publish_desired, the CLI's own code); every client's consumer
                reads it and verifies the Ed25519 signature. Latency = receipt (verified)
                minus the moment before the publish, per client; p50, p99 and max over
                every client and push. Peer ("one box"): the same pushes read by one
                client while the others stay connected but idle.
  sizes         the bytes on disk of the reported topic and of __consumer_offsets (where
                the checkpoints live), summed over the 3 replicas, after the run; the live
                (compacted) state = the latest record per key, read with read_compacted.

Cells are "median [min-max]" over the runs. Everything shares the machine's cores with
the 3 brokers, which a real cluster would not: the figures are lower bounds for the
cluster and upper bounds for latency. docs/fleet.md extrapolates from them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._table import Table

PREFIX = "bench.control"
UPSTREAM = "bench.readings"  # the topic whose partition 0 carries each uplink's checkpoint


def _reported(edge_id: str, n: int) -> bytes:
    doc = {"edge_id": edge_id, "ts_ms": int(time.time() * 1000), "software_version": "0.1.0",
           "applied": {"version": 1, "hash": "a" * 64, "target": "group:all"},
           "desired_result": {"version": 1, "result": "applied"},
           "devices": {"t1": {"state": "up", "rate": 1.0}},
           "log": {"bytes": 123_456 + n, "quota": 1 << 30, "records": 1000 + n},
           "uplink": {"state": "running", "lag_records": n % 7, "lag_s": 0.0},
           "clock": "synced", "last_error": None}
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


# -- a worker process: its share of the clients ------------------------------------------------


class _Client:
    def __init__(self, edge_id: str, servers: str, public_key: Any) -> None:
        self.edge_id = edge_id
        self.servers = servers
        self.public_key = public_key
        self.n = 0

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
        from aiokafka.structs import TopicPartition

        # retry_backoff_ms as the uplink's: a begin right after a commit waits out
        # CONCURRENT_TRANSACTIONS while the markers are written, by this much each time
        self.txn = AIOKafkaProducer(bootstrap_servers=self.servers, acks="all",
                                    enable_idempotence=True, linger_ms=0, retry_backoff_ms=20,
                                    transactional_id=f"edge-control-{self.edge_id}")
        self.plain = AIOKafkaProducer(bootstrap_servers=self.servers, acks="all",
                                      enable_idempotence=True, linger_ms=0, retry_backoff_ms=20)
        self.consumer = AIOKafkaConsumer(bootstrap_servers=self.servers, group_id=None,
                                         enable_auto_commit=False)
        await self.txn.start()
        await self.plain.start()
        await self.consumer.start()
        parts = await self.consumer._client.fetch_all_metadata()  # bench only
        self.tps = [TopicPartition(t, p) for t in (f"{PREFIX}.desired", f"{PREFIX}.commands")
                    for p in sorted(parts.partitions_for_topic(t) or ())]
        self.consumer.assign(self.tps)
        self.checkpoint_tp = TopicPartition(UPSTREAM, 0)

    async def transactions(self, deadline: float) -> int:
        from aiokafka.structs import OffsetAndMetadata

        done = 0
        while time.monotonic() < deadline:
            self.n += 1
            await self.txn.begin_transaction()
            await self.txn.send(f"{PREFIX}.reported", _reported(self.edge_id, self.n),
                                key=self.edge_id.encode())
            meta = json.dumps({"t": "readings", "o": {"0": self.n}})
            await self.txn.send_offsets_to_transaction(
                {self.checkpoint_tp: OffsetAndMetadata(self.n, meta)},
                f"edge-uplink-{self.edge_id}")
            await self.txn.commit_transaction()
            done += 1
        return done

    async def plain_sends(self, deadline: float) -> int:
        done = 0
        while time.monotonic() < deadline:
            self.n += 1
            await self.plain.send_and_wait(f"{PREFIX}.reported", _reported(self.edge_id, self.n),
                                           key=self.edge_id.encode())
            done += 1
        return done

    async def to_end(self) -> None:
        await self.consumer.seek_to_end(*self.tps)
        for tp in self.tps:
            await self.consumer.position(tp)

    async def receive(self, versions: int, timeout_s: float) -> list[tuple[int, float]]:
        from edge.control import parse_desired, verify

        got: list[tuple[int, float]] = []
        deadline = time.monotonic() + timeout_s
        while len(got) < versions and time.monotonic() < deadline:
            batches = await self.consumer.getmany(timeout_ms=100)
            for records in batches.values():
                for r in records:
                    if r.topic.endswith(".desired"):
                        d = parse_desired(verify(r.value, [self.public_key]))
                        got.append((d.version, time.time()))
        return got

    async def stop(self) -> None:
        for c in (self.txn, self.plain, self.consumer):
            await c.stop()


async def _serve(conn: Connection, servers: str, ids: list[str], public_pem: str) -> None:
    from edge.control import load_public_key

    public = load_public_key(public_pem)
    clients = [_Client(i, servers, public) for i in ids]
    for i in range(0, len(clients), 10):  # a few at a time: 600 connects at once time out
        await asyncio.gather(*(c.start() for c in clients[i:i + 10]))
    loop = asyncio.get_running_loop()
    conn.send(("ready", len(clients)))
    while True:
        msg = await loop.run_in_executor(None, conn.recv)
        kind = msg[0]
        if kind in ("txn", "plain"):
            deadline = time.monotonic() + msg[1]
            fn = _Client.transactions if kind == "txn" else _Client.plain_sends
            counts = await asyncio.gather(*(fn(c, deadline) for c in clients))
            conn.send(sum(counts))
        elif kind == "listen":
            active = [c for c in clients if c.edge_id in msg[1]]
            await asyncio.gather(*(c.to_end() for c in clients))
            conn.send("positioned")
            got = await asyncio.gather(*(c.receive(msg[2], msg[3]) for c in active))
            conn.send([(c.edge_id, g) for c, g in zip(active, got, strict=True)])
        elif kind == "stop":
            await asyncio.gather(*(c.stop() for c in clients))
            conn.send("stopped")
            return


def _worker(conn: Connection, servers: str, ids: list[str], public_pem: str) -> None:
    asyncio.run(_serve(conn, servers, ids, public_pem))


# -- the operator's side ------------------------------------------------------------------------


def _create_topics(servers: str, partitions: int) -> None:
    async def create() -> None:
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        admin = AIOKafkaAdminClient(bootstrap_servers=servers)
        await admin.start()
        try:
            compact = {"cleanup.policy": "compact"}
            await admin.create_topics([
                NewTopic(f"{PREFIX}.desired", partitions, 3, topic_configs=compact),
                NewTopic(f"{PREFIX}.commands", partitions, 3),
                NewTopic(f"{PREFIX}.reported", partitions, 3, topic_configs=compact),
                NewTopic(f"{PREFIX}.results", partitions, 3),
                NewTopic(UPSTREAM, partitions, 3)])
        finally:
            await admin.close()
    asyncio.run(create())


def _push(servers: str, key: str, version: int) -> float:
    """Publish one desired state for group:all; the wall time just before it was sent."""
    from edge.control import ControlTopics, load_private_key
    from edge.fleet import FleetConnection, publish_desired

    topics = ControlTopics(*(f"{PREFIX}.{t}" for t in ("desired", "commands", "reported",
                                                        "results")))
    t0 = time.time()
    asyncio.run(publish_desired(FleetConnection(servers), "group:all",
                                {"log": {"retention_seconds": 86400 + version}},
                                load_private_key(key), version, topics))
    return t0


def _disk_bytes(cluster: Any, prefixes: tuple[str, ...]) -> int:
    """The bytes of the partitions' segment files (.log), every replica: the data itself
    (the index files are preallocated at 10 MB each whatever they hold)."""
    total = 0
    for broker in cluster.brokers:
        for d in Path(broker.data_dir).iterdir():
            if d.is_dir() and d.name.startswith(prefixes):
                total += sum(f.stat().st_size for f in d.glob("*.log"))
    return total


def _percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=200)
    p.add_argument("--processes", type=int, default=4)
    p.add_argument("--seconds", type=float, default=15.0, help="length of each phase")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--pushes", type=int, default=5)
    p.add_argument("--partitions", type=int, default=6, help="of each control topic")
    p.add_argument("--json", metavar="FILE", help="also write the tables as JSON")
    args = p.parse_args(argv)

    from deploy.kafka import ClusterSettings, KafkaCluster
    from edge.control import generate_keypair
    from edge.fleet import FleetConnection, read_compacted

    keydir = tempfile.mkdtemp(prefix="bench-fleet-")
    private, public = generate_keypair(keydir)
    ids = [f"box-{i:05d}" for i in range(args.clients)]
    shares = [ids[i::args.processes] for i in range(args.processes)]
    txn = Table("fleet_txn", f"{args.clients} control clients in {args.processes} processes, "
                "3 brokers", ["transactional", "plain"])
    push = Table("fleet_push", f"a signed desired state pushed to group:all "
                 f"({args.pushes} pushes a run)", [f"{args.clients} boxes", "one box"])
    size = Table("fleet_size", "compacted state and checkpoints after the run", ["bytes"],
                 ratios=False)
    with KafkaCluster(settings=ClusterSettings(brokers=3)) as cluster:
        servers = cluster.bootstrap_servers
        _create_topics(servers, args.partitions)
        ctx = mp.get_context("spawn")
        pipes, procs = [], []
        started = time.monotonic()
        for share in shares:
            here, there = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(there, servers, share, str(public)))
            proc.start()
            pipes.append(here)
            procs.append(proc)
        for pipe in pipes:
            assert pipe.recv()[0] == "ready"
        print(f"{args.clients} clients connected in {time.monotonic() - started:.1f} s",
              file=sys.stderr)
        version = 0
        try:
            for run in range(args.runs):
                for kind, column in (("txn", "transactional"), ("plain", "plain")):
                    for pipe in pipes:
                        pipe.send((kind, args.seconds))
                    n = sum(pipe.recv() for pipe in pipes)
                    txn.add("reported records committed / s", column, n / args.seconds)
                    txn.add("per client / s", column, n / args.seconds / args.clients)
                for column, active in ((f"{args.clients} boxes", set(ids)), ("one box", {ids[0]})):
                    for pipe in pipes:
                        pipe.send(("listen", active, args.pushes, 60.0))
                    for pipe in pipes:
                        assert pipe.recv() == "positioned"
                    sent: dict[int, float] = {}
                    for _ in range(args.pushes):
                        version += 1
                        sent[version] = _push(servers, str(private), version)
                        time.sleep(0.5)
                    got = [item for pipe in pipes for item in pipe.recv()]
                    lat = [(t - sent[v]) * 1000 for _, g in got for v, t in g if v in sent]
                    missing = len(active) * args.pushes - len(lat)
                    push.add("p50 ms", column, statistics.median(lat), higher_is_better=False)
                    push.add("p99 ms", column, _percentile(lat, 0.99), higher_is_better=False)
                    push.add("max ms (every box has it)", column, max(lat),
                             higher_is_better=False)
                    push.add("pushes not received in 60 s", column, missing, compare=False)
                print(f"run {run + 1}/{args.runs} done", file=sys.stderr)
        finally:
            for pipe in pipes:
                pipe.send(("stop",))
            for pipe, proc in zip(pipes, procs, strict=True):
                pipe.recv()
                proc.join(30)
        live = asyncio.run(read_compacted(FleetConnection(servers), f"{PREFIX}.reported"))
        live_bytes = sum(len(r.key or b"") + len(r.value or b"") for r in live.values())
        size.add("reported topic on disk, 3 replicas", "bytes",
                 _disk_bytes(cluster, (f"{PREFIX}.reported-",)), compare=False)
        size.add("reported: live keys x latest record (compacted size, 1 replica)", "bytes",
                 live_bytes, compare=False)
        size.add("reported: live keys", "bytes", len(live), compare=False)
        size.add("__consumer_offsets on disk, 3 replicas (checkpoints)", "bytes",
                 _disk_bytes(cluster, ("__consumer_offsets-",)), compare=False)
        size.add("__transaction_state on disk, 3 replicas", "bytes",
                 _disk_bytes(cluster, ("__transaction_state-",)), compare=False)
    for table in (txn, push, size):
        print(f"\n### {table.title}\n\n{table.markdown()}")
    if args.json:
        Path(args.json).write_text(json.dumps([t.as_dict() for t in (txn, push, size)], indent=2))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
