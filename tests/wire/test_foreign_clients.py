"""librdkafka's kcat and Kafka 3.9's own Java tools against the listener."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import broker
from deploy.kafka._tools import tool_command

from ._server import ThreadedListener

REPO = Path(__file__).resolve().parents[2]


def _kcat() -> str:
    path = shutil.which("kcat")
    assert path, "kcat is missing: deploy/setup.sh installs Debian's kcat"
    return path


@pytest.mark.parametrize("codec", ["none", "snappy", "lz4", "zstd"])
def test_kcat_produces_and_consumes_keys_and_headers(listener: ThreadedListener, codec: str) -> None:
    broker.KafkaAdminClient(listener.data_dir).create_topics([broker.NewTopic("kc", 1)])
    lines = "".join(f"key{i}:value{i}\n" for i in range(5))
    subprocess.run([_kcat(), "-b", listener.bootstrap, "-P", "-t", "kc", "-K:", "-H", "source=kcat",
                    "-z", codec, "-X", "acks=all"],
                   input=lines, text=True, check=True, timeout=60, capture_output=True)
    with broker.KafkaConsumer("kc", data_dir=listener.data_dir, auto_offset_reset="earliest") as c:
        local = [(r.offset, r.key, r.value, r.headers) for rs in c.poll(timeout_ms=1000).values() for r in rs]
    assert local == [(i, f"key{i}".encode(), f"value{i}".encode(), [("source", b"kcat")]) for i in range(5)]
    out = subprocess.run([_kcat(), "-b", listener.bootstrap, "-C", "-t", "kc", "-o", "beginning", "-e",
                          "-f", "%o %k %s %h\n"], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.splitlines() == [f"{i} key{i} value{i} source=kcat" for i in range(5)]


def _tool(name: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(tool_command(name, args), input=stdin, capture_output=True, text=True, timeout=120)


def test_kafkas_own_console_tools(listener: ThreadedListener) -> None:
    bs = listener.bootstrap
    made = _tool("topics", "--bootstrap-server", bs, "--create", "--topic", "jvm", "--partitions", "2",
                 "--replication-factor", "1")
    assert made.returncode == 0, made.stderr
    assert broker.KafkaAdminClient(listener.data_dir).list_topics() == ["jvm"]
    produced = _tool("console-producer", "--bootstrap-server", bs, "--topic", "jvm", "--property",
                     "parse.key=true", "--property", "key.separator=:",
                     stdin="".join(f"k{i}:v{i}\n" for i in range(6)))
    assert produced.returncode == 0, produced.stderr
    desc = broker.KafkaAdminClient(listener.data_dir).describe_topics(["jvm"])[0]
    assert sum(p.records for p in desc.partitions) == 6
    seen = []
    for p in desc.partitions:  # no group: the group coordinator's tests use --group
        consumed = _tool("console-consumer", "--bootstrap-server", bs, "--topic", "jvm", "--partition",
                         str(p.partition), "--offset", "earliest", "--max-messages", str(p.records),
                         "--property", "print.key=true", "--property", "print.offset=true")
        assert consumed.returncode == 0, consumed.stderr
        seen += consumed.stdout.splitlines()
    assert sorted(line.split("\t", 1)[-1] for line in seen) == sorted(f"k{i}\tv{i}" for i in range(6)), seen
