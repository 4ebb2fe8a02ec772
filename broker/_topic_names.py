"""Topic names: Kafka's one rule, for the log, the uplink, streams and the config alike.

Kafka accepts 1 to 249 ASCII letters, digits, '.', '_' and '-', except '.' and '..'
(they are directory names to a Kafka broker). Names starting with '__' are internal
(``__consumer_offsets`` there, ``__drop_ledger`` here): readable, never written by clients.
"""

from __future__ import annotations

import re
from typing import TypeGuard

__all__ = ["TOPIC_NAME_RULE", "is_internal_topic", "is_topic_name"]

#: What a topic name must be, for "expected ..." messages.
TOPIC_NAME_RULE = "1 to 249 characters of ASCII letters, digits, '.', '_' or '-'"

# fullmatch, not match with '$': '$' also matches before a final newline, so
# "readings\n" passed every copy of this check the tree used to have.
_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")


def is_topic_name(name: object) -> TypeGuard[str]:
    """True if Kafka would accept ``name`` as a topic name."""
    return isinstance(name, str) and _NAME.fullmatch(name) is not None and name not in (".", "..")


def is_internal_topic(name: str) -> bool:
    """True for the log's own topics ('__' names), which clients may read but never write."""
    return name.startswith("__")
