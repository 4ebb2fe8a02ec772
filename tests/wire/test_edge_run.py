"""``edge run`` with [kafka] listen: the listener shares the service's log and survives SIGKILL
with every acknowledged record."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.admin import NewTopic

import broker
from edge._status import render
from tests.edge._helpers import health, start_edge, stop_edge, wait_for, write_config
from tests.fixtures.mosquitto import free_port


def _config(tmp_path: Path, kafka_port: int, host: str = "127.0.0.1") -> tuple[Path, int]:
    return write_config(tmp_path, "", extra=f'[kafka]\nlisten = "{host}:{kafka_port}"\n')


_PRODUCER = """
import sys
from kafka import KafkaProducer
p = KafkaProducer(bootstrap_servers=sys.argv[1], acks="all", linger_ms=2, retries=0)
def ack(i):
    return lambda md: print(i, md.offset, flush=True)
i = 0
while True:
    p.send("wired", str(i).encode()).add_callback(ack(i))
    i += 1
    if i % 50 == 0:
        p.flush()
"""


def test_edge_run_serves_kafka_clients_and_loses_no_acknowledged_record_to_sigkill(tmp_path: Path) -> None:
    kport = free_port()
    config, hport = _config(tmp_path, kport)
    edge_log = tmp_path / "edge.log"
    edge = start_edge(config, edge_log)
    try:
        wait_for(lambda: health(hport), 30, "edge run's /health")
        admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{kport}")
        admin.create_topics([NewTopic("wired", 1, 1)])
        admin.close()
        # The client runs in a process of its own, killed with the service: what it printed
        # is what the listener acknowledged.
        client = subprocess.Popen([sys.executable, "-c", _PRODUCER, f"127.0.0.1:{kport}"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert client.stdout is not None
        lines = []
        while len(lines) < 300:
            line = client.stdout.readline()
            assert line, "the producer stopped before 300 acknowledgements"
            lines.append(line)
        h = health(hport)
        assert h is not None and h["kafka"]["connections"] >= 1 and h["kafka"]["requests"]["Produce"] >= 1
        with urllib.request.urlopen(f"http://127.0.0.1:{hport}/metrics", timeout=5) as r:
            metrics = r.read().decode()
        assert 'edge_kafka_requests_total{api="Produce"}' in metrics and "edge_kafka_connections " in metrics
        assert h["kafka"]["requests_per_s"]["Produce"] > 0  # a rate, beside the count since the start
        assert "kafka: " in render(h) and "Produce" in render(h) and "requests/s" in render(h)
        edge.send_signal(signal.SIGKILL)
        edge.wait(10)
        client.kill()
        rest, _ = client.communicate(timeout=10)
        lines += rest.splitlines()
    finally:
        if edge.poll() is None:
            edge.kill()
            edge.wait()
    ack = dict(tuple(map(int, line.split())) for line in lines if line.strip())
    data_dir = tmp_path / "data"
    with broker.KafkaConsumer("wired", data_dir=data_dir, auto_offset_reset="earliest") as c:
        stored = []
        while batch := c.poll(timeout_ms=300):
            stored += [(r.offset, int(r.value)) for rs in batch.values() for r in rs]
    assert [off for off, _ in stored] == list(range(len(stored)))  # offsets continuous
    at = dict(stored)
    assert all(at.get(off) == i for i, off in ack.items()), "an acknowledged record is missing"
    # and the service starts again on the same log; serving the same records
    edge = start_edge(config, edge_log)
    try:
        wait_for(lambda: health(hport), 30, "edge run's /health after the kill")
        out = subprocess.run([sys.executable, "-c",
                              "import sys; from kafka import KafkaConsumer, TopicPartition as T;"
                              f"c = KafkaConsumer(bootstrap_servers='127.0.0.1:{kport}');"
                              "tp = T('wired', 0); print(c.end_offsets([tp])[tp])"],
                             capture_output=True, text=True, timeout=60)
        assert int(out.stdout.strip()) == len(stored), out.stderr
    finally:
        assert stop_edge(edge, edge_log) == 0, edge_log.read_text()


def test_edge_run_refuses_a_public_kafka_address_without_authentication(tmp_path: Path) -> None:
    config, _ = _config(tmp_path, free_port(), host="0.0.0.0")
    out = subprocess.run([sys.executable, "-m", "edge", "run", "--config", str(config)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "[kafka]" in out.stderr and "not a loopback address, and no authentication" in out.stderr
