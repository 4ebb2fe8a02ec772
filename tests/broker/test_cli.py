"""The Kafka-style tools, run as real processes: topics, console producer/consumer, consumer groups."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

import broker
from broker import KafkaAdminClient, KafkaProducer, TopicPartition, default_partition

from ._helpers import REPO, read_all, run_tool

TOOLS = ("topics", "console-producer", "console-consumer", "consumer-groups")


def _ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout!r}\nstderr: {proc.stderr!r}"
    return proc.stdout.decode()


@pytest.mark.parametrize("tool", TOOLS)
def test_help_exits_0_and_names_the_environment_variable(tool: str) -> None:
    out = _ok(run_tool(tool, "--help"))
    assert f"usage: edge-{tool}" in out
    assert "EDGE_DATA_DIR" in out and "--bootstrap-server" in out


def test_version_and_python_dash_m() -> None:
    assert _ok(run_tool("topics", "--version")).strip() == f"edge-topics {broker.__version__}"
    top = subprocess.run([sys.executable, "-m", "broker", "--help"], capture_output=True, cwd=REPO)
    assert top.returncode == 0 and b"console-consumer" in top.stdout
    ver = subprocess.run([sys.executable, "-m", "broker", "--version"], capture_output=True, cwd=REPO)
    assert ver.stdout.decode().strip() == f"broker {broker.__version__}"
    sub = subprocess.run([sys.executable, "-m", "broker", "consumer-groups", "-h"], capture_output=True, cwd=REPO)
    assert sub.returncode == 0 and b"--reset-offsets" in sub.stdout
    bad = subprocess.run([sys.executable, "-m", "broker", "topix"], capture_output=True, cwd=REPO)
    assert bad.returncode == 2 and b"unknown tool 'topix'" in bad.stderr


def test_topics_create_list_describe_alter_delete(tmp_path: Path) -> None:
    env = {"EDGE_DATA_DIR": str(tmp_path / "log")}  # the environment variable instead of --data-dir
    out = _ok(run_tool("topics", "--create", "--topic", "news", "--partitions", "2",
                       "--config", "retention.ms=3600000", "--config", "priority=5", env=env))
    assert out.strip() == "Created topic news."
    _ok(run_tool("topics", "--create", "--topic", "gps", env=env))
    assert _ok(run_tool("topics", "--list", env=env)).split() == ["gps", "news"]
    desc = _ok(run_tool("topics", "--describe", "--topic", "news", env=env)).splitlines()
    assert desc[0].startswith("Topic: news\tPartitionCount: 2\t")
    assert "retention.ms=3600000" in desc[0] and "priority=5" in desc[0]
    assert [line.split("\t")[2] for line in desc[1:]] == ["Partition: 0", "Partition: 1"]
    _ok(run_tool("topics", "--alter", "--topic", "news", "--config", "retention.bytes=100000",
                 "--partitions", "3", env=env))
    with KafkaAdminClient(data_dir=tmp_path / "log") as admin:
        d = admin.describe_topics(["news"])[0]
        assert len(d.partitions) == 3
        assert d.config == {"retention.ms": "3600000", "retention.bytes": "100000", "priority": "5"}
    # --bootstrap-server is an alias of --data-dir
    out = _ok(run_tool("topics", "--bootstrap-server", str(tmp_path / "log"), "--delete", "--topic", "news"))
    assert out.strip() == "Deleted topic news."
    assert _ok(run_tool("topics", "--list", env=env)).split() == ["gps"]
    # --if-not-exists / --if-exists make the repeat a no-op
    _ok(run_tool("topics", "--create", "--topic", "gps", "--if-not-exists", env=env))
    _ok(run_tool("topics", "--delete", "--topic", "news", "--if-exists", env=env))


def test_console_producer_then_console_consumer_with_keys(tmp_path: Path) -> None:
    d = tmp_path / "log"
    _ok(run_tool("topics", "--create", "--topic", "news", "--partitions", "2", data_dir=d))
    lines = ["car-1:hello", "car-2:world", "car-1:again:with colon", "ward3-bed2:{\"bp\": 120}"]
    proc = run_tool("console-producer", "--topic", "news", "--property", "parse.key=true",
                    "--property", "key.separator=:", data_dir=d, stdin="\n".join(lines) + "\n")
    _ok(proc)
    out = _ok(run_tool(
        "console-consumer", "--topic", "news", "--from-beginning", "--max-messages", "4", "--timeout-ms", "10000",
        "--property", "print.key=true", "--property", "print.partition=true", "--property", "print.offset=true",
        "--property", "print.timestamp=true", data_dir=d))
    got = sorted(line.split("\t") for line in out.splitlines())
    expect, seen = [], {0: 0, 1: 0}
    for line in lines:
        key, _, value = line.partition(":")
        p = default_partition(key.encode(), 2)
        expect.append((f"Partition:{p}", f"Offset:{seen[p]}", key, value))
        seen[p] += 1
    assert sorted(tuple(g[1:]) for g in got) == sorted(expect)
    now_ms = datetime.now(UTC).timestamp() * 1000
    for g in got:
        assert g[0].startswith("CreateTime:") and abs(int(g[0][11:]) - now_ms) < 600_000


def test_console_consumer_reads_a_partition_from_an_offset_and_exits_on_timeout(tmp_path: Path) -> None:
    d = tmp_path / "log"
    _ok(run_tool("topics", "--create", "--topic", "t", data_dir=d))
    _ok(run_tool("console-producer", "--topic", "t", data_dir=d, stdin="a\nb\nc\n"))
    proc = run_tool("console-consumer", "--topic", "t", "--partition", "0", "--offset", "1",
                    "--timeout-ms", "300", data_dir=d)
    assert _ok(proc).splitlines() == ["b", "c"]
    assert b"Processed a total of 2 messages" in proc.stderr
    # Without --from-beginning and without a group, a consumer starts at the end, as Kafka's does.
    proc = run_tool("console-consumer", "--topic", "t", "--timeout-ms", "300", data_dir=d)
    assert _ok(proc) == ""


def _describe(d: Path, group: str) -> list[dict]:
    out = _ok(run_tool("consumer-groups", "--describe", "--group", group, "--output", "json", data_dir=d))
    return json.loads(out)["offsets"]


def test_consumer_groups_list_describe_lag_and_resets(tmp_path: Path) -> None:
    d = tmp_path / "log"
    _ok(run_tool("topics", "--create", "--topic", "t", data_dir=d))
    base = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000)
    with KafkaProducer(data_dir=d) as producer:
        for i in range(6):  # one record per hour from 2026-01-01T00:00Z
            producer.send("t", f"r{i}".encode(), timestamp_ms=base + i * 3_600_000).get(10)
    proc = run_tool("console-consumer", "--topic", "t", "--group", "app", "--from-beginning",
                    "--max-messages", "4", "--timeout-ms", "10000", data_dir=d)
    assert _ok(proc).splitlines() == ["r0", "r1", "r2", "r3"]
    assert _ok(run_tool("consumer-groups", "--list", data_dir=d)).split() == ["app"]
    assert _describe(d, "app") == [
        {"topic": "t", "partition": 0, "committed": 4, "log_end_offset": 6, "lag": 2}]
    table = _ok(run_tool("consumer-groups", "--describe", "--group", "app", data_dir=d)).splitlines()
    assert table[1].split() == ["TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG"]
    assert table[2].split() == ["t", "0", "4", "6", "2"]

    # Without --execute it is a dry run: it shows the plan and changes nothing.
    proc = run_tool("consumer-groups", "--reset-offsets", "--group", "app", "--topic", "t", "--to-earliest",
                    data_dir=d)
    assert _ok(proc).splitlines()[1].split() == ["app", "t", "0", "0"]
    assert b"dry run" in proc.stderr
    assert _describe(d, "app")[0]["committed"] == 4

    _ok(run_tool("consumer-groups", "--reset-offsets", "--group", "app", "--topic", "t", "--to-earliest",
                 "--execute", data_dir=d))
    assert _describe(d, "app")[0]["committed"] == 0
    _ok(run_tool("consumer-groups", "--reset-offsets", "--group", "app", "--all-topics", "--to-offset", "5",
                 "--execute", data_dir=d))
    assert _describe(d, "app")[0]["committed"] == 5
    # 02:30Z: the first record at or after it is r3 (03:00Z).
    _ok(run_tool("consumer-groups", "--reset-offsets", "--group", "app", "--topic", "t",
                 "--to-datetime", "2026-01-01T02:30:00Z", "--execute", data_dir=d))
    assert _describe(d, "app")[0]["committed"] == 3
    # The group resumes there.
    proc = run_tool("console-consumer", "--topic", "t", "--group", "app", "--max-messages", "3",
                    "--timeout-ms", "10000", data_dir=d)
    assert _ok(proc).splitlines() == ["r3", "r4", "r5"]
    assert _describe(d, "app")[0]["lag"] == 0
    _ok(run_tool("consumer-groups", "--reset-offsets", "--group", "app", "--topic", "t", "--to-latest",
                 "--execute", data_dir=d))
    _ok(run_tool("consumer-groups", "--delete", "--group", "app", data_dir=d))
    assert _ok(run_tool("consumer-groups", "--list", data_dir=d)).split() == []
    # None of this touched the records.
    assert [r.value for r in read_all(broker.LogConfig(data_dir=d), "t")] == [f"r{i}".encode() for i in range(6)]


def test_console_producer_without_parse_key_keeps_separators_in_the_value(tmp_path: Path) -> None:
    d = tmp_path / "log"
    _ok(run_tool("console-producer", "--topic", "auto", data_dir=d, stdin="a:b\tc\n\n"))
    recs = read_all(broker.LogConfig(data_dir=d), "auto")
    assert [(r.key, r.value) for r in recs] == [(None, b"a:b\tc"), (None, b"")]
    with KafkaAdminClient(data_dir=d) as admin:
        assert admin.list_consumer_group_offsets("nobody") == {}
        assert admin.describe_consumer_group("nobody").offsets == []
        assert TopicPartition("auto", 0) in {TopicPartition("auto", p.partition)
                                            for p in admin.describe_topics(["auto"])[0].partitions}


def test_to_datetime_keeps_whole_milliseconds() -> None:
    # 55.320 s as a float timestamp times 1000 truncates to ...319: the reset would land early.
    from broker.cli import _parse_datetime

    assert _parse_datetime("2004-06-21T18:38:55.320Z") == 1087843135320
    assert _parse_datetime("2004-06-21T20:38:55.320+02:00") == 1087843135320
    assert _parse_datetime("1969-12-31T23:59:59.999Z") == -1
