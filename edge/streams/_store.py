"""The runner's state stores: an in-memory copy of committed state, and what a batch changed.

State is small (open windows, a value per key), so each store is loaded
whole when the runner starts and kept in a dict.  Processors change the
dict; the keys they touch are remembered, and at the end of a batch those
keys (new value, or deleted) are written in the batch's transaction.  If the
transaction fails, every store is loaded again from the log, which puts
memory back to exactly the committed state.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from broker import KafkaAdminClient, LogTransaction

__all__ = ["StateStore", "key_text", "text_key"]


def key_text(key: bytes | None) -> str | None:
    """A record key as text for a JSON store key: bytes map 1:1 to code points 0-255."""
    return None if key is None else key.decode("latin-1")


def text_key(text: str | None) -> bytes | None:
    return None if text is None else text.encode("latin-1")


class StateStore:
    """One named store: ``data`` maps tuple keys to values; ``touch`` marks a key for commit.

    ``raw``: values are bytes already (stored as they are); otherwise JSON.
    """

    __slots__ = ("name", "raw", "data", "dirty")

    def __init__(self, name: str, raw: bool = False) -> None:
        self.name = name
        self.raw = raw
        self.data: dict[tuple[Any, ...], Any] = {}
        self.dirty: set[tuple[Any, ...]] = set()

    def load(self, admin: KafkaAdminClient) -> None:
        self.data.clear()
        self.dirty.clear()
        for k, v in admin.read_state_store(self.name).items():
            key = tuple(json.loads(k))
            self.data[key] = v if self.raw else json.loads(v)

    def write(self, txn: LogTransaction) -> int:
        """Put the touched keys into ``txn``; return how many."""
        n = 0
        for key in self.dirty:
            value = self.data.get(key, _ABSENT)
            k = _dumps(key).encode()
            if value is _ABSENT:
                txn.put_state(self.name, k, None)
            else:
                txn.put_state(self.name, k, value if self.raw else _dumps(value).encode())
            n += 1
        self.dirty.clear()
        return n

    def items(self) -> Iterator[tuple[tuple[Any, ...], Any]]:
        return iter(list(self.data.items()))


_ABSENT = object()
_dumps = json.JSONEncoder(separators=(",", ":")).encode
