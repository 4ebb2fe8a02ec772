"""Consumer groups over the listener with real clients: kafka-python (a lab's consumer loop,
and a group of three processes that rebalances when one leaves and when one is killed),
aiokafka, and Kafka's own kafka-consumer-groups. Offsets they commit are the log's own."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaConsumer
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic as KafkaNewTopic
from kafka.errors import CommitFailedError

from broker import KafkaAdminClient as LocalAdmin
from broker import NewTopic
from broker.wire._coordinator import CoordinatorSettings
from deploy.kafka._tools import tool_command

from ._server import ThreadedListener

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: Short sessions so a killed member is noticed in seconds; no initial delay, so a
#: test's group forms as soon as its members are in.
FAST_GROUPS = CoordinatorSettings(min_session_timeout_ms=500, initial_rebalance_delay_ms=0)


@pytest.fixture
def listener(tmp_path):
    with ThreadedListener(tmp_path / "log", groups=FAST_GROUPS) as srv:
        yield srv


def _produce(srv, topic, n, partitions):
    producer = KafkaProducer(bootstrap_servers=srv.bootstrap, acks="all")
    for i in range(n):
        producer.send(topic, f"r{i}".encode(), partition=i % partitions)
    producer.flush()
    producer.close()


def test_the_labs_consumer_loop_with_a_group_commits_where_edge_consumer_groups_sees_it(listener, tmp_path):
    admin = KafkaAdminClient(bootstrap_servers=listener.bootstrap)
    admin.create_topics([KafkaNewTopic("bankbranch", num_partitions=2, replication_factor=1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=listener.bootstrap,
                             value_serializer=lambda v: json.dumps(v).encode("utf-8"))
    for atm in range(1, 7):
        producer.send("bankbranch", {"atmid": atm, "transid": 100 + atm})
    producer.flush()
    producer.close()

    consumer = KafkaConsumer("bankbranch", bootstrap_servers=listener.bootstrap, group_id="atm-app",
                             auto_offset_reset="earliest", consumer_timeout_ms=2000)
    seen = [json.loads(m.value)["atmid"] for m in consumer]
    consumer.close()  # commits (enable_auto_commit) and leaves the group
    assert sorted(seen) == [1, 2, 3, 4, 5, 6]

    local = LocalAdmin(data_dir=tmp_path / "log")
    committed = local.list_consumer_group_offsets("atm-app")
    ends = {p.partition: p.log_end_offset for p in local.describe_consumer_group("atm-app").offsets}
    assert {tp.partition: om.offset for tp, om in committed.items()} == ends
    local.close()
    again = KafkaConsumer("bankbranch", bootstrap_servers=listener.bootstrap, group_id="atm-app",
                          auto_offset_reset="earliest", consumer_timeout_ms=1000)
    assert list(again) == []  # the group resumes where it committed
    again.close()


class _Member:
    """A kafka-python consumer in its own process (tests/wire/_group_member.py)."""

    def __init__(self, srv, topic, group, session_ms=1500):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.wire._group_member", srv.bootstrap, topic, group, str(session_ms)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
            env={**os.environ, "PYTHONPATH": REPO})
        self.records: list[tuple[int, int]] = []
        self.values: list[str] = []
        self.assigned: list[int] | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            event = json.loads(line)
            if "assigned" in event:
                self.assigned = event["assigned"]
            elif "p" in event:
                self.records.append((event["p"], event["o"]))
                self.values.append(event["v"])

    def stop(self, sig):
        self.proc.send_signal(sig)
        self.proc.wait(20)
        self._reader.join(5)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def _wait(cond, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _balanced(members, partitions):
    live = [m for m in members if m.proc.poll() is None]
    got = [m.assigned for m in live]
    if any(a is None for a in got):
        return False
    flat = sorted(p for a in got for p in a)
    share = partitions // len(live)
    return flat == list(range(partitions)) and all(len(a) in (share, share + 1) for a in got)


def test_a_group_of_three_rebalances_when_one_leaves_and_when_one_is_killed(listener, tmp_path):
    parts = 6
    LocalAdmin(data_dir=tmp_path / "log").create_topics([NewTopic("meters", parts, 1)])
    members = [_Member(listener, "meters", "billing") for _ in range(3)]
    try:
        _wait(lambda: _balanced(members, parts), "three members sharing six partitions")
        assert listener.metrics()["groups"] == {"billing": 3}  # what status and /health show
        total = 60
        _produce(listener, "meters", 60, parts)
        _wait(lambda: sum(len(m.records) for m in members) >= total, "the first 60 records")

        # A member that leaves (close) hands its partitions over, committed: no duplicates.
        leaver = members.pop(2)
        for m in members:
            m.assigned = None
        leaver.stop(signal.SIGTERM)
        _wait(lambda: _balanced(members, parts), "two members sharing six partitions")
        _produce(listener, "meters", 60, parts)
        total += 60
        _wait(lambda: sum(len(m.records) for m in [*members, leaver]) >= total, "120 records")

        # A member killed: its session expires and the survivor takes everything over,
        # from the last offset the killed one committed.
        killed = members.pop(1)
        members[0].assigned = None
        killed.stop(signal.SIGKILL)
        _wait(lambda: _balanced(members, parts), "the survivor owning all six partitions")
        _produce(listener, "meters", 60, parts)
        total += 60
        everyone = [*members, leaver, killed]
        _wait(lambda: len({r for m in everyone for r in m.records}) >= total, "180 records")
    finally:
        for m in [*members, *locals().get("everyone", [])]:
            m.close()

    seen: dict[tuple[int, int], int] = defaultdict(int)
    for m in everyone:
        for r in m.records:
            seen[r] += 1
    assert len(seen) == total  # every record consumed
    # Once per committed generation: a record is seen twice only if the killed member
    # printed it and died before committing it (its last record on that partition).
    last_of_killed = {}
    for p, o in killed.records:
        last_of_killed[p] = max(o, last_of_killed.get(p, -1))
    twice = {r for r, n in seen.items() if n > 1}
    assert all(n <= 2 for n in seen.values())
    assert twice <= {(p, o) for p, o in last_of_killed.items()}, twice


async def test_aiokafka_consumers_of_one_group_share_the_partitions(listener, tmp_path):
    LocalAdmin(data_dir=tmp_path / "log").create_topics([NewTopic("sensors", 4, 1)])
    await asyncio.to_thread(_produce, listener, "sensors", 40, 4)
    consumers = [AIOKafkaConsumer("sensors", bootstrap_servers=listener.bootstrap, group_id="dash",
                                  auto_offset_reset="earliest", session_timeout_ms=3000,
                                  heartbeat_interval_ms=300) for _ in range(2)]
    for c in consumers:
        await c.start()
    try:
        got: list[set] = [set(), set()]

        async def drain(i):
            while True:
                batch = await consumers[i].getmany(timeout_ms=200)
                for tp, records in batch.items():
                    got[i].update((tp.partition, r.offset) for r in records)
                if sum(map(len, got)) >= 40 and all(c.assignment() for c in consumers):
                    return

        await asyncio.wait_for(asyncio.gather(drain(0), drain(1)), 30)
        a, b = ({tp.partition for tp in c.assignment()} for c in consumers)
        assert a | b == {0, 1, 2, 3} and not a & b and len(a) == len(b) == 2
        assert not got[0] & got[1] and len(got[0] | got[1]) == 40
    finally:
        for c in consumers:
            await c.stop()


def _consumer_groups(srv, *args):
    out = subprocess.run(tool_command("consumer-groups", ["--bootstrap-server", srv.bootstrap, *args]),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_kafka_consumer_groups_lists_describes_resets_and_deletes(listener, tmp_path):
    local = LocalAdmin(data_dir=tmp_path / "log")
    local.create_topics([NewTopic("orders", 2, 1)])
    _produce(listener, "orders", 10, 2)
    consumer = KafkaConsumer("orders", bootstrap_servers=listener.bootstrap, group_id="shipping",
                             auto_offset_reset="earliest", consumer_timeout_ms=2000,
                             enable_auto_commit=False)
    assert len(list(consumer)) == 10
    consumer.commit()
    try:
        assert "shipping" in _consumer_groups(listener, "--list").split()
        described = _consumer_groups(listener, "--describe", "--group", "shipping")
        rows = [line.split() for line in described.splitlines() if line.startswith("shipping")]
        assert sorted((r[1], r[2], r[3], r[4], r[5]) for r in rows) == [
            ("orders", "0", "5", "5", "0"), ("orders", "1", "5", "5", "0")]
        assert all(r[6].startswith("kafka-python") for r in rows)  # CONSUMER-ID: the live member
        admin = KafkaAdminClient(bootstrap_servers=listener.bootstrap)
        assert admin.describe_consumer_groups(["shipping"])[0].state == "Stable"
        admin.close()
    finally:
        consumer.close()
    # Offsets are reset only while no member is in the group, as Kafka requires.
    plan = _consumer_groups(listener, "--reset-offsets", "--group", "shipping", "--topic", "orders",
                            "--to-earliest", "--execute")
    assert "orders" in plan
    assert {tp.partition: om.offset for tp, om in local.list_consumer_group_offsets("shipping").items()} == {
        0: 0, 1: 0}
    assert "was successful" in _consumer_groups(listener, "--delete", "--group", "shipping")
    assert local.list_consumer_groups() == []
    assert local.list_consumer_group_offsets("shipping") == {}
    local.close()


async def test_a_static_member_restarting_gets_its_partitions_back_without_a_rebalance(listener, tmp_path):
    LocalAdmin(data_dir=tmp_path / "log").create_topics([NewTopic("wards", 4, 1)])

    def member(instance):
        return AIOKafkaConsumer("wards", bootstrap_servers=listener.bootstrap, group_id="monitor",
                                group_instance_id=instance, session_timeout_ms=10_000,
                                heartbeat_interval_ms=300, auto_offset_reset="earliest")

    a, b = member("bed-1"), member("bed-2")
    await asyncio.gather(a.start(), b.start())
    try:
        async def settled():
            while len(a.assignment()) + len(b.assignment()) != 4 or not a.assignment() or not b.assignment():
                await asyncio.gather(a.getmany(timeout_ms=100), b.getmany(timeout_ms=100))

        await asyncio.wait_for(settled(), 30)
        before = a.assignment()
        group = listener.server.ctx.extensions["groups"]._groups["monitor"]
        generation = group.generation_id
        await a.stop()  # a static member does not leave on close (KIP-345)
        a = member("bed-1")
        await a.start()

        async def back():
            while a.assignment() != before:
                await asyncio.gather(a.getmany(timeout_ms=100), b.getmany(timeout_ms=100))

        await asyncio.wait_for(back(), 30)
        assert group.generation_id == generation  # b was never asked to rejoin
    finally:
        await asyncio.gather(a.stop(), b.stop())


def test_kafka_console_consumer_in_a_group_then_its_offsets_deleted_by_partition(listener, tmp_path):
    local = LocalAdmin(data_dir=tmp_path / "log")
    local.create_topics([NewTopic("alarms", 2, 1)])
    _produce(listener, "alarms", 10, 2)
    # Kafka 3.9's Java consumer: JoinGroup v9, SyncGroup v5, OffsetCommit/OffsetFetch v9.
    out = subprocess.run(tool_command("console-consumer", [
        "--bootstrap-server", listener.bootstrap, "--topic", "alarms", "--group", "pager",
        "--from-beginning", "--max-messages", "10", "--timeout-ms", "20000"]),
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert sorted(out.stdout.split()) == sorted(f"r{i}" for i in range(10))
    assert {tp.partition: om.offset for tp, om in local.list_consumer_group_offsets("pager").items()} == {
        0: 5, 1: 5}
    deleted = _consumer_groups(listener, "--delete-offsets", "--group", "pager", "--topic", "alarms:0")
    assert "Successful" in deleted
    assert {tp.partition for tp in local.list_consumer_group_offsets("pager")} == {1}
    local.close()


def test_a_consumer_group_carries_on_across_a_listener_restart(tmp_path):
    """Membership lives in the listener's memory: after a restart, a member's first commit
    is refused (ILLEGAL_GENERATION, as after any rebalance it missed), it rejoins, and
    the group's committed offsets carry on from where they were."""
    LocalAdmin(data_dir=tmp_path / "log").create_topics([NewTopic("flow", 2, 1)])
    seen: set[tuple[int, int]] = set()

    def poll(consumer):
        for records in consumer.poll(timeout_ms=200).values():
            seen.update((r.partition, r.offset) for r in records)

    with ThreadedListener(tmp_path / "log", groups=FAST_GROUPS) as first:
        port = first.port
        _produce(first, "flow", 10, 2)
        consumer = KafkaConsumer("flow", bootstrap_servers=first.bootstrap, group_id="plant",
                                 auto_offset_reset="earliest", enable_auto_commit=False,
                                 session_timeout_ms=3000, heartbeat_interval_ms=300,
                                 reconnect_backoff_max_ms=200)
        while len(seen) < 10:
            poll(consumer)
        consumer.commit()
    with ThreadedListener(tmp_path / "log", port=port, groups=FAST_GROUPS) as second:
        _produce(second, "flow", 10, 2)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            poll(consumer)
            if len(seen) < 20:
                continue
            try:
                consumer.commit()
                break
            except CommitFailedError:
                continue  # it rejoins on its next poll, then commits
        consumer.close()
    assert seen == {(p, o) for p in (0, 1) for o in range(10)}
    committed = LocalAdmin(data_dir=tmp_path / "log").list_consumer_group_offsets("plant")
    assert {tp.partition: om.offset for tp, om in committed.items()} == {0: 10, 1: 10}
