"""A box under test: `edge run` with [control] against a real cluster, and the fleet's side
(signed pushes and commands with kafka-python, reported state and results read back)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from edge.control import (
    command_payload,
    desired_payload,
    generate_keypair,
    load_private_key,
    sign,
)
from tests.edge._helpers import health, start_edge, stop_edge, wait_for
from tests.edge._uplink_helpers import create_local_topics
from tests.fixtures.mosquitto import free_port


class Fleet:
    """The central side of one test: its own control topics, a signing key, a producer."""

    def __init__(self, tmp: Path, servers: str) -> None:
        self.servers = servers
        self.prefix = f"ctl-{uuid.uuid4().hex[:8]}"
        self.topics = {kind: f"{self.prefix}.{kind}" for kind in
                       ("desired", "commands", "reported", "results")}
        private, self.public_key_file = generate_keypair(tmp / "keys")
        self.key = load_private_key(private)
        admin = KafkaAdminClient(bootstrap_servers=servers)
        try:
            compact = {"cleanup.policy": "compact"}
            admin.create_topics([
                NewTopic(self.topics["desired"], 2, 1, topic_configs=compact),
                NewTopic(self.topics["commands"], 2, 1),
                NewTopic(self.topics["reported"], 1, 1, topic_configs=compact),
                NewTopic(self.topics["results"], 1, 1)])
        finally:
            admin.close()
        self.producer = KafkaProducer(bootstrap_servers=servers, acks="all")

    def control_toml(self, groups: list[str] | None = None, deadline: float = 20.0) -> str:
        t = self.topics
        return (f'[control]\nenabled = true\npublic_keys = ["{self.public_key_file}"]\n'
                f'groups = {json.dumps(groups or [])}\nhealth_deadline = {deadline}\n'
                f'desired_topic = "{t["desired"]}"\ncommands_topic = "{t["commands"]}"\n'
                f'reported_topic = "{t["reported"]}"\nresults_topic = "{t["results"]}"\n')

    def send(self, kind: str, key: str, value: bytes) -> None:
        self.producer.send(self.topics[kind], value, key=key.encode()).get(timeout=30)

    def push(self, target: str, version: int, config: dict[str, Any], key: Any = None) -> None:
        payload = desired_payload(target, version, config, issued_ms=int(time.time() * 1000))
        self.send("desired", target, sign(payload, key or self.key))

    def command(self, target: str, command: str, args: dict[str, Any] | None = None,
                ttl_ms: int = 60_000, issued_ms: int | None = None) -> bytes:
        issued = int(time.time() * 1000) if issued_ms is None else issued_ms
        value = sign(command_payload(target, command, args, issued, ttl_ms), self.key)
        self.send("commands", target, value)
        return value

    def read(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        consumer = KafkaConsumer(bootstrap_servers=self.servers, enable_auto_commit=False)
        try:
            tp = TopicPartition(self.topics[kind], 0)
            consumer.assign([tp])
            consumer.seek_to_beginning(tp)
            end = consumer.end_offsets([tp])[tp]
            out = []
            while consumer.position(tp) < end:
                for records in consumer.poll(timeout_ms=1000).values():
                    out += [(r.key.decode(), json.loads(r.value)) for r in records]
            return out
        finally:
            consumer.close()

    def reported(self, edge_id: str) -> dict[str, Any] | None:
        """The latest reported state of ``edge_id`` (what a compacted read gives)."""
        latest = [doc for key, doc in self.read("reported") if key == edge_id]
        return latest[-1] if latest else None

    def wait_reported(self, edge_id: str, pred: Any, what: str, timeout: float = 60) -> dict[str, Any]:
        return wait_for(lambda: (r := self.reported(edge_id)) is not None and pred(r) and r,
                        timeout, what, every=0.5)

    def close(self) -> None:
        self.producer.close()


class Box:
    """One `edge run` with [upstream] at ``servers`` and the fleet's [control]."""

    def __init__(self, tmp: Path, fleet: Fleet, servers: str, *, devices: str = "",
                 groups: list[str] | None = None, deadline: float = 20.0,
                 local_topics: tuple[str, ...] = (), heartbeat: float | None = None) -> None:
        self.edge_id = f"box-{uuid.uuid4().hex[:8]}"
        self.tmp, self.port = tmp, free_port()
        self.config = tmp / "edge.toml"
        self.log = tmp / "edge.log"
        self.local_topics = ("dead-letters", *local_topics)
        topics = {t: f"{fleet.prefix}.{t}" for t in self.local_topics}
        self.upstream = {"bootstrap_servers": servers, "topics": topics}
        self.config.write_text(
            f'edge_id = "{self.edge_id}"\ndata_dir = "{tmp / "data"}"\n'
            f'[log]\npartitions = 1\ndurability = "no-fsync"\n'
            f'[health]\naddress = "127.0.0.1:{self.port}"\n'
            f'[upstream]\nbootstrap_servers = "{servers}"\n'
            f'topics = {{ {", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in topics.items())} }}\n'
            + fleet.control_toml(groups, deadline)
            + (f"heartbeat = {heartbeat}\n" if heartbeat is not None else "") + devices)
        self.proc: Any = None

    def start(self) -> None:
        if not (self.tmp / "data").exists():  # so the uplink has a topic to map upstream
            create_local_topics(self.tmp / "data", dict.fromkeys(self.local_topics, 1))
        self.proc = start_edge(self.config, self.log)

    def health(self) -> dict[str, Any]:
        return wait_for(lambda: health(self.port), 30, f"/health of {self.edge_id}")

    def wait_health(self, pred: Any, what: str, timeout: float = 60) -> dict[str, Any]:
        return wait_for(lambda: (h := health(self.port)) is not None and pred(h) and h,
                        timeout, what)

    def stop(self) -> None:
        if self.proc is not None:
            code = stop_edge(self.proc, self.log)
            self.proc = None
            assert code == 0, self.log.read_text()
            for bad in ("Traceback", "Warning:", "never awaited"):
                assert bad not in self.log.read_text(), self.log.read_text()

    def text(self) -> str:
        return self.log.read_text()
