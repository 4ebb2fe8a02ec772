"""Which partitions of the desired and commands topics a box reads, and what to say when
their partition count changed since it last connected.

Boxes read only the partitions their keys hash to (PROTOCOL.md). Partitions added to
one of these topics move a key to another partition: records written before the change
stay in the old one. So the box remembers every count it has seen (in its local log) and
keeps reading the partitions its keys hashed to under each, and says what happened, rather
than silently missing the records left behind.
"""

from __future__ import annotations

from collections.abc import Iterable

from broker import default_partition

__all__ = ["assigned_partitions"]


def assigned_partitions(topic: str, count: int, targets: Iterable[str], seen: list[int]
                        ) -> tuple[set[int], list[int], str | None]:
    """(partitions to read, the counts to remember, a warning or None) for ``topic`` with
    ``count`` partitions now, ``seen`` the counts this box saw at its earlier connects."""
    counts = sorted({*seen, count})
    keys = [t.encode() for t in targets]
    # Kafka only adds partitions: an earlier count above today's means the topic was
    # deleted and made again, whose old partitions hold nothing of the old records.
    mine = {default_partition(k, c) for k in keys for c in counts if c <= count}
    if not seen or count in seen:
        return mine, counts, None
    warning = (f"control: topic {topic!r} has {count} partitions, {'/'.join(map(str, seen))} "
               f"when this box last connected: its keys now hash to other partitions. Reading "
               f"partitions {', '.join(map(str, sorted(mine)))} so nothing written before or "
               f"after is missed; partitions must not be added to the control topics "
               f"(docs/control.md)")
    return mine, counts, warning
