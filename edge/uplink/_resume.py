"""Where to resume a local topic whose upstream checkpoint is gone: the ``edge.partition`` /
``edge.offset`` headers of our last records upstream, read ``read_committed`` from the end
backwards, bounded.

The scan starts from a floor that is known to be upstream: the local consumer group, which
is committed only after the upstream commit (at most ``_LOCAL_COMMIT_S`` behind, and exact
after a clean stop or a fault the uplink saw), and what this process itself saw committed.
The local commit is one SQLite transaction covering every partition after some upstream
transaction T: a cut. Our records above the cut belong to transactions after T, so in each
upstream partition they come after every record of ours below the cut; reading a
partition backwards in steps, the first step holding a record of ours below the cut is
that partition's last.
Other edges' records in between are skipped, up to ``max_records`` per partition.
"""

from __future__ import annotations

import logging
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition as UpTP

from ._errors import UpstreamError

__all__ = ["scan_upstream"]

log = logging.getLogger("edge.uplink")

# Records read per step backwards: a fetch returns up to max_partition_fetch_bytes from
# where it starts, past the step's end too, so small steps read the same bytes again and
# again (50,000 records of 100 B: 41 s in steps of 500, 5 s of 5,000, 1.7 s of 20,000).
# Records are looked at as they come, none kept: memory stays one fetch.
_CHUNK = 20_000


async def scan_upstream(options: dict[str, Any], edge_id: str, upstream: str, partitions: int,
                        floor: dict[int, int], max_records: int) -> dict[int, int]:
    """The next local offset per local partition after our last record in ``upstream``
    (read_committed; ``partitions`` of them), for those found above ``floor`` (local
    partition -> next offset known upstream). ``options``: the aiokafka client options.
    Raises ``UpstreamError``.
    """
    found: dict[int, int] = {}
    if not partitions or not max_records:
        return found
    consumer = AIOKafkaConsumer(**options, isolation_level="read_committed", group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    try:
        await consumer.start()
        tps = [UpTP(upstream, p) for p in range(partitions)]
        ends = await consumer.end_offsets(tps)          # the last stable offset, read_committed
        begins = await consumer.beginning_offsets(tps)
        ours = edge_id.encode()
        for tp in tps:
            await _scan_partition(consumer, tp, begins[tp], ends[tp], ours, floor, found,
                                  max_records)
    except UpstreamError:
        raise
    except Exception as exc:
        raise UpstreamError(f"reading {upstream!r} to find where the uplink stopped:"
                            f" {type(exc).__name__}: {exc}") from exc
    finally:
        await consumer.stop()
    return found


async def _scan_partition(consumer: AIOKafkaConsumer, tp: UpTP, begin: int, end: int,
                          ours: bytes, floor: dict[int, int], found: dict[int, int],
                          max_records: int) -> None:
    consumer.assign([tp])
    hi, scanned = end, 0
    while hi > begin and scanned < max_records:
        lo = max(begin, hi - min(_CHUNK, max_records - scanned))
        consumer.seek(tp, lo)
        consumer.resume(tp)
        below = False
        while await consumer.position(tp) < hi:
            batch = await consumer.getmany(tp, timeout_ms=1000, max_records=1000)
            for r in batch.get(tp, ()):
                if r.offset >= hi:
                    break
                headers = dict(r.headers)
                if headers.get("edge.id") != ours:
                    continue
                try:
                    part, nxt = int(headers["edge.partition"]), int(headers["edge.offset"]) + 1
                except (KeyError, ValueError):
                    continue
                if nxt <= floor.get(part, 0):
                    below = True   # below the cut: everything before this step is too
                elif nxt > found.get(part, 0):
                    found[part] = nxt
        consumer.pause(tp)   # no fetching ahead past the step: the next one goes backwards
        if below:
            return
        scanned += hi - lo
        hi = lo
    if hi > begin:
        log.warning("uplink: %s: stopped looking for our last records after %d records"
                    " (resume_scan_records)", tp, scanned)
