"""The group state machine under any order of events (hypothesis): joins, syncs, heartbeats,
leaves, session expiries and timers in whatever order clients and clocks produce them.
Whatever happens, Kafka's invariants hold."""

from hypothesis import given, settings
from hypothesis import strategies as st

from broker.wire._group_errors import MEMBER_ID_REQUIRED, NONE
from broker.wire._groups import Group, GroupState

PROTOCOLS = (("range", b"m"),)
EVENTS = st.lists(st.tuples(st.sampled_from(["new", "rejoin", "sync", "leader_sync", "heartbeat",
                                             "leave", "expire", "timer", "static"]),
                            st.integers(0, 5)), max_size=60)


@settings(max_examples=300, deadline=None)
@given(EVENTS)
def test_any_order_of_events_keeps_kafkas_invariants(events):
    g = Group("g")
    ids: list[str] = []  # every member id ever handed out (live or not)
    generations = [g.generation_id]
    replied_generation: dict[str, int] = {}
    for kind, n in events:
        pick = ids[n % len(ids)] if ids else ""
        if kind == "new":
            mid, fx = g.join("", None, "c", "h", 10_000, 30_000, "consumer", PROTOCOLS,
                             require_known_member_id=True)
            assert fx.joins[mid].error == MEMBER_ID_REQUIRED
            ids.append(mid)
        elif kind == "static":
            mid, fx = g.join("", f"inst-{n % 2}", "c", "h", 10_000, 30_000, "consumer", PROTOCOLS,
                             require_known_member_id=True)
            ids.append(mid)
        elif kind == "rejoin" and pick:
            _, fx = g.join(pick, None, "c", "h", 10_000, 30_000, "consumer", PROTOCOLS,
                           require_known_member_id=True)
        elif kind in ("sync", "leader_sync") and pick:
            who = g.leader if kind == "leader_sync" and g.leader else pick
            fx = g.sync(who, None, g.generation_id, None, None, {m: b"a" for m in g.members})
        elif kind == "heartbeat" and pick:
            g.heartbeat(pick, None, g.generation_id)
            continue
        elif kind == "leave" and pick:
            _, fx = g.leave(pick, None)
        elif kind == "expire" and pick:
            fx = g.expire(pick)
        elif kind == "timer":
            fx = g.timer_fired(g._epoch)
        else:
            continue
        for mid, reply in fx.joins.items():
            if reply.error == NONE:
                # A successful reply names the current generation and a live leader, and
                # only the leader learns the members.
                assert reply.generation_id == g.generation_id and reply.leader in g.members
                assert bool(reply.members) == (mid == g.leader) or not reply.members
                replied_generation[mid] = reply.generation_id
        for sreply in fx.syncs.values():
            if sreply.error == NONE:
                assert g.state is GroupState.STABLE
        generations.append(g.generation_id)
        # Generations only grow; the leader is a member; states match membership.
        assert generations[-1] >= generations[-2]
        assert g.leader is None or g.leader in g.members or g.state is GroupState.PREPARING_REBALANCE
        if g.state is GroupState.EMPTY:
            assert not g.members
        if g.state is GroupState.STABLE:
            assert not any(m.awaiting_join for m in g.members.values())
            assert g.leader in g.members
        if g.state is GroupState.COMPLETING_REBALANCE:
            assert g.members and g.leader in g.members
        assert not (set(g.pending) & set(g.members))
