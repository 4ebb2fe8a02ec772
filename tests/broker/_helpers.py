"""What the broker tests share: opening clients on one config, reading a topic back whole."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import broker
from broker import KafkaAdminClient, KafkaConsumer, KafkaProducer, LogConfig, TopicPartition

REPO = Path(__file__).resolve().parents[2]
DAY_S = 24 * 3600


@contextmanager
def clients(cfg: LogConfig) -> Iterator[tuple[KafkaAdminClient, KafkaProducer]]:
    """An admin and a producer on ``cfg``, both closed afterwards."""
    admin = KafkaAdminClient(log_config=cfg)
    try:
        producer = KafkaProducer(log_config=cfg)
        try:
            yield admin, producer
        finally:
            producer.close()
    finally:
        admin.close()


def create(admin: KafkaAdminClient, name: str, partitions: int = 1, **configs: object) -> None:
    """Create a topic; ``configs`` use Kafka's names with '_' for '.' (retention_ms=...)."""
    conf = {k.replace("_", "."): str(v) for k, v in configs.items()}
    admin.create_topics([broker.NewTopic(name, partitions, 1, None, conf)])


def read_all(cfg: LogConfig, topic: str) -> list[broker.ConsumerRecord]:
    """Every record the topic holds now, in (partition, offset) order, through the public API."""
    with KafkaConsumer(log_config=cfg, auto_offset_reset="earliest") as consumer:
        parts = sorted(consumer.partitions_for_topic(topic) or ())
        tps = [TopicPartition(topic, p) for p in parts]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        out: list[broker.ConsumerRecord] = []
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            batch = consumer.poll(timeout_ms=0)
            if not batch:
                break
            for recs in batch.values():
                out.extend(recs)
    return sorted(out, key=lambda r: (r.partition, r.offset))


def offsets(cfg: LogConfig, topic: str) -> set[tuple[int, int]]:
    """The (partition, offset) pairs the topic holds now."""
    return {(r.partition, r.offset) for r in read_all(cfg, topic)}


def ledger(cfg: LogConfig) -> list[dict]:
    """The drop ledger's entries, oldest first."""
    with KafkaAdminClient(log_config=cfg) as admin:
        if broker.DROP_LEDGER_TOPIC not in admin.list_topics():
            return []
    return [json.loads(r.value) for r in read_all(cfg, broker.DROP_LEDGER_TOPIC)]


def ledger_offsets(entries: list[dict]) -> set[tuple[str, int, int]]:
    """The (topic, partition, offset) triples the ledger says were dropped."""
    out: set[tuple[str, int, int]] = set()
    for e in entries:
        for r in e["ranges"]:
            out.update((e["topic"], r["partition"], o) for o in range(r["from_offset"], r["to_offset"] + 1))
    return out


def run_tool(tool: str, *args: str, data_dir: Path | None = None, stdin: str | bytes | None = None,
             env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run one CLI tool as a real process: ``.venv/bin/edge-<tool>`` if installed, else ``-m broker``."""
    exe = Path(sys.executable).parent / f"edge-{tool}"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "broker", tool]
    if data_dir is not None:
        cmd += ["--data-dir", str(data_dir)]
    full_env = dict(os.environ)
    full_env.pop("EDGE_DATA_DIR", None)  # only what the test passes
    full_env.update(env or {})
    return subprocess.run(
        [*cmd, *args], input=stdin.encode() if isinstance(stdin, str) else stdin,
        capture_output=True, env=full_env, timeout=timeout, cwd=REPO,
    )
