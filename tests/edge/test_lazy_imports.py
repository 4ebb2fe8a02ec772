"""``edge run`` imports what its config uses (docs/kafka-listener.md, "Measured"): a box
without an uplink, a control channel, devices, topologies or SCRAM serves its listener
without aiokafka, cryptography, paho, pyserial, pynmeagps, the stream engine or scramp, and with kio's schemas of
the versions its clients asked for, not every version it serves."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer

from edge._topology_holds import GROUP_PREFIX
from edge.streams import Topology
from tests.edge._helpers import health, stop_edge, wait_for, write_config
from tests.fixtures.mosquitto import free_port

# Runs `edge run` and writes the modules it had loaded when it stopped.
_RUN = """
import atexit, sys
out = sys.argv.pop()
atexit.register(lambda: open(out, "w").write("\\n".join(sorted(sys.modules))))
from edge.cli import main
sys.exit(main())
"""

NOT_CONFIGURED = ["aiokafka", "cryptography", "edge._streams", "edge.control", "edge.streams",
                  "edge.uplink", "paho", "pynmeagps", "scramp", "serial"]


def test_edge_run_serving_its_listener_loads_only_what_its_config_uses(tmp_path: Path) -> None:
    kport = free_port()
    config, hport = write_config(tmp_path, "", extra=f'[kafka]\nlisten = "127.0.0.1:{kport}"\n'
                                 "auto_create_topics = true\n")
    modules, log = tmp_path / "modules", tmp_path / "edge.log"
    with log.open("ab") as stderr:
        edge = subprocess.Popen([sys.executable, "-c", _RUN, "run", "--config", str(config), str(modules)],
                                stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        wait_for(lambda: health(hport), 30, "edge run's /health")
        servers = f"127.0.0.1:{kport}"
        producer = KafkaProducer(bootstrap_servers=servers, acks="all")
        producer.send("lazy", b"one").get(timeout=20)
        producer.close()
        consumer = KafkaConsumer("lazy", bootstrap_servers=servers, auto_offset_reset="earliest",
                                 consumer_timeout_ms=10_000)
        assert next(consumer).value == b"one"
        consumer.close()
    finally:
        assert stop_edge(edge, log) == 0, log.read_text()
    loaded = set(modules.read_text().split())
    assert [m for m in NOT_CONFIGURED if m in loaded] == []
    # Produce is served at v3..v9: kafka-python used one version, the others were never imported.
    produce = sorted(m for m in loaded if m.startswith("kio.schema.produce.v") and m.count(".") == 3)
    assert 1 <= len(produce) <= 2, produce


def test_the_start_s_retention_release_names_topology_groups_as_the_engine_does() -> None:
    # edge/_topology_holds.py runs at every start without importing the engine.
    assert Topology("vitals").group_id == GROUP_PREFIX + "vitals"
