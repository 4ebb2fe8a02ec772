"""What a record must be before it is queued: checked in ``send()``, where the caller is.

A value SQLite cannot store (a timestamp of 2**70, say) used to fail the whole group
commit it shared with other producers' records; a str or float timestamp was stored as
TEXT or REAL.  Each check here is a type test and a comparison: ``send()`` is the hot
path, so the usual case costs a few hundred nanoseconds in all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ._config import INTERNAL_TOPICS, MAX_PARTITIONS, is_int, validate_topic_name
from ._errors import ConfigError, InvalidTopicError, SerializationError
from ._records import TopicPartition

# Kafka's range for a record timestamp (ms since the epoch): non-negative, a Java long.
# SQLite's INTEGER is the same 64 bits, so anything in range can be stored.
MAX_TIMESTAMP_MS = 2**63 - 1


def check_topic_for_write(topic: object) -> str:
    """``topic`` if a client may append to it: a valid name, not one the log writes itself."""
    name = validate_topic_name(topic)
    if name in INTERNAL_TOPICS:
        raise InvalidTopicError(
            f"topic {name!r} is written by the log itself (it records what the log dropped); "
            "read it, but send to a topic of your own"
        )
    return name


def check_partition(partition: object) -> None:
    """Raise unless ``partition`` is None or a partition number (an int, not a bool)."""
    if partition is None:
        return
    if type(partition) is not int and (not isinstance(partition, int) or isinstance(partition, bool)):
        raise ConfigError(f"partition: expected an integer or None, got {partition!r}")
    if not 0 <= partition < MAX_PARTITIONS:
        raise ConfigError(f"partition: expected 0 to {MAX_PARTITIONS - 1} (or None), got {partition!r}")


def check_timestamp(timestamp_ms: object) -> None:
    """Raise unless ``timestamp_ms`` is None or ms since the epoch that Kafka and SQLite can hold."""
    if timestamp_ms is None:
        return
    if type(timestamp_ms) is not int and (not isinstance(timestamp_ms, int) or isinstance(timestamp_ms, bool)):
        raise ConfigError(
            f"timestamp_ms: expected an integer of ms since the epoch, got {timestamp_ms!r} "
            f"({type(timestamp_ms).__name__})"
        )
    if not 0 <= timestamp_ms <= MAX_TIMESTAMP_MS:
        raise ConfigError(
            f"timestamp_ms: expected 0 to 2**63-1 ms since the epoch (as Kafka), got {timestamp_ms!r}"
        )


def check_headers(headers: Any) -> None:
    """Raise unless ``headers`` is None or a list of ``(str, bytes | None)`` pairs."""
    if headers is None:
        return
    if not isinstance(headers, list | tuple):
        raise SerializationError(
            f"headers: expected a list of (str, bytes) pairs, got {type(headers).__name__} {headers!r:.60}"
        )
    for h in headers:
        # The usual case first, by exact types: the general check costs per header.
        if type(h) is tuple and len(h) == 2 and type(h[0]) is str and type(h[1]) is bytes:
            continue
        if not (isinstance(h, tuple | list) and len(h) == 2 and isinstance(h[0], str)
                and isinstance(h[1], bytes | type(None))):
            raise SerializationError(f"headers must be (str, bytes) pairs, got {h!r:.80}")


def check_record(partition: object, timestamp_ms: object, headers: Sequence[Any] | None) -> None:
    """The checks of ``send()`` after the topic and serialisation, in one call.

    The usual values pass by exact type tests inline; the functions above run (and
    word the error) only for the rest: a function call per check cost ~7% of send().
    """
    if partition is not None and not (type(partition) is int and 0 <= partition < MAX_PARTITIONS):
        check_partition(partition)
    if timestamp_ms is not None and not (type(timestamp_ms) is int and 0 <= timestamp_ms <= MAX_TIMESTAMP_MS):
        check_timestamp(timestamp_ms)
    if headers is not None:
        if type(headers) is not list:
            check_headers(headers)
            return
        for h in headers:
            if not (type(h) is tuple and len(h) == 2 and type(h[0]) is str and type(h[1]) is bytes):
                check_headers(headers)
                return


def check_topic_partition(tp: object, what: str) -> TopicPartition:
    """``tp`` as a ``TopicPartition``: a (topic name, partition number) pair, checked."""
    if isinstance(tp, tuple | list) and len(tp) == 2 and isinstance(tp[0], str) and is_int(tp[1]) \
            and 0 <= tp[1] < MAX_PARTITIONS:
        return tp if type(tp) is TopicPartition else TopicPartition(tp[0], tp[1])
    raise ConfigError(f"{what}: expected a TopicPartition(topic, partition), got {tp!r:.80}")


def check_offset(value: object, what: str) -> int:
    """``value`` if it is an offset (an int >= 0 that SQLite can hold)."""
    if is_int(value) and 0 <= value <= MAX_TIMESTAMP_MS:
        return value
    raise ConfigError(f"{what}: expected an offset (a non-negative integer), got {value!r:.80}")


def check_commit_offsets(offsets: object, what: str) -> list[tuple[TopicPartition, int, str]]:
    """A commit's ``{TopicPartition: offset or OffsetAndMetadata}`` as checked triples."""
    if not isinstance(offsets, Mapping):
        raise ConfigError(f"{what}: expected a dict of TopicPartition to offset, got {offsets!r:.80}")
    out = []
    for tp, om in offsets.items():
        tp = check_topic_partition(tp, what)
        if isinstance(om, tuple) and len(om) >= 1 and not isinstance(om, TopicPartition):
            off, meta = om[0], (om[1] if len(om) > 1 else "")
        else:
            off, meta = om, ""
        off = check_offset(off, f"{what}: offset for {tp.topic}[{tp.partition}]")
        if meta is None:
            meta = ""
        if not isinstance(meta, str):
            raise ConfigError(f"{what}: metadata for {tp.topic}[{tp.partition}]: expected a str, got {meta!r:.80}")
        out.append((tp, off, meta))
    return out


def check_names(names: object, what: str) -> list[str]:
    """A list of names (topics, groups, stores) from an iterable of str; a bare str is refused.

    A str is iterable, so ``delete_topics("news")`` would have meant topics 'n', 'e', 'w', 's'.
    """
    if isinstance(names, str | bytes) or not isinstance(names, Iterable):
        raise ConfigError(f"{what}: expected a list of names, got {names!r:.80}")
    out = list(names)
    for n in out:
        if not isinstance(n, str) or not n:
            raise ConfigError(f"{what}: expected names (non-empty str), got {n!r:.80}")
    return out


def check_group_id(group_id: object, what: str) -> str:
    if isinstance(group_id, str) and group_id:
        return group_id
    raise ConfigError(f"{what}: group_id: expected a non-empty str, got {group_id!r:.80}")


def check_seconds(value: object, what: str, *, allow_none: bool = True) -> None:
    """Raise unless ``value`` is a non-negative number (of seconds or ms), or None if allowed."""
    if value is None and allow_none:
        return
    if not isinstance(value, int | float) or isinstance(value, bool) or not value >= 0:
        raise ConfigError(f"{what}: expected a number >= 0{' or None' if allow_none else ''}, got {value!r:.80}")


def check_list(items: object, what: str) -> list[Any]:
    """``items`` as a list, from any iterable but a str or a single tuple's worth of scalars."""
    if isinstance(items, str | bytes | TopicPartition) or not isinstance(items, Iterable):
        raise ConfigError(f"{what}: expected a list, got {items!r:.80}")
    return list(items)
