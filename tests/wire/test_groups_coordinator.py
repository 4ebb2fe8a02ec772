"""The coordinator over a real log: futures, session timers on the asyncio clock, offsets
in the same table the Python API and edge-consumer-groups use."""

import asyncio

import pytest

from broker import KafkaAdminClient, LogConfig, NewTopic, OffsetAndMetadata, TopicPartition
from broker._log import Log
from broker.wire._coordinator import CoordinatorSettings, GroupCoordinator
from broker.wire._group_errors import (
    GROUP_SUBSCRIBED_TO_TOPIC,
    ILLEGAL_GENERATION,
    INVALID_SESSION_TIMEOUT,
    MEMBER_ID_REQUIRED,
    NON_EMPTY_GROUP,
    NONE,
    REBALANCE_IN_PROGRESS,
    UNKNOWN_MEMBER_ID,
    UNKNOWN_TOPIC_OR_PARTITION,
)

PROTOCOLS = (("range", b"meta"),)
FAST = CoordinatorSettings(min_session_timeout_ms=100, initial_rebalance_delay_ms=0)


@pytest.fixture
def log_dir(tmp_path):
    admin = KafkaAdminClient(data_dir=tmp_path)
    admin.create_topics([NewTopic("t", 2, 1)])
    yield tmp_path, admin
    admin.close()


reported: list[dict[str, int]] = []


@pytest.fixture
async def coordinator(log_dir):
    reported.clear()
    lg = Log.acquire(LogConfig(data_dir=log_dir[0]), as_open=True)
    c = GroupCoordinator(lg, FAST, on_change=reported.append)
    yield c
    c.close()
    lg.release()


async def _member(c, group="g", session_ms=300, rebalance_ms=2000):
    first = await c.join(group, "", None, "cli", "/127.0.0.1", session_ms, rebalance_ms,
                         "consumer", PROTOCOLS, require_known_member_id=True)
    assert first.error == MEMBER_ID_REQUIRED
    return first.member_id


async def _join(c, mid, group="g", session_ms=300, rebalance_ms=2000):
    return await c.join(group, mid, None, "cli", "/127.0.0.1", session_ms, rebalance_ms,
                        "consumer", PROTOCOLS, require_known_member_id=True)


async def test_two_members_join_sync_and_share_one_generation(coordinator):
    c = coordinator
    a = await _member(c)
    ja = await _join(c, a)
    await c.sync("g", a, None, ja.generation_id, "consumer", "range", {a: b"x"})
    b = await _member(c)
    join_b = asyncio.create_task(_join(c, b))
    await asyncio.sleep(0.01)
    assert c.heartbeat("g", a, None, 1) == REBALANCE_IN_PROGRESS
    ja, jb = await asyncio.gather(_join(c, a), join_b)
    assert ja.generation_id == jb.generation_id == 2 and ja.leader == a and len(ja.members) == 2
    sb = asyncio.create_task(c.sync("g", b, None, 2, "consumer", "range", {}))
    sa = await c.sync("g", a, None, 2, "consumer", "range", {a: b"p0", b: b"p1"})
    assert (sa.assignment, (await sb).assignment) == (b"p0", b"p1")
    d = await c.describe("g")
    assert d.state == "Stable" and {m.assignment for m in d.members} == {b"p0", b"p1"}
    assert c.stats() == {"groups": 1, "members": 2}
    assert reported == [{"g": 1}, {"g": 2}]  # for the listener's metrics


async def test_a_silent_member_expires_after_its_session_timeout(coordinator):
    c = coordinator
    a = await _member(c)
    await _join(c, a)
    await c.sync("g", a, None, 1, None, None, {})
    b = await _member(c)
    join_b = asyncio.create_task(_join(c, b))
    await _join(c, a)
    await join_b
    await asyncio.gather(c.sync("g", a, None, 2, None, None, {}), c.sync("g", b, None, 2, None, None, {}))
    # b heartbeats, a falls silent: after a's 300 ms session, b is told to rejoin alone.
    for _ in range(10):
        await asyncio.sleep(0.1)
        if c.heartbeat("g", b, None, 2) == REBALANCE_IN_PROGRESS:
            break
    else:
        pytest.fail("the silent member was never expired")
    jb = await _join(c, b)
    assert jb.generation_id == 3 and jb.leader == b and [m[0] for m in jb.members] == [b]


async def test_session_timeouts_outside_the_bounds_are_refused(coordinator):
    reply = await coordinator.join("g", "", None, "cli", "h", 50, 1000, "consumer", PROTOCOLS,
                                   require_known_member_id=True)
    assert reply.error == INVALID_SESSION_TIMEOUT


async def test_offsets_are_the_logs_own(coordinator, log_dir):
    c, (_, admin) = coordinator, log_dir
    a = await _member(c)
    await _join(c, a)
    await c.sync("g", a, None, 1, None, None, {})
    errors = await c.commit("g", a, None, 1, [("t", 0, 5, "m"), ("t", 9, 1, ""), ("nope", 0, 1, "")])
    assert errors == [NONE, UNKNOWN_TOPIC_OR_PARTITION, UNKNOWN_TOPIC_OR_PARTITION]
    assert await c.commit("g", a, None, 0, [("t", 1, 1, "")]) == [ILLEGAL_GENERATION]
    assert await c.commit("g", "x", None, 1, [("t", 1, 1, "")]) == [UNKNOWN_MEMBER_ID]
    assert admin.list_consumer_group_offsets("g") == {TopicPartition("t", 0): OffsetAndMetadata(5, "m")}
    # and the other way round: what the Python API commits, a wire client fetches
    admin.alter_consumer_group_offsets("g", {TopicPartition("t", 1): 7})
    assert await c.fetch("g", [("t", 0), ("t", 1), ("u", 0)]) == [
        ("t", 0, 5, "m"), ("t", 1, 7, ""), ("u", 0, -1, "")]
    assert await c.fetch("g", None) == [("t", 0, 5, "m"), ("t", 1, 7, "")]


async def test_list_describe_and_delete(coordinator, log_dir):
    c, (_, admin) = coordinator, log_dir
    admin.alter_consumer_group_offsets("offsets-only", {TopicPartition("t", 0): 1})
    a = await _member(c, group="live")
    await _join(c, a, group="live")
    assert await c.list_groups() == [("live", "consumer", "CompletingRebalance"),
                                     ("offsets-only", "consumer", "Empty")]
    assert await c.list_groups(["empty"]) == [("offsets-only", "consumer", "Empty")]
    assert (await c.describe("nobody")).state == "Dead"
    assert (await c.describe("offsets-only")).state == "Empty"
    assert await c.delete(["live", "offsets-only", "nobody"]) == [
        ("live", NON_EMPTY_GROUP), ("offsets-only", NONE), ("nobody", 69)]
    assert admin.list_consumer_groups() == []
    assert c.leave("live", [(a, None), ("ghost", None)]) == [NONE, UNKNOWN_MEMBER_ID]
    # It committed nothing, and nobody is in it now: it is gone already.
    assert await c.delete(["live"]) == [("live", 69)]


async def test_a_group_nobody_is_in_is_forgotten_and_its_offsets_kept(coordinator):
    c = coordinator
    a = await _member(c, group="once")
    await _join(c, a, group="once")
    await c.sync("once", a, None, 1, None, None, {})
    assert await c.commit("once", a, None, 1, [("t", 0, 3, "")]) == [NONE]
    assert c.leave("once", [(a, None)]) == [NONE]
    assert "once" not in c._groups
    assert await c.commit("once", a, None, 1, [("t", 0, 4, "")]) == [ILLEGAL_GENERATION]
    assert (await c.describe("once")).state == "Empty"
    assert await c.fetch("once", [("t", 0)]) == [("t", 0, 3, "")]
    refused = await c.join("typo", "", None, "cli", "h", 10, 1000, "consumer", PROTOCOLS,
                           require_known_member_id=True)
    assert refused.error == INVALID_SESSION_TIMEOUT and "typo" not in c._groups


def _subscription(*topics):
    """ConsumerProtocolSubscription v0 bytes, as a Kafka consumer sends them."""
    out = (0).to_bytes(2, "big") + len(topics).to_bytes(4, "big")
    for t in topics:
        out += len(t).to_bytes(2, "big") + t.encode()
    return out + (-1).to_bytes(4, "big", signed=True)  # no user data


async def test_offsets_of_a_topic_a_member_reads_are_not_deleted(coordinator, log_dir):
    c, (_, admin) = coordinator, log_dir
    admin.create_topics([NewTopic("u", 1, 1)])
    first = await c.join("g", "", None, "cli", "h", 300, 2000, "consumer",
                         (("range", _subscription("t")),), require_known_member_id=True)
    reply = await c.join("g", first.member_id, None, "cli", "h", 300, 2000, "consumer",
                         (("range", _subscription("t")),), require_known_member_id=True)
    await c.sync("g", reply.member_id, None, 1, None, None, {})
    assert await c.commit("g", reply.member_id, None, 1, [("t", 0, 1, ""), ("u", 0, 2, "")]) == [NONE, NONE]
    assert await c.delete_offsets("g", [("t", 0), ("u", 0)]) == (NONE, [GROUP_SUBSCRIBED_TO_TOPIC, NONE])
    assert await c.fetch("g", None) == [("t", 0, 1, "")]
    assert await c.delete_offsets("nobody", [("t", 0)]) == (69, [])
