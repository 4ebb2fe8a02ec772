"""The group APIs on the wire: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
ListGroups, DescribeGroups, DeleteGroups. Each handler reads kio's request of any version,
asks the coordinator (``_coordinator.py``) and builds kio's response of that version.

The box is the coordinator of every group: FindCoordinator answers the listener itself.
"""

from __future__ import annotations

import datetime
from typing import Any

from kio.schema.errors import ErrorCode

from ._context import Connection, ServerContext
from ._coordinator import CoordinatorSettings, GroupCoordinator
from ._framing import RequestHeader
from ._group_errors import INVALID_GROUP_ID
from ._registry import Registry
from ._schema import build, nested, response_class

FIND_COORDINATOR, JOIN_GROUP, HEARTBEAT, LEAVE_GROUP, SYNC_GROUP = 10, 11, 12, 13, 14
DESCRIBE_GROUPS, LIST_GROUPS, DELETE_GROUPS = 15, 16, 42

_NO_THROTTLE = datetime.timedelta(0)
#: DescribeGroups' authorized_operations when not asked for (Kafka's INT32_MIN).
_NOT_ASKED = -2147483648
#: Without ACLs every client may do all a group allows: READ, DESCRIBE, DELETE (as bits).
_GROUP_OPS = sum(1 << op for op in (3, 6, 8))
#: ctx.extensions key of the server's coordinator.
EXTENSION = "groups"


def install(registry: Registry) -> None:
    registry.register(FIND_COORDINATOR, 0, 4, find_coordinator)
    registry.register(JOIN_GROUP, 0, 9, join_group)
    registry.register(HEARTBEAT, 0, 4, heartbeat)
    registry.register(LEAVE_GROUP, 0, 5, leave_group)
    registry.register(SYNC_GROUP, 0, 5, sync_group)
    registry.register(DESCRIBE_GROUPS, 0, 5, describe_groups)
    registry.register(LIST_GROUPS, 0, 5, list_groups)
    registry.register(DELETE_GROUPS, 0, 2, delete_groups)


def coordinator(ctx: ServerContext) -> GroupCoordinator:
    """The server's coordinator, made on first use and closed with the server."""
    c: GroupCoordinator | None = ctx.extensions.get(EXTENSION)
    if c is None:
        c = ctx.extensions[EXTENSION] = GroupCoordinator(ctx.log, ctx.config.groups or CoordinatorSettings(),
                                                         on_change=ctx.metrics.set_groups)
        ctx.start_task(_close_at_shutdown(c), "group coordinator")
    return c


async def _close_at_shutdown(c: GroupCoordinator) -> None:
    import asyncio

    try:
        await asyncio.Event().wait()  # until the server cancels its tasks at close
    finally:
        c.close()


def _ms(value: Any) -> int:
    """kio gives durations as timedelta; Kafka means milliseconds."""
    if isinstance(value, datetime.timedelta):
        return int(value.total_seconds() * 1000)
    return int(value)


def _host(conn: Connection) -> str:
    # Kafka prints the client's address as Java's InetAddress.toString: "/127.0.0.1".
    return "/" + conn.peer.rsplit(":", 1)[0]


# -- FindCoordinator ------------------------------------------------------------------------------

async def find_coordinator(ctx: ServerContext, conn: Connection, header: RequestHeader,
                           request: Any) -> Any:
    cls = response_class(FIND_COORDINATOR, header.api_version)
    if header.api_version < 4:
        return build(cls, throttle_time=_NO_THROTTLE, error_code=ErrorCode.none, error_message=None,
                     node_id=ctx.node_id, host=ctx.advertised_host, port=ctx.advertised_port)
    # v4: several keys in one request (KIP-699); every one is coordinated here.
    item = nested(cls, "Coordinator")
    return build(cls, throttle_time=_NO_THROTTLE, coordinators=tuple(
        build(item, key=key, node_id=ctx.node_id, host=ctx.advertised_host,
              port=ctx.advertised_port, error_code=ErrorCode.none, error_message=None)
        for key in request.coordinator_keys))


# -- membership -----------------------------------------------------------------------------------

async def join_group(ctx: ServerContext, conn: Connection, header: RequestHeader, request: Any) -> Any:
    version = header.api_version
    cls = response_class(JOIN_GROUP, version)
    session_ms = _ms(request.session_timeout)
    # v0 has no rebalance timeout: Kafka uses the session timeout for both.
    rebalance_ms = _ms(getattr(request, "rebalance_timeout", request.session_timeout))
    reply = await coordinator(ctx).join(
        request.group_id, request.member_id, getattr(request, "group_instance_id", None),
        header.client_id or "", _host(conn), session_ms, rebalance_ms, request.protocol_type,
        tuple((p.name, p.metadata) for p in request.protocols),
        # KIP-394: from v4 a new member first gets its id (MEMBER_ID_REQUIRED), then joins.
        require_known_member_id=version >= 4)
    member_cls = nested(cls, "JoinGroupResponseMember")
    return build(cls, throttle_time=_NO_THROTTLE, error_code=ErrorCode(reply.error),
                 generation_id=reply.generation_id, protocol_type=reply.protocol_type,
                 # Before v7 the protocol name is not nullable: "" for none.
                 protocol_name=reply.protocol_name if version >= 7 else reply.protocol_name or "",
                 leader=reply.leader, skip_assignment=False, member_id=reply.member_id,
                 members=tuple(build(member_cls, member_id=mid, group_instance_id=iid, metadata=meta)
                               for mid, iid, meta in reply.members))


async def sync_group(ctx: ServerContext, conn: Connection, header: RequestHeader, request: Any) -> Any:
    cls = response_class(SYNC_GROUP, header.api_version)
    reply = await coordinator(ctx).sync(
        request.group_id, request.member_id, getattr(request, "group_instance_id", None),
        request.generation_id, getattr(request, "protocol_type", None),
        getattr(request, "protocol_name", None),
        {a.member_id: a.assignment for a in request.assignments})
    return build(cls, throttle_time=_NO_THROTTLE, error_code=ErrorCode(reply.error),
                 protocol_type=reply.protocol_type, protocol_name=reply.protocol_name,
                 assignment=reply.assignment)


async def heartbeat(ctx: ServerContext, conn: Connection, header: RequestHeader, request: Any) -> Any:
    cls = response_class(HEARTBEAT, header.api_version)
    error = coordinator(ctx).heartbeat(request.group_id, request.member_id,
                                       getattr(request, "group_instance_id", None),
                                       request.generation_id)
    return build(cls, throttle_time=_NO_THROTTLE, error_code=ErrorCode(error))


async def leave_group(ctx: ServerContext, conn: Connection, header: RequestHeader, request: Any) -> Any:
    cls = response_class(LEAVE_GROUP, header.api_version)
    if header.api_version < 3:
        error = coordinator(ctx).leave(request.group_id, [(request.member_id, None)])[0]
        return build(cls, throttle_time=_NO_THROTTLE, error_code=ErrorCode(error))
    # v3 (KIP-345): a batch of members, by member id or group.instance.id.
    members = [(m.member_id, m.group_instance_id) for m in request.members]
    errors = coordinator(ctx).leave(request.group_id, members)
    item = nested(cls, "MemberResponse")
    return build(cls, throttle_time=_NO_THROTTLE, error_code=ErrorCode.none, members=tuple(
        build(item, member_id=mid, group_instance_id=iid, error_code=ErrorCode(err))
        for (mid, iid), err in zip(members, errors, strict=True)))


# -- admin ----------------------------------------------------------------------------------------

async def list_groups(ctx: ServerContext, conn: Connection, header: RequestHeader, request: Any) -> Any:
    cls = response_class(LIST_GROUPS, header.api_version)
    types = {t.lower() for t in getattr(request, "types_filter", ())}
    groups = await coordinator(ctx).list_groups(getattr(request, "states_filter", ()))
    if types and "classic" not in types:
        groups = []  # every group here speaks the classic protocol (no KIP-848 groups)
    item = nested(cls, "ListedGroup")
    return build(cls, throttle_time=_NO_THROTTLE, error_code=ErrorCode.none, groups=tuple(
        build(item, group_id=gid, protocol_type=ptype, group_state=state, group_type="classic")
        for gid, ptype, state in groups))


async def describe_groups(ctx: ServerContext, conn: Connection, header: RequestHeader,
                          request: Any) -> Any:
    cls = response_class(DESCRIBE_GROUPS, header.api_version)
    group_cls, member_cls = nested(cls, "DescribedGroup"), nested(cls, "DescribedGroupMember")
    ops = _GROUP_OPS if getattr(request, "include_authorized_operations", False) else _NOT_ASKED
    out = []
    for gid in request.groups:
        if not gid:
            out.append(build(group_cls, error_code=ErrorCode(INVALID_GROUP_ID), group_id=gid,
                             group_state="", protocol_type="", protocol_data="", members=(),
                             authorized_operations=ops))
            continue
        d = await coordinator(ctx).describe(gid)
        out.append(build(group_cls, error_code=ErrorCode(d.error), group_id=gid, group_state=d.state,
                         protocol_type=d.protocol_type, protocol_data=d.protocol,
                         authorized_operations=ops, members=tuple(
                             build(member_cls, member_id=m.member_id, group_instance_id=m.group_instance_id,
                                   client_id=m.client_id, client_host=m.client_host,
                                   member_metadata=m.metadata, member_assignment=m.assignment)
                             for m in d.members)))
    return build(cls, throttle_time=_NO_THROTTLE, groups=tuple(out))


async def delete_groups(ctx: ServerContext, conn: Connection, header: RequestHeader,
                        request: Any) -> Any:
    cls = response_class(DELETE_GROUPS, header.api_version)
    item = nested(cls, "DeletableGroupResult")
    names = list(request.groups_names)
    results = await coordinator(ctx).delete([g for g in names if g])
    by_name = dict(results)
    return build(cls, throttle_time=_NO_THROTTLE, results=tuple(
        build(item, group_id=g, error_code=ErrorCode(by_name.get(g, INVALID_GROUP_ID) if g else INVALID_GROUP_ID))
        for g in names))

