"""Settings of the log and of its topics, validated with messages that say what was expected."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import TypeGuard

from ._clock import Clock, SystemClock
from ._disk import min_quota
from ._errors import ConfigError, InvalidTopicError
from ._topic_names import TOPIC_NAME_RULE, is_topic_name


class Durability(StrEnum):
    """When an append is acknowledged.

    ``FSYNC`` (the default): after the transaction is fsynced; survives power loss.
    ``NO_FSYNC``: after the transaction is written to the OS; survives the
    process crashing or being killed, but a power cut or kernel panic can lose
    the last acknowledged records (SQLite WAL with ``synchronous=NORMAL``).
    """

    FSYNC = "fsync"
    NO_FSYNC = "no-fsync"


class FullPolicy(StrEnum):
    """What the log does when the disk quota is reached."""

    REJECT = "reject"
    DROP_OLDEST = "drop-oldest"


DROP_LEDGER_TOPIC = "__drop_ledger"

# Topics the log itself writes: clients may read them, never write, create or delete
# them (Kafka refuses appends to __consumer_offsets the same way).
INTERNAL_TOPICS = frozenset({DROP_LEDGER_TOPIC})

# The most partitions a topic may have.  Kafka has no hard limit, but each partition
# here is a row read on every append to its topic and a position in every consumer;
# 10,000 is far beyond what one box's devices need and still cheap.
MAX_PARTITIONS = 10_000

# The longest commit interval: an acknowledgement held longer would outlast the timeouts
# of the clients waiting for it (an MQTT publisher's, a send().get(timeout=10)).
MAX_COMMIT_INTERVAL_MS = 5_000

#: The smallest disk quota a log accepts (see ``_disk``).
MIN_QUOTA_BYTES = min_quota()

_INT_RE = re.compile(r"^[+-]?[0-9]+$")


def is_int(value: object) -> TypeGuard[int]:
    """An int that is not a bool (True is an int to Python, never a count or an offset to us)."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_data_dir_arg(value: object, what: str) -> Path:
    """``value`` as a data directory path; '' would mean the current directory, silently."""
    if isinstance(value, str | os.PathLike) and str(os.fspath(value)).strip():
        return Path(value)
    raise ConfigError(f"{what}: expected the path of the log's directory, got {value!r}")


def validate_topic_name(name: object) -> str:
    """Return ``name`` if Kafka would accept it as a topic name, else raise."""
    if not is_topic_name(name):
        raise InvalidTopicError(f"invalid topic name {name!r}: expected {TOPIC_NAME_RULE}")
    return name


@dataclass(frozen=True)
class TopicConfig:
    """Per-topic settings, under Kafka's names where Kafka has them.

    ``retention_ms`` / ``retention_bytes``: -1 keeps forever.  Age is measured
    on the log clock (see ``_clock``).  ``priority``: higher is more precious:
    drained upstream first, dropped last under the disk quota.
    """

    retention_ms: int = 7 * 24 * 3600 * 1000
    retention_bytes: int = -1
    priority: int = 0

    _KEYS = {
        "retention.ms": "retention_ms",
        "retention.bytes": "retention_bytes",
        "priority": "priority",
    }

    def __post_init__(self) -> None:
        # The same bounds as altered() applies to Kafka-style strings: what SQLite's
        # INTEGER holds, and -1 or more for the limits (a str was stored as TEXT).
        for key, attr in self._KEYS.items():
            value = getattr(self, attr)
            least, shown = (-(2**63), "-2**63") if attr == "priority" else (-1, "-1")
            if not is_int(value) or not least <= value < 2**63:
                raise ConfigError(f"{key}: expected an integer from {shown} to 2**63-1, got {value!r:.80}")

    def to_kafka(self) -> dict[str, str]:
        """The config as Kafka-style string pairs."""
        return {k: str(getattr(self, attr)) for k, attr in self._KEYS.items()}

    def altered(self, changes: dict[str, str]) -> TopicConfig:
        """Return a copy with Kafka-style ``changes`` applied, validated."""
        values = {attr: getattr(self, attr) for attr in self._KEYS.values()}
        for key, raw in changes.items():
            attr = self._KEYS.get(key)
            if attr is None:
                raise ConfigError(
                    f"unknown topic config {key!r}: expected one of {', '.join(sorted(self._KEYS))}"
                )
            # ASCII digits only: int() also takes '1_000' and other scripts' digits.
            text = str(raw).strip()
            if not _INT_RE.match(text):
                raise ConfigError(f"{key}: expected an integer, got {raw!r}")
            value = int(text) if len(text) <= 20 else 2**63  # int() refuses 4300+ digits
            if not -(2**63) <= value < 2**63:  # what SQLite stores: larger failed at write time
                raise ConfigError(f"{key}: expected an integer below 2**63, got {raw!r}")
            if attr != "priority" and value < -1:
                raise ConfigError(f"{key}: expected -1 (unlimited) or a positive integer, got {raw!r}")
            values[attr] = value
        return TopicConfig(**values)


def parse_config_pairs(pairs: list[str]) -> dict[str, str]:
    """Parse ``key=value`` strings (from ``--config``) into a dict, naming the bad one."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"malformed config {pair!r}: expected key=value, e.g. retention.ms=3600000")
        out[key.strip()] = value.strip()
    return out


@dataclass(frozen=True)
class LogConfig:
    """Settings of one log (one data directory).

    ``quota_bytes``: the most the log's files may take on disk, its database
    (free pages included), WAL and drop ledger (None: no quota; at least
    ``MIN_QUOTA_BYTES``).  Reaching it triggers ``full_policy``.  Times are in seconds,
    but ``commit_interval_ms``.

    ``commit_interval_ms``: how long appends may wait for more to share their commit
    (0: commit at once, as Kafka's ``linger.ms=0``).  Each commit writes a few pages to
    the WAL whatever it carries (about 16 KB on the card), so at a few records a second
    an interval divides what the card wears by the records per commit.  A send is still
    acknowledged only once its commit is durable: the interval delays acknowledgements
    (by at most the interval; at once when ``EARLY_COMMIT_RECORDS`` records someone
    acknowledges wait (``send(awaited=False)`` marks those nobody does), or on
    ``flush()``), it never acknowledges anything a power cut could take.  What a power
    cut can take are records not yet acknowledged, as without an interval.
    """

    data_dir: Path
    durability: Durability = Durability.FSYNC
    quota_bytes: int | None = None
    full_policy: FullPolicy = FullPolicy.REJECT
    default_partitions: int = 1
    default_topic_config: TopicConfig = field(default_factory=TopicConfig)
    auto_create_topics: bool = True
    retention_check_interval_s: float = 5.0
    busy_timeout_s: float = 10.0
    commit_interval_ms: int = 0
    clock: Clock = field(default_factory=SystemClock, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", check_data_dir_arg(self.data_dir, "data_dir"))
        try:
            object.__setattr__(self, "durability", Durability(self.durability))
        except ValueError:
            raise ConfigError(
                f"durability: expected 'fsync' or 'no-fsync', got {self.durability!r}"
            ) from None
        try:
            object.__setattr__(self, "full_policy", FullPolicy(self.full_policy))
        except ValueError:
            raise ConfigError(
                f"full_policy: expected 'reject' or 'drop-oldest', got {self.full_policy!r}"
            ) from None
        if self.quota_bytes is not None and (not isinstance(self.quota_bytes, int) or self.quota_bytes <= 0):
            raise ConfigError(f"quota_bytes: expected a positive integer or None, got {self.quota_bytes!r}")
        if not is_int(self.default_partitions) or not 1 <= self.default_partitions <= MAX_PARTITIONS:
            raise ConfigError(
                f"default_partitions: expected an integer from 1 to {MAX_PARTITIONS}, got {self.default_partitions!r}"
            )
        if self.quota_bytes is not None and not is_int(self.quota_bytes):
            raise ConfigError(f"quota_bytes: expected a positive integer or None, got {self.quota_bytes!r}")
        if self.quota_bytes is not None and self.quota_bytes < MIN_QUOTA_BYTES:
            raise ConfigError(
                f"quota_bytes: expected at least {MIN_QUOTA_BYTES} (what an empty log takes on disk, "
                f"with the shares of its WAL and drop ledger; see docs/quota.md), got {self.quota_bytes!r}"
            )
        if not isinstance(self.default_topic_config, TopicConfig):
            raise ConfigError(f"default_topic_config: expected a TopicConfig, got {self.default_topic_config!r}")
        if type(self.auto_create_topics) is not bool:
            raise ConfigError(f"auto_create_topics: expected True or False, got {self.auto_create_topics!r}")
        if not is_int(self.commit_interval_ms) or not 0 <= self.commit_interval_ms <= MAX_COMMIT_INTERVAL_MS:
            raise ConfigError(f"commit_interval_ms: expected an integer from 0 to {MAX_COMMIT_INTERVAL_MS}, "
                              f"got {self.commit_interval_ms!r}")
        for name in ("retention_check_interval_s", "busy_timeout_s"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value < 1e10:  # finite: it becomes integer ms
                raise ConfigError(f"{name}: expected a positive number of seconds, got {value!r}")

    def differences(self, other: LogConfig) -> list[str]:
        """The fields in which ``other`` would run the log differently, as ``name: A vs B``.

        ``data_dir`` is not compared (the caller compares resolved paths); clocks
        differ unless both are the system clock or they are the same object.
        """
        out = []
        for f in fields(self):
            if f.name == "data_dir":
                continue
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if f.name == "clock":
                same = mine is theirs or (type(mine) is SystemClock and type(theirs) is SystemClock)
            else:
                same = mine == theirs
            if not same:
                out.append(f"{f.name}: {_shown(mine)} vs {_shown(theirs)}")
        return out


def _shown(value: object) -> str:
    if isinstance(value, StrEnum):
        return repr(value.value)
    if isinstance(value, SystemClock):
        return "SystemClock()"
    return f"{value!r:.120}"
