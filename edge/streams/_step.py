"""``KeyedStep``: a stateful processor written by hand, with JSON state per key."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

from ._record import Record

__all__ = ["KeyedStep"]


@runtime_checkable
class KeyedStep(Protocol):
    """A processor with state per record key, kept in the topology's state store.

    ``initial_state()`` is the state of a key seen for the first time.
    ``apply(state, record)`` returns ``(new_state, records_to_emit)``; the new
    state is stored for ``record.key`` (``None`` deletes it, so the next record
    of that key starts from ``initial_state()`` again).  State must be
    JSON-serialisable: it is committed with the output records and input
    offsets in one transaction, so after a crash it is exactly the state that
    produced the committed output.  Do not keep state on ``self``: it would
    not survive a restart and would see records twice after one.

    If ``apply`` raises, the key's state is left as it was and the record goes
    to the dead-letter topic.  Emitted records keep the timestamp you give
    them (usually ``record.timestamp_ms``).
    """

    def initial_state(self) -> Any: ...

    def apply(self, state: Any, record: Record) -> tuple[Any, Iterable[Record]]: ...
