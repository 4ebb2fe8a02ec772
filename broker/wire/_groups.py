"""One consumer group's membership, as Kafka's classic GroupCoordinator keeps it.

A pure state machine: no sockets, no clock, no asyncio. Each call returns the
replies it completes and the timers it wants armed (``Effects``); the coordinator
(``_coordinator.py``) owns the futures and the timers and feeds expirations back in.
That keeps every rule here testable step by step, without waiting for anything.

States (Kafka's names, which ``kafka-consumer-groups --describe`` prints)::

    Empty ──join──▶ PreparingRebalance ──all joined / rebalance timeout──▶ CompletingRebalance
      ▲                  ▲     │ (no member left)                          │ leader's SyncGroup
      └──────────────────┼─────┘                                          ▼
                         └──── join of a new member, leave, session timeout ── Stable

The client-side assignors do the assignment: the leader gets every member's
subscription in its JoinGroup reply and hands the result back in SyncGroup.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import Enum

from ._group_errors import (
    FENCED_INSTANCE_ID,
    ILLEGAL_GENERATION,
    INCONSISTENT_GROUP_PROTOCOL,
    MEMBER_ID_REQUIRED,
    NONE,
    REBALANCE_IN_PROGRESS,
    UNKNOWN_MEMBER_ID,
)


class GroupState(Enum):
    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


Protocols = tuple[tuple[str, bytes], ...]


@dataclass
class Member:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: Protocols
    assignment: bytes = b""
    awaiting_join: bool = False
    awaiting_sync: bool = False

    def metadata(self, protocol: str | None) -> bytes:
        return next((meta for name, meta in self.protocols if name == protocol), b"")


@dataclass(frozen=True)
class JoinReply:
    error: int
    member_id: str
    generation_id: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader: str = ""
    #: (member_id, group_instance_id, metadata): only the leader's reply lists them.
    members: tuple[tuple[str, str | None, bytes], ...] = ()


@dataclass(frozen=True)
class SyncReply:
    error: int
    protocol_type: str | None = None
    protocol_name: str | None = None
    assignment: bytes = b""


@dataclass
class Effects:
    """What one step completed and what it wants the coordinator to time."""

    joins: dict[str, JoinReply] = field(default_factory=dict)
    syncs: dict[str, SyncReply] = field(default_factory=dict)
    #: (timer epoch, delay ms): call ``Group.timer_fired(epoch)`` after the delay.
    timer: tuple[int, int] | None = None
    #: Members that left the group (their session timers can go).
    removed: list[str] = field(default_factory=list)


def consumer_subscription(metadata: bytes) -> list[str]:
    """The topics of a consumer's subscription (ConsumerProtocolSubscription: int16
    version, then an array of int16-length strings; what follows is not needed here).
    Malformed metadata yields what could be read: it is the client's, not ours to refuse."""
    topics: list[str] = []
    try:
        count = int.from_bytes(metadata[2:6], "big", signed=True)
        pos = 6
        for _ in range(max(0, min(count, len(metadata)))):
            size = int.from_bytes(metadata[pos:pos + 2], "big", signed=True)
            if size < 0 or pos + 2 + size > len(metadata):
                break
            topics.append(metadata[pos + 2:pos + 2 + size].decode("utf-8", "replace"))
            pos += 2 + size
    except ValueError:
        pass
    return topics


class Group:
    """Membership and generations of one group; see the module's docstring."""

    def __init__(self, group_id: str, *, initial_rebalance_delay_ms: int = 0) -> None:
        self.group_id = group_id
        self.state = GroupState.EMPTY
        self.generation_id = 0
        self.protocol_type: str | None = None
        self.protocol_name: str | None = None
        self.leader: str | None = None
        self.members: dict[str, Member] = {}
        #: Member ids handed out with MEMBER_ID_REQUIRED, not yet joined with them.
        self.pending: set[str] = set()
        self._static: dict[str, str] = {}  # group.instance.id -> member id
        self._initial_delay_ms = initial_rebalance_delay_ms
        self._waiting_initial_delay = False
        self._epoch = 0  # bumped per timer armed, so a stale timer does nothing

    # -- queries ----------------------------------------------------------------------------

    def member_for(self, member_id: str, instance_id: str | None) -> tuple[int, Member | None]:
        """The member a request speaks for, or the error Kafka answers (fenced, unknown)."""
        if instance_id is not None and instance_id in self._static:
            if self._static[instance_id] != member_id:
                return FENCED_INSTANCE_ID, None
        member = self.members.get(member_id)
        return (NONE, member) if member is not None else (UNKNOWN_MEMBER_ID, None)

    def subscribed_topics(self) -> set[str]:
        """Topics the members subscribe to, read from their consumer-protocol metadata."""
        if self.protocol_type != "consumer":
            return set()
        topics: set[str] = set()
        for m in self.members.values():
            topics.update(consumer_subscription(m.metadata(self.protocol_name) or m.protocols[0][1]))
        return topics

    def candidate_protocols(self) -> set[str]:
        """Protocols every member supports."""
        sets = [{name for name, _ in m.protocols} for m in self.members.values()]
        return set.intersection(*sets) if sets else set()

    def select_protocol(self) -> str:
        """Kafka's vote: each member votes for its most preferred protocol that all support."""
        candidates = self.candidate_protocols()
        votes: dict[str, int] = {}
        for m in self.members.values():
            choice = next(name for name, _ in m.protocols if name in candidates)
            votes[choice] = votes.get(choice, 0) + 1
        # Ties go to the protocol listed first by the first member (stable across runs).
        order = [name for name, _ in next(iter(self.members.values())).protocols]
        return max(votes, key=lambda name: (votes[name], -order.index(name)))

    def _supports(self, protocol_type: str, protocols: Protocols) -> bool:
        if not protocol_type or not protocols:
            return False
        if not self.members:
            return True
        return protocol_type == self.protocol_type and bool(
            {name for name, _ in protocols} & self.candidate_protocols())

    # -- JoinGroup --------------------------------------------------------------------------

    def join(self, member_id: str, instance_id: str | None, client_id: str, client_host: str,
             session_timeout_ms: int, rebalance_timeout_ms: int, protocol_type: str,
             protocols: Protocols, *, require_known_member_id: bool) -> tuple[str, Effects]:
        """Handle a JoinGroup; returns the member id the reply will be for, and the effects.

        If the effects' ``joins`` lack that id, the reply comes with a later step
        (when the rebalance completes)."""
        fx = Effects()
        known = member_id in self.members or member_id in self.pending
        if member_id and not known:
            fx.joins[member_id] = JoinReply(UNKNOWN_MEMBER_ID, member_id)
            return member_id, fx
        if member_id in self.members:
            error, _ = self.member_for(member_id, instance_id)
            if error:
                fx.joins[member_id] = JoinReply(error, member_id)
                return member_id, fx
        if not self._supports(protocol_type, protocols) and not (
                len(self.members) == 1 and member_id in self.members):
            fx.joins[member_id or ""] = JoinReply(INCONSISTENT_GROUP_PROTOCOL, member_id)
            return member_id, fx

        if member_id in self.members:
            self._join_known(self.members[member_id], protocols, fx)
            return member_id, fx
        if not member_id and instance_id is not None and instance_id in self._static:
            return self._replace_static(instance_id, client_id, client_host, session_timeout_ms,
                                        rebalance_timeout_ms, protocol_type, protocols, fx)
        if not member_id:
            member_id = f"{client_id or 'member'}-{uuid.uuid4()}"
            if require_known_member_id and instance_id is None:
                # KIP-394: the client joins again with this id, so a lost reply cannot
                # leave a member behind that nobody heartbeats for.
                self.pending.add(member_id)
                fx.joins[member_id] = JoinReply(MEMBER_ID_REQUIRED, member_id)
                return member_id, fx
        self.pending.discard(member_id)
        member = Member(member_id, instance_id, client_id, client_host, session_timeout_ms,
                        rebalance_timeout_ms, protocol_type, protocols, awaiting_join=True)
        self.members[member_id] = member
        if instance_id is not None:
            self._static[instance_id] = member_id
        if self.protocol_type is None:
            self.protocol_type = protocol_type
        self._prepare_rebalance(fx)
        self._try_complete_join(fx)
        return member_id, fx

    def _join_known(self, member: Member, protocols: Protocols, fx: Effects) -> None:
        changed = member.protocols != protocols
        member.protocols = protocols
        if self.state is GroupState.PREPARING_REBALANCE:
            member.awaiting_join = True
            self._try_complete_join(fx)
        elif self.state is GroupState.COMPLETING_REBALANCE and not changed:
            # A resent JoinGroup (its reply was lost): the current generation again.
            fx.joins[member.member_id] = self._reply_for(member)
        elif self.state is GroupState.STABLE and not changed and member.member_id != self.leader:
            fx.joins[member.member_id] = self._reply_for(member)
        else:
            member.awaiting_join = True
            self._prepare_rebalance(fx)
            self._try_complete_join(fx)

    def _replace_static(self, instance_id: str, client_id: str, client_host: str,
                        session_timeout_ms: int, rebalance_timeout_ms: int, protocol_type: str,
                        protocols: Protocols, fx: Effects) -> tuple[str, Effects]:
        """A restarted static member takes its old place (KIP-345): no rebalance if nothing changed."""
        old = self.members.pop(self._static[instance_id])
        new_id = f"{client_id or instance_id}-{uuid.uuid4()}"
        if old.awaiting_join:
            fx.joins[old.member_id] = JoinReply(FENCED_INSTANCE_ID, old.member_id)
        if old.awaiting_sync:
            fx.syncs[old.member_id] = SyncReply(FENCED_INSTANCE_ID)
        fx.removed.append(old.member_id)
        member = Member(new_id, instance_id, client_id, client_host, session_timeout_ms,
                        rebalance_timeout_ms, protocol_type, protocols, assignment=old.assignment)
        self.members[new_id] = member
        self._static[instance_id] = new_id
        if self.leader == old.member_id:
            self.leader = new_id
        if self.state is GroupState.STABLE and old.protocols == protocols:
            # The leader gets no member list: it must not reassign what did not change.
            fx.joins[new_id] = JoinReply(NONE, new_id, self.generation_id, self.protocol_type,
                                         self.protocol_name, self.leader or "")
        else:
            member.awaiting_join = True
            self._prepare_rebalance(fx)
            self._try_complete_join(fx)
        return new_id, fx

    def _reply_for(self, member: Member) -> JoinReply:
        members: tuple[tuple[str, str | None, bytes], ...] = ()
        if member.member_id == self.leader:
            members = tuple((m.member_id, m.group_instance_id, m.metadata(self.protocol_name))
                            for m in self.members.values())
        return JoinReply(NONE, member.member_id, self.generation_id, self.protocol_type,
                         self.protocol_name, self.leader or "", members)

    def _prepare_rebalance(self, fx: Effects) -> None:
        if self.state is GroupState.PREPARING_REBALANCE:
            return
        if self.state is GroupState.COMPLETING_REBALANCE:
            # Members waiting for the leader's assignment learn that it will not come.
            for m in self.members.values():
                if m.awaiting_sync:
                    m.awaiting_sync = False
                    fx.syncs[m.member_id] = SyncReply(REBALANCE_IN_PROGRESS)
        was_empty = self.state is GroupState.EMPTY
        self.state = GroupState.PREPARING_REBALANCE
        timeout = max((m.rebalance_timeout_ms for m in self.members.values()), default=0)
        if was_empty and self._initial_delay_ms > 0:
            # group.initial.rebalance.delay.ms: let the other members of a starting group
            # arrive before the first generation, instead of one rebalance per arrival.
            self._waiting_initial_delay = True
            timeout = min(self._initial_delay_ms, timeout)
        self._epoch += 1
        fx.timer = (self._epoch, timeout)

    def _try_complete_join(self, fx: Effects) -> None:
        if self.state is not GroupState.PREPARING_REBALANCE or self._waiting_initial_delay:
            return
        if self.pending or not all(m.awaiting_join for m in self.members.values()):
            return
        self._complete_join(fx)

    def _complete_join(self, fx: Effects) -> None:
        for m in list(self.members.values()):
            if not m.awaiting_join and m.group_instance_id is None:
                self._remove(m.member_id, fx)
        self.generation_id += 1
        if not self.members:
            self.state = GroupState.EMPTY
            self.protocol_name = None
            self.protocol_type = None
            self.leader = None
            return
        self.state = GroupState.COMPLETING_REBALANCE
        self.protocol_name = self.select_protocol()
        if self.leader not in self.members:
            self.leader = next(iter(m.member_id for m in self.members.values() if m.awaiting_join),
                               next(iter(self.members)))
        for m in self.members.values():
            if m.awaiting_join:
                m.awaiting_join = False
                fx.joins[m.member_id] = self._reply_for(m)
        # A leader that never sends its assignment must not hold the group forever.
        self._epoch += 1
        fx.timer = (self._epoch, max(m.rebalance_timeout_ms for m in self.members.values()))

    def timer_fired(self, epoch: int) -> Effects:
        """The rebalance (or pending-sync) timer armed with ``epoch`` ran out."""
        fx = Effects()
        if epoch != self._epoch:
            return fx
        if self.state is GroupState.PREPARING_REBALANCE:
            if self._waiting_initial_delay:
                self._waiting_initial_delay = False
                if self.pending or not all(m.awaiting_join for m in self.members.values()):
                    # Late members get the rest of the rebalance timeout, as Kafka's does.
                    self._epoch += 1
                    fx.timer = (self._epoch, max(m.rebalance_timeout_ms for m in self.members.values()))
                    return fx
            self.pending.clear()
            self._complete_join(fx)
        elif self.state is GroupState.COMPLETING_REBALANCE:
            for m in list(self.members.values()):
                if not m.awaiting_sync:
                    self._remove(m.member_id, fx)
            self._prepare_rebalance(fx)
            self._try_complete_join(fx)
        return fx

    # -- SyncGroup, Heartbeat, LeaveGroup, session expiry -----------------------------------

    def sync(self, member_id: str, instance_id: str | None, generation_id: int,
             protocol_type: str | None, protocol_name: str | None,
             assignments: dict[str, bytes]) -> Effects:
        fx = Effects()
        error, member = self.member_for(member_id, instance_id)
        if member is None:
            fx.syncs[member_id] = SyncReply(error)
        elif generation_id != self.generation_id:
            fx.syncs[member_id] = SyncReply(ILLEGAL_GENERATION)
        elif (protocol_type is not None and protocol_type != self.protocol_type) or (
                protocol_name is not None and protocol_name != self.protocol_name):
            fx.syncs[member_id] = SyncReply(INCONSISTENT_GROUP_PROTOCOL)
        elif self.state is GroupState.PREPARING_REBALANCE:
            fx.syncs[member_id] = SyncReply(REBALANCE_IN_PROGRESS)
        elif self.state is GroupState.STABLE:
            fx.syncs[member_id] = self._sync_reply(member)
        elif self.state is GroupState.COMPLETING_REBALANCE:
            member.awaiting_sync = True
            if member_id == self.leader:
                for m in self.members.values():
                    m.assignment = assignments.get(m.member_id, b"")
                self.state = GroupState.STABLE
                self._epoch += 1  # the pending-sync timer is moot
                for m in self.members.values():
                    if m.awaiting_sync:
                        m.awaiting_sync = False
                        fx.syncs[m.member_id] = self._sync_reply(m)
        else:
            fx.syncs[member_id] = SyncReply(UNKNOWN_MEMBER_ID)
        return fx

    def _sync_reply(self, member: Member) -> SyncReply:
        return SyncReply(NONE, self.protocol_type, self.protocol_name, member.assignment)

    def heartbeat(self, member_id: str, instance_id: str | None, generation_id: int) -> int:
        error, member = self.member_for(member_id, instance_id)
        if member is None:
            return error
        if generation_id != self.generation_id:
            return ILLEGAL_GENERATION
        if self.state is GroupState.PREPARING_REBALANCE:
            return REBALANCE_IN_PROGRESS
        return NONE

    def leave(self, member_id: str, instance_id: str | None) -> tuple[int, Effects]:
        """One member of a LeaveGroup (v3+ name several, by member id or instance id)."""
        fx = Effects()
        if instance_id is not None:
            current = self._static.get(instance_id)
            if current is None:
                return UNKNOWN_MEMBER_ID, fx
            if member_id and member_id != current:
                return FENCED_INSTANCE_ID, fx
            member_id = current
        if member_id in self.pending:
            self.pending.discard(member_id)
            self._try_complete_join(fx)
            return NONE, fx
        if member_id not in self.members:
            return UNKNOWN_MEMBER_ID, fx
        self._remove(member_id, fx)
        self._after_removal(fx)
        return NONE, fx

    def expire(self, member_id: str) -> Effects:
        """The member's session timed out (no heartbeat for session.timeout.ms)."""
        fx = Effects()
        if member_id in self.pending:
            self.pending.discard(member_id)
            self._try_complete_join(fx)
        elif member_id in self.members:
            self._remove(member_id, fx)
            self._after_removal(fx)
        return fx

    def keep_alive(self, member_id: str) -> bool:
        """Whether a member's expired session is forgiven: it waits on us, not we on it."""
        m = self.members.get(member_id)
        return m is not None and (m.awaiting_join or m.awaiting_sync)

    def _remove(self, member_id: str, fx: Effects) -> None:
        m = self.members.pop(member_id)
        if m.group_instance_id is not None and self._static.get(m.group_instance_id) == member_id:
            del self._static[m.group_instance_id]
        if m.awaiting_join:
            fx.joins[member_id] = JoinReply(UNKNOWN_MEMBER_ID, member_id)
        if m.awaiting_sync:
            fx.syncs[member_id] = SyncReply(UNKNOWN_MEMBER_ID)
        fx.removed.append(member_id)

    def _after_removal(self, fx: Effects) -> None:
        if self.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self._prepare_rebalance(fx)
        self._try_complete_join(fx)

    # -- OffsetCommit -----------------------------------------------------------------------

    def commit_error(self, member_id: str, instance_id: str | None, generation_id: int) -> int:
        """Kafka's check of an OffsetCommit against membership (0: commit it)."""
        if generation_id < 0 and not member_id and instance_id is None:
            # Offsets of a group that does not use Kafka's membership (manual assignment,
            # kafka-consumer-groups --reset-offsets): only while nobody is a member.
            return NONE if self.state is GroupState.EMPTY else UNKNOWN_MEMBER_ID
        error, member = self.member_for(member_id, instance_id)
        if member is None:
            return error
        if generation_id != self.generation_id:
            return ILLEGAL_GENERATION
        if self.state is GroupState.COMPLETING_REBALANCE:
            return REBALANCE_IN_PROGRESS
        return NONE
