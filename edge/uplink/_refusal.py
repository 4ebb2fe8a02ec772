"""Records the cluster refuses for good, and how the uplink finds which one it was.

A produce request whose record batch breaks a rule of the topic (a timestamp beyond
``message.timestamp.after.max.ms``, a keyless record on a compacted topic, a record too
large) is refused for the whole batch with one error code, and no retry will change the
answer. Such a record must not hold up the records behind it, nor the other topics: the
uplink sends the refused batch's records one per batch on the next attempt (``solo``),
the one refused alone is dead-lettered locally with the cluster's reason and named in
the drop ledger, and the rest go on.

aiokafka asks for Produce v7, whose answer carries the error code only (v8 adds the
refused record's index and the broker's message, which aiokafka does not read), so the
reason is the error's Kafka name and description. aiokafka maps codes it does not know to
``UnknownError``; ``INVALID_RECORD`` (87, a keyless record on a compacted topic, a
record a broker-side validator refused) is one, and is registered here so it can be told
from a broker's unexpected failure.
"""

from __future__ import annotations

import aiokafka.errors as _errors
from aiokafka.errors import (
    BrokerResponseError,
    CorruptRecordException,
    InvalidTimestampError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)

from broker import RawRecord

__all__ = ["InvalidRecordError", "RecordRefusals", "refusal_reason"]


class InvalidRecordError(BrokerResponseError):
    errno = 87
    message = "INVALID_RECORD"
    description = ("This record has failed the validation on the broker and hence will be"
                   " rejected (for instance a record without a key on a compacted topic).")
    retriable = False


# A newer aiokafka that knows the code keeps its own class.
_errors.kafka_errors.setdefault(InvalidRecordError.errno, InvalidRecordError)
_INVALID_RECORD = _errors.kafka_errors[InvalidRecordError.errno]

#: Errors that name a record the topic will never take: no retry, no other connection helps.
REFUSED = (MessageSizeTooLargeError, RecordTooLargeError, RecordListTooLargeError,
           InvalidTimestampError, CorruptRecordException, _INVALID_RECORD)

_HINTS = {
    InvalidTimestampError: "the record's timestamp is outside the topic's"
                           " message.timestamp.before.max.ms / message.timestamp.after.max.ms",
    _INVALID_RECORD: "a compacted topic (cleanup.policy=compact) takes only records with a key",
}

Where = tuple[str, int, int]


def refusal_reason(exc: BaseException) -> str | None:
    """The cluster's reason for refusing a record for good, in words; None if ``exc`` is
    not such a refusal (retriable, or about the connection, the producer or the topic)."""
    if not isinstance(exc, REFUSED):
        return None
    name = type(exc).__name__
    detail = str(exc) if str(exc) and str(exc) != name else getattr(exc, "description", "")
    hint = _HINTS.get(type(exc))
    return f"refused by the cluster: {name}: {detail}" + (f" ({hint})" if hint else "")


def _where(r: RawRecord) -> Where:
    return (r.topic, r.partition, r.offset)


class RecordRefusals:
    """Which local records the cluster refused, and which to send alone to find out.

    State of one ``Uplink``, kept across reconnects (finding a refused record takes one
    more attempt, each starting from the checkpoint). Keys are (local topic, partition,
    offset).
    """

    def __init__(self) -> None:
        self._refused: dict[Where, str] = {}
        self._solo: set[Where] = set()

    def __bool__(self) -> bool:
        return bool(self._refused or self._solo)

    def reason(self, r: RawRecord) -> str | None:
        """The reason ``r`` is to be dead-lettered, if it was refused alone."""
        return self._refused.get(_where(r)) if self._refused else None

    def solo(self, r: RawRecord) -> bool:
        """Whether ``r`` travels in a record batch of its own (its batch was refused)."""
        return bool(self._solo) and _where(r) in self._solo

    def refuse(self, r: RawRecord, reason: str) -> None:
        """Dead-letter ``r`` on the next attempt (a record too large for the client, say)."""
        self._refused[_where(r)] = reason

    def observe(self, members: list[RawRecord], exc: BaseException) -> bool:
        """Learn from a failed record batch; True if the cluster refused its records for good.

        Alone, the record is refused; in company, each is sent alone on the next attempt.
        """
        reason = refusal_reason(exc)
        if reason is None:
            return False
        if len(members) == 1:
            self.refuse(members[0], reason)
        else:
            self._solo.update(_where(r) for r in members)
        return True

    def settled(self, batch: list[RawRecord], dead: list[tuple[RawRecord, str]]) -> None:
        """Forget what a committed batch resolved."""
        for r, _ in dead:
            self._refused.pop(_where(r), None)
        if self._solo:
            self._solo.difference_update(_where(r) for r in batch)
