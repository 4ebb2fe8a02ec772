"""The group state machine step by step (broker/wire/_groups.py): no sockets, no clock."""

from broker.wire._group_errors import (
    FENCED_INSTANCE_ID,
    ILLEGAL_GENERATION,
    INCONSISTENT_GROUP_PROTOCOL,
    MEMBER_ID_REQUIRED,
    NONE,
    REBALANCE_IN_PROGRESS,
    UNKNOWN_MEMBER_ID,
)
from broker.wire._groups import Group, GroupState

RANGE = (("range", b"r-meta"), ("roundrobin", b"rr-meta"))


def _join(g, member_id="", instance=None, protocols=RANGE, ptype="consumer", known=True, client="c"):
    return g.join(member_id, instance, client, "/127.0.0.1", 10_000, 30_000, ptype, protocols,
                  require_known_member_id=known)


def _new_member(g, **kw):
    """A v4+ client: first join gets MEMBER_ID_REQUIRED, the second joins with the id."""
    mid, fx = _join(g, **kw)
    assert fx.joins[mid].error == MEMBER_ID_REQUIRED and mid in g.pending
    return _join(g, member_id=mid, **kw)


def test_a_first_member_forms_generation_one_and_leads():
    g = Group("g")
    mid, fx = _new_member(g)
    reply = fx.joins[mid]
    assert (reply.error, reply.generation_id, reply.leader, reply.protocol_name) == (NONE, 1, mid, "range")
    assert reply.members == ((mid, None, b"r-meta"),)
    assert g.state is GroupState.COMPLETING_REBALANCE
    fx = g.sync(mid, None, 1, "consumer", "range", {mid: b"assign-a"})
    assert fx.syncs[mid].assignment == b"assign-a" and g.state is GroupState.STABLE


def test_a_second_member_rebalances_and_followers_get_the_leaders_assignment():
    g = Group("g")
    a, _ = _new_member(g)
    g.sync(a, None, 1, None, None, {a: b"all"})
    b, fx = _new_member(g)
    assert b not in fx.joins and g.state is GroupState.PREPARING_REBALANCE
    assert g.heartbeat(a, None, 1) == REBALANCE_IN_PROGRESS
    _, fx = _join(g, member_id=a)  # a rejoins after seeing the rebalance
    assert fx.joins[a].generation_id == fx.joins[b].generation_id == 2
    assert fx.joins[a].leader == a and len(fx.joins[a].members) == 2 and fx.joins[b].members == ()
    fx = g.sync(b, None, 2, None, None, {})
    assert fx.syncs == {}  # the follower waits for the leader
    fx = g.sync(a, None, 2, None, None, {a: b"p0", b: b"p1"})
    assert fx.syncs[a].assignment == b"p0" and fx.syncs[b].assignment == b"p1"
    assert g.heartbeat(b, None, 2) == NONE and g.heartbeat(b, None, 1) == ILLEGAL_GENERATION


def test_the_protocol_all_members_support_wins_the_vote():
    g = Group("g")
    a, _ = _new_member(g, protocols=(("range", b""), ("sticky", b"")))
    g.sync(a, None, 1, None, None, {})
    b, _ = _new_member(g, protocols=(("sticky", b""), ("roundrobin", b"")))
    _, fx = _join(g, member_id=a, protocols=(("range", b""), ("sticky", b"")))
    assert fx.joins[a].protocol_name == "sticky"
    mid, fx = _join(g, protocols=(("cooperative", b""),))
    assert fx.joins[mid].error == INCONSISTENT_GROUP_PROTOCOL
    mid, fx = _join(g, ptype="connect")
    assert fx.joins[mid].error == INCONSISTENT_GROUP_PROTOCOL


def test_unknown_members_and_stale_generations_are_refused():
    g = Group("g")
    a, _ = _new_member(g)
    _, fx = _join(g, member_id="nobody")
    assert fx.joins["nobody"].error == UNKNOWN_MEMBER_ID
    assert g.sync("nobody", None, 1, None, None, {}).syncs["nobody"].error == UNKNOWN_MEMBER_ID
    assert g.sync(a, None, 7, None, None, {}).syncs[a].error == ILLEGAL_GENERATION
    assert g.heartbeat("nobody", None, 1) == UNKNOWN_MEMBER_ID


def test_leave_and_expiry_rebalance_the_rest():
    g = Group("g")
    a, _ = _new_member(g)
    g.sync(a, None, 1, None, None, {})
    b, _ = _new_member(g)
    _join(g, member_id=a)
    g.sync(a, None, 2, None, None, {})
    error, fx = g.leave(b, None)
    assert error == NONE and fx.removed == [b] and g.state is GroupState.PREPARING_REBALANCE
    _, fx = _join(g, member_id=a)
    assert fx.joins[a].generation_id == 3 and fx.joins[a].members == ((a, None, b"r-meta"),)
    assert g.leave(b, None)[0] == UNKNOWN_MEMBER_ID
    g.sync(a, None, 3, None, None, {})
    fx = g.expire(a)
    assert fx.removed == [a]
    assert g.state is GroupState.EMPTY and g.generation_id == 4 and g.leader is None


def test_a_member_that_does_not_rejoin_in_the_rebalance_timeout_is_removed():
    g = Group("g")
    a, _ = _new_member(g)
    g.sync(a, None, 1, None, None, {})
    b, fx = _new_member(g)
    epoch, delay = fx.timer
    assert delay == 30_000
    fx = g.timer_fired(epoch)
    assert a in fx.removed and fx.joins[b].generation_id == 2 and fx.joins[b].leader == b
    assert g.timer_fired(epoch - 1).joins == {}  # a stale timer does nothing


def test_a_leader_that_never_syncs_is_removed_after_the_rebalance_timeout():
    g = Group("g")
    a, _ = _new_member(g)
    g.sync(a, None, 1, None, None, {})
    b, _ = _new_member(g)
    _, fx = _join(g, member_id=a)
    epoch, _ = fx.timer
    g.sync(b, None, 2, None, None, {})  # only the follower syncs
    fx = g.timer_fired(epoch)
    assert a in fx.removed and g.state is GroupState.PREPARING_REBALANCE
    assert fx.syncs[b].error == REBALANCE_IN_PROGRESS


def test_commits_are_checked_against_membership():
    g = Group("g")
    assert g.commit_error("", None, -1) == NONE  # offsets only, nobody is a member
    a, _ = _new_member(g)
    assert g.commit_error(a, None, 1) == REBALANCE_IN_PROGRESS  # generation 1, not yet synced
    g.sync(a, None, 1, None, None, {})
    assert g.commit_error(a, None, 1) == NONE
    assert g.commit_error(a, None, 0) == ILLEGAL_GENERATION
    assert g.commit_error("other", None, 1) == UNKNOWN_MEMBER_ID
    assert g.commit_error("", None, -1) == UNKNOWN_MEMBER_ID  # the group has members now


def test_a_static_member_restarting_keeps_its_place_without_a_rebalance():
    g = Group("g")
    a, fx = _join(g, instance="sensor-1")
    assert fx.joins[a].error == NONE  # static members need no MEMBER_ID_REQUIRED round
    g.sync(a, "sensor-1", 1, None, None, {a: b"p0"})
    a2, fx = _join(g, instance="sensor-1")
    assert a2 != a and fx.joins[a2].generation_id == 1 and g.state is GroupState.STABLE
    assert g.sync(a2, "sensor-1", 1, None, None, {}).syncs[a2].assignment == b"p0"
    assert g.heartbeat(a, "sensor-1", 1) == FENCED_INSTANCE_ID
    assert g.leave(a, "sensor-1")[0] == FENCED_INSTANCE_ID
    assert g.leave("", "sensor-1")[0] == NONE and not g.members


def test_a_new_group_waits_the_initial_delay_for_more_members():
    g = Group("g", initial_rebalance_delay_ms=3000)
    a, fx = _new_member(g)
    assert a not in fx.joins and fx.timer[1] == 3000
    b, _ = _new_member(g)
    fx = g.timer_fired(g._epoch)
    assert fx.joins[a].generation_id == fx.joins[b].generation_id == 1
