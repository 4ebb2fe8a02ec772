"""The group coordinator of the box: membership over the asyncio clock, offsets in the log.

Each group's rules live in ``_groups.Group`` (a pure state machine). This module owns
what the rules need from the outside: a future per member waiting on a JoinGroup or
SyncGroup reply, a session timer per member (reset by every request it sends), one
rebalance timer per group, and the offset store, whose SQLite work runs on one thread
of its own so a commit never stalls the loop that serves every other client.

All methods run on the event loop; none may be called from another thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from .._errors import ConfigError
from .._log import Log
from ._coordinator_store import Committed, GroupOffsetStore
from ._group_errors import (
    GROUP_ID_NOT_FOUND,
    GROUP_SUBSCRIBED_TO_TOPIC,
    ILLEGAL_GENERATION,
    INVALID_GROUP_ID,
    INVALID_SESSION_TIMEOUT,
    NON_EMPTY_GROUP,
    NONE,
    UNKNOWN_MEMBER_ID,
)
from ._groups import Effects, Group, GroupState, JoinReply, Protocols, SyncReply

log = logging.getLogger(__name__)

_T = TypeVar("_T")


@dataclass(frozen=True)
class CoordinatorSettings:
    """Kafka's broker-side group settings, with Kafka's defaults (in ms, as Kafka's are)."""

    #: group.min.session.timeout.ms / group.max.session.timeout.ms
    min_session_timeout_ms: int = 6000
    max_session_timeout_ms: int = 1_800_000
    #: group.initial.rebalance.delay.ms: how long a new group waits for more members.
    initial_rebalance_delay_ms: int = 3000

    def __post_init__(self) -> None:
        for name in ("min_session_timeout_ms", "max_session_timeout_ms", "initial_rebalance_delay_ms"):
            value = getattr(self, name)
            if type(value) is not int or value < (0 if name == "initial_rebalance_delay_ms" else 1):
                raise ConfigError(f"{name}: expected an integer number of ms "
                                  f"{'>= 0' if name == 'initial_rebalance_delay_ms' else '> 0'}, got {value!r:.80}")
        if self.min_session_timeout_ms > self.max_session_timeout_ms:
            raise ConfigError(f"the group session timeouts' minimum ({self.min_session_timeout_ms} ms) is above "
                              f"their maximum ({self.max_session_timeout_ms} ms): no client could join")


@dataclass(frozen=True)
class MemberDescription:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    metadata: bytes
    assignment: bytes


@dataclass(frozen=True)
class GroupDescription:
    group_id: str
    state: str
    protocol_type: str
    protocol: str
    members: tuple[MemberDescription, ...]
    error: int = NONE


class GroupCoordinator:
    """Coordinates every group of one log; see the module docstring."""

    def __init__(self, log_: Log, settings: CoordinatorSettings | None = None,
                 on_change: Callable[[dict[str, int]], None] | None = None) -> None:
        """``on_change({group_id: members})`` is called when a group's membership changes."""
        self.settings = settings or CoordinatorSettings()
        self._on_change = on_change
        self._reported: dict[str, int] = {}
        self._store = GroupOffsetStore(log_)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wire-groups")
        self._groups: dict[str, Group] = {}
        self._join_waiters: dict[tuple[str, str], asyncio.Future[JoinReply]] = {}
        self._sync_waiters: dict[tuple[str, str], asyncio.Future[SyncReply]] = {}
        self._sessions: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self._rebalance_timers: dict[str, asyncio.TimerHandle] = {}

    def close(self) -> None:
        """Cancel every timer and stop the store's thread; safe to call twice."""
        for handle in [*self._sessions.values(), *self._rebalance_timers.values()]:
            handle.cancel()
        self._sessions.clear()
        self._rebalance_timers.clear()
        for jfut in self._join_waiters.values():
            jfut.cancel()
        for sfut in self._sync_waiters.values():
            sfut.cancel()
        self._executor.shutdown(wait=True)

    async def _in_store(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # -- membership -------------------------------------------------------------------------

    async def join(self, group_id: str, member_id: str, group_instance_id: str | None,
                   client_id: str, client_host: str, session_timeout_ms: int,
                   rebalance_timeout_ms: int, protocol_type: str, protocols: Protocols,
                   *, require_known_member_id: bool) -> JoinReply:
        """A JoinGroup; returns when the group's next generation is formed (or at once on error)."""
        if not group_id:
            return JoinReply(INVALID_GROUP_ID, member_id)
        s = self.settings
        if not s.min_session_timeout_ms <= session_timeout_ms <= s.max_session_timeout_ms:
            log.info("group %r: JoinGroup refused: session timeout %d ms is outside %d..%d ms "
                     "(group.min/max.session.timeout.ms)", group_id, session_timeout_ms,
                     s.min_session_timeout_ms, s.max_session_timeout_ms)
            return JoinReply(INVALID_SESSION_TIMEOUT, member_id)
        group = self._groups.get(group_id)
        if group is None:
            group = self._groups[group_id] = Group(
                group_id, initial_rebalance_delay_ms=s.initial_rebalance_delay_ms)
        mid, fx = group.join(member_id, group_instance_id, client_id, client_host,
                             session_timeout_ms, rebalance_timeout_ms, protocol_type, protocols,
                             require_known_member_id=require_known_member_id)
        reply = fx.joins.get(mid)
        if reply is not None:
            self._apply(group, fx)
            if mid in group.pending:
                self._touch(group, mid, session_timeout_ms)
            return reply
        fut: asyncio.Future[JoinReply] = asyncio.get_running_loop().create_future()
        self._join_waiters[(group_id, mid)] = fut
        self._apply(group, fx)
        self._touch(group, mid, session_timeout_ms)
        try:
            return await fut
        finally:
            if self._join_waiters.get((group_id, mid)) is fut:
                del self._join_waiters[(group_id, mid)]

    async def sync(self, group_id: str, member_id: str, group_instance_id: str | None,
                   generation_id: int, protocol_type: str | None, protocol_name: str | None,
                   assignments: dict[str, bytes]) -> SyncReply:
        """A SyncGroup; a follower's returns once the leader's assignment is in."""
        group = self._groups.get(group_id)
        if group is None:
            return SyncReply(UNKNOWN_MEMBER_ID)
        fx = group.sync(member_id, group_instance_id, generation_id, protocol_type,
                        protocol_name, assignments)
        self._touch(group, member_id)
        reply = fx.syncs.pop(member_id, None)
        if reply is not None:
            self._apply(group, fx)
            return reply
        fut: asyncio.Future[SyncReply] = asyncio.get_running_loop().create_future()
        self._sync_waiters[(group_id, member_id)] = fut
        self._apply(group, fx)
        try:
            return await fut
        finally:
            if self._sync_waiters.get((group_id, member_id)) is fut:
                del self._sync_waiters[(group_id, member_id)]

    def heartbeat(self, group_id: str, member_id: str, group_instance_id: str | None,
                  generation_id: int) -> int:
        group = self._groups.get(group_id)
        if group is None:
            return UNKNOWN_MEMBER_ID
        error = group.heartbeat(member_id, group_instance_id, generation_id)
        self._touch(group, member_id)
        return error

    def leave(self, group_id: str, members: Iterable[tuple[str, str | None]]) -> list[int]:
        """LeaveGroup for each (member_id, group_instance_id); one error code per member."""
        group = self._groups.get(group_id)
        errors = []
        for member_id, instance_id in members:
            if group is None:
                errors.append(UNKNOWN_MEMBER_ID)
                continue
            generation = group.generation_id
            error, fx = group.leave(member_id, instance_id)
            if error == NONE:
                log.info("group %r: member %s left (generation %d)", group_id, member_id or instance_id,
                         generation)
            self._apply(group, fx)
            errors.append(error)
        return errors

    # -- timers -----------------------------------------------------------------------------

    def _touch(self, group: Group, member_id: str, session_timeout_ms: int | None = None) -> None:
        """Restart the member's session timer: it spoke, so it is alive."""
        member = group.members.get(member_id)
        if member is not None:
            session_timeout_ms = member.session_timeout_ms
        elif member_id not in group.pending or session_timeout_ms is None:
            return
        key = (group.group_id, member_id)
        old = self._sessions.pop(key, None)
        if old is not None:
            old.cancel()
        self._sessions[key] = asyncio.get_running_loop().call_later(
            session_timeout_ms / 1000, self._session_expired, group, member_id)

    def _session_expired(self, group: Group, member_id: str) -> None:
        self._sessions.pop((group.group_id, member_id), None)
        if group.keep_alive(member_id):
            self._touch(group, member_id)
            return
        if member_id in group.members:
            log.info("group %r: member %s expired: no heartbeat within its session timeout of %d ms",
                     group.group_id, member_id, group.members[member_id].session_timeout_ms)
        self._apply(group, group.expire(member_id))

    def _rebalance_timer(self, group: Group, epoch: int) -> None:
        self._rebalance_timers.pop(group.group_id, None)
        self._apply(group, group.timer_fired(epoch))

    def _apply(self, group: Group, fx: Effects) -> None:
        """Deliver replies that a step completed, arm the timer it asked for."""
        gid = group.group_id
        self._report(group)
        for mid, reply in fx.joins.items():
            fut = self._join_waiters.pop((gid, mid), None)
            if fut is not None and not fut.done():
                fut.set_result(reply)
            if reply.error == NONE:
                self._touch(group, mid)
        for mid, sreply in fx.syncs.items():
            sfut = self._sync_waiters.pop((gid, mid), None)
            if sfut is not None and not sfut.done():
                sfut.set_result(sreply)
        for mid in fx.removed:
            handle = self._sessions.pop((gid, mid), None)
            if handle is not None:
                handle.cancel()
        if fx.timer is not None:
            epoch, delay_ms = fx.timer
            old = self._rebalance_timers.pop(gid, None)
            if old is not None:
                old.cancel()
            self._rebalance_timers[gid] = asyncio.get_running_loop().call_later(
                delay_ms / 1000, self._rebalance_timer, group, epoch)
        if group.state is GroupState.EMPTY and not group.members and not group.pending:
            # Nobody is in it: forget it, or every console consumer's one-off group id
            # would stay in memory for good. Its offsets stay in the log; a member of an
            # old generation that commits now is told ILLEGAL_GENERATION and rejoins.
            if self._groups.get(gid) is group:
                del self._groups[gid]
            handle = self._rebalance_timers.pop(gid, None)
            if handle is not None:
                handle.cancel()
        if any(r.members for r in fx.joins.values()):
            log.info("group %r: generation %d formed: %d member(s), protocol %s, leader %s", gid,
                     group.generation_id, len(group.members), group.protocol_name, group.leader)

    # -- offsets ----------------------------------------------------------------------------

    async def commit(self, group_id: str, member_id: str, group_instance_id: str | None,
                     generation_id: int, offsets: list[Committed]) -> list[int]:
        """OffsetCommit: one error code per partition, checked against membership first."""
        group = self._groups.get(group_id)
        if group is None:
            if generation_id >= 0:
                # A member of a generation this coordinator never formed (it restarted):
                # it must rejoin before its offsets count.
                return [ILLEGAL_GENERATION] * len(offsets)
            error = NONE
        else:
            error = group.commit_error(member_id, group_instance_id, generation_id)
            self._touch(group, member_id)
        if error != NONE:
            return [error] * len(offsets)
        result: list[int] = await self._in_store(self._store.commit, group_id, offsets)
        return result

    async def fetch(self, group_id: str,
                    partitions: list[tuple[str, int]] | None) -> list[Committed]:
        """OffsetFetch: committed offsets (-1 where none); every committed one if None."""
        result: list[Committed] = await self._in_store(self._store.fetch, group_id, partitions)
        return result

    async def delete_offsets(self, group_id: str,
                             partitions: list[tuple[str, int]]) -> tuple[int, list[int]]:
        """OffsetDelete: (group error, one error per partition). The topics a live member
        subscribes to keep their offsets (GROUP_SUBSCRIBED_TO_TOPIC), as in Kafka."""
        group = self._groups.get(group_id)
        if group is None and not await self._in_store(self._store.exists, group_id):
            return GROUP_ID_NOT_FOUND, []
        subscribed = group.subscribed_topics() if group is not None else set()
        errors = [GROUP_SUBSCRIBED_TO_TOPIC if t in subscribed else NONE for t, _ in partitions]
        doomed = [tp for tp, e in zip(partitions, errors, strict=True) if e == NONE]
        if doomed:
            await self._in_store(self._store.delete_offsets, group_id, doomed)
        return NONE, errors

    # -- admin ------------------------------------------------------------------------------

    async def list_groups(self, states: Iterable[str] = ()) -> list[tuple[str, str, str]]:
        """(group_id, protocol_type, state) of every group, live or only committed."""
        wanted = {s.lower() for s in states}
        out = {gid: (g.protocol_type or "consumer", g.state.value) for gid, g in self._groups.items()}
        for gid in await self._in_store(self._store.groups):
            out.setdefault(gid, ("consumer", GroupState.EMPTY.value))
        return [(gid, ptype, state) for gid, (ptype, state) in sorted(out.items())
                if not wanted or state.lower() in wanted]

    async def describe(self, group_id: str) -> GroupDescription:
        group = self._groups.get(group_id)
        if group is None or (group.state is GroupState.EMPTY and not group.members):
            known = await self._in_store(self._store.exists, group_id)
            if group is None and not known:
                return GroupDescription(group_id, GroupState.DEAD.value, "", "", ())
            return GroupDescription(group_id, GroupState.EMPTY.value, "consumer", "", ())
        stable = group.state is GroupState.STABLE
        members = tuple(MemberDescription(
            m.member_id, m.group_instance_id, m.client_id, m.client_host,
            m.metadata(group.protocol_name) if stable else b"",
            m.assignment if stable else b"") for m in group.members.values())
        return GroupDescription(group_id, group.state.value, group.protocol_type or "",
                                group.protocol_name or "", members)

    async def delete(self, group_ids: Iterable[str]) -> list[tuple[str, int]]:
        """DeleteGroups: only groups without members (NON_EMPTY_GROUP otherwise)."""
        out = []
        for gid in group_ids:
            group = self._groups.get(gid)
            if group is not None and (group.members or group.pending):
                out.append((gid, NON_EMPTY_GROUP))
                continue
            if group is None and not await self._in_store(self._store.exists, gid):
                out.append((gid, GROUP_ID_NOT_FOUND))
                continue
            self._groups.pop(gid, None)
            await self._in_store(self._store.delete, gid)
            log.info("group %r deleted", gid)
            out.append((gid, NONE))
        return out

    def _report(self, group: Group) -> None:
        n = len(group.members)
        if self._reported.get(group.group_id, 0) == n:
            return
        if n:
            self._reported[group.group_id] = n
        else:
            self._reported.pop(group.group_id, None)
        if self._on_change is not None:
            self._on_change(dict(self._reported))

    def stats(self) -> dict[str, int]:
        """Groups with members and members in total, for status and metrics."""
        live = [g for g in self._groups.values() if g.members]
        return {"groups": len(live), "members": sum(len(g.members) for g in live)}

