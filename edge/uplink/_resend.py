"""Re-sends (the fleet's ``rereplicate`` command): kept in the local log until they pass
their end, so a reconnect or a restart mid-way goes on with them instead of skipping them.

A re-send of a local partition lives in the uplink's local group commit of that partition:
the commit's offset is how far the re-send has got (committed with everything else, every
``_LOCAL_COMMIT_S``), its metadata the range, ``{"resend": {"start": s, "end": e}}``. One
SQLite row holds both, so they never disagree after a power cut.

``end`` is where upstream stood when the re-send began: below it the records are sent a
second time on purpose, from it on they were never upstream and go exactly once. It is
not known when the command runs (the checkpoint is upstream, the box may be offline), so
``request_resend`` stores ``end: null``, ``hint`` (the end of a re-send it merges with) and
leaves the commit's offset as it is; the uplink's next connect fixes ``end`` at the highest
of the hint and its usual resume position, and stores it with the commit's offset moved to
``start`` before sending anything (``settle``).

At each later connect a partition with a re-send resumes at the commit's offset (the
re-send's progress, at most ``_LOCAL_COMMIT_S`` behind: that much of the range is sent a
third time after a cut) unless its usual resume position is past ``end``: then the
re-send was done (the upstream checkpoint only moves past ``end`` with records of the
re-send) and its commit has not been cleared yet.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from broker import BrokerError, KafkaAdminClient, OffsetAndMetadata, TopicPartition

from ._config import UplinkConfig
from ._errors import UplinkError

__all__ = ["Resend", "decode", "encode", "request_resend", "settle"]

log = logging.getLogger("edge.uplink")

_KEY = "resend"


@dataclass(frozen=True)
class Resend:
    """A partition's re-send: from ``start`` to ``end`` (None: fixed at the next connect,
    at least ``hint``)."""

    start: int
    end: int | None
    hint: int = 0


def encode(resend: Resend) -> str:
    body: dict[str, int | None] = {"start": resend.start, "end": resend.end}
    if resend.end is None:
        body["hint"] = resend.hint
    return json.dumps({_KEY: body}, separators=(",", ":"))


def decode(metadata: str | None) -> Resend | None:
    """The re-send a commit's metadata holds, None for a plain commit (or anyone else's)."""
    if not metadata or _KEY not in metadata:
        return None
    try:
        body = json.loads(metadata)[_KEY]
        end = body["end"]
        return Resend(int(body["start"]), None if end is None else int(end),
                      int(body.get("hint") or 0))
    except (ValueError, KeyError, TypeError) as exc:
        raise UplinkError(f"unreadable re-send in the uplink's local commit: {metadata!r}") from exc


def request_resend(config: UplinkConfig, positions: dict[TopicPartition, int]) -> None:
    """Store a re-send of each local partition from its offset in ``positions``: the next
    uplink on ``config.data_dir`` sends them again, across reconnects and restarts, until
    each passes where upstream stood. Call while no uplink runs on the log (it commits
    the same group); blocking. A re-send still under way merges with the new one: from the
    lower position, up to the higher end. Raises ``UplinkError``."""
    try:
        with KafkaAdminClient(config.data_dir) as admin:
            current = admin.list_consumer_group_offsets(config.group_id)
            out: dict[TopicPartition, OffsetAndMetadata | int] = {}
            for tp, start in positions.items():
                om = current.get(tp)
                # The commit's offset stays: until the connect fixes the end, it is still
                # part of where upstream stands (at least once, all of it).
                committed = 0 if om is None else om.offset
                old = None if om is None else decode(om.metadata)
                if old is None:
                    hint = committed
                elif old.end is None:
                    start, hint = min(start, old.start), old.hint
                else:   # under way: its progress is the commit's offset
                    start, hint = min(start, committed), old.end
                out[tp] = OffsetAndMetadata(committed, encode(Resend(start, None, hint)))
            admin.alter_consumer_group_offsets(config.group_id, out)
    except BrokerError as exc:
        raise UplinkError(f"storing the re-send in {config.data_dir}: {exc}") from exc


def settle(resends: dict[TopicPartition, tuple[Resend, int]], usual: dict[TopicPartition, int]
           ) -> tuple[dict[TopicPartition, int], dict[TopicPartition, Resend | None]]:
    """At a connect: where each partition with a re-send resumes, and what its commit must
    now hold (a re-send whose end is fixed, or None: done). ``resends``: partition ->
    (re-send, committed offset = its progress); ``usual``: the usual resume positions
    (upstream checkpoint, local commits, what was acked)."""
    positions: dict[TopicPartition, int] = {}
    store: dict[TopicPartition, Resend | None] = {}
    for tp, (resend, progress) in resends.items():
        usual_pos = usual.get(tp, 0)
        if resend.end is None:
            end = max(resend.hint, usual_pos)
            if resend.start < end:
                store[tp] = Resend(resend.start, end)
                positions[tp] = resend.start
            else:   # asked from where upstream stands or later: nothing to send twice
                store[tp] = None
                positions[tp] = usual_pos
        elif usual_pos > resend.end:
            store[tp] = None
            positions[tp] = usual_pos
        else:
            positions[tp] = progress
    return positions, store
